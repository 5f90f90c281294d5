/* kind_dunning: the `dunning` worker kind — what happens after a failed
 * automatic charge.
 *
 * Job types: dunning.payment_failed (the subscription past due, the
 * customer told), dunning.end (the policy's end action). Its tick enqueues
 * the payment retries and dunning ends that have come due.
 */
#ifndef BILLOW_KIND_DUNNING_H
#define BILLOW_KIND_DUNNING_H

#include <stdbool.h>

#include "config.h"
#include "runtime.h"
#include "worker_conn.h"

/* The dunning kind's handler table (NULL-terminated), for runtime_run(). */
extern const worker_handler_t kind_dunning_handlers[];

/* The kind's tick (runtime_tick_t.fn): enqueues due retries and ends. */
bool kind_dunning_tick(worker_conn_t *c, const config_t *cfg, void *state);

#endif

/* kind_renewal: the `renewal` worker kind — the renewal scheduler (the
 * kind's tick) and test clocks (test_clock.create, test_clock.advance).
 *
 * Run one or several: schedulers share nothing and may overlap, because
 * every renewal job they ask for has an id derived from its subscription
 * and period (kind_invoice_cycle_job_id), so each period is renewed once.
 */
#ifndef BILLOW_KIND_RENEWAL_H
#define BILLOW_KIND_RENEWAL_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime.h"

/* The renewal kind's handler table (NULL-terminated), for runtime_run(). */
extern const worker_handler_t kind_renewal_handlers[];

/* Where the scheduler is in its walk over due subscriptions. */
typedef struct {
    char after_end[64];     /* Period end of the last row enqueued ("" at a pass's start). */
    char after_tenant[64];  /* Its tenant. */
    char after_id[IDS_MAX]; /* Its subscription. */
    int64_t rescan_at_ms;   /* When the walk starts from the beginning again (monotonic). */
} kind_renewal_state_t;

/* Empties st (the next tick starts a new pass). */
void kind_renewal_state_init(kind_renewal_state_t *st);

/* The scheduler's tick (runtime_tick_t.fn; state is a
 * kind_renewal_state_t): one step of the pass over real-time renewals and
 * one over advancing test clocks. Returns true when the step was full and
 * the next should follow at once. */
bool kind_renewal_tick(worker_conn_t *c, const config_t *cfg, void *state);

#endif

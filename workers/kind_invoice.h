/* kind_invoice: the `invoice` worker kind — subscriptions and their
 * invoices.
 *
 * Job types: subscription.create, .update, .cancel, .pause, .resume and
 * .cycle (the end of a period, asked for by the renewal scheduler), and
 * invoice.void, .mark_uncollectible and .pay. A subscription change and
 * the invoice it makes commit together, which is why they share a kind.
 */
#ifndef BILLOW_KIND_INVOICE_H
#define BILLOW_KIND_INVOICE_H

#include <stdint.h>

#include "ids.h"
#include "runtime.h"

/* The invoice kind's handler table (NULL-terminated), for runtime_run(). */
extern const worker_handler_t kind_invoice_handlers[];

/* The id of the subscription.cycle job for the period of subscription_id
 * that ends at period_end (seconds): the same id for every asker, so the
 * period is renewed once (see ids_derive). */
void kind_invoice_cycle_job_id(const char *subscription_id, int64_t period_end, char out[IDS_MAX]);

#endif

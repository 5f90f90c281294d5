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

#include <stdbool.h>
#include <stdint.h>

#include "ids.h"
#include "invstate.h"
#include "runtime.h"

/* The invoice kind's handler table (NULL-terminated), for runtime_run(). */
extern const worker_handler_t kind_invoice_handlers[];

/* The id of the subscription.cycle job for the period of subscription_id
 * that ends at period_end (seconds): the same id for every asker, so the
 * period is renewed once (see ids_derive). */
void kind_invoice_cycle_job_id(const char *subscription_id, int64_t period_end, char out[IDS_MAX]);

/* Moves invoice `id` by ev (void, mark uncollectible, pay) at its
 * customer's clock: the invoice's subscription is locked first, as
 * everywhere; a voided invoice gives back the credit it used and has its
 * PaymentIntent canceled if that still waits (payment.cancel_intent); a paid
 * invoice moves its subscription back to active (from incomplete, past_due
 * or unpaid) when no other invoice of it is still open, whichever is the
 * latest (billing_sub_invoice_paid); a canceled one stays canceled. An invoice that cannot
 * move rejects the job (409 invoice_state), or with quiet is left alone
 * (HANDLER_OK, *moved false). For the invoice kind's own jobs, the charger
 * and the webhook processor. */
handler_outcome_t kind_invoice_settle(worker_job_t *job, const char *id, invstate_event_t ev,
                                      bool quiet, bool *moved);

#endif

/* kind_webhook: the `webhook` worker kind — Stripe's events.
 *
 * Job type: stripe.event (one verified delivery, enqueued by the api's
 * POST /webhooks/stripe/{tenant}). Handles payment_intent.succeeded,
 * .payment_failed, .requires_action, .processing, setup_intent.succeeded,
 * charge.refunded, charge.dispute.created, invoice.paid and
 * customer.subscription.deleted; records every other type (and
 * invoice.payment_failed, customer.subscription.updated) as the newest
 * state of its object.
 */
#ifndef BILLOW_KIND_WEBHOOK_H
#define BILLOW_KIND_WEBHOOK_H

#include "runtime.h"

/* The webhook kind's handler table (NULL-terminated), for runtime_run(). */
extern const worker_handler_t kind_webhook_handlers[];

#endif

/* kind_charger: the `charger` worker kind — Billow's calls to Stripe that
 * move money or collect the means to.
 *
 * Job types: payment.charge (one attempt at an open invoice, off-session,
 * with the customer's default payment method), payment.create (a one-time
 * payment: a one-off invoice charged at once), payment.refund (all or part
 * of a payment), payment.setup_intent (a SetupIntent whose client_secret
 * lets the tenant's front end collect a card) and payment.cancel_intent (an
 * invoice settled outside Stripe takes no more money through its intent).
 */
#ifndef BILLOW_KIND_CHARGER_H
#define BILLOW_KIND_CHARGER_H

#include "runtime.h"

/* The charger kind's handler table (NULL-terminated), for runtime_run(). */
extern const worker_handler_t kind_charger_handlers[];

#endif

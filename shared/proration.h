/* proration: the share of a period's price that a part of the period owes.
 *
 * Prorations are computed to the second, like Stripe's: the part [a, b) of
 * a period [start, end) priced `amount` owes amount × (b − a) / (end − start).
 * To make any split of a period sum to the period's price exactly, a part
 * is the difference of two rounded cumulative shares,
 *
 *     part(a, b) = cumulative(b) − cumulative(a),
 *     cumulative(t) = round_half_up(amount × (t − start) / (end − start)),
 *
 * so the parts of a split telescope to cumulative(end) − cumulative(start)
 * = amount − 0. A minor unit is never created or lost by splitting. A
 * negative amount (a credit) is rounded as the mirror of the positive one.
 *
 * A credit for unused time pays back only what was charged: its span is
 * clipped to the time the item's charges covered in the period, and its
 * amount to what those charges came to, net of earlier credits
 * (proration_credit_span, proration_credit_cap; docs/billing.md, "Credits
 * pay back only what was charged").
 */
#ifndef BILLOW_PRORATION_H
#define BILLOW_PRORATION_H

#include <stdint.h>

#include "err.h"

/* *out = the share of amount that falls in [start, t) of the period
 * [start, end); t is clamped to the period. Returns 0, or
 * BILLOW_EPARAM_INVALID when end ≤ start, or BILLOW_EAMOUNT_TOO_LARGE when
 * amount is out of money's range. */
int proration_cumulative(int64_t amount, int64_t start, int64_t end, int64_t t,
                         int64_t *out) BILLOW_MUSTCHECK;

/* *out = cumulative(b) − cumulative(a): the share of amount owed by [a, b)
 * within [start, end) (a and b clamped to the period; a > b is an error).
 * Errors as proration_cumulative(), and BILLOW_EPARAM_INVALID when a > b. */
int proration_part(int64_t amount, int64_t start, int64_t end, int64_t a, int64_t b,
                   int64_t *out) BILLOW_MUSTCHECK;

/* What one item of a subscription was charged in one billing period, read
 * from the period's invoice lines and pending items for the item: the
 * basis of every credit for its unused time. */
typedef struct {
    int64_t from; /* Start of the earliest span charged (a line above zero). */
    int64_t to;   /* End of the latest; from == to when nothing was charged. */
    int64_t net;  /* Charges minus the credits already given, minor units. */
} proration_charged_t;

/* Clips the unused span [at, end) of the period to the time that was
 * charged, c->from to c->to: *from and *to receive the span a credit may
 * pay back, empty (*from == *to) when none of [at, end) was charged. */
void proration_credit_span(const proration_charged_t *c, int64_t at, int64_t end, int64_t *from,
                           int64_t *to);

/* The credit (≥ 0, minor units) for an unused span whose list-price share
 * is `unused` (≥ 0): never more than what is left of the period's charges
 * for the item, c->net, and nothing when that is not above zero. */
int64_t proration_credit_cap(const proration_charged_t *c, int64_t unused);

#endif

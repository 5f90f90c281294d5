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

#endif

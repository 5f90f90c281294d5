/* proration: shares of a period's price, to the second, that always add up.
 *
 * Design: a part is never rounded on its own. Each boundary of a part is
 * turned into a rounded cumulative share of the period's price, and the
 * part is the difference of two of them, so the rounding errors of
 * neighbouring parts cancel and any split of a period sums to its price
 * exactly (see proration.h). Rounding is half-up, away from zero on a half,
 * through money_mul_div(): symmetric in sign, so the credit for a span is
 * exactly the negation of the charge for the same span and a charge undone
 * by a credit nets to zero; and it is the rounding a customer checking an
 * invoice by hand expects (docs/billing.md).
 *
 * A credit is bounded twice, by time and by money: its span by the time the
 * item's charges in the period covered (so days a change added without a
 * charge are not paid back), and its amount by what those charges came to
 * net of earlier credits (so a part period made free, or an item added
 * free, is never paid back as money).
 */
#include "proration.h"

#include "money.h"

int proration_cumulative(int64_t amount, int64_t start, int64_t end, int64_t t, int64_t *out)
{
    int64_t length;
    if (end <= start || __builtin_sub_overflow(end, start, &length))
        return BILLOW_EPARAM_INVALID;
    if (!money_in_range(amount))
        return BILLOW_EAMOUNT_TOO_LARGE;
    if (t < start)
        t = start;
    if (t > end)
        t = end;
    /* 0 ≤ t − start ≤ length, and money_mul_div() is exact in 128 bits, so
     * the share at end is amount itself and at start 0. */
    return money_mul_div(amount, t - start, length, MONEY_ROUND_HALF_UP, out);
}

int proration_part(int64_t amount, int64_t start, int64_t end, int64_t a, int64_t b, int64_t *out)
{
    int64_t from, to;
    int rc = proration_cumulative(amount, start, end, a, &from);
    if (rc != 0)
        return rc;
    if (a > b)
        return BILLOW_EPARAM_INVALID;
    rc = proration_cumulative(amount, start, end, b, &to);
    if (rc != 0)
        return rc;
    /* Both shares lie between 0 and amount, so the difference is in range. */
    *out = to - from;
    return 0;
}

void proration_credit_span(const proration_charged_t *c, int64_t at, int64_t end, int64_t *from,
                           int64_t *to)
{
    int64_t a = at > c->from ? at : c->from;
    int64_t b = end < c->to ? end : c->to;
    if (c->from >= c->to || a >= b)
        a = b = at;
    *from = a;
    *to = b;
}

int64_t proration_credit_cap(const proration_charged_t *c, int64_t unused)
{
    if (c->net <= 0 || unused <= 0)
        return 0;
    return unused < c->net ? unused : c->net;
}

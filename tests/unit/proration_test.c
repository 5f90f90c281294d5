/* proration: shares of a period's price that telescope to the price. */
#include <criterion/criterion.h>

#include "money.h"
#include "proration.h"
#include "prop.h"

#define DAY INT64_C(86400)

/* 2027-04-01T00:00:00Z: April has 30 days. */
#define APRIL_2027 INT64_C(1806537600)

__extension__ typedef __int128 int128_t;

static int64_t part_or_fail(int64_t amount, int64_t start, int64_t end, int64_t a, int64_t b)
{
    int64_t out = 0;
    cr_assert_eq(proration_part(amount, start, end, a, b, &out), 0);
    return out;
}

static int64_t cumulative_or_fail(int64_t amount, int64_t start, int64_t end, int64_t t)
{
    int64_t out = 0;
    cr_assert_eq(proration_cumulative(amount, start, end, t, &out), 0);
    return out;
}

Test(proration, ten_to_twenty_dollars_halfway_credits_500_and_charges_1000)
{
    /* $10.00/month paid up front for April; on Apr 16 (15 of 30 days gone)
     * the price becomes $20.00/month. */
    int64_t start = APRIL_2027, end = APRIL_2027 + 30 * DAY, change = APRIL_2027 + 15 * DAY;
    int64_t credit = -part_or_fail(1000, start, end, change, end);
    int64_t charge = part_or_fail(2000, start, end, change, end);
    cr_assert_eq(credit, -500);
    cr_assert_eq(charge, 1000);
    cr_assert_eq(1000 + credit + charge, 1500);
}

Test(proration, jpy_thirds_telescope_to_the_price)
{
    /* ¥1000 over 30 days split at day 10 and day 20: the cumulative shares
     * are 333 (333.3), 667 (666.7) and 1000, so the parts are 333, 334, 333. */
    int64_t start = APRIL_2027, end = APRIL_2027 + 30 * DAY;
    cr_assert_eq(cumulative_or_fail(1000, start, end, start + 10 * DAY), 333);
    cr_assert_eq(cumulative_or_fail(1000, start, end, start + 20 * DAY), 667);
    cr_assert_eq(part_or_fail(1000, start, end, start, start + 10 * DAY), 333);
    cr_assert_eq(part_or_fail(1000, start, end, start + 10 * DAY, start + 20 * DAY), 334);
    cr_assert_eq(part_or_fail(1000, start, end, start + 20 * DAY, end), 333);
}

Test(proration, kwd_week_split_by_day_telescopes_to_the_price)
{
    /* 1.000 KWD (1000 fils) a week, day by day: 1000/7 = 142.857… fils a
     * day, cumulative 143 286 429 571 714 857 1000. */
    int64_t start = APRIL_2027, end = APRIL_2027 + 7 * DAY;
    const int64_t cumulative[] = {0, 143, 286, 429, 571, 714, 857, 1000};
    const int64_t parts[] = {143, 143, 143, 142, 143, 143, 143};
    int64_t sum = 0;
    for (int d = 0; d < 7; d++) {
        cr_assert_eq(cumulative_or_fail(1000, start, end, start + d * DAY), cumulative[d]);
        int64_t part = part_or_fail(1000, start, end, start + d * DAY, start + (d + 1) * DAY);
        cr_assert_eq(part, parts[d], "day %d", d);
        sum += part;
    }
    cr_assert_eq(sum, 1000);
}

Test(proration, a_half_rounds_away_from_zero_and_credits_mirror_charges)
{
    cr_assert_eq(cumulative_or_fail(1, 0, 2, 1), 1);
    cr_assert_eq(cumulative_or_fail(-1, 0, 2, 1), -1);
    cr_assert_eq(part_or_fail(1, 0, 2, 1, 2), 0);
    cr_assert_eq(cumulative_or_fail(3, 0, 2, 1), 2);
    cr_assert_eq(cumulative_or_fail(-3, 0, 2, 1), -2);
    int64_t start = APRIL_2027, end = APRIL_2027 + 30 * DAY;
    cr_assert_eq(part_or_fail(-1000, start, end, start + 10 * DAY, start + 20 * DAY), -334);
}

Test(proration, moments_outside_the_period_are_clamped)
{
    int64_t start = APRIL_2027, end = APRIL_2027 + 30 * DAY;
    cr_assert_eq(cumulative_or_fail(1000, start, end, start - DAY), 0);
    cr_assert_eq(cumulative_or_fail(1000, start, end, end + DAY), 1000);
    cr_assert_eq(part_or_fail(1000, start, end, 0, INT64_MAX), 1000);
    cr_assert_eq(part_or_fail(1000, start, end, end, end + DAY), 0);
}

Test(proration, whole_period_of_the_largest_amount_is_exact_to_the_second)
{
    /* Ten years to the second, split one second in: no overflow, no loss. */
    int64_t start = 0, end = 315576000;
    int64_t first = part_or_fail(MONEY_AMOUNT_MAX, start, end, start, start + 1);
    int64_t rest = part_or_fail(MONEY_AMOUNT_MAX, start, end, start + 1, end);
    cr_assert_eq(first, 3168809); /* 10^15 / 315576000 = 3168808.78… */
    cr_assert_eq(first + rest, MONEY_AMOUNT_MAX);
    cr_assert_eq(part_or_fail(-MONEY_AMOUNT_MAX, start, end, start, end), -MONEY_AMOUNT_MAX);
}

Test(proration, bad_periods_amounts_and_reversed_parts_fail_and_leave_out_alone)
{
    int64_t out = 42;
    cr_assert_eq(proration_cumulative(1000, 10, 10, 10, &out), BILLOW_EPARAM_INVALID);
    cr_assert_eq(proration_cumulative(1000, 10, 5, 7, &out), BILLOW_EPARAM_INVALID);
    cr_assert_eq(proration_cumulative(1000, INT64_MIN, INT64_MAX, 0, &out), BILLOW_EPARAM_INVALID);
    cr_assert_eq(proration_cumulative(MONEY_AMOUNT_MAX + 1, 0, 10, 5, &out),
                 BILLOW_EAMOUNT_TOO_LARGE);
    cr_assert_eq(proration_part(1000, 0, 10, 6, 5, &out), BILLOW_EPARAM_INVALID);
    cr_assert_eq(proration_part(1000, 10, 10, 5, 6, &out), BILLOW_EPARAM_INVALID);
    cr_assert_eq(proration_part(-MONEY_AMOUNT_MAX - 1, 0, 10, 5, 6, &out),
                 BILLOW_EAMOUNT_TOO_LARGE);
    cr_assert_eq(out, 42);
}

/* A random period length: mostly calendar-like, sometimes tiny (where
 * rounding dominates), sometimes anything up to ten years. */
static int64_t random_length(prop_t *p)
{
    switch (prop_range(p, 0, 3)) {
    case 0:
        return prop_range(p, 28, 31) * DAY;
    case 1:
        return prop_one_in(p, 2) ? 7 * DAY : 365 * DAY;
    case 2:
        return prop_range(p, 1, 100);
    default:
        return prop_range(p, 1, 315576000);
    }
}

static void sort(int64_t *v, size_t n)
{
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
            int64_t t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
}

/* Most parts a split is cut into. */
#define MAX_PARTS 20

/* Property: any split of a period into 1 to 20 consecutive parts sums to
 * the amount exactly; each part is within one minor unit of its exact
 * rational share (each cumulative share within half of one); a credit is
 * the mirror of the charge; the whole period's part is the amount. */
Test(proration, prop_parts_of_a_split_sum_to_the_amount)
{
    prop_t p;
    cr_assert_eq(prop_begin(&p, "proration/prop_parts_of_a_split_sum_to_the_amount"), 0);
    for (long i = 0; i < p.cases; i++) {
        int64_t amount = prop_range(&p, -MONEY_AMOUNT_MAX / 1000, MONEY_AMOUNT_MAX / 1000);
        if (prop_one_in(&p, 4))
            amount = prop_range(&p, -10000, 10000);
        int64_t start = prop_range(&p, 0, INT64_C(1) << 34);
        int64_t length = random_length(&p);
        int64_t end = start + length;
        size_t n = (size_t)prop_range(&p, 1, MAX_PARTS);
        int64_t cut[MAX_PARTS + 1];
        cut[0] = start;
        cut[n] = end;
        for (size_t j = 1; j < n; j++)
            cut[j] = prop_range(&p, start, end);
        sort(cut + 1, n - 1);

        int64_t sum = 0;
        for (size_t j = 0; j < n; j++) {
            int64_t part, mirror, cumulative;
            cr_assert_eq(proration_part(amount, start, end, cut[j], cut[j + 1], &part), 0);
            cr_assert_eq(proration_part(-amount, start, end, cut[j], cut[j + 1], &mirror), 0);
            cr_assert_eq(mirror, -part, "seed %" PRIu64 " case %ld: a credit is not the mirror",
                         p.seed, i);
            sum += part;
            /* The cumulative share is the nearest integer to the exact one. */
            cr_assert_eq(proration_cumulative(amount, start, end, cut[j + 1], &cumulative), 0);
            int128_t off = (int128_t)cumulative * length - (int128_t)amount * (cut[j + 1] - start);
            cr_assert(2 * off <= length && -2 * off <= length,
                      "seed %" PRIu64 " case %ld: cumulative %" PRId64 " at %" PRId64
                      " is not the nearest",
                      p.seed, i, cumulative, cut[j + 1]);
            /* |part − amount·(b − a)/length| ≤ 1, in integers. */
            int128_t err = (int128_t)part * length - (int128_t)amount * (cut[j + 1] - cut[j]);
            cr_assert(err <= length && -err <= length,
                      "seed %" PRIu64 " case %ld: part %zu of %" PRId64 " over [%" PRId64
                      ", %" PRId64 ") is %" PRId64,
                      p.seed, i, j, amount, cut[j], cut[j + 1], part);
        }
        cr_assert_eq(sum, amount,
                     "seed %" PRIu64 " case %ld: %zu parts of %" PRId64 " sum to %" PRId64, p.seed,
                     i, n, amount, sum);
        int64_t whole;
        cr_assert_eq(proration_part(amount, start, end, start, end, &whole), 0);
        cr_assert_eq(whole, amount, "seed %" PRIu64 " case %ld", p.seed, i);
    }
}

/* Most price changes within one period. */
#define MAX_CHANGES 10

/* A random price in `exponent`-decimal minor units: up to 100,000 major
 * units with random minor digits, now and then zero. */
static int64_t random_price(prop_t *p, int exponent)
{
    if (prop_one_in(p, 10))
        return 0;
    int64_t scale = 1;
    for (int e = 0; e < exponent; e++)
        scale *= 10;
    return prop_range(p, 0, 100000) * scale + prop_range(p, 0, scale - 1);
}

/* What the customer is billed when the period [start, end) is paid at
 * price[0] up front and at times t[1] < … < t[n] the price changes to
 * price[i]: each change credits the unused rest of the old price and
 * charges the rest at the new one. */
static int64_t billed(const int64_t *price, const int64_t *t, size_t n, int64_t start, int64_t end)
{
    int64_t total = price[0];
    for (size_t i = 1; i <= n; i++) {
        int64_t credit, charge;
        cr_assert_eq(proration_part(price[i - 1], start, end, t[i], end, &credit), 0);
        cr_assert_eq(proration_part(price[i], start, end, t[i], end, &charge), 0);
        total += charge - credit;
    }
    return total;
}

/* Property: across a sequence of price changes in a period, in 0-, 2- and
 * 3-decimal currencies, the credits and charges bill exactly the sum of
 * each price's share of the span it was in force (no minor unit created or
 * lost), within n + 1 minor units of the exact rational amount; and
 * changes that keep the price bill exactly the price. */
Test(proration, prop_price_changes_conserve_every_minor_unit)
{
    static const char *CURRENCIES[] = {"jpy", "usd", "kwd"};
    prop_t p;
    cr_assert_eq(prop_begin(&p, "proration/prop_price_changes_conserve_every_minor_unit"), 0);
    for (long i = 0; i < p.cases; i++) {
        const money_currency_t *currency = money_currency_find(CURRENCIES[prop_range(&p, 0, 2)]);
        cr_assert_not_null(currency);
        int64_t start = prop_range(&p, 0, INT64_C(1) << 34);
        int64_t length = random_length(&p);
        int64_t end = start + length;
        size_t n = (size_t)prop_range(&p, 1, MAX_CHANGES);
        if ((int64_t)n > length)
            n = (size_t)length;

        /* t[0] = start, t[1..n] distinct change times, t[n + 1] = end. */
        int64_t t[MAX_CHANGES + 2], price[MAX_CHANGES + 1];
        size_t drawn = 0;
        while (drawn < n) {
            int64_t x = prop_range(&p, start, end - 1);
            int seen = 0;
            for (size_t j = 0; j < drawn; j++)
                seen |= t[1 + j] == x;
            if (!seen)
                t[1 + drawn++] = x;
        }
        sort(t + 1, n);
        t[0] = start;
        t[n + 1] = end;
        for (size_t j = 0; j <= n; j++)
            price[j] = random_price(&p, currency->exponent);

        int64_t total = billed(price, t, n, start, end);
        int64_t expected = 0;
        int128_t exact = 0;
        for (size_t j = 0; j <= n; j++) {
            expected += part_or_fail(price[j], start, end, t[j], t[j + 1]);
            exact += (int128_t)price[j] * (t[j + 1] - t[j]);
        }
        cr_assert_eq(total, expected,
                     "seed %" PRIu64 " case %ld (%s, %zu changes): billed %" PRId64
                     ", the spans owe %" PRId64,
                     p.seed, i, currency->code, n, total, expected);
        int128_t err = (int128_t)total * length - exact;
        cr_assert(err <= (int128_t)(n + 1) * length && -err <= (int128_t)(n + 1) * length,
                  "seed %" PRIu64 " case %ld: billed %" PRId64 " strays from the exact amount",
                  p.seed, i, total);

        for (size_t j = 1; j <= n; j++)
            price[j] = price[0];
        cr_assert_eq(billed(price, t, n, start, end), price[0],
                     "seed %" PRIu64 " case %ld: unchanged price %" PRId64 " billed differently",
                     p.seed, i, price[0]);
    }
}

/* The JPY example of docs/billing.md: ¥9,800 for March 2027 (31 days), ¥14,800
 * from the 10th at 09:30, ¥4,800 from the 22nd at 18:00. */
Test(proration, jpy_two_uneven_changes_bill_the_sum_of_their_spans)
{
    int64_t start = APRIL_2027 - 31 * DAY, end = APRIL_2027;
    int64_t t[] = {start, start + 811800, start + 1879200, end};
    int64_t price[] = {9800, 14800, 4800};
    cr_assert_eq(part_or_fail(9800, start, end, t[1], end), 6830);
    cr_assert_eq(part_or_fail(14800, start, end, t[1], end), 10314);
    cr_assert_eq(part_or_fail(14800, start, end, t[2], end), 4416);
    cr_assert_eq(part_or_fail(4800, start, end, t[2], end), 1432);
    cr_assert_eq(billed(price, t, 2, start, end), 10300);
    cr_assert_eq(part_or_fail(9800, start, end, t[0], t[1]), 2970);
    cr_assert_eq(part_or_fail(14800, start, end, t[1], t[2]), 5898);
    cr_assert_eq(part_or_fail(4800, start, end, t[2], t[3]), 1432);
}

/* The KWD example of docs/billing.md: 12.500 KWD for April 2027, 20.750 from
 * the 7th at 13:45:10, 8.125 from the 19th at 02:00. */
Test(proration, kwd_two_uneven_changes_bill_the_sum_of_their_spans)
{
    int64_t start = APRIL_2027, end = APRIL_2027 + 30 * DAY;
    int64_t t[] = {start, start + 567910, start + 1562400, end};
    int64_t price[] = {12500, 20750, 8125};
    cr_assert_eq(part_or_fail(12500, start, end, t[1], end), 9761);
    cr_assert_eq(part_or_fail(20750, start, end, t[1], end), 16204);
    cr_assert_eq(part_or_fail(20750, start, end, t[2], end), 8242);
    cr_assert_eq(part_or_fail(8125, start, end, t[2], end), 3227);
    cr_assert_eq(billed(price, t, 2, start, end), 13928);
    cr_assert_eq(part_or_fail(12500, start, end, t[0], t[1]) +
                     part_or_fail(20750, start, end, t[1], t[2]) +
                     part_or_fail(8125, start, end, t[2], t[3]),
                 13928);
}

/* A part period [Apr 10, May 1) made free (proration_behavior none):
 * nothing was charged, so no span and no amount is credited. */
Test(proration, credit_for_a_free_part_period_is_nothing)
{
    proration_charged_t c = {.from = APRIL_2027 + 9 * DAY, .to = APRIL_2027 + 9 * DAY, .net = 0};
    int64_t from, to;
    proration_credit_span(&c, APRIL_2027 + 15 * DAY, APRIL_2027 + 30 * DAY, &from, &to);
    cr_assert_eq(from, to);
    cr_assert_eq(proration_credit_cap(&c, 1500), 0);
}

/* A whole period charged: the unused span and its list-price share pass
 * as they are. */
Test(proration, credit_within_what_was_charged_is_the_unused_share)
{
    int64_t start = APRIL_2027, end = APRIL_2027 + 30 * DAY, at = APRIL_2027 + 15 * DAY;
    proration_charged_t c = {.from = start, .to = end, .net = 3000};
    int64_t from, to;
    proration_credit_span(&c, at, end, &from, &to);
    cr_assert_eq(from, at);
    cr_assert_eq(to, end);
    cr_assert_eq(proration_credit_cap(&c, part_or_fail(3000, start, end, from, to)), 1500);
}

/* The anchor moved from May 1 to May 11 without a charge: [Apr 1, May 1)
 * was charged, so a cancel on Apr 16 credits [Apr 16, May 1) only. */
Test(proration, credit_span_stops_where_the_charges_stopped)
{
    proration_charged_t c = {.from = APRIL_2027, .to = APRIL_2027 + 30 * DAY, .net = 3000};
    int64_t from, to;
    proration_credit_span(&c, APRIL_2027 + 15 * DAY, APRIL_2027 + 40 * DAY, &from, &to);
    cr_assert_eq(from, APRIL_2027 + 15 * DAY);
    cr_assert_eq(to, APRIL_2027 + 30 * DAY);
    /* A charge that starts later (an anchor moved later with a charge for
     * the days added, [May 1, May 11)) clips the start too. */
    c.from = APRIL_2027 + 30 * DAY;
    c.to = APRIL_2027 + 40 * DAY;
    proration_credit_span(&c, APRIL_2027 + 15 * DAY, APRIL_2027 + 40 * DAY, &from, &to);
    cr_assert_eq(from, APRIL_2027 + 30 * DAY);
    cr_assert_eq(to, APRIL_2027 + 40 * DAY);
    /* Charged time wholly before the unused span: nothing. */
    c.from = APRIL_2027;
    c.to = APRIL_2027 + 10 * DAY;
    proration_credit_span(&c, APRIL_2027 + 15 * DAY, APRIL_2027 + 30 * DAY, &from, &to);
    cr_assert_eq(from, to);
}

/* Net of earlier credits: 500 charged, 333 credited already, so at most 167
 * is left; a net at or below zero leaves nothing. */
Test(proration, credit_cap_is_what_is_left_of_the_charges)
{
    proration_charged_t c = {.from = APRIL_2027, .to = APRIL_2027 + 30 * DAY, .net = 500 - 333};
    cr_assert_eq(proration_credit_cap(&c, 333), 167);
    cr_assert_eq(proration_credit_cap(&c, 100), 100);
    c.net = 0;
    cr_assert_eq(proration_credit_cap(&c, 100), 0);
    c.net = -40;
    cr_assert_eq(proration_credit_cap(&c, 100), 0);
    c.net = 1000;
    cr_assert_eq(proration_credit_cap(&c, 0), 0);
}

/* For random charged spans and nets: the clipped span lies within both the
 * unused span and the charged one (or is empty), and the capped credit is
 * within 0 … min(unused, net). */
Test(proration, prop_credit_never_exceeds_the_charges)
{
    prop_t p;
    cr_assert_eq(prop_begin(&p, "proration/prop_credit_never_exceeds_the_charges"), 0);
    for (long i = 0; i < p.cases; i++) {
        int64_t base = prop_range(&p, 0, INT64_C(1) << 34);
        int64_t a = base + prop_range(&p, 0, 60 * DAY), b = base + prop_range(&p, 0, 60 * DAY);
        int64_t at = base + prop_range(&p, 0, 60 * DAY), end = at + prop_range(&p, 0, 60 * DAY);
        proration_charged_t c = {
            .from = a < b ? a : b, .to = a < b ? b : a, .net = prop_range(&p, -100000, 100000)};
        int64_t from, to;
        proration_credit_span(&c, at, end, &from, &to);
        cr_assert(from <= to, "seed %" PRIu64 " case %ld: span reversed", p.seed, i);
        if (from < to)
            cr_assert(from >= at && to <= end && from >= c.from && to <= c.to,
                      "seed %" PRIu64 " case %ld: span outside the unused or charged time", p.seed,
                      i);
        int64_t unused = prop_range(&p, 0, 100000), credit = proration_credit_cap(&c, unused);
        cr_assert(credit >= 0 && credit <= unused && (c.net <= 0 ? credit == 0 : credit <= c.net),
                  "seed %" PRIu64 " case %ld: credit %" PRId64 " out of bounds", p.seed, i, credit);
    }
}

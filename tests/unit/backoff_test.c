/* backoff_test: bounds, the cap, and determinism of the retry delay. */
#include <criterion/criterion.h>
#include <limits.h>

#include "backoff.h"

#define BASE INT64_C(1000)
#define MAX  INT64_C(3600000)

/* min(MAX, BASE * 2^(attempt-1)), written out independently of backoff.c. */
static int64_t expected_cap(int attempt)
{
    int64_t d = BASE;
    for (int i = 1; i < attempt; i++) {
        d *= 2;
        if (d >= MAX)
            return MAX;
    }
    return d;
}

Test(backoff, bounds_for_attempts_1_to_20_are_half_to_full_delay)
{
    for (int attempt = 1; attempt <= 20; attempt++) {
        int64_t lo, hi;
        backoff_bounds_ms(attempt, BASE, MAX, &lo, &hi);
        int64_t d = expected_cap(attempt);
        cr_assert_eq(hi, d, "attempt %d", attempt);
        cr_assert_eq(lo, d / 2, "attempt %d", attempt);
        const uint64_t randoms[] = {0, 1, 12345, UINT64_MAX / 3, UINT64_MAX};
        for (size_t i = 0; i < sizeof randoms / sizeof randoms[0]; i++) {
            int64_t delay = backoff_delay_ms(attempt, BASE, MAX, randoms[i]);
            cr_assert(delay >= lo && delay <= hi, "attempt %d: %lld not in [%lld, %lld]", attempt,
                      (long long)delay, (long long)lo, (long long)hi);
        }
    }
}

Test(backoff, first_retries_double)
{
    int64_t lo, hi;
    backoff_bounds_ms(1, BASE, MAX, &lo, &hi);
    cr_assert_eq(lo, 500);
    cr_assert_eq(hi, 1000);
    backoff_bounds_ms(4, BASE, MAX, &lo, &hi);
    cr_assert_eq(lo, 4000);
    cr_assert_eq(hi, 8000);
}

Test(backoff, delay_is_capped_at_max)
{
    int64_t lo, hi;
    backoff_bounds_ms(13, BASE, MAX, &lo, &hi);
    cr_assert_eq(hi, MAX);
    backoff_bounds_ms(INT_MAX, BASE, MAX, &lo, &hi);
    cr_assert_eq(hi, MAX);
    cr_assert_eq(lo, MAX / 2);
    cr_assert_leq(backoff_delay_ms(INT_MAX, BASE, MAX, UINT64_MAX), MAX);
}

Test(backoff, upper_bound_never_decreases_with_attempts)
{
    int64_t prev_lo = 0, prev_hi = 0;
    for (int attempt = 1; attempt <= 64; attempt++) {
        int64_t lo, hi;
        backoff_bounds_ms(attempt, BASE, MAX, &lo, &hi);
        cr_assert_geq(hi, prev_hi, "attempt %d", attempt);
        cr_assert_geq(lo, prev_lo, "attempt %d", attempt);
        prev_lo = lo;
        prev_hi = hi;
    }
}

Test(backoff, same_inputs_give_the_same_delay)
{
    for (int attempt = 1; attempt <= 20; attempt++) {
        uint64_t r = UINT64_C(0x9e3779b97f4a7c15) * (uint64_t)attempt;
        cr_assert_eq(backoff_delay_ms(attempt, BASE, MAX, r),
                     backoff_delay_ms(attempt, BASE, MAX, r));
    }
}

Test(backoff, random_spans_the_whole_range)
{
    int64_t lo, hi;
    backoff_bounds_ms(3, BASE, MAX, &lo, &hi);
    cr_assert_eq(backoff_delay_ms(3, BASE, MAX, 0), lo);
    cr_assert_eq(backoff_delay_ms(3, BASE, MAX, (uint64_t)(hi - lo)), hi);
    cr_assert_eq(backoff_delay_ms(3, BASE, MAX, (uint64_t)(hi - lo) + 1), lo);
}

Test(backoff, attempts_below_one_wait_like_the_first)
{
    int64_t lo, hi;
    backoff_bounds_ms(0, BASE, MAX, &lo, &hi);
    cr_assert_eq(hi, BASE);
    backoff_bounds_ms(-5, BASE, MAX, &lo, &hi);
    cr_assert_eq(hi, BASE);
}

Test(backoff, a_base_above_max_is_capped)
{
    int64_t lo, hi;
    backoff_bounds_ms(1, 10000, 3000, &lo, &hi);
    cr_assert_eq(hi, 3000);
    cr_assert_eq(lo, 1500);
}

/* backoff: how long a failed job waits before its next attempt.
 *
 * Design: the delay is computed from the attempt number and a random value
 * the caller passes in, with no state and no clock, so a worker can derive
 * it from anything random it already has and the tests can check exact
 * values. Exponent and arguments are clamped instead of refused: a retry
 * must always get some delay, even from a misconfigured worker.
 *
 * With d the capped exponential delay, the result lies in [d/2, d] (d/2
 * rounded down), i.e. half guaranteed and a random part of up to the other
 * half; for odd d that part may be one millisecond longer than d/2 so that
 * the largest delay is exactly d and never exceeds the cap.
 */
#include "backoff.h"

/* Capped exponential delay before retry `attempt`; never negative. */
static int64_t capped_delay(int attempt, int64_t base_ms, int64_t max_ms)
{
    if (max_ms < 0)
        max_ms = 0;
    if (base_ms <= 0)
        return 0;
    if (base_ms >= max_ms)
        return max_ms;
    /* Doubling stops at the cap, so a huge attempt number cannot overflow. */
    int64_t d = base_ms;
    for (int n = 1; n < attempt && d < max_ms; n++)
        d = d > max_ms / 2 ? max_ms : d * 2;
    return d < max_ms ? d : max_ms;
}

void backoff_bounds_ms(int attempt, int64_t base_ms, int64_t max_ms, int64_t *lo, int64_t *hi)
{
    int64_t d = capped_delay(attempt, base_ms, max_ms);
    *lo = d / 2;
    *hi = d;
}

int64_t backoff_delay_ms(int attempt, int64_t base_ms, int64_t max_ms, uint64_t random)
{
    int64_t lo, hi;
    backoff_bounds_ms(attempt, base_ms, max_ms, &lo, &hi);
    /* Billow's cap (BACKOFF_MAX_MS) is an int, so the span is below 2^31 and
     * the modulo's bias below 2^-33: nothing a retry schedule could show. */
    uint64_t span = (uint64_t)(hi - lo) + 1;
    return lo + (int64_t)(random % span);
}

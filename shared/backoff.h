/* backoff: how long a failed job waits before its next attempt.
 *
 * Exponential with "equal jitter": the delay before retry n (n >= 1) is
 * d = min(max, base * 2^(n-1)); the job waits d/2 plus a random part in
 * [0, d/2]. Half the delay is guaranteed, so retries never stampede back at
 * once, and the random half spreads jobs that failed together.
 */
#ifndef BILLOW_BACKOFF_H
#define BILLOW_BACKOFF_H

#include <stdint.h>

/* The delay in milliseconds before retry `attempt` (1 for the first retry).
 * `random` is any 64-bit random value; the same inputs give the same delay. */
int64_t backoff_delay_ms(int attempt, int64_t base_ms, int64_t max_ms, uint64_t random);
/* The bounds of backoff_delay_ms for `attempt`: [*lo, *hi]. */
void backoff_bounds_ms(int attempt, int64_t base_ms, int64_t max_ms, int64_t *lo, int64_t *hi);

#endif

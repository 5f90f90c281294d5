/* prop: a seedable random generator for the property tests.
 *
 * A property test draws many random cases from one seed and asserts a law
 * of the module on each. The seed comes from BILLOW_PROPERTY_SEED, or from
 * the clock when it is unset, and every property prints the seed and case
 * count it ran with to stderr, so any failure can be replayed exactly:
 *
 *     calendar/prop_boundaries: BILLOW_PROPERTY_SEED=8412 BILLOW_PROPERTY_CASES=5000
 *
 * Replay a failure with that seed (and at least as many cases: the cases
 * are drawn in order from the one stream, and the failure message names
 * the case that failed):
 *
 *     BILLOW_PROPERTY_SEED=8412 build/billow-unit-tests --filter 'calendar/prop_boundaries'
 *
 * Run 10^6 cases of a module's properties (the default is 5,000, quick
 * enough for every test run):
 *
 *     BILLOW_PROPERTY_CASES=1000000 build/billow-unit-tests --filter 'calendar/prop_*'
 *     BILLOW_PROPERTY_CASES=1000000 build/billow-unit-tests --filter 'proration/prop_*'
 *     BILLOW_PROPERTY_CASES=1000000 build/billow-unit-tests --filter 'pricing/prop_*'
 *     BILLOW_PROPERTY_CASES=1000000 build/billow-unit-tests --filter 'money/prop_*'
 *
 * The generator is splitmix64: tiny, fast, and every seed (0 included)
 * gives a full-period stream. Header-only (static inline) so that each
 * test file includes it and the unit-test build needs no extra source.
 */
#ifndef BILLOW_TESTS_PROP_H
#define BILLOW_TESTS_PROP_H

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* Cases per property when BILLOW_PROPERTY_CASES is unset. */
#define PROP_DEFAULT_CASES 5000

/* Most cases a run may ask for: stops a typo (an extra zero or three) from
 * keeping the test binary busy for hours. */
#define PROP_MAX_CASES 100000000L

typedef struct {
    uint64_t state; /* splitmix64 state; advances by a constant per draw. */
    uint64_t seed;  /* The seed this run started from, for failure messages. */
    long cases;     /* How many cases the property should check. */
} prop_t;

/* The next 64 random bits. */
static inline uint64_t prop_next(prop_t *p)
{
    uint64_t z = (p->state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* A uniform integer in [lo, hi] (lo ≤ hi). Draws above the largest
 * multiple of the span are redrawn, so no value is favoured. */
static inline int64_t prop_range(prop_t *p, int64_t lo, int64_t hi)
{
    uint64_t span = (uint64_t)hi - (uint64_t)lo + 1;
    if (span == 0)
        return (int64_t)prop_next(p);
    uint64_t limit = UINT64_MAX - UINT64_MAX % span;
    uint64_t x;
    do
        x = prop_next(p);
    while (x >= limit);
    return (int64_t)((uint64_t)lo + x % span);
}

/* True with probability 1 / n. */
static inline int prop_one_in(prop_t *p, int64_t n)
{
    return prop_range(p, 1, n) == 1;
}

/* Reads an unsigned decimal environment variable into *out. Returns 1 when
 * set and valid, 0 when unset, -1 when set but not a number. */
static inline int prop_env_u64(const char *name, uint64_t *out)
{
    const char *s = getenv(name);
    if (s == NULL || *s == '\0')
        return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || *s == '-')
        return -1;
    *out = (uint64_t)v;
    return 1;
}

/* Starts property `name`: seeds p from BILLOW_PROPERTY_SEED (else from the
 * clock and the process id, so parallel tests differ), takes the case count
 * from BILLOW_PROPERTY_CASES (else PROP_DEFAULT_CASES), and prints both to
 * stderr. Returns 0, or -1 (after saying why on stderr) when either
 * variable is malformed or the count is outside 1 to PROP_MAX_CASES. */
static inline int prop_begin(prop_t *p, const char *name)
{
    uint64_t seed, cases = PROP_DEFAULT_CASES;
    int have_seed = prop_env_u64("BILLOW_PROPERTY_SEED", &seed);
    int have_cases = prop_env_u64("BILLOW_PROPERTY_CASES", &cases);
    if (have_seed < 0 || have_cases < 0 || cases < 1 || cases > (uint64_t)PROP_MAX_CASES) {
        fprintf(stderr,
                "%s: BILLOW_PROPERTY_SEED must be an unsigned integer and "
                "BILLOW_PROPERTY_CASES an integer from 1 to %ld\n",
                name, PROP_MAX_CASES);
        return -1;
    }
    if (have_seed == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        prop_t mix = {.state = (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec};
        seed = prop_next(&mix) ^ (uint64_t)getpid();
    }
    p->seed = seed;
    p->state = seed;
    p->cases = (long)cases;
    fprintf(stderr, "%s: BILLOW_PROPERTY_SEED=%" PRIu64 " BILLOW_PROPERTY_CASES=%ld\n", name, seed,
            p->cases);
    return 0;
}

#endif

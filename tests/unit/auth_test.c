/* auth_test: how a staff session stands at a given time (the clock is the
 * test's), the Redis key of its last use, and the key cache. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "auth.h"

/* 2026-11-26T00:00:00Z. */
#define T0     1795651200000LL
#define MINUTE 60000LL

Test(auth, a_session_used_recently_and_before_its_expiry_is_live)
{
    cr_assert_eq(auth_session_state(T0, T0 + 60 * MINUTE, T0 - 5 * MINUTE, 30 * MINUTE),
                 AUTH_SESSION_LIVE);
    /* Exactly the idle limit is still within it. */
    cr_assert_eq(auth_session_state(T0, T0 + 60 * MINUTE, T0 - 30 * MINUTE, 30 * MINUTE),
                 AUTH_SESSION_LIVE);
}

Test(auth, a_session_unused_longer_than_the_idle_limit_is_idle)
{
    cr_assert_eq(auth_session_state(T0, T0 + 60 * MINUTE, T0 - 30 * MINUTE - 1, 30 * MINUTE),
                 AUTH_SESSION_IDLE);
    /* No known use (Redis lost it, or it was never recorded) counts as idle. */
    cr_assert_eq(auth_session_state(T0, T0 + 60 * MINUTE, -1, 30 * MINUTE), AUTH_SESSION_IDLE);
}

Test(auth, the_absolute_expiry_wins_over_recent_use)
{
    cr_assert_eq(auth_session_state(T0, T0, T0, 30 * MINUTE), AUTH_SESSION_EXPIRED);
    cr_assert_eq(auth_session_state(T0 + 1, T0, T0, 30 * MINUTE), AUTH_SESSION_EXPIRED);
    cr_assert_eq(auth_session_state(T0 - 1, T0, T0 - 2, 30 * MINUTE), AUTH_SESSION_LIVE);
}

Test(auth, moving_the_clock_forward_ends_a_session_in_order_idle_then_expired)
{
    int64_t expires = T0 + 12 * 60 * MINUTE, last = T0, idle = 30 * MINUTE;
    cr_assert_eq(auth_session_state(T0 + 29 * MINUTE, expires, last, idle), AUTH_SESSION_LIVE);
    cr_assert_eq(auth_session_state(T0 + 31 * MINUTE, expires, last, idle), AUTH_SESSION_IDLE);
    cr_assert_eq(auth_session_state(T0 + 13 * 60 * MINUTE, expires, last, idle),
                 AUTH_SESSION_EXPIRED);
}

Test(auth, the_last_use_key_names_the_session)
{
    char key[AUTH_SESSION_KEY_MAX];
    auth_session_key("ses_01JABCDEFGHJKMNPQRSTVWXYZ0", key);
    cr_assert_str_eq(key, "sess:ses_01JABCDEFGHJKMNPQRSTVWXYZ0");
}

/* A 64-hex-digit hash as the cache keys it. */
static const char *const HASH_A =
    "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";

Test(auth, a_key_looked_up_before_a_flush_is_not_cached_after_it)
{
    auth_cache_t *cache = auth_cache_create();
    auth_t a = {.kind = AUTH_KEY};
    snprintf(a.key_id, sizeof a.key_id, "key_1");

    /* The look-up starts; the key is revoked and every api flushes; then the
     * look-up's answer (read before the revocation committed) arrives. */
    uint64_t started = auth_cache_generation(cache);
    auth_cache_flush(cache);
    auth_cache_put(cache, started, HASH_A, &a, 1000, -1);
    cr_assert_null(auth_cache_get(cache, HASH_A, 1001));

    /* A look-up that starts after the flush is cached as usual. */
    auth_cache_put(cache, auth_cache_generation(cache), HASH_A, &a, 1000, -1);
    const auth_t *got = auth_cache_get(cache, HASH_A, 1001);
    cr_assert_not_null(got);
    cr_assert_str_eq(got->key_id, "key_1");
    auth_cache_flush(cache);
    cr_assert_null(auth_cache_get(cache, HASH_A, 1001));
    auth_cache_destroy(cache);
}

Test(auth, a_cached_key_ends_at_its_own_end_when_sooner_than_the_ttl)
{
    auth_cache_t *cache = auth_cache_create();
    auth_t a = {.kind = AUTH_KEY};
    auth_cache_put(cache, auth_cache_generation(cache), HASH_A, &a, 1000, 1500);
    cr_assert_not_null(auth_cache_get(cache, HASH_A, 1499));
    cr_assert_null(auth_cache_get(cache, HASH_A, 1500));
    auth_cache_destroy(cache);
}

/* auth_test: how a staff session stands at a given time (the clock is the
 * test's), and the Redis key of its last use. */
#include <criterion/criterion.h>
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

/* query: reading URL query parameters. */
#include <criterion/criterion.h>

#include "query.h"

Test(query, a_value_is_percent_decoded_and_plus_is_space)
{
    char out[32];
    cr_assert_eq(query_get("limit=5&email=a%40b.c+d", "email", out, sizeof out), 1);
    cr_assert_str_eq(out, "a@b.c d");
    cr_assert_eq(query_get("email=caf%C3%A9", "email", out, sizeof out), 1);
    cr_assert_str_eq(out, "caf\xc3\xa9");
}

Test(query, an_absent_name_is_0)
{
    char out[8];
    cr_assert_eq(query_get("limit=5", "email", out, sizeof out), 0);
    cr_assert_eq(query_get(NULL, "email", out, sizeof out), 0);
    cr_assert_eq(query_get("emails=x", "email", out, sizeof out), 0);
}

Test(query, bad_encoding_a_nul_and_overflow_are_invalid)
{
    char out[8];
    cr_assert_eq(query_get("email=%G1", "email", out, sizeof out), BILLOW_EPARAM_INVALID);
    cr_assert_eq(query_get("email=a%00", "email", out, sizeof out), BILLOW_EPARAM_INVALID);
    cr_assert_eq(query_get("email=123456789", "email", out, sizeof out), BILLOW_EPARAM_INVALID);
}

Test(query, a_value_that_is_not_utf8_or_has_control_characters_is_invalid)
{
    /* Values go to Postgres, which refuses bytes that are not UTF-8. */
    char out[16];
    cr_assert_eq(query_get("email=%FF", "email", out, sizeof out), BILLOW_EPARAM_INVALID);
    cr_assert_eq(query_get("email=\xff", "email", out, sizeof out), BILLOW_EPARAM_INVALID);
    cr_assert_eq(query_get("email=caf%C3", "email", out, sizeof out), BILLOW_EPARAM_INVALID);
    cr_assert_eq(query_get("email=a%0Ab", "email", out, sizeof out), BILLOW_EPARAM_INVALID);
}

Test(query, the_first_unknown_name_is_reported_raw)
{
    static const char *const allowed[] = {"limit", "email", NULL};
    char out[8];
    cr_assert_eq(query_unknown("limit=1&email=x", allowed, out, sizeof out), 0);
    cr_assert_eq(query_unknown("limit=1&colour=red&x=1", allowed, out, sizeof out), 1);
    cr_assert_str_eq(out, "colour");
    cr_assert_eq(query_unknown("averyverylongname=1", allowed, out, sizeof out), 1);
    cr_assert_str_eq(out, "averyve");
}

/* percent: percent-decoding, shared by query strings (api/query.c) and
 * REDIS_URL's credentials (shared/redis_url.c). */
#include <criterion/criterion.h>

#include "percent.h"

static int dec(const char *s, bool plus, char *out, size_t n)
{
    return percent_decode(s, strlen(s), plus, out, n);
}

Test(percent, escapes_decode_in_either_case_and_the_rest_is_copied)
{
    char out[64];
    cr_assert_eq(dec("p%40ss%3Aw%2frd%25", false, out, sizeof out), 0);
    cr_assert_str_eq(out, "p@ss:w/rd%");
    cr_assert_eq(dec("", false, out, sizeof out), 0);
    cr_assert_str_eq(out, "");
    cr_assert_eq(dec("%C3%A9t%C3%A9", false, out, sizeof out), 0);
    cr_assert_str_eq(out, "\xc3\xa9t\xc3\xa9");
}

Test(percent, plus_is_a_space_only_when_asked)
{
    char out[16];
    cr_assert_eq(dec("a+b%2B", true, out, sizeof out), 0);
    cr_assert_str_eq(out, "a b+");
    cr_assert_eq(dec("a+b%2B", false, out, sizeof out), 0);
    cr_assert_str_eq(out, "a+b+");
}

Test(percent, bad_escapes_and_nul_are_refused)
{
    const char *bad[] = {"%", "%4", "a%", "%zz", "%4g", "%00", "x%00y", "%%41"};
    char out[16];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(dec(bad[i], false, out, sizeof out), BILLOW_EPARAM_INVALID, "%s", bad[i]);
}

Test(percent, a_result_that_does_not_fit_is_refused)
{
    char out[4];
    cr_assert_eq(dec("abc", false, out, sizeof out), 0, "three bytes and the NUL fit");
    cr_assert_eq(dec("abcd", false, out, sizeof out), BILLOW_EPARAM_INVALID);
    cr_assert_eq(dec("%41%42%43", false, out, sizeof out), 0, "the decoded length counts");
    cr_assert_str_eq(out, "ABC");
    cr_assert_eq(percent_decode("", 0, false, out, 0), BILLOW_EPARAM_INVALID, "no room for NUL");
}

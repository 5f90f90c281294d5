/* decimal: strict number parsing. */
#include <criterion/criterion.h>
#include <string.h>

#include "decimal.h"

static int parse(const char *s, long min, long max, long *out)
{
    return decimal_parse(s, strlen(s), min, max, out);
}

Test(decimal, digits_within_bounds_parse)
{
    long v = -1;
    cr_assert_eq(parse("0", 0, 10, &v), 0);
    cr_assert_eq(v, 0);
    cr_assert_eq(parse("100", 1, 100, &v), 0);
    cr_assert_eq(v, 100);
    cr_assert_eq(parse("007", 0, 10, &v), 0);
    cr_assert_eq(v, 7);
}

Test(decimal, anything_but_digits_is_refused_and_leaves_out_alone)
{
    const char *bad[] = {"", "-1", "+1", " 1", "1 ", "1e3", "0x10", "12a", "1.5"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        long v = 42;
        cr_assert_eq(parse(bad[i], 0, 1000, &v), BILLOW_EPARAM_INVALID, "'%s'", bad[i]);
        cr_assert_eq(v, 42, "'%s' changed the output", bad[i]);
    }
}

Test(decimal, out_of_bounds_and_overlong_numbers_are_refused)
{
    long v = 42;
    cr_assert_eq(parse("101", 1, 100, &v), BILLOW_EPARAM_INVALID);
    cr_assert_eq(parse("0", 1, 100, &v), BILLOW_EPARAM_INVALID);
    cr_assert_eq(parse("9999999999999999", 0, 9223372036854775807L, &v), BILLOW_EPARAM_INVALID);
    cr_assert_eq(v, 42);
}

Test(decimal, only_len_bytes_are_read)
{
    long v = 0;
    cr_assert_eq(decimal_parse("12345", 2, 0, 100, &v), 0);
    cr_assert_eq(v, 12);
}

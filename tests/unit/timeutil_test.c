/* timeutil_test: RFC 3339 formatting and parsing, and the clocks' direction. */
#include <criterion/criterion.h>

#include "timeutil.h"

static void check_format(int64_t ms, const char *want)
{
    char out[TIMEUTIL_RFC3339_MAX];
    timeutil_format_rfc3339(ms, out);
    cr_assert_str_eq(out, want, "%lld", (long long)ms);
}

static int64_t parse(const char *s)
{
    int64_t ms = -42;
    cr_assert_eq(timeutil_parse_rfc3339(s, &ms), 0, "%s", s);
    return ms;
}

static void refuse(const char *s)
{
    int64_t ms = -42;
    cr_assert_eq(timeutil_parse_rfc3339(s, &ms), -1, "%s", s);
    cr_assert_eq(ms, -42, "out is untouched on failure");
}

Test(timeutil, formats_utc_with_milliseconds)
{
    check_format(0, "1970-01-01T00:00:00.000Z");
    check_format(INT64_C(1795648670123), "2026-11-25T23:17:50.123Z");
    check_format(INT64_C(1709208000000), "2024-02-29T12:00:00.000Z");
    check_format(-1, "1969-12-31T23:59:59.999Z");
    check_format(INT64_C(951782400000), "2000-02-29T00:00:00.000Z");
}

Test(timeutil, times_beyond_four_digit_years_are_clamped)
{
    check_format(INT64_C(-62167219200000), "0000-01-01T00:00:00.000Z");
    check_format(INT64_MIN, "0000-01-01T00:00:00.000Z");
    check_format(INT64_C(253402300799999), "9999-12-31T23:59:59.999Z");
    check_format(INT64_MAX, "9999-12-31T23:59:59.999Z");
}

Test(timeutil, parse_inverts_format)
{
    const int64_t samples[] = {0,
                               1,
                               -1,
                               INT64_C(1795648670123),
                               INT64_C(1709208000000),
                               INT64_C(253402300799999),
                               INT64_C(-62167219200000)};
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        char text[TIMEUTIL_RFC3339_MAX];
        timeutil_format_rfc3339(samples[i], text);
        cr_assert_eq(parse(text), samples[i], "%s", text);
    }
}

Test(timeutil, parse_applies_offsets_and_fraction_lengths)
{
    cr_assert_eq(parse("2026-11-25T23:17:50Z"), INT64_C(1795648670000));
    cr_assert_eq(parse("2026-11-25T23:17:50.1Z"), INT64_C(1795648670100));
    cr_assert_eq(parse("2026-11-25T23:17:50.123456789Z"), INT64_C(1795648670123));
    cr_assert_eq(parse("2026-11-26T01:17:50.123+02:00"), INT64_C(1795648670123));
    cr_assert_eq(parse("2026-11-25T18:47:50.123-04:30"), INT64_C(1795648670123));
    cr_assert_eq(parse("2026-11-25t23:17:50.123z"), INT64_C(1795648670123));
}

Test(timeutil, parse_refuses_what_is_not_rfc3339)
{
    refuse("");
    refuse("2026-11-25");
    refuse("2026-11-25 23:17:50Z");
    refuse("2026-11-25T23:17:50");
    refuse("2026-11-25T23:17:50.Z");
    refuse("2026-13-01T00:00:00Z");
    refuse("2026-02-29T00:00:00Z");
    refuse("2026-04-31T00:00:00Z");
    refuse("2026-11-25T24:00:00Z");
    refuse("2026-11-25T23:60:00Z");
    refuse("2026-11-25T23:59:60Z");
    refuse("2026-11-25T23:17:50Z ");
    refuse("2026-11-25T23:17:50+0200");
    refuse("26-11-25T23:17:50Z");
    refuse("1795648670123");
}

Test(timeutil, parse_accepts_leap_days)
{
    cr_assert_eq(parse("2024-02-29T12:00:00Z"), INT64_C(1709208000000));
    cr_assert_eq(parse("2000-02-29T00:00:00Z"), INT64_C(951782400000));
    refuse("1900-02-29T00:00:00Z");
}

Test(timeutil, clocks_do_not_run_backwards)
{
    uint64_t m1 = timeutil_mono_ns();
    uint64_t m2 = timeutil_mono_ns();
    cr_assert_geq(m2, m1);
    /* After 2020-01-01: a wall clock of zero would mean clock_gettime was not used. */
    cr_assert_gt(timeutil_now_ms(), INT64_C(1577836800000));
}

Test(timeutil, offsets_that_leave_the_writable_range_are_refused)
{
    int64_t ms = 7;
    cr_assert_eq(timeutil_parse_rfc3339("0000-01-01T00:00:00+05:30", &ms), -1);
    cr_assert_eq(timeutil_parse_rfc3339("9999-12-31T23:59:59.999-00:01", &ms), -1);
    cr_assert_eq(ms, 7, "a refused time leaves the output alone");
    cr_assert_eq(timeutil_parse_rfc3339("0000-01-01T00:00:00-00:01", &ms), 0,
                 "a negative offset moves year 0000 forward, inside the range");
}

Test(timeutil, whole_second_times_drop_the_milliseconds)
{
    char out[TIMEUTIL_RFC3339_MAX];
    timeutil_format_rfc3339_s(1795651200999LL, out);
    cr_assert_str_eq(out, "2026-11-26T00:00:00Z");
    timeutil_format_rfc3339_s(1795651201000LL, out);
    cr_assert_str_eq(out, "2026-11-26T00:00:01Z");
    timeutil_format_rfc3339_s(-1, out);
    cr_assert_str_eq(out, "1969-12-31T23:59:59Z");
}

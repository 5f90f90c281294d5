/* timeutil: wall-clock and monotonic time, and RFC 3339 text.
 *
 * Design: Billow keeps time as int64 milliseconds since the Unix epoch in
 * UTC everywhere inside (Redis scores, job status, envelopes) and turns it
 * into RFC 3339 text only at the edges. The calendar work is glibc's
 * gmtime_r and timegm, which use UTC whatever TZ says; the digits are
 * written by hand because every field has a fixed width.
 */
#include "timeutil.h"

#include <stdbool.h>
#include <string.h>
#include <time.h>

/* RFC 3339 years have four digits: 0000-01-01T00:00:00.000Z and
 * 9999-12-31T23:59:59.999Z in Unix milliseconds. */
#define RFC3339_MIN_MS INT64_C(-62167219200000)
#define RFC3339_MAX_MS INT64_C(253402300799999)

int64_t timeutil_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t timeutil_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Writes v as exactly n decimal digits (v is within range by construction). */
static char *put_digits(char *p, int v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + n;
}

void timeutil_format_rfc3339(int64_t unix_ms, char out[TIMEUTIL_RFC3339_MAX])
{
    /* Clamped rather than failing: a time that far out is a bug upstream, and
     * a valid if wrong time in a log line is more useful than none. */
    if (unix_ms < RFC3339_MIN_MS)
        unix_ms = RFC3339_MIN_MS;
    if (unix_ms > RFC3339_MAX_MS)
        unix_ms = RFC3339_MAX_MS;
    int64_t ms = unix_ms % 1000;
    int64_t secs = unix_ms / 1000;
    if (ms < 0) {
        ms += 1000;
        secs -= 1;
    }
    time_t t = (time_t)secs;
    struct tm tm;
    gmtime_r(&t, &tm);

    char *p = out;
    p = put_digits(p, tm.tm_year + 1900, 4);
    *p++ = '-';
    p = put_digits(p, tm.tm_mon + 1, 2);
    *p++ = '-';
    p = put_digits(p, tm.tm_mday, 2);
    *p++ = 'T';
    p = put_digits(p, tm.tm_hour, 2);
    *p++ = ':';
    p = put_digits(p, tm.tm_min, 2);
    *p++ = ':';
    p = put_digits(p, tm.tm_sec, 2);
    *p++ = '.';
    p = put_digits(p, (int)ms, 3);
    *p++ = 'Z';
    *p = '\0';
}

/* Reads exactly n decimal digits at *p and advances past them. */
static bool read_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static bool read_char(const char **p, char a, char b)
{
    if (**p != a && **p != b)
        return false;
    *p += 1;
    return true;
}

static bool leap_year(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap_year(y) ? 29 : days[m - 1];
}

int timeutil_parse_rfc3339(const char *s, int64_t *unix_ms)
{
    const char *p = s;
    int year, month, day, hour, min, sec;
    if (!read_digits(&p, 4, &year) || !read_char(&p, '-', '-') || !read_digits(&p, 2, &month) ||
        !read_char(&p, '-', '-') || !read_digits(&p, 2, &day) || !read_char(&p, 'T', 't') ||
        !read_digits(&p, 2, &hour) || !read_char(&p, ':', ':') || !read_digits(&p, 2, &min) ||
        !read_char(&p, ':', ':') || !read_digits(&p, 2, &sec))
        return -1;
    /* Unix time has no leap seconds, so ":60" is refused rather than folded. */
    if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month) || hour > 23 ||
        min > 59 || sec > 59)
        return -1;

    int ms = 0;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return -1;
        for (int scale = 100; *p >= '0' && *p <= '9'; p++, scale /= 10)
            ms += (*p - '0') * scale;
    }

    int offset_min = 0;
    if (read_char(&p, 'Z', 'z')) {
        offset_min = 0;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1;
        int oh, om;
        p++;
        if (!read_digits(&p, 2, &oh) || !read_char(&p, ':', ':') || !read_digits(&p, 2, &om) ||
            oh > 23 || om > 59)
            return -1;
        offset_min = sign * (oh * 60 + om);
    } else {
        return -1;
    }
    if (*p != '\0')
        return -1;

    /* Every field is in range, so timegm only adds them up. */
    struct tm tm = {.tm_year = year - 1900,
                    .tm_mon = month - 1,
                    .tm_mday = day,
                    .tm_hour = hour,
                    .tm_min = min,
                    .tm_sec = sec};
    int64_t local_secs = (int64_t)timegm(&tm);
    int64_t t = (local_secs - (int64_t)offset_min * 60) * 1000 + ms;
    /* An offset can carry a year-0000 or year-9999 time out of the range
     * timeutil_format_rfc3339 writes; refuse it rather than let a round trip
     * change the time. */
    if (t < RFC3339_MIN_MS || t > RFC3339_MAX_MS)
        return -1;
    *unix_ms = t;
    return 0;
}

void timeutil_format_rfc3339_s(int64_t unix_ms, char out[TIMEUTIL_RFC3339_MAX])
{
    int64_t ms = unix_ms % 1000;
    timeutil_format_rfc3339(unix_ms - (ms < 0 ? ms + 1000 : ms), out);
    char *dot = strchr(out, '.');
    if (dot)
        memcpy(dot, "Z", 2);
}

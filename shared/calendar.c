/* calendar: billing-period boundaries by civil-date arithmetic in UTC.
 *
 * Design: every boundary is computed from the anchor alone. Boundary k of a
 * monthly schedule lands in the month (anchor's month + k × count); its day
 * is the schedule's day clamped to that month's length and its time of day
 * is the anchor's. Computing from the anchor, never from the previous
 * boundary, is what keeps a Jan 31 schedule on the 31st after February: a
 * walk from boundary to boundary would carry Feb 28 forward for ever. It
 * also makes any boundary O(1), so finding the period that contains a
 * moment years away costs the same as one next door.
 *
 * Dates convert to and from a count of days since 1970-01-01 with the
 * March-based era arithmetic of the proleptic Gregorian calendar (the
 * algorithms Howard Hinnant describes in "chrono-Compatible Low-Level Date
 * Algorithms"): starting the year in March puts the leap day last, so the
 * day of the year is a linear formula in the month. No timegm() or
 * localtime(): they consult the process's time zone and are far slower.
 *
 * A schedule with an explicit day_of_month must have its anchor on that day
 * (clamped to the anchor's month), because the anchor is boundary 0: a
 * schedule whose boundary 0 is not its anchor would contradict itself.
 */
#include "calendar.h"

#include <stddef.h>
#include <string.h>

#define SECONDS_PER_DAY  INT64_C(86400)
#define SECONDS_PER_WEEK (7 * SECONDS_PER_DAY)

/* Days in a 400-year Gregorian cycle, and from 0000-03-01 to 1970-01-01. */
#define DAYS_PER_ERA          146097
#define DAYS_0000_03_TO_EPOCH 719468

/* Months since year 0 of the first and last month Billow computes with. */
#define FIRST_MONTH_INDEX (INT64_C(1970) * 12)
#define LAST_MONTH_INDEX  (INT64_C(9999) * 12 + 11)

static const char *const UNIT_NAMES[] = {
    [CALENDAR_DAY] = "day",
    [CALENDAR_WEEK] = "week",
    [CALENDAR_MONTH] = "month",
    [CALENDAR_YEAR] = "year",
};

/* Floor division (C's / truncates toward zero; periods before the anchor
 * need the floor). d > 0. */
static int64_t floor_div(int64_t n, int64_t d)
{
    int64_t q = n / d;
    return (n % d != 0 && n < 0) ? q - 1 : q;
}

static int is_leap(int64_t year)
{
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

/* Days from 1970-01-01 to year-month-day. */
static int64_t days_from_civil(int64_t year, int month, int day)
{
    /* Count years from March so that February, with its leap day, is the
     * last month of the counted year. */
    int64_t y = month <= 2 ? year - 1 : year;
    int64_t era = floor_div(y, 400);
    int64_t year_of_era = y - era * 400;                          /* [0, 399] */
    int64_t month_from_march = month > 2 ? month - 3 : month + 9; /* [0, 11] */
    /* Month lengths from March run 31 30 31 30 31 31 30 31 30 31 31 (28):
     * (153 m + 2) / 5 is the number of days before month m. */
    int64_t day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    return era * DAYS_PER_ERA + day_of_era - DAYS_0000_03_TO_EPOCH;
}

/* The civil date of the day `days` after 1970-01-01. */
static void civil_from_days(int64_t days, int64_t *year, int *month, int *day)
{
    int64_t z = days + DAYS_0000_03_TO_EPOCH;
    int64_t era = floor_div(z, DAYS_PER_ERA);
    int64_t day_of_era = z - era * DAYS_PER_ERA; /* [0, 146096] */
    /* Undo the leap days of every 4th, 100th and 400th year before dividing
     * by 365; the last day of the era (day 146096) is the 400th year's leap
     * day. */
    int64_t year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
    int64_t day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    int64_t month_from_march = (5 * day_of_year + 2) / 153;
    *day = (int)(day_of_year - (153 * month_from_march + 2) / 5 + 1);
    *month = (int)(month_from_march < 10 ? month_from_march + 3 : month_from_march - 9);
    *year = era * 400 + year_of_era + (*month <= 2 ? 1 : 0);
}

int calendar_unit_parse(const char *s, calendar_unit_t *out)
{
    if (s == NULL)
        return BILLOW_EPARAM_INVALID;
    for (size_t i = 0; i < sizeof(UNIT_NAMES) / sizeof(UNIT_NAMES[0]); i++) {
        if (strcmp(s, UNIT_NAMES[i]) == 0) {
            *out = (calendar_unit_t)i;
            return 0;
        }
    }
    return BILLOW_EPARAM_INVALID;
}

const char *calendar_unit_name(calendar_unit_t unit)
{
    if ((unsigned)unit >= sizeof(UNIT_NAMES) / sizeof(UNIT_NAMES[0]))
        return "unknown";
    return UNIT_NAMES[unit];
}

int calendar_check_interval(calendar_unit_t unit, int count)
{
    int max;
    switch (unit) {
    case CALENDAR_DAY:
        max = CALENDAR_MAX_DAYS;
        break;
    case CALENDAR_WEEK:
        max = CALENDAR_MAX_WEEKS;
        break;
    case CALENDAR_MONTH:
        max = CALENDAR_MAX_MONTHS;
        break;
    case CALENDAR_YEAR:
        max = CALENDAR_MAX_YEARS;
        break;
    default:
        return BILLOW_EPARAM_INVALID;
    }
    return count >= 1 && count <= max ? 0 : BILLOW_EPARAM_INVALID;
}

int calendar_days_in_month(int year, int month)
{
    static const int DAYS[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month < 1 || month > 12)
        return 0;
    if (month == 2 && is_leap(year))
        return 29;
    return DAYS[month - 1];
}

static int is_monthly(calendar_unit_t unit)
{
    return unit == CALENDAR_MONTH || unit == CALENDAR_YEAR;
}

/* The civil parts of a moment in [0, CALENDAR_MAX_TIME]. */
typedef struct {
    int64_t year;        /* 1970 to 9999. */
    int month;           /* 1 to 12. */
    int day;             /* 1 to 31. */
    int64_t time_of_day; /* Seconds since midnight. */
} civil_t;

static civil_t civil_of(int64_t t)
{
    civil_t c;
    int64_t days = floor_div(t, SECONDS_PER_DAY);
    civil_from_days(days, &c.year, &c.month, &c.day);
    c.time_of_day = t - days * SECONDS_PER_DAY;
    return c;
}

/* 0 when s is a schedule calendar can compute with. */
static int check_schedule(const calendar_schedule_t *s)
{
    if (s->anchor < 0 || s->anchor > CALENDAR_MAX_TIME)
        return BILLOW_EPARAM_INVALID;
    if (calendar_check_interval(s->unit, s->count) != 0)
        return BILLOW_EPARAM_INVALID;
    if (!is_monthly(s->unit) || s->day_of_month == 0)
        return 0;
    if (s->day_of_month < 0 || s->day_of_month > 31)
        return BILLOW_EPARAM_INVALID;
    /* The anchor is boundary 0, so it must sit where boundary 0 would. */
    civil_t a = civil_of(s->anchor);
    int dim = calendar_days_in_month((int)a.year, a.month);
    int expected = s->day_of_month < dim ? s->day_of_month : dim;
    return a.day == expected ? 0 : BILLOW_EPARAM_INVALID;
}

/* Months in one period of a monthly or yearly schedule. */
static int64_t period_months(const calendar_schedule_t *s)
{
    return s->unit == CALENDAR_YEAR ? INT64_C(12) * s->count : s->count;
}

/* Seconds in one period of a daily or weekly schedule. */
static int64_t period_seconds(const calendar_schedule_t *s)
{
    return (s->unit == CALENDAR_WEEK ? SECONDS_PER_WEEK : SECONDS_PER_DAY) * s->count;
}

/* Boundary k of a checked schedule. */
static int boundary(const calendar_schedule_t *s, int64_t k, int64_t *out)
{
    if (!is_monthly(s->unit)) {
        int64_t offset, t;
        if (__builtin_mul_overflow(k, period_seconds(s), &offset) ||
            __builtin_add_overflow(s->anchor, offset, &t) || t < 0 || t > CALENDAR_MAX_TIME)
            return BILLOW_EPARAM_INVALID;
        *out = t;
        return 0;
    }

    civil_t a = civil_of(s->anchor);
    int64_t anchor_index = a.year * 12 + (a.month - 1);
    int64_t shift;
    /* Bounding the shift before adding keeps the sum from overflowing. */
    if (__builtin_mul_overflow(k, period_months(s), &shift) ||
        shift < FIRST_MONTH_INDEX - anchor_index || shift > LAST_MONTH_INDEX - anchor_index)
        return BILLOW_EPARAM_INVALID;
    int64_t index = anchor_index + shift;
    int64_t year = index / 12;
    int month = (int)(index % 12) + 1;
    int target = s->day_of_month != 0 ? s->day_of_month : a.day;
    int dim = calendar_days_in_month((int)year, month);
    int day = target < dim ? target : dim;
    /* Any day of 1970-9999 at a time of day below 86,400 lies within
     * [0, CALENDAR_MAX_TIME]. */
    *out = days_from_civil(year, month, day) * SECONDS_PER_DAY + a.time_of_day;
    return 0;
}

int calendar_billing_day(const calendar_schedule_t *s)
{
    if (!is_monthly(s->unit))
        return 0;
    if (s->day_of_month != 0)
        return s->day_of_month;
    return civil_of(s->anchor).day;
}

int calendar_boundary(const calendar_schedule_t *s, int64_t k, int64_t *out)
{
    int rc = check_schedule(s);
    if (rc != 0)
        return rc;
    return boundary(s, k, out);
}

int calendar_period_containing(const calendar_schedule_t *s, int64_t t, int64_t *start,
                               int64_t *end, int64_t *k)
{
    int rc = check_schedule(s);
    if (rc != 0)
        return rc;
    if (t < 0 || t > CALENDAR_MAX_TIME)
        return BILLOW_EPARAM_INVALID;

    /* Estimate k by division. For days and weeks it is exact. For months,
     * t's month is (anchor month + k × P + r) with 0 ≤ r < P months: when
     * r > 0, boundary k lies in an earlier month than t and boundary k + 1
     * in a later one, so the estimate is right; when r = 0 both t and
     * boundary k lie in the same month and t may come before it, one
     * period too far. The loop below therefore moves at most one step. */
    int64_t guess;
    if (!is_monthly(s->unit)) {
        guess = floor_div(t - s->anchor, period_seconds(s));
    } else {
        civil_t a = civil_of(s->anchor);
        civil_t c = civil_of(t);
        int64_t months = (c.year * 12 + c.month) - (a.year * 12 + a.month);
        guess = floor_div(months, period_months(s));
    }

    int64_t lo, hi;
    for (;;) {
        rc = boundary(s, guess, &lo);
        if (rc != 0)
            return rc;
        if (lo > t) {
            guess--;
            continue;
        }
        rc = boundary(s, guess + 1, &hi);
        if (rc != 0)
            return rc;
        if (hi <= t) {
            guess++;
            continue;
        }
        break;
    }
    if (start != NULL)
        *start = lo;
    if (end != NULL)
        *end = hi;
    if (k != NULL)
        *k = guess;
    return 0;
}

int calendar_next_boundary(const calendar_schedule_t *s, int64_t t, int64_t *out)
{
    /* The period containing t ends at the first boundary after t. */
    return calendar_period_containing(s, t, NULL, out, NULL);
}

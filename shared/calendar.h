/* calendar: billing periods in UTC, with end-of-month clamping.
 *
 * A billing schedule is an anchor (a moment that is a period boundary), an
 * interval (day, week, month, year) times a count, and for months and years
 * the day of the month boundaries aim for. Boundary k is the anchor moved by
 * k × count intervals; for months and years the day is the schedule's day
 * clamped to the length of the month it lands in, and the time of day is the
 * anchor's. So an anchor on Jan 31 gives Feb 28 (29 in a leap year), Mar 31,
 * Apr 30: each boundary is computed from the anchor, never from the boundary
 * before it, so a short month never drags the later ones down.
 *
 * Days and weeks are fixed numbers of seconds (UTC has no daylight saving).
 * Times are seconds since the Unix epoch; years 1970 to 9999 only.
 */
#ifndef BILLOW_CALENDAR_H
#define BILLOW_CALENDAR_H

#include <stdint.h>

#include "err.h"

/* The unit of a billing interval. */
typedef enum {
    CALENDAR_DAY,   /* 86,400 seconds. */
    CALENDAR_WEEK,  /* 7 days. */
    CALENDAR_MONTH, /* A calendar month, clamped to the month's last day. */
    CALENDAR_YEAR,  /* Twelve calendar months. */
} calendar_unit_t;

/* The longest interval a schedule may have: three years (3 years, 36
 * months, 156 weeks or 1,095 days), as Stripe allows. A longer one is
 * almost surely a typo, and bounding it keeps every computation far from
 * the edge of the supported years. */
#define CALENDAR_MAX_DAYS   1095
#define CALENDAR_MAX_WEEKS  156
#define CALENDAR_MAX_MONTHS 36
#define CALENDAR_MAX_YEARS  3

/* The latest moment Billow computes with: 9999-12-31T23:59:59Z. */
#define CALENDAR_MAX_TIME INT64_C(253402300799)

typedef struct {
    int64_t anchor;       /* A boundary of the schedule (boundary 0), epoch seconds. */
    calendar_unit_t unit; /* Interval unit. */
    int count;            /* Units per period, 1 to the unit's maximum above. */
    int day_of_month;     /* Months and years: the day boundaries aim for, 1 to 31, clamped to
                             each month's length; 0 means the anchor's own day. Ignored for
                             days and weeks. */
} calendar_schedule_t;

/* Parses "day", "week", "month" or "year" into *out. Returns 0 or
 * BILLOW_EPARAM_INVALID. */
int calendar_unit_parse(const char *s, calendar_unit_t *out) BILLOW_MUSTCHECK;

/* The API name of unit ("month"). */
const char *calendar_unit_name(calendar_unit_t unit);

/* Returns 0 when count is within 1 and the unit's maximum, else
 * BILLOW_EPARAM_INVALID. */
int calendar_check_interval(calendar_unit_t unit, int count) BILLOW_MUSTCHECK;

/* The number of days in `month` (1-12) of `year`. */
int calendar_days_in_month(int year, int month);

/* The day of the month the boundaries of monthly or yearly schedule s aim
 * for: its day_of_month, or when that is 0 the anchor's own day (an anchor
 * on Jan 31 aims for the 31st even while its boundaries fall on Apr 30).
 * 0 for a daily or weekly schedule, which has none. */
int calendar_billing_day(const calendar_schedule_t *s);

/* *out = boundary k of schedule s (k may be negative: boundaries before the
 * anchor). Returns 0, or BILLOW_EPARAM_INVALID when the schedule is invalid
 * (bad count or day, anchor outside 1970-9999) or the boundary falls
 * outside 1970-9999 (*out untouched). */
int calendar_boundary(const calendar_schedule_t *s, int64_t k, int64_t *out) BILLOW_MUSTCHECK;

/* The period of schedule s that contains t: *k is the largest k with
 * boundary(k) ≤ t, *start = boundary(k), *end = boundary(k + 1). Any of
 * the out-parameters may be NULL. Errors as calendar_boundary(). */
int calendar_period_containing(const calendar_schedule_t *s, int64_t t, int64_t *start,
                               int64_t *end, int64_t *k) BILLOW_MUSTCHECK;

/* The first boundary of schedule s strictly after t. Errors as
 * calendar_boundary(). */
int calendar_next_boundary(const calendar_schedule_t *s, int64_t t, int64_t *out) BILLOW_MUSTCHECK;

#endif

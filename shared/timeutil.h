/* timeutil: wall-clock and monotonic time, and RFC 3339 text. */
#ifndef BILLOW_TIMEUTIL_H
#define BILLOW_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

#define TIMEUTIL_RFC3339_MAX 32

/* Milliseconds since the Unix epoch (wall clock). */
int64_t timeutil_now_ms(void);
/* Monotonic nanoseconds, for durations only. */
uint64_t timeutil_mono_ns(void);
/* Formats unix_ms as "2026-11-25T23:17:50.123Z" into out. */
void timeutil_format_rfc3339(int64_t unix_ms, char out[TIMEUTIL_RFC3339_MAX]);
/* Formats unix_ms as "2026-11-25T23:17:50Z" (the API's resolution: the
 * milliseconds are dropped, not rounded) into out. */
void timeutil_format_rfc3339_s(int64_t unix_ms, char out[TIMEUTIL_RFC3339_MAX]);
/* Parses an RFC 3339 date-time ("2026-11-25T23:17:50.123Z", any number of
 * fraction digits, "Z" or a "+hh:mm" offset) into milliseconds since the Unix
 * epoch; fraction digits beyond milliseconds are dropped. Returns 0, or -1
 * when s is not such a time or lies outside years 0000-9999 in UTC (out is
 * then untouched). */
int timeutil_parse_rfc3339(const char *s, int64_t *unix_ms);

#endif

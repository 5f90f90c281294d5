/* log: JSON lines on stderr, one object a line.
 *
 * Every line has ts (RFC 3339, milliseconds), level, service and event;
 * callers add fields with a json_pack format, so a request or a job is
 * logged with its request id and can be followed across processes.
 */
#ifndef BILLOW_LOG_H
#define BILLOW_LOG_H

#include <jansson.h>

typedef enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR } log_level_t;

/* Sets the service name and the lowest level written ("info"). */
void log_init(const char *service, const char *level);
/* Writes one line: event plus the fields of fmt (a json_pack object format,
 * or NULL for none). */
void log_write(log_level_t level, const char *event, const char *fmt, ...);
/* Writes one line with fields taken from obj (stolen; may be NULL). */
void log_write_json(log_level_t level, const char *event, json_t *obj);

#endif

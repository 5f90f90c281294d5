/* log: JSON lines on stderr, one object a line.
 *
 * Design: a line is built completely in memory and written with one fputs,
 * so lines from threads (or from processes sharing the stream, under a
 * Procfile runner) never interleave mid-line; stdio locks the stream for
 * the call. Callers' fields never replace ts, level, service or event, so
 * every line can be filtered on those four. A field format that json_pack
 * refuses is a bug in the caller; the line is still written, with the
 * packing error in place of the fields, rather than lost.
 *
 * The service name and level are set once at start-up and read-only after,
 * which is why they may live in statics.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "timeutil.h"

/* Longest service name kept; it is a process label such as "worker-charger". */
#define LOG_SERVICE_MAX 64

static char service_name[LOG_SERVICE_MAX] = "billow";
static log_level_t min_level = LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_init(const char *service, const char *level)
{
    if (service != NULL)
        snprintf(service_name, sizeof service_name, "%s", service);
    min_level = LOG_INFO;
    for (int l = LOG_DEBUG; l <= LOG_ERROR; l++) {
        if (level != NULL && strcmp(level, level_names[l]) == 0)
            min_level = (log_level_t)l;
    }
}

static const char *level_name(log_level_t level)
{
    if (level < LOG_DEBUG || level > LOG_ERROR)
        return "error";
    return level_names[level];
}

/* Writes the line and releases fields (may be NULL). */
static void emit(log_level_t level, const char *event, json_t *fields)
{
    char ts[TIMEUTIL_RFC3339_MAX];
    timeutil_format_rfc3339(timeutil_now_ms(), ts);

    json_t *line = json_object();
    json_object_set_new(line, "ts", json_string(ts));
    json_object_set_new(line, "level", json_string(level_name(level)));
    json_object_set_new(line, "service", json_string(service_name));
    /* An event name that is not valid UTF-8 would make json_string fail. */
    json_t *ev = json_string(event != NULL ? event : "");
    json_object_set_new(line, "event", ev != NULL ? ev : json_string("invalid_event_name"));
    if (fields != NULL && json_is_object(fields))
        json_object_update_missing(line, fields);
    json_decref(fields);

    char *text = json_dumps(line, JSON_COMPACT);
    json_decref(line);
    if (text == NULL)
        return;
    size_t len = strlen(text);
    char *out = mem_alloc(len + 2);
    memcpy(out, text, len);
    out[len] = '\n';
    out[len + 1] = '\0';
    free(text);
    fputs(out, stderr);
    free(out);
    /* A process's error is often its last word: it must not wait in a
     * buffer (the api's is flushed once per loop turn) for an exit that
     * may never flush it. */
    if (level >= LOG_ERROR)
        fflush(stderr);
}

void log_write(log_level_t level, const char *event, const char *fmt, ...)
{
    if (level < min_level)
        return;
    json_t *fields = NULL;
    if (fmt != NULL) {
        json_error_t error;
        va_list ap;
        va_start(ap, fmt);
        fields = json_vpack_ex(&error, 0, fmt, ap);
        va_end(ap);
        if (fields == NULL)
            fields = json_pack("{s:s}", "log_error", error.text);
    }
    emit(level, event, fields);
}

void log_write_json(log_level_t level, const char *event, json_t *obj)
{
    if (level < min_level) {
        json_decref(obj);
        return;
    }
    emit(level, event, obj);
}

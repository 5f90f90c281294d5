/* log_test: the shape of a log line and level filtering.
 *
 * Each test points file descriptor 2 at a temporary file, logs, and reads
 * the lines back as JSON. Criterion runs every test in its own process, so
 * the redirection and log_init's settings do not leak between tests.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "timeutil.h"

static FILE *capture;

static void capture_stderr(void)
{
    capture = tmpfile();
    cr_assert_not_null(capture);
    fflush(stderr);
    cr_assert_geq(dup2(fileno(capture), STDERR_FILENO), 0);
}

/* The captured lines, parsed; the caller decrefs. */
static json_t *captured_lines(void)
{
    fflush(stderr);
    rewind(capture);
    json_t *lines = json_array();
    char buf[4096];
    while (fgets(buf, sizeof buf, capture) != NULL) {
        size_t len = strlen(buf);
        cr_assert(len > 0 && buf[len - 1] == '\n', "every line ends in a newline");
        json_error_t err;
        json_t *line = json_loads(buf, 0, &err);
        cr_assert_not_null(line, "not JSON: %s (%s)", buf, err.text);
        json_array_append_new(lines, line);
    }
    return lines;
}

static const char *field(json_t *line, const char *key)
{
    return json_string_value(json_object_get(line, key));
}

Test(log, a_line_has_ts_level_service_event_and_the_fields)
{
    capture_stderr();
    log_init("api", "info");
    log_write(LOG_WARN, "request_slow", "{s:s, s:i}", "request_id", "req_1", "ms", 1500);
    json_t *lines = captured_lines();
    cr_assert_eq(json_array_size(lines), 1);
    json_t *line = json_array_get(lines, 0);
    int64_t ts;
    cr_assert_eq(timeutil_parse_rfc3339(field(line, "ts"), &ts), 0, "%s", field(line, "ts"));
    cr_assert_str_eq(field(line, "level"), "warn");
    cr_assert_str_eq(field(line, "service"), "api");
    cr_assert_str_eq(field(line, "event"), "request_slow");
    cr_assert_str_eq(field(line, "request_id"), "req_1");
    cr_assert_eq(json_integer_value(json_object_get(line, "ms")), 1500);
    json_decref(lines);
}

Test(log, lines_below_the_level_are_dropped)
{
    capture_stderr();
    log_init("worker", "warn");
    log_write(LOG_DEBUG, "debug_line", NULL);
    log_write(LOG_INFO, "info_line", NULL);
    log_write_json(LOG_INFO, "info_json", json_pack("{s:i}", "n", 1));
    log_write(LOG_ERROR, "error_line", NULL);
    json_t *lines = captured_lines();
    cr_assert_eq(json_array_size(lines), 1);
    cr_assert_str_eq(field(json_array_get(lines, 0), "event"), "error_line");
    cr_assert_str_eq(field(json_array_get(lines, 0), "level"), "error");
    json_decref(lines);
}

Test(log, fields_cannot_replace_the_standard_keys)
{
    capture_stderr();
    log_init("api", "debug");
    log_write_json(LOG_DEBUG, "real_event",
                   json_pack("{s:s, s:s, s:s}", "event", "fake", "level", "error", "job", "job_1"));
    json_t *lines = captured_lines();
    cr_assert_eq(json_array_size(lines), 1);
    json_t *line = json_array_get(lines, 0);
    cr_assert_str_eq(field(line, "event"), "real_event");
    cr_assert_str_eq(field(line, "level"), "debug");
    cr_assert_str_eq(field(line, "job"), "job_1");
    json_decref(lines);
}

Test(log, a_bad_field_format_still_writes_the_line)
{
    capture_stderr();
    log_init("api", "info");
    /* "s" given NULL is a packing error; the event must not be lost. */
    log_write(LOG_ERROR, "job_failed", "{s:s}", "error", (const char *)NULL);
    json_t *lines = captured_lines();
    cr_assert_eq(json_array_size(lines), 1);
    json_t *line = json_array_get(lines, 0);
    cr_assert_str_eq(field(line, "event"), "job_failed");
    cr_assert_not_null(field(line, "log_error"));
    json_decref(lines);
}

Test(log, an_unknown_level_name_means_info)
{
    capture_stderr();
    log_init("api", "loud");
    log_write(LOG_DEBUG, "hidden", NULL);
    log_write(LOG_INFO, "shown", NULL);
    json_t *lines = captured_lines();
    cr_assert_eq(json_array_size(lines), 1);
    cr_assert_str_eq(field(json_array_get(lines, 0), "event"), "shown");
    json_decref(lines);
}

Test(log, newlines_in_values_stay_inside_one_line)
{
    capture_stderr();
    log_init("api", "info");
    log_write(LOG_INFO, "odd", "{s:s}", "text", "two\nlines\r\n{\"event\":\"forged\"}");
    json_t *lines = captured_lines();
    cr_assert_eq(json_array_size(lines), 1);
    cr_assert_str_eq(field(json_array_get(lines, 0), "text"),
                     "two\nlines\r\n{\"event\":\"forged\"}");
    json_decref(lines);
}

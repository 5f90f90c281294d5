/* Unit tests of the worker runtime's pure parts: what happens after an
 * attempt (runtime_decide), how SQLSTATEs are classified, the errors
 * handlers record, REDIS_URL parsing, stream entry parsing and Postgres
 * array literals. The loop itself runs against real servers in the
 * integration tests. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "runtime.h"

static config_t limits(int max_attempts, int max_deliveries)
{
    config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.max_attempts = max_attempts;
    cfg.max_deliveries = max_deliveries;
    return cfg;
}

/* ---- runtime_decide ---- */

Test(runtime, ok_succeeds_at_any_attempt_within_deliveries)
{
    config_t cfg = limits(5, 10);
    for (int attempt = 0; attempt <= 6; attempt++)
        cr_assert_eq(runtime_decide(HANDLER_OK, attempt, 1, &cfg), RUNTIME_ACT_SUCCEED,
                     "attempt %d", attempt);
    cr_assert_eq(runtime_decide(HANDLER_OK, 0, 10, &cfg), RUNTIME_ACT_SUCCEED);
}

Test(runtime, rejected_fails_finally_and_is_never_retried)
{
    config_t cfg = limits(5, 10);
    cr_assert_eq(runtime_decide(HANDLER_REJECTED, 0, 1, &cfg), RUNTIME_ACT_FAIL);
    cr_assert_eq(runtime_decide(HANDLER_REJECTED, 4, 1, &cfg), RUNTIME_ACT_FAIL);
    cr_assert_eq(runtime_decide(HANDLER_REJECTED, 9, 1, &cfg), RUNTIME_ACT_FAIL);
}

Test(runtime, permanent_goes_dead_on_the_first_attempt)
{
    config_t cfg = limits(5, 10);
    cr_assert_eq(runtime_decide(HANDLER_PERMANENT, 0, 1, &cfg), RUNTIME_ACT_DEAD);
    cr_assert_eq(runtime_decide(HANDLER_PERMANENT, 3, 1, &cfg), RUNTIME_ACT_DEAD);
}

Test(runtime, retry_below_max_attempts_is_retried)
{
    config_t cfg = limits(5, 10);
    for (int attempt = 0; attempt < 4; attempt++)
        cr_assert_eq(runtime_decide(HANDLER_RETRY, attempt, 1, &cfg), RUNTIME_ACT_RETRY,
                     "attempt %d", attempt);
}

Test(runtime, retry_that_would_reach_max_attempts_is_dead)
{
    config_t cfg = limits(5, 10);
    /* attempt 4 failing is the fifth failure: no sixth attempt. */
    cr_assert_eq(runtime_decide(HANDLER_RETRY, 4, 1, &cfg), RUNTIME_ACT_DEAD);
    cr_assert_eq(runtime_decide(HANDLER_RETRY, 5, 1, &cfg), RUNTIME_ACT_DEAD);
    cr_assert_eq(runtime_decide(HANDLER_RETRY, 50, 1, &cfg), RUNTIME_ACT_DEAD);
}

Test(runtime, max_attempts_of_one_means_no_retry)
{
    config_t cfg = limits(1, 10);
    cr_assert_eq(runtime_decide(HANDLER_RETRY, 0, 1, &cfg), RUNTIME_ACT_DEAD);
}

Test(runtime, over_max_deliveries_is_dead_whatever_the_outcome)
{
    config_t cfg = limits(5, 3);
    cr_assert_eq(runtime_decide(HANDLER_OK, 0, 4, &cfg), RUNTIME_ACT_DEAD);
    cr_assert_eq(runtime_decide(HANDLER_REJECTED, 0, 4, &cfg), RUNTIME_ACT_DEAD);
    cr_assert_eq(runtime_decide(HANDLER_RETRY, 0, 4, &cfg), RUNTIME_ACT_DEAD);
    cr_assert_eq(runtime_decide(HANDLER_PERMANENT, 0, 4, &cfg), RUNTIME_ACT_DEAD);
}

Test(runtime, exactly_max_deliveries_still_counts)
{
    config_t cfg = limits(5, 3);
    cr_assert_eq(runtime_decide(HANDLER_OK, 0, 3, &cfg), RUNTIME_ACT_SUCCEED);
    cr_assert_eq(runtime_decide(HANDLER_RETRY, 0, 3, &cfg), RUNTIME_ACT_RETRY);
}

/* ---- SQLSTATE classification ---- */

Test(runtime, passing_database_faults_are_retried)
{
    const char *retry[] = {"40001", "40P01", "08000", "08006", "08P01", "57P01",
                           "57P02", "57P03", "57014", "53300", "53100", "55P03"};
    for (size_t i = 0; i < sizeof retry / sizeof retry[0]; i++)
        cr_assert_eq(runtime_sqlstate_outcome(retry[i]), HANDLER_RETRY, "%s", retry[i]);
    cr_assert_eq(runtime_sqlstate_outcome(NULL), HANDLER_RETRY, "no answer at all");
}

Test(runtime, other_database_errors_are_permanent)
{
    const char *permanent[] = {"23505", "23503", "23514", "22P02", "42601", "42501", "XX000"};
    for (size_t i = 0; i < sizeof permanent / sizeof permanent[0]; i++)
        cr_assert_eq(runtime_sqlstate_outcome(permanent[i]), HANDLER_PERMANENT, "%s", permanent[i]);
}

/* ---- errors recorded by handlers ---- */

Test(runtime, reject_records_a_client_error_and_returns_rejected)
{
    worker_job_t job;
    memset(&job, 0, sizeof job);
    handler_outcome_t out =
        runtime_reject(&job, 404, "resource_missing", "id", "No such customer: '%s'.", "cus_1");
    cr_assert_eq(out, HANDLER_REJECTED);
    cr_assert_not_null(job.error);
    cr_assert_str_eq(json_string_value(json_object_get(job.error, "type")),
                     "invalid_request_error");
    cr_assert_str_eq(json_string_value(json_object_get(job.error, "code")), "resource_missing");
    cr_assert_str_eq(json_string_value(json_object_get(job.error, "message")),
                     "No such customer: 'cus_1'.");
    cr_assert_str_eq(json_string_value(json_object_get(job.error, "param")), "id");
    cr_assert_eq(json_integer_value(json_object_get(job.error, "http_status")), 404);
    json_decref(job.error);
}

Test(runtime, reject_without_param_records_null_param)
{
    worker_job_t job;
    memset(&job, 0, sizeof job);
    runtime_reject(&job, 409, "conflict", NULL, "Taken.");
    cr_assert(json_is_null(json_object_get(job.error, "param")));
    json_decref(job.error);
}

Test(runtime, fault_records_an_api_error_and_returns_the_given_outcome)
{
    worker_job_t job;
    memset(&job, 0, sizeof job);
    handler_outcome_t out =
        runtime_fault(&job, HANDLER_RETRY, "stripe_unavailable", "Stripe said %d.", 503);
    cr_assert_eq(out, HANDLER_RETRY);
    cr_assert_str_eq(json_string_value(json_object_get(job.error, "type")), "api_error");
    cr_assert_str_eq(json_string_value(json_object_get(job.error, "code")), "stripe_unavailable");
    cr_assert_str_eq(json_string_value(json_object_get(job.error, "message")), "Stripe said 503.");
    cr_assert(json_is_null(json_object_get(job.error, "param")));
    cr_assert_eq(json_integer_value(json_object_get(job.error, "http_status")), 500);
    json_decref(job.error);
}

Test(runtime, a_later_error_replaces_the_earlier_one)
{
    worker_job_t job;
    memset(&job, 0, sizeof job);
    runtime_fault(&job, HANDLER_RETRY, "first", "first");
    runtime_reject(&job, 400, "second", NULL, "second");
    cr_assert_str_eq(json_string_value(json_object_get(job.error, "code")), "second");
    json_decref(job.error);
}

/* ---- stream entries ---- */

/* A string reply over s (the test owns the struct, hiredis nothing). */
static redisReply str_reply(const char *s)
{
    redisReply r;
    memset(&r, 0, sizeof r);
    r.type = REDIS_REPLY_STRING;
    r.str = (char *)s;
    r.len = strlen(s);
    return r;
}

static redisReply array_reply(redisReply **elements, size_t n)
{
    redisReply r;
    memset(&r, 0, sizeof r);
    r.type = REDIS_REPLY_ARRAY;
    r.element = elements;
    r.elements = n;
    return r;
}

Test(runtime, entry_with_job_and_attempt_fields_parses)
{
    redisReply id = str_reply("1700000000000-0"), k1 = str_reply("job"),
               v1 = str_reply("{\"id\":\"job_x\"}"), k2 = str_reply("attempt"), v2 = str_reply("0");
    redisReply *f[] = {&k1, &v1, &k2, &v2};
    redisReply fields = array_reply(f, 4);
    redisReply *e[] = {&id, &fields};
    redisReply entry = array_reply(e, 2);
    runtime_entry_t out;
    cr_assert_eq(runtime_parse_entry(&entry, &out), 0);
    cr_assert_str_eq(out.id, "1700000000000-0");
    cr_assert_eq(out.job_len, strlen("{\"id\":\"job_x\"}"));
    cr_assert_eq(strncmp(out.job, "{\"id\":\"job_x\"}", out.job_len), 0);
    cr_assert_eq(out.attempt, 0);
    cr_assert_not(out.deleted);
}

Test(runtime, entry_without_attempt_field_reports_minus_one)
{
    redisReply id = str_reply("1-1"), k1 = str_reply("job"), v1 = str_reply("{}");
    redisReply *f[] = {&k1, &v1};
    redisReply fields = array_reply(f, 2);
    redisReply *e[] = {&id, &fields};
    redisReply entry = array_reply(e, 2);
    runtime_entry_t out;
    cr_assert_eq(runtime_parse_entry(&entry, &out), 0);
    cr_assert_eq(out.attempt, -1);
    cr_assert_not_null(out.job);
}

Test(runtime, entry_with_unreadable_attempt_ignores_it)
{
    redisReply id = str_reply("1-1"), k1 = str_reply("attempt"), v1 = str_reply("-3"),
               k2 = str_reply("job"), v2 = str_reply("{}");
    redisReply *f[] = {&k1, &v1, &k2, &v2};
    redisReply fields = array_reply(f, 4);
    redisReply *e[] = {&id, &fields};
    redisReply entry = array_reply(e, 2);
    runtime_entry_t out;
    cr_assert_eq(runtime_parse_entry(&entry, &out), 0);
    cr_assert_eq(out.attempt, -1);
}

Test(runtime, entry_without_job_field_has_no_job_but_is_not_deleted)
{
    redisReply id = str_reply("1-1"), k1 = str_reply("other"), v1 = str_reply("x");
    redisReply *f[] = {&k1, &v1};
    redisReply fields = array_reply(f, 2);
    redisReply *e[] = {&id, &fields};
    redisReply entry = array_reply(e, 2);
    runtime_entry_t out;
    cr_assert_eq(runtime_parse_entry(&entry, &out), 0);
    cr_assert_null(out.job);
    cr_assert_not(out.deleted);
}

Test(runtime, deleted_entry_with_nil_fields_is_marked_deleted)
{
    redisReply id = str_reply("1-1"), nil;
    memset(&nil, 0, sizeof nil);
    nil.type = REDIS_REPLY_NIL;
    redisReply *e[] = {&id, &nil};
    redisReply entry = array_reply(e, 2);
    runtime_entry_t out;
    cr_assert_eq(runtime_parse_entry(&entry, &out), 0);
    cr_assert(out.deleted);
    cr_assert_str_eq(out.id, "1-1");
    cr_assert_null(out.job);
}

Test(runtime, entry_of_the_wrong_shape_is_refused)
{
    redisReply id = str_reply("1-1");
    redisReply *one[] = {&id};
    redisReply short_entry = array_reply(one, 1);
    runtime_entry_t out;
    cr_assert_eq(runtime_parse_entry(&short_entry, &out), BILLOW_EPARAM_INVALID);
    cr_assert_eq(runtime_parse_entry(NULL, &out), BILLOW_EPARAM_INVALID);
    redisReply not_array = str_reply("1-1");
    cr_assert_eq(runtime_parse_entry(&not_array, &out), BILLOW_EPARAM_INVALID);
    redisReply fields = str_reply("job");
    redisReply *e[] = {&id, &fields};
    redisReply entry = array_reply(e, 2);
    cr_assert_eq(runtime_parse_entry(&entry, &out), BILLOW_EPARAM_INVALID);
}

/* ---- Postgres array literals ---- */

Test(runtime, pg_array_quotes_every_item)
{
    const char *items[] = {"job_1", "job_2"};
    char *s = runtime_pg_array(items, 2);
    cr_assert_str_eq(s, "{\"job_1\",\"job_2\"}");
    free(s);
}

Test(runtime, pg_array_escapes_quotes_and_backslashes)
{
    const char *items[] = {"{\"a\":\"b\\\\c\"}", "x,y", "NULL", ""};
    char *s = runtime_pg_array(items, 4);
    cr_assert_str_eq(s, "{\"{\\\"a\\\":\\\"b\\\\\\\\c\\\"}\",\"x,y\",\"NULL\",\"\"}");
    free(s);
}

Test(runtime, pg_array_of_nothing_is_empty)
{
    char *s = runtime_pg_array(NULL, 0);
    cr_assert_str_eq(s, "{}");
    free(s);
}

Test(runtime, a_rejection_has_the_type_the_api_gives_its_status)
{
    cr_assert_str_eq(runtime_reject_type(401), "authentication_error");
    cr_assert_str_eq(runtime_reject_type(403), "permission_error");
    cr_assert_str_eq(runtime_reject_type(429), "rate_limit_error");
    cr_assert_str_eq(runtime_reject_type(400), "invalid_request_error");
    cr_assert_str_eq(runtime_reject_type(404), "invalid_request_error");
    cr_assert_str_eq(runtime_reject_type(409), "invalid_request_error");
}

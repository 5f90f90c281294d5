/* kind_renewal: the renewal scheduler and test clocks (see kind_renewal.h).
 *
 * The scheduler is the kind's tick: every RENEWAL_SCAN_MS it walks the
 * subscriptions whose period has ended (renewals_due, across tenants, in
 * steps of RENEWAL_BATCH) and enqueues one subscription.cycle job per
 * period, pipelined. Each job's id is derived from (subscription, period
 * end), so two schedulers, a scheduler re-run after downtime and the
 * invoice worker's own catch-up all ask for the same job, which the queue
 * holds once and processed_jobs runs once. Nothing is remembered between
 * passes but the position within the current pass.
 *
 * Test clocks: advancing a clock sets its frozen time and marks it
 * advancing. The same tick asks test_clock_due for the periods of the
 * clock's subscriptions that ended by the clock's time and enqueues them
 * exactly like real ones; a clock with nothing left due is marked ready.
 */
#include "kind_renewal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "handler_util.h"
#include "jobq.h"
#include "kind_invoice.h"
#include "log.h"
#include "mem.h"
#include "timeutil.h"

/* The farthest one advance may move a test clock: two years. Each period
 * that ends under the clock is one renewal job and one invoice, so an
 * advance of centuries would be a flood of work a test never needs (a
 * daily subscription makes 730 invoices in two years). */
#define CLOCK_ADVANCE_MAX "2 years"

/* How often the scheduler walks the whole backlog again from the start.
 * Between those walks it only looks past the last period it enqueued
 * (later periods are the only ones that can become due), so a backlog of
 * a million is offered once, not once per scan; the full walk is the
 * safety net for a job lost with a Redis that lost its data. */
#define RESCAN_MS 60000

void kind_renewal_state_init(kind_renewal_state_t *st)
{
    memset(st, 0, sizeof *st);
}

/* Builds the cycle envelope for one due period into env (caller disposes),
 * with trace as its request id (one per scan step, so the jobs of a step
 * can be found together in the logs). */
static void cycle_envelope(envelope_t *env, const char *tenant, const char *sub, int64_t end_s,
                           const char *trace)
{
    char end[TIMEUTIL_RFC3339_MAX];
    envelope_init(env);
    kind_invoice_cycle_job_id(sub, end_s, env->id);
    snprintf(env->type, sizeof env->type, "subscription.cycle");
    snprintf(env->tenant_id, sizeof env->tenant_id, "%s", tenant);
    snprintf(env->actor, sizeof env->actor, "system");
    snprintf(env->trace, sizeof env->trace, "%s", trace);
    timeutil_format_rfc3339_s(end_s * 1000, end);
    env->payload = json_pack("{s:s,s:s}", "subscription", sub, "period_end", end);
    env->enqueued_at_ms = timeutil_now_ms();
}

/* Enqueues the cycle jobs of res's rows (columns tenant, subscription,
 * period end in seconds at tcol, scol, ecol; rows with a null subscription
 * are skipped) in one pipeline. Returns the number of rows sent, or -1 when
 * Redis failed. */
static int enqueue_rows(worker_conn_t *c, const PGresult *res, int tcol, int scol, int ecol)
{
    int rows = PQntuples(res), sent = 0, pending = 0;
    envelope_t *envs = mem_alloc((size_t)(rows + 1) * sizeof *envs);
    char **texts = mem_alloc((size_t)(rows + 1) * sizeof *texts);
    jobq_cmd_t *cmds = mem_alloc((size_t)(rows + 1) * sizeof *cmds);
    int64_t now = timeutil_now_ms();
    int rc = 0;
    char trace[IDS_MAX];
    ids_generate("req", trace);

    for (int r = 0; r < rows; r++) {
        texts[r] = NULL;
        envelope_init(&envs[r]);
        if (PQgetisnull(res, r, scol))
            continue;
        cycle_envelope(&envs[r], PQgetvalue(res, r, tcol), PQgetvalue(res, r, scol),
                       strtoll(PQgetvalue(res, r, ecol), NULL, 10), trace);
        texts[r] = envelope_encode(&envs[r]);
        if (texts[r] == NULL ||
            jobq_enqueue_cmd(&cmds[r], &envs[r], texts[r], NULL, NULL, NULL, now) != 0)
            continue;
        worker_conn_argv_t a = {.argc = cmds[r].argc,
                                .cap = cmds[r].argc,
                                .argv = cmds[r].argv,
                                .len = cmds[r].argvlen};
        if (worker_conn_redis_append(c, &a, &pending) != 0) {
            rc = -1;
            break;
        }
        sent++;
    }
    if (rc == 0 && worker_conn_redis_replies(c, pending, "renewal_enqueue") != 0)
        rc = -1;
    for (int r = 0; r < rows; r++) {
        free(texts[r]);
        envelope_dispose(&envs[r]);
    }
    free(texts);
    free(envs);
    free(cmds);
    return rc == 0 ? sent : -1;
}

/* One step of the real-time pass. Returns true when the step was full
 * (more may be due right after it). */
static bool scan_real_time(worker_conn_t *c, const config_t *cfg, kind_renewal_state_t *st)
{
    char limit[16];
    snprintf(limit, sizeof limit, "%d", cfg->renewal_batch);
    const char *params[4] = {st->after_end[0] ? st->after_end : "-infinity", st->after_tenant,
                             st->after_id, limit};
    PGresult *res = PQexecParams(c->db,
                                 "SELECT tenant_id, subscription_id,"
                                 " floor(extract(epoch FROM period_end))::bigint, period_end::text "
                                 "FROM renewals_due($1::timestamptz, $2, $3, $4::int)",
                                 4, NULL, params, NULL, NULL, 0);
    bool more = false;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_write(LOG_WARN, "renewal_scan_failed", "{s:s}", "error", PQerrorMessage(c->db));
        goto done;
    }
    int rows = PQntuples(res);
    if (rows > 0 && enqueue_rows(c, res, 0, 1, 2) < 0)
        goto done; /* Redis is gone; the same step runs again next time. */
    if (rows > 0) {
        snprintf(st->after_end, sizeof st->after_end, "%s", PQgetvalue(res, rows - 1, 3));
        snprintf(st->after_tenant, sizeof st->after_tenant, "%s", PQgetvalue(res, rows - 1, 0));
        snprintf(st->after_id, sizeof st->after_id, "%s", PQgetvalue(res, rows - 1, 1));
    }
    more = rows == cfg->renewal_batch;
    if (rows > 0)
        log_write(LOG_INFO, "renewals_enqueued", "{s:i}", "count", rows);

done:
    PQclear(res);
    return more;
}

/* Moves clock_id of tenant, still advancing at frozen, to `status`: ready
 * only when nothing is due under it any more. One simple query is one
 * transaction, so set_config(…, true) holds for the UPDATE (and row-level
 * security admits the tenant's clock) and ends with it. */
static void clock_settle(worker_conn_t *c, const char *tenant, const char *clock_id,
                         const char *frozen, const char *status)
{
    char *t = PQescapeLiteral(c->db, tenant, strlen(tenant));
    char *k = PQescapeLiteral(c->db, clock_id, strlen(clock_id));
    char *f = PQescapeLiteral(c->db, frozen, strlen(frozen));
    bool ready = strcmp(status, "ready") == 0;
    if (t && k && f) {
        char *sql = mem_printf(
            "SELECT set_config('app.tenant_id', %s, true); "
            "UPDATE test_clocks tc SET status = '%s', updated_at = now() "
            "WHERE tc.id = %s AND tc.status = 'advancing' AND tc.frozen_time = %s::timestamptz%s",
            t, ready ? "ready" : "internal_failure", k, f,
            ready ? " AND NOT test_clock_busy(tc.tenant_id, tc.id)" : "");
        PGresult *res = PQexec(c->db, sql);
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            log_write(LOG_WARN, "test_clock_settle_failed", "{s:s,s:s}", "test_clock", clock_id,
                      "error", PQerrorMessage(c->db));
        else if (!ready && strcmp(PQcmdTuples(res), "1") == 0)
            log_write(LOG_WARN, "test_clock_failed", "{s:s,s:s}", "test_clock", clock_id,
                      "tenant_id", tenant);
        PQclear(res);
        free(sql);
    }
    PQfreemem(t);
    PQfreemem(k);
    PQfreemem(f);
}

/* For the due rows of res (tenant, clock, frozen time, subscription,
 * period end), asks Redis for the status of each one's cycle job; a clock
 * whose due job has failed or died can never become ready, and is marked
 * internal_failure instead of advancing for ever. */
static void fail_stuck_clocks(worker_conn_t *c, const PGresult *res)
{
    int rows = PQntuples(res), pending = 0;
    bool *asked = mem_calloc((size_t)rows + 1, sizeof *asked);
    for (int r = 0; r < rows; r++) {
        if (PQgetisnull(res, r, 3))
            continue;
        char id[IDS_MAX], key[JOBQ_KEY_MAX];
        kind_invoice_cycle_job_id(PQgetvalue(res, r, 3), strtoll(PQgetvalue(res, r, 4), NULL, 10),
                                  id);
        jobq_status_key(id, key);
        if (redisAppendCommand(c->redis, "HGET %s status", key) != REDIS_OK)
            break;
        asked[r] = true;
        pending++;
    }
    for (int r = 0; r < rows && pending > 0; r++) {
        if (!asked[r])
            continue;
        void *reply = NULL;
        if (redisGetReply(c->redis, &reply) != REDIS_OK) {
            worker_conn_redis_lost(c, "test_clock_status");
            break;
        }
        pending--;
        redisReply *rep = reply;
        bool stuck = rep->type == REDIS_REPLY_STRING &&
                     (strcmp(rep->str, "failed") == 0 || strcmp(rep->str, "dead") == 0);
        freeReplyObject(reply);
        if (stuck)
            clock_settle(c, PQgetvalue(res, r, 0), PQgetvalue(res, r, 1), PQgetvalue(res, r, 2),
                         "internal_failure");
    }
    free(asked);
}

/* The test clocks' step: enqueue what is due under each advancing clock,
 * and mark clocks with nothing due ready. */
static void scan_clocks(worker_conn_t *c, const config_t *cfg)
{
    char limit[16];
    snprintf(limit, sizeof limit, "%d", cfg->renewal_batch);
    const char *params[1] = {limit};
    PGresult *res = PQexecParams(c->db,
                                 "SELECT tenant_id, test_clock_id, frozen_time::text,"
                                 " subscription_id, floor(extract(epoch FROM period_end))::bigint "
                                 "FROM test_clock_due($1::int)",
                                 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_write(LOG_WARN, "test_clock_scan_failed", "{s:s}", "error", PQerrorMessage(c->db));
        PQclear(res);
        return;
    }
    if (enqueue_rows(c, res, 0, 3, 4) >= 0) {
        for (int r = 0; r < PQntuples(res); r++)
            if (PQgetisnull(res, r, 3))
                clock_settle(c, PQgetvalue(res, r, 0), PQgetvalue(res, r, 1), PQgetvalue(res, r, 2),
                             "ready");
        if (c->redis != NULL)
            fail_stuck_clocks(c, res);
    }
    PQclear(res);
}

bool kind_renewal_tick(worker_conn_t *c, const config_t *cfg, void *state)
{
    kind_renewal_state_t *st = state;
    if (c->db == NULL || c->redis == NULL)
        return false;
    /* Monotonic: a wall clock stepped back would hold off the full walk,
     * the only one that finds subscriptions behind the cursor, as long. */
    int64_t now = (int64_t)(timeutil_mono_ns() / 1000000u);
    if (now >= st->rescan_at_ms) {
        st->after_end[0] = st->after_tenant[0] = st->after_id[0] = '\0';
        st->rescan_at_ms = now + RESCAN_MS;
    }
    bool more = scan_real_time(c, cfg, st);
    scan_clocks(c, cfg);
    return more;
}

static const char CLOCK_CREATE_SQL[] =
    "INSERT INTO test_clocks (tenant_id, id, name, frozen_time) "
    "SELECT t.id, $1, $2, to_timestamp($3::bigint) FROM tenants t "
    "WHERE t.id = current_setting('app.tenant_id') AND NOT t.livemode "
    "RETURNING test_clock_object(test_clocks)::text";

/* test_clock.create: a clock frozen at frozen_time (seconds), test-mode
 * tenants only (the api checked; the statement checks again). */
static handler_outcome_t test_clock_create(worker_job_t *job)
{
    const json_t *p = job->env->payload;
    const char *id = handler_util_req_string(p, "id"), *name = NULL;
    const char *frozen = handler_util_req_string(p, "frozen_time");
    int64_t ms;
    PGresult *res = NULL;
    handler_outcome_t out;
    if (!id || !frozen || timeutil_parse_rfc3339(frozen, &ms) != 0 ||
        !handler_util_opt_string(p, "name", &name)) {
        out = handler_util_bad_payload(job, "id and frozen_time are required");
        goto done;
    }
    char secs[24];
    snprintf(secs, sizeof secs, "%" PRId64, ms / 1000);
    const char *params[3] = {id, name, secs};
    out = handler_util_exec(job, CLOCK_CREATE_SQL, 3, params, PGRES_TUPLES_OK, &res);
    if (out != HANDLER_OK)
        goto done;
    if (PQntuples(res) == 0) {
        out = runtime_reject(job, 403, "test_mode_only", NULL,
                             "Test clocks are available to tenants in test mode only.");
        goto done;
    }
    out = handler_util_take_result(job, res);
done:
    PQclear(res);
    return out;
}

/* test_clock.advance: moves the clock forward to frozen_time; the
 * scheduler then does what became due (status advancing until done). */
static handler_outcome_t test_clock_advance(worker_job_t *job)
{
    const json_t *p = job->env->payload;
    const char *id = handler_util_req_string(p, "id");
    const char *frozen = handler_util_req_string(p, "frozen_time");
    int64_t ms;
    PGresult *res = NULL;
    handler_outcome_t out;
    if (!id || !frozen || timeutil_parse_rfc3339(frozen, &ms) != 0) {
        out = handler_util_bad_payload(job, "id and frozen_time are required");
        goto done;
    }
    char secs[24];
    snprintf(secs, sizeof secs, "%" PRId64, ms / 1000);
    const char *params[2] = {id, secs};
    out = handler_util_exec(job,
                            "SELECT status, frozen_time >= to_timestamp($2::bigint),"
                            " to_timestamp($2::bigint) > frozen_time + interval '" CLOCK_ADVANCE_MAX
                            "' FROM test_clocks WHERE id = $1 FOR UPDATE",
                            2, params, PGRES_TUPLES_OK, &res);
    if (out != HANDLER_OK)
        goto done;
    if (PQntuples(res) == 0) {
        out = runtime_reject(job, 404, "resource_missing", "id", "No such test clock: '%s'.", id);
        goto done;
    }
    if (strcmp(PQgetvalue(res, 0, 0), "advancing") == 0) {
        out = runtime_reject(job, 409, "test_clock_advancing", NULL,
                             "Test clock '%s' is still advancing; wait until it is ready.", id);
        goto done;
    }
    if (strcmp(PQgetvalue(res, 0, 1), "t") == 0) {
        out = runtime_reject(job, 400, "parameter_invalid", "frozen_time",
                             "A test clock only moves forward; frozen_time must be later than "
                             "its current time.");
        goto done;
    }
    if (strcmp(PQgetvalue(res, 0, 2), "t") == 0) {
        out = runtime_reject(job, 400, "parameter_invalid", "frozen_time",
                             "A test clock moves at most %s at a time; advance it in steps.",
                             CLOCK_ADVANCE_MAX);
        goto done;
    }
    out = handler_util_exec(job,
                            "UPDATE test_clocks c SET frozen_time = to_timestamp($2::bigint),"
                            " status = 'advancing', updated_at = now() WHERE id = $1 "
                            "RETURNING test_clock_object(c)::text",
                            2, params, PGRES_TUPLES_OK, &res);
    if (out == HANDLER_OK)
        out = handler_util_take_result(job, res);
done:
    PQclear(res);
    return out;
}

const worker_handler_t kind_renewal_handlers[] = {
    {"test_clock.create", test_clock_create, false, NULL},
    {"test_clock.advance", test_clock_advance, false, NULL},
    {NULL, NULL, false, NULL},
};

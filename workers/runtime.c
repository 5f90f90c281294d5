/* runtime: the consumer loop every worker kind runs (see runtime.h).
 *
 * A pass of the loop re-drains this consumer's own pending entries when a
 * batch failed, promotes due retries, takes over the entries of dead
 * consumers (XAUTOCLAIM), now and then sweeps the outbox, and reads new
 * entries. A batch of entries goes through four steps, and a crash or a
 * failure in any of them loses no job:
 *
 *   1. Redis: count the delivery and mark the jobs running.
 *   2. Postgres, one transaction: skip the jobs already in processed_jobs,
 *      run the others, record the finished ones (see pass_t: optimistic
 *      first, a savepoint per job only after a failure).
 *   3. Redis: publish the outcomes, schedule retries, bury the dead, ack.
 *   4. Relay the follow-ups the batch wrote to the outbox.
 *
 * A failure in 1 or 2 leaves the entries pending: this consumer reads them
 * again (or another one takes them over after the visibility timeout), and
 * that counts as one more delivery. A failure in 3 leaves them pending too,
 * but their effects are committed, so the next delivery finds processed_jobs
 * and only republishes. A failure in 4 leaves follow-ups in the outbox for
 * the sweeper, and enqueue is idempotent by job id, so relaying twice is
 * harmless.
 *
 * Design: the transaction first takes an advisory lock on each job id of
 * the batch (in sorted order, so two batches cannot deadlock), and only then
 * looks for the ids in processed_jobs. A consumer that took over a job from
 * one that was slow rather than dead therefore waits for the slow one's
 * commit and then sees its record, instead of running the job a second time.
 * It works both ways: the slow one, once it has the locks again, sees the
 * other's commit too, whatever delivery count it holds; so every job is
 * looked up, the first delivery too.
 * Two entries of one job in the same batch (a retry promoted while its old
 * entry was still pending) run once and are acked together.
 *
 * While a batch is in hand its entries are claimed again every third of the
 * visibility timeout (a heartbeat): between jobs, and from inside a handler
 * that waits on something slow (runtime_heartbeat, or runtime_heartbeat_cb
 * as a library's wait callback, as the charger's Stripe client does). A
 * worker that hangs stops heartbeating and is taken over; one that waits
 * for Stripe is not.
 *
 * Connections (worker_conn) are synchronous and the loop blocks on them: a
 * worker has nothing else to do meanwhile. Losing either connection
 * abandons the batch in hand (nothing acked) and the loop reconnects with
 * backoff before it reads anything again. The batch's transaction begins
 * before its deliveries are counted, so a Postgres outage wastes none.
 * Follow-ups and the sweep of orphaned ones are the outbox module's.
 */
#include "runtime.h"

#include "decimal.h"
#include "redis_url.h"

#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backoff.h"
#include "crypto.h"
#include "fault.h"
#include "ids.h"
#include "jobq.h"
#include "log.h"
#include "mem.h"
#include "outbox.h"
#include "timeutil.h"
#include "worker_conn.h"

/* How long start-up waits for Postgres and Redis: enough for services
 * booted together with the worker, short enough that a wrong URL fails
 * visibly instead of hanging. */
#define START_GRACE_MS 30000
/* Pause after a failed batch: short after a blip, growing to two seconds
 * when failures repeat, so a failing batch cannot spin against Redis. */
#define PAUSE_MIN_MS 100
#define PAUSE_MAX_MS 2000
/* How often due retries are moved back to the stream. */
#define PROMOTE_EVERY_MS 500
/* Retries moved per promote call: bounds how long the function holds Redis. */
#define PROMOTE_LIMIT 1000
/* Reply wait beyond XREADGROUP's BLOCK time before Redis counts as gone. */
#define REDIS_REPLY_GRACE_MS 5000
/* A stream entry id: two 20-digit numbers, a dash and the NUL. */
#define ENTRY_ID_MAX 48
/* Consumer name: host name (at most 255), pid, random part. */
#define CONSUMER_MAX 320

/* Set by the SIGTERM/SIGINT handler. A signal handler can reach no context
 * struct, so this one flag is a static, as signal handlers require. */
static volatile sig_atomic_t stop_requested;

/* Where a job of the batch stands. */
typedef enum {
    BJ_NEW,       /* Decoded; not yet looked up in processed_jobs. */
    BJ_PROCESSED, /* Found in processed_jobs: its stored outcome is republished. */
    BJ_DECIDED,   /* Ran, or was refused before running; `action` says what follows. */
} bj_state_t;

typedef struct runtime_s runtime_t;

typedef struct {
    worker_job_t job;        /* What the handler sees; runtime_* find the rest from it. */
    runtime_t *rt;           /* The runtime running it. */
    envelope_t env;          /* Decoded envelope; env.attempt is the effective attempt. */
    long long deliveries;    /* Deliveries counted so far, this one included. */
    bj_state_t state;        /* See bj_state_t. */
    runtime_action_t action; /* BJ_DECIDED: what happens next. */
    json_t *record;          /* BJ_DECIDED and final: the processed_jobs row's result;
                                BJ_PROCESSED: the stored one. */
} batch_job_t;

typedef struct {
    batch_job_t *jobs;          /* Distinct jobs of the batch. */
    size_t njobs;               /* Jobs in use. */
    char (*acks)[ENTRY_ID_MAX]; /* Every entry id to ack once the batch is done. */
    size_t nacks;               /* Entry ids in use. */
} batch_t;

struct runtime_s {
    const config_t *cfg;               /* Settings (read-only). */
    const char *kind;                  /* Worker kind, e.g. "domain". */
    const worker_handler_t *handlers;  /* The kind's handler table. */
    char consumer[CONSUMER_MAX];       /* Our consumer name in the group. */
    char stream[JOBQ_KEY_MAX];         /* jobs:<kind>. */
    char delayed[JOBQ_KEY_MAX];        /* delayed:<kind>. */
    char dead[JOBQ_KEY_MAX];           /* dead:<kind>. */
    char malformed[JOBQ_KEY_MAX + 16]; /* dead:<kind>:malformed. */
    char app_name[64];                 /* Postgres application_name. */
    worker_conn_t conn;                /* Postgres and Redis. */
    batch_t *batch;                    /* The batch in hand (for heartbeats), or NULL. */
    uint64_t heartbeat_ns;             /* When the batch's entries were last claimed. */
    char claim_cursor[ENTRY_ID_MAX];   /* Where the next XAUTOCLAIM starts. */
    int drain_count;                   /* COUNT of the next re-drain of our entries. */
    int failures;                      /* Batch failures in a row (for the pause). */
};

/* ---- small helpers ---- */

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static int64_t mono_ms(void)
{
    return (int64_t)(timeutil_mono_ns() / 1000000u);
}

/* Sleeps ms milliseconds; a stop signal cuts it short. */
static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    if (!stop_requested)
        nanosleep(&ts, NULL);
}

/* The error object recorded on jobs. A message that is not valid UTF-8 (a
 * server message in an odd encoding) is replaced rather than lost. */
static json_t *error_json(const char *type, const char *code, const char *message,
                          const char *param, int http_status)
{
    json_t *e = json_pack("{s:s,s:s,s:s,s:s?,s:i}", "type", type, "code", code, "message", message,
                          "param", param, "http_status", http_status);
    if (e == NULL)
        e = json_pack("{s:s,s:s,s:s,s:n,s:i}", "type", type, "code", code, "message",
                      "The error message was not valid UTF-8.", "param", "http_status",
                      http_status);
    return e;
}

static char *json_text(const json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    return s ? s : mem_strdup("null");
}

/* ---- pure helpers (unit-tested) ---- */

runtime_action_t runtime_decide(handler_outcome_t outcome, int attempt, int deliveries,
                                const config_t *cfg)
{
    if (deliveries > cfg->max_deliveries)
        return RUNTIME_ACT_DEAD;
    switch (outcome) {
    case HANDLER_OK:
        return RUNTIME_ACT_SUCCEED;
    case HANDLER_REJECTED:
        return RUNTIME_ACT_FAIL;
    case HANDLER_RETRY:
        return attempt + 1 < cfg->max_attempts ? RUNTIME_ACT_RETRY : RUNTIME_ACT_DEAD;
    case HANDLER_PERMANENT:
        break;
    }
    return RUNTIME_ACT_DEAD;
}

handler_outcome_t runtime_sqlstate_outcome(const char *sqlstate)
{
    static const char *const passing[] = {"40001", "40P01", "55P03", "57P01",
                                          "57P02", "57P03", "57014"};
    if (sqlstate == NULL || strlen(sqlstate) != 5)
        return HANDLER_RETRY;
    if (strncmp(sqlstate, "08", 2) == 0 || strncmp(sqlstate, "53", 2) == 0)
        return HANDLER_RETRY;
    for (size_t i = 0; i < sizeof passing / sizeof passing[0]; i++)
        if (strcmp(sqlstate, passing[i]) == 0)
            return HANDLER_RETRY;
    return HANDLER_PERMANENT;
}

int runtime_parse_entry(const redisReply *entry, runtime_entry_t *out)
{
    out->id = NULL;
    out->job = NULL;
    out->job_len = 0;
    out->attempt = -1;
    out->deleted = false;
    if (entry == NULL || entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 ||
        entry->element[0]->type != REDIS_REPLY_STRING || entry->element[0]->len == 0 ||
        entry->element[0]->len >= ENTRY_ID_MAX)
        return BILLOW_EPARAM_INVALID;
    out->id = entry->element[0]->str;
    const redisReply *fields = entry->element[1];
    if (fields->type == REDIS_REPLY_NIL) {
        out->deleted = true;
        return 0;
    }
    if (fields->type != REDIS_REPLY_ARRAY)
        return BILLOW_EPARAM_INVALID;
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *k = fields->element[i], *v = fields->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        if (strcmp(k->str, "job") == 0) {
            out->job = v->str;
            out->job_len = v->len;
        } else if (strcmp(k->str, "attempt") == 0) {
            long a;
            if (decimal_parse(v->str, v->len, 0, INT_MAX, &a) == 0)
                out->attempt = (int)a;
        }
    }
    return 0;
}

char *runtime_pg_array(const char *const *items, size_t n)
{
    size_t len = 3;
    for (size_t i = 0; i < n; i++)
        len += 3 + 2 * strlen(items[i]);
    char *out = mem_alloc(len);
    char *p = out;
    *p++ = '{';
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            *p++ = ',';
        *p++ = '"';
        for (const char *s = items[i]; *s; s++) {
            if (*s == '"' || *s == '\\')
                *p++ = '\\';
            *p++ = *s;
        }
        *p++ = '"';
    }
    *p++ = '}';
    *p = '\0';
    return out;
}

/* ---- what handlers call ---- */

static batch_job_t *batch_job_of(worker_job_t *job)
{
    return (batch_job_t *)(void *)((char *)job - offsetof(batch_job_t, job));
}

static void set_error(worker_job_t *job, json_t *error)
{
    json_decref(job->error);
    job->error = error;
}

const char *runtime_reject_type(int http_status)
{
    switch (http_status) {
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 429:
        return "rate_limit_error";
    default:
        return "invalid_request_error";
    }
}

handler_outcome_t runtime_reject(worker_job_t *job, int http_status, const char *code,
                                 const char *param, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = mem_vprintf(fmt, ap);
    va_end(ap);
    set_error(job, error_json(runtime_reject_type(http_status), code, msg, param, http_status));
    free(msg);
    return HANDLER_REJECTED;
}

handler_outcome_t runtime_fault(worker_job_t *job, handler_outcome_t outcome, const char *code,
                                const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = mem_vprintf(fmt, ap);
    va_end(ap);
    set_error(job, error_json("api_error", code, msg, NULL, 500));
    free(msg);
    return outcome;
}

handler_outcome_t runtime_db_fault(worker_job_t *job, const PGresult *res)
{
    const char *sqlstate = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    char *msg = worker_conn_pg_message(job->db, res);
    handler_outcome_t outcome = runtime_sqlstate_outcome(sqlstate);
    if (*msg == '\0') {
        free(msg);
        msg = mem_strdup("The database did not answer.");
    }
    runtime_fault(job, outcome, "database_error", "%s", msg);
    free(msg);
    return outcome;
}

int runtime_followup(worker_job_t *job, const char *type, json_t *payload)
{
    return runtime_followup_id(job, type, payload, NULL);
}

char *runtime_followup_envelope(worker_job_t *job, const char *type, json_t *payload,
                                const char *job_id, char id_out[IDS_MAX])
{
    envelope_t env;
    char *text = NULL;
    envelope_init(&env);
    env.payload = payload;
    if (jobq_kind_for_type(type) == NULL || strlen(type) >= sizeof env.type ||
        !json_is_object(payload)) {
        runtime_fault(job, HANDLER_PERMANENT, "internal_error",
                      "Follow-up job of type %s cannot be routed.", type);
        goto done;
    }
    if (job_id)
        snprintf(env.id, sizeof env.id, "%s", job_id);
    else
        ids_generate("job", env.id);
    snprintf(env.type, sizeof env.type, "%s", type);
    snprintf(env.tenant_id, sizeof env.tenant_id, "%s", job->env->tenant_id);
    snprintf(env.actor, sizeof env.actor, "%s", job->env->actor);
    snprintf(env.trace, sizeof env.trace, "%s", job->env->trace);
    snprintf(env.client, sizeof env.client, "%s", job->env->client);
    env.attempt = 0;
    env.enqueued_at_ms = timeutil_now_ms();
    snprintf(id_out, IDS_MAX, "%s", env.id);
    text = envelope_encode(&env);
    if (text == NULL)
        runtime_fault(job, HANDLER_PERMANENT, "internal_error",
                      "Follow-up job of type %s cannot be encoded.", type);
done:
    envelope_dispose(&env);
    return text;
}

void runtime_followup_written(worker_job_t *job, const char *envelope)
{
    if (job->followups == NULL)
        job->followups = json_array();
    json_array_append_new(job->followups, json_string(envelope));
}

int runtime_followup_id(worker_job_t *job, const char *type, json_t *payload, const char *job_id)
{
    PGresult *res = NULL;
    char id[IDS_MAX];
    char *text = runtime_followup_envelope(job, type, payload, job_id, id);
    int rc = BILLOW_EINTERNAL;
    if (text == NULL)
        goto fail;
    const char *params[] = {job->env->tenant_id, id, text};
    res =
        PQexecParams(job->db,
                     "INSERT INTO outbox (tenant_id, job_id, envelope) VALUES ($1, $2, $3::jsonb) "
                     "ON CONFLICT (tenant_id, job_id) DO NOTHING",
                     3, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        runtime_db_fault(job, res);
        rc = BILLOW_EUNAVAILABLE;
        goto fail;
    }
    if (strcmp(PQcmdTuples(res), "0") != 0) /* Else a derived follow-up already on its way. */
        runtime_followup_written(job, text);
    rc = 0;

fail:
    PQclear(res);
    free(text);
    return rc;
}

/* ---- the batch ---- */

static void batch_init(batch_t *b, size_t entries)
{
    size_t n = entries ? entries : 1;
    b->jobs = mem_calloc(n, sizeof *b->jobs);
    b->acks = mem_calloc(n, sizeof *b->acks);
    b->njobs = 0;
    b->nacks = 0;
}

static void batch_dispose(batch_t *b)
{
    for (size_t i = 0; i < b->njobs; i++) {
        batch_job_t *bj = &b->jobs[i];
        envelope_dispose(&bj->env);
        json_decref(bj->job.result);
        json_decref(bj->job.error);
        json_decref(bj->job.followups);
        json_decref(bj->record);
    }
    free(b->jobs);
    free(b->acks);
    memset(b, 0, sizeof *b);
}

/* Forgets what a rolled-back pass decided, so the batch can run again. */
static void batch_reset(batch_t *b)
{
    for (size_t i = 0; i < b->njobs; i++) {
        batch_job_t *bj = &b->jobs[i];
        json_decref(bj->job.result);
        json_decref(bj->job.error);
        json_decref(bj->job.followups);
        json_decref(bj->record);
        bj->job.result = bj->job.error = bj->job.followups = bj->record = NULL;
        bj->state = BJ_NEW;
    }
}

static batch_job_t *batch_find(batch_t *b, const char *tenant, const char *job_id)
{
    for (size_t i = 0; i < b->njobs; i++)
        if (strcmp(b->jobs[i].env.id, job_id) == 0 &&
            (tenant == NULL || strcmp(b->jobs[i].env.tenant_id, tenant) == 0))
            return &b->jobs[i];
    return NULL;
}

/* The distinct tenants of the batch's jobs into out (room for njobs). */
static size_t batch_tenants(const batch_t *b, const char **out)
{
    size_t n = 0;
    for (size_t i = 0; i < b->njobs; i++) {
        const char *t = b->jobs[i].env.tenant_id;
        size_t k = 0;
        while (k < n && strcmp(out[k], t) != 0)
            k++;
        if (k == n)
            out[n++] = t;
    }
    return n;
}

static const char *action_name(runtime_action_t a)
{
    static const char *const names[] = {[RUNTIME_ACT_SUCCEED] = "succeeded",
                                        [RUNTIME_ACT_FAIL] = "failed",
                                        [RUNTIME_ACT_RETRY] = "retry",
                                        [RUNTIME_ACT_DEAD] = "dead"};
    return names[a];
}

static void log_job_failure(const runtime_t *rt, const batch_job_t *bj)
{
    log_write(LOG_WARN, "job_failed", "{s:s,s:s,s:s,s:s,s:s,s:i,s:I,s:O?}", "job_id", bj->env.id,
              "type", bj->env.type, "request_id", bj->env.trace, "tenant_id", bj->env.tenant_id,
              "action", action_name(bj->action), "attempt", bj->env.attempt, "deliveries",
              (json_int_t)bj->deliveries, "error", bj->job.error);
}

/* Settles bj with `action`, keeping the processed_jobs row of a final one. */
static void batch_job_decide(runtime_t *rt, batch_job_t *bj, runtime_action_t action)
{
    bj->state = BJ_DECIDED;
    bj->action = action;
    if (action == RUNTIME_ACT_SUCCEED)
        bj->record = json_pack("{s:s,s:O}", "status", "succeeded", "result", bj->job.result);
    else if (action == RUNTIME_ACT_FAIL)
        bj->record = json_pack("{s:s,s:O}", "status", "failed", "error", bj->job.error);
    if (action != RUNTIME_ACT_SUCCEED)
        log_job_failure(rt, bj);
}

/* Claims every entry of the batch in hand again, resetting their idle time
 * so no other consumer takes them over. */
static void heartbeat(runtime_t *rt)
{
    batch_t *b = rt->batch;
    worker_conn_argv_t a = {0};
    if (b == NULL || b->nacks == 0 || rt->conn.redis == NULL)
        return;
    worker_conn_argv_add(&a, "XCLAIM");
    worker_conn_argv_add(&a, rt->stream);
    worker_conn_argv_add(&a, JOBQ_GROUP);
    worker_conn_argv_add(&a, rt->consumer);
    worker_conn_argv_add(&a, "0");
    for (size_t i = 0; i < b->nacks; i++)
        worker_conn_argv_add(&a, b->acks[i]);
    worker_conn_argv_add(&a, "JUSTID");
    redisReply *r = worker_conn_redis_argv(&rt->conn, &a, "heartbeat");
    if (r)
        freeReplyObject(r);
    worker_conn_argv_dispose(&a);
    rt->heartbeat_ns = timeutil_mono_ns();
}

/* Heartbeats when a third of the visibility timeout has passed since the
 * last claim: between jobs when a batch runs long, and whenever a handler
 * (or a library waiting on its behalf) asks. */
static void maybe_heartbeat(runtime_t *rt)
{
    uint64_t every_ns = (uint64_t)rt->cfg->visibility_timeout_ms * 1000000u / 3u;
    if (timeutil_mono_ns() - rt->heartbeat_ns >= every_ns)
        heartbeat(rt);
}

void runtime_heartbeat(worker_job_t *job)
{
    maybe_heartbeat(batch_job_of(job)->rt);
}

void *runtime_heartbeat_arg(worker_job_t *job)
{
    return batch_job_of(job)->rt;
}

void runtime_heartbeat_cb(void *arg)
{
    maybe_heartbeat(arg);
}

/* Step 1: counts the delivery of each job and marks it running. */
static int batch_mark_running(runtime_t *rt, batch_t *b)
{
    char key[JOBQ_KEY_MAX];
    long long now = (long long)timeutil_now_ms();
    if (rt->conn.redis == NULL)
        return BILLOW_EUNAVAILABLE;
    for (size_t i = 0; i < b->njobs; i++) {
        jobq_status_key(b->jobs[i].env.id, key);
        if (redisAppendCommand(rt->conn.redis, "HINCRBY %s deliveries 1", key) != REDIS_OK ||
            redisAppendCommand(rt->conn.redis, "HSET %s status running started_at %lld", key,
                               now) != REDIS_OK) {
            worker_conn_redis_lost(&rt->conn, "mark_running");
            return BILLOW_EUNAVAILABLE;
        }
    }
    for (size_t i = 0; i < b->njobs; i++) {
        void *reply = NULL;
        if (redisGetReply(rt->conn.redis, &reply) != REDIS_OK) {
            worker_conn_redis_lost(&rt->conn, "mark_running");
            return BILLOW_EUNAVAILABLE;
        }
        redisReply *r = reply;
        /* A status hash that is not a hash is someone else's key: count the
         * delivery as the first rather than refuse the job. Any other error
         * (out of memory) stops the batch before it runs: a delivery that
         * cannot be counted would let a crashing job run forever. */
        bool foreign = r->type == REDIS_REPLY_ERROR && strncmp(r->str, "WRONGTYPE", 9) == 0;
        bool refused = r->type == REDIS_REPLY_ERROR && !foreign;
        if (refused)
            log_write(LOG_WARN, "redis_error", "{s:s,s:s}", "where", "mark_running", "error",
                      r->str);
        b->jobs[i].deliveries = r->type == REDIS_REPLY_INTEGER ? r->integer : 1;
        freeReplyObject(r);
        if (worker_conn_redis_replies(&rt->conn, 1, "mark_running") != 0)
            return BILLOW_EUNAVAILABLE;
        if (refused) {
            /* The rest of the pipeline is read, so the connection stays. */
            for (size_t k = i + 1; k < b->njobs; k++)
                if (worker_conn_redis_replies(&rt->conn, 2, "mark_running") != 0)
                    break;
            return BILLOW_EUNAVAILABLE;
        }
    }
    return 0;
}

/* The stored outcome of each job id of $1 (NULL when it has none), for the
 * tenant set. One probe of the primary key per id, whatever the planner
 * knows of the table: a scalar subquery cannot be turned into a join. As a
 * join, a table without fresh statistics (a new tenant's, one grown fast
 * since autovacuum last analysed it) was read whole for every batch, and
 * the drain ran three times slower (docs/performance.md). */
static const char FIND_PROCESSED_SQL[] =
    "SELECT j, (SELECT p.result::text FROM processed_jobs p WHERE p.tenant_id = "
    "current_setting('app.tenant_id') AND p.job_id = j) FROM unnest($1::text[]) AS j";

/* Step 2a: waits for any other consumer still holding one of these jobs
 * (see Design above), then marks the jobs found in processed_jobs. */
static int batch_find_processed(runtime_t *rt, batch_t *b)
{
    const char **ids = mem_calloc(b->njobs, sizeof *ids);
    const char **tenants = mem_calloc(b->njobs, sizeof *tenants);
    char *arr = NULL;
    PGresult *res = NULL;
    int rc = BILLOW_EUNAVAILABLE;

    for (size_t i = 0; i < b->njobs; i++)
        ids[i] = b->jobs[i].env.id;
    arr = runtime_pg_array(ids, b->njobs);
    const char *lock_params[] = {arr};
    res = worker_conn_pg_params(
        &rt->conn,
        "SELECT pg_advisory_xact_lock(k) FROM (SELECT DISTINCT hashtextextended(j, 0) "
        "AS k FROM unnest($1::text[]) AS j ORDER BY 1) AS s",
        1, lock_params, PGRES_TUPLES_OK, "lock_jobs");
    if (res == NULL)
        goto fail;
    PQclear(res);
    res = NULL;

    /* Every job is looked up, on its first delivery too. The delivery
     * count is the one this consumer read, and it goes stale: while this
     * consumer waited (for the lock above, or between a pass rolled back
     * and its careful redo, which gives the locks up) another one may have
     * taken the entry over and committed the job; and a retry resets the
     * count while an older entry of the job, taken over, may still be
     * running. Only this look-up, under the locks, sees such a commit. The
     * primary key of processed_jobs is no safety net: it refuses a second
     * record only when the second run's outcome is final, not when it ends
     * dead or retried, which would be published over the first's. */
    size_t ntenants = batch_tenants(b, tenants);
    for (size_t t = 0; t < ntenants; t++) {
        size_t n = 0;
        for (size_t i = 0; i < b->njobs; i++)
            if (strcmp(b->jobs[i].env.tenant_id, tenants[t]) == 0)
                ids[n++] = b->jobs[i].env.id;
        free(arr);
        arr = runtime_pg_array(ids, n);
        if (worker_conn_pg_set_tenant(&rt->conn, tenants[t]) != 0)
            goto fail;
        const char *params[] = {arr};
        res = worker_conn_pg_params(&rt->conn, FIND_PROCESSED_SQL, 1, params, PGRES_TUPLES_OK,
                                    "find_processed");
        if (res == NULL)
            goto fail;
        for (int row = 0; row < PQntuples(res); row++) {
            if (PQgetisnull(res, row, 1))
                continue;
            batch_job_t *bj = batch_find(b, tenants[t], PQgetvalue(res, row, 0));
            json_t *stored = json_loads(PQgetvalue(res, row, 1), 0, NULL);
            if (bj == NULL || stored == NULL) {
                json_decref(stored);
                continue;
            }
            bj->state = BJ_PROCESSED;
            bj->record = stored;
        }
        PQclear(res);
        res = NULL;
    }
    rc = 0;

fail:
    PQclear(res);
    free(arr);
    free(tenants);
    free(ids);
    return rc;
}

/* How a batch's jobs run inside its transaction. The first pass is
 * optimistic: no savepoints, the tenant set only when it changes, so a batch
 * of jobs that all succeed costs no round trip per job of its own. The first
 * job that fails ends that pass (RUNTIME_REDO); the transaction is rolled
 * back and the batch runs again carefully, a savepoint per job, so the
 * failure undoes only its own job. */
typedef struct {
    bool careful;        /* A savepoint per job. */
    bool savepoint_open; /* careful: the savepoint "job" exists. */
    const char *tenant;  /* Optimistic: the tenant set for the transaction, or NULL. */
} pass_t;

/* batch_transact's answer when the optimistic pass met a failing job. */
#define RUNTIME_REDO BILLOW_ECONFLICT

static const worker_handler_t *find_handler(const worker_handler_t *handlers, const char *type)
{
    for (size_t i = 0; handlers[i].type != NULL; i++)
        if (strcmp(handlers[i].type, type) == 0)
            return &handlers[i];
    return NULL;
}

/* The audit context of a job (app.job): who asked, from where, in which
 * request. The audit triggers copy it into every audit event the job's
 * statements cause. Caller frees. */
static char *job_context(const envelope_t *env)
{
    json_t *ctx = json_pack("{s:s,s:s,s:s,s:s,s:s}", "id", env->id, "type", env->type, "actor",
                            env->actor, "trace", env->trace, "client", env->client);
    char *text = ctx ? json_dumps(ctx, JSON_COMPACT) : NULL;
    json_decref(ctx);
    return text ? text : mem_strdup("");
}

/* Sets the tenant and the audit context for the rest of the transaction
 * (until the next job sets them again) in one statement. */
static int set_job_context(runtime_t *rt, const envelope_t *env)
{
    char *ctx = job_context(env);
    const char *params[] = {env->tenant_id, ctx};
    PGresult *res = worker_conn_pg_params(
        &rt->conn, "SELECT set_config('app.tenant_id', $1, true), set_config('app.job', $2, true)",
        2, params, PGRES_TUPLES_OK, "set_job_context");
    free(ctx);
    PQclear(res);
    return res ? 0 : BILLOW_EUNAVAILABLE;
}

/* Step 2b: runs one job with its tenant set, under the savepoint "job" in a
 * careful pass. Returns 0 when the job has an outcome, RUNTIME_REDO when it
 * failed in an optimistic pass, or an error when the transaction itself
 * failed (the batch is then abandoned). */
static int batch_run_job(runtime_t *rt, batch_job_t *bj, pass_t *pass)
{
    worker_job_t *job = &bj->job;
    const worker_handler_t *handler = find_handler(rt->handlers, bj->env.type);
    bool audited = handler != NULL && !handler->unaudited;
    int rc;
    if (pass->careful) {
        char *ctx = audited ? job_context(&bj->env) : mem_strdup("");
        char *lit = PQescapeLiteral(rt->conn.db, bj->env.tenant_id, strlen(bj->env.tenant_id));
        char *ctx_lit = PQescapeLiteral(rt->conn.db, ctx, strlen(ctx));
        free(ctx);
        if (lit == NULL || ctx_lit == NULL) {
            PQfreemem(lit);
            PQfreemem(ctx_lit);
            worker_conn_pg_log(&rt->conn, NULL, "escape_tenant");
            return BILLOW_EUNAVAILABLE;
        }
        char *sql = mem_printf("%sSAVEPOINT job; SELECT set_config('app.tenant_id', %s, true), "
                               "set_config('app.job', %s, true)",
                               pass->savepoint_open ? "RELEASE SAVEPOINT job; " : "", lit, ctx_lit);
        PQfreemem(lit);
        PQfreemem(ctx_lit);
        rc = worker_conn_pg_exec(&rt->conn, sql, PGRES_TUPLES_OK, "savepoint");
        free(sql);
        if (rc != 0)
            return rc;
        pass->savepoint_open = true;
    } else if (audited) {
        /* One statement per audited job: its own context, and the tenant. */
        rc = set_job_context(rt, &bj->env);
        if (rc != 0)
            return rc;
        pass->tenant = bj->env.tenant_id;
    } else if (pass->tenant == NULL || strcmp(pass->tenant, bj->env.tenant_id) != 0) {
        rc = worker_conn_pg_set_tenant(&rt->conn, bj->env.tenant_id);
        if (rc != 0)
            return rc;
        pass->tenant = bj->env.tenant_id;
    }

    job->env = &bj->env;
    job->db = rt->conn.db;
    handler_outcome_t outcome;
    if (handler == NULL)
        outcome =
            runtime_fault(job, HANDLER_PERMANENT, "unknown_job_type",
                          "No handler for job type %s in worker kind %s.", bj->env.type, rt->kind);
    else {
        /* A crash here stands for a handler that brings its worker down (a
         * poison job): the crash tests count deliveries through it. */
        fault_point("worker.run_job");
        outcome = handler->fn(job);
    }

    if (PQstatus(rt->conn.db) != CONNECTION_OK) {
        worker_conn_pg_log(&rt->conn, NULL, "handler");
        return BILLOW_EUNAVAILABLE;
    }
    if (outcome == HANDLER_OK && PQtransactionStatus(rt->conn.db) != PQTRANS_INTRANS)
        outcome = runtime_fault(job, HANDLER_PERMANENT, "internal_error",
                                "The handler reported success after a failed statement.");
    if (outcome != HANDLER_OK && !pass->careful)
        return RUNTIME_REDO; /* Without a savepoint to go back to: redo the batch carefully. */
    if (outcome == HANDLER_OK) {
        if (job->result == NULL)
            job->result = json_object();
    } else {
        if (worker_conn_pg_exec(&rt->conn, "ROLLBACK TO SAVEPOINT job", PGRES_COMMAND_OK,
                                "rollback_job") != 0)
            return BILLOW_EUNAVAILABLE;
        json_decref(job->followups);
        job->followups = NULL;
        json_decref(job->result);
        job->result = NULL;
        if (job->error == NULL)
            runtime_fault(job, outcome, "internal_error", "The handler failed without a reason.");
    }
    int deliveries = bj->deliveries > INT_MAX ? INT_MAX : (int)bj->deliveries;
    batch_job_decide(rt, bj, runtime_decide(outcome, bj->env.attempt, deliveries, rt->cfg));
    return 0;
}

/* Step 2a': in an optimistic pass, hands the new jobs of each type that
 * has a set-based handler to it, a tenant at a time (up to the batch's
 * size). Jobs it takes are decided here; the others run one by one after.
 * Returns 0, RUNTIME_REDO when the set-based handler failed (the batch is
 * then redone carefully, job by job), or an error. */
static int batch_run_sets(runtime_t *rt, batch_t *b)
{
    worker_job_t **jobs = mem_calloc(b->njobs + 1, sizeof *jobs);
    batch_job_t **bjs = mem_calloc(b->njobs + 1, sizeof *bjs);
    bool *taken = mem_calloc(b->njobs + 1, sizeof *taken);
    const char **tenants = mem_calloc(b->njobs + 1, sizeof *tenants);
    size_t ntenants = batch_tenants(b, tenants);
    int rc = 0;

    for (size_t h = 0; rt->handlers[h].type != NULL && rc == 0; h++) {
        const worker_handler_t *handler = &rt->handlers[h];
        if (handler->batch_fn == NULL)
            continue;
        for (size_t t = 0; t < ntenants && rc == 0; t++) {
            size_t n = 0;
            for (size_t i = 0; i < b->njobs; i++) {
                batch_job_t *bj = &b->jobs[i];
                if (bj->state != BJ_NEW || bj->deliveries > rt->cfg->max_deliveries ||
                    strcmp(bj->env.type, handler->type) != 0 ||
                    strcmp(bj->env.tenant_id, tenants[t]) != 0)
                    continue;
                bj->job.env = &bj->env;
                bj->job.db = rt->conn.db;
                taken[n] = false;
                bjs[n] = bj;
                jobs[n++] = &bj->job;
            }
            if (n < 2)
                continue; /* One job is cheaper on its own. */
            /* The audit context of the set: who asked, but no single job. */
            json_t *ctx =
                json_pack("{s:s,s:s,s:s,s:s}", "type", bjs[0]->env.type, "actor", bjs[0]->env.actor,
                          "trace", bjs[0]->env.trace, "client", bjs[0]->env.client);
            char *ctx_text = json_dumps(ctx, JSON_COMPACT);
            json_decref(ctx);
            const char *params[] = {tenants[t], ctx_text};
            PGresult *res = worker_conn_pg_params(
                &rt->conn,
                "SELECT set_config('app.tenant_id', $1, true), set_config('app.job', $2, true)", 2,
                params, PGRES_TUPLES_OK, "set_set_context");
            free(ctx_text);
            if (res == NULL) {
                rc = BILLOW_EUNAVAILABLE;
                break;
            }
            PQclear(res);
            handler_outcome_t outcome = handler->batch_fn(jobs, n, taken);
            if (PQstatus(rt->conn.db) != CONNECTION_OK) {
                worker_conn_pg_log(&rt->conn, NULL, "batch_handler");
                rc = BILLOW_EUNAVAILABLE;
                break;
            }
            if (outcome != HANDLER_OK || PQtransactionStatus(rt->conn.db) != PQTRANS_INTRANS) {
                char *why = jobs[0]->error ? json_text(jobs[0]->error) : NULL;
                log_write(LOG_WARN, "batch_set_failed", "{s:s,s:i,s:s}", "type", handler->type,
                          "jobs", (int)n, "error", why ? why : "");
                free(why);
                rc = RUNTIME_REDO;
                break;
            }
            int ntaken = 0;
            for (size_t i = 0; i < n; i++) {
                if (!taken[i])
                    continue;
                if (bjs[i]->job.result == NULL)
                    bjs[i]->job.result = json_object();
                batch_job_decide(rt, bjs[i], RUNTIME_ACT_SUCCEED);
                ntaken++;
            }
            log_write(LOG_DEBUG, "batch_set_done", "{s:s,s:i,s:i}", "type", handler->type, "jobs",
                      (int)n, "taken", ntaken);
            maybe_heartbeat(rt);
        }
    }
    free(jobs);
    free(bjs);
    free(taken);
    free(tenants);
    return rc;
}

/* Step 2c: writes the processed_jobs rows, one statement per tenant. */
static int batch_record(runtime_t *rt, batch_t *b)
{
    const char **tenants = mem_calloc(b->njobs, sizeof *tenants);
    const char **cols[4];
    char **texts = mem_calloc(b->njobs, sizeof *texts);
    int rc = 0;

    for (int c = 0; c < 4; c++)
        cols[c] = mem_calloc(b->njobs, sizeof *cols[c]);
    size_t ntenants = batch_tenants(b, tenants);
    for (size_t t = 0; t < ntenants && rc == 0; t++) {
        size_t n = 0;
        for (size_t i = 0; i < b->njobs; i++) {
            batch_job_t *bj = &b->jobs[i];
            if (bj->state != BJ_DECIDED || bj->record == NULL ||
                strcmp(bj->env.tenant_id, tenants[t]) != 0)
                continue;
            texts[i] = json_text(bj->record);
            cols[0][n] = bj->env.tenant_id;
            cols[1][n] = bj->env.id;
            cols[2][n] = bj->env.type;
            cols[3][n] = texts[i];
            n++;
        }
        if (n == 0)
            continue;
        char *arrays[4];
        for (int c = 0; c < 4; c++)
            arrays[c] = runtime_pg_array(cols[c], n);
        rc = worker_conn_pg_set_tenant(&rt->conn, tenants[t]);
        if (rc == 0) {
            const char *params[] = {arrays[0], arrays[1], arrays[2], arrays[3]};
            PGresult *res = worker_conn_pg_params(
                &rt->conn,
                "INSERT INTO processed_jobs (tenant_id, job_id, type, result) SELECT * FROM "
                "unnest($1::text[], $2::text[], $3::text[], $4::jsonb[])",
                4, params, PGRES_COMMAND_OK, "record_processed");
            rc = res ? 0 : BILLOW_EUNAVAILABLE;
            PQclear(res);
        }
        for (int c = 0; c < 4; c++)
            free(arrays[c]);
    }

    for (size_t i = 0; i < b->njobs; i++)
        free(texts[i]);
    for (int c = 0; c < 4; c++)
        free(cols[c]);
    free(texts);
    free(tenants);
    return rc;
}

/* Step 2: the rest of the batch's transaction, which the caller began. On
 * failure it is rolled back (or lost with the connection) and nothing of it
 * counts. */
static int batch_transact(runtime_t *rt, batch_t *b, bool careful)
{
    pass_t pass = {.careful = careful, .savepoint_open = false, .tenant = NULL};
    PGresult *res = NULL;
    int rc = batch_find_processed(rt, b);
    if (rc != 0)
        goto fail;
    if (!careful && (rc = batch_run_sets(rt, b)) != 0)
        goto fail;
    for (size_t i = 0; i < b->njobs; i++) {
        batch_job_t *bj = &b->jobs[i];
        if (bj->state != BJ_NEW)
            continue;
        if (bj->deliveries > rt->cfg->max_deliveries) {
            runtime_fault(&bj->job, HANDLER_PERMANENT, "too_many_deliveries",
                          "The job was delivered %lld times without finishing; it kept "
                          "crashing its worker or running past the visibility timeout.",
                          bj->deliveries);
            batch_job_decide(rt, bj, RUNTIME_ACT_DEAD);
            continue;
        }
        rc = batch_run_job(rt, bj, &pass);
        if (rc != 0)
            goto fail;
        maybe_heartbeat(rt);
    }
    rc = batch_record(rt, b);
    if (rc != 0)
        goto fail;
    res = PQexec(rt->conn.db, "COMMIT");
    /* COMMIT of an aborted transaction "succeeds" as ROLLBACK. */
    if (PQresultStatus(res) != PGRES_COMMAND_OK || strcmp(PQcmdStatus(res), "COMMIT") != 0) {
        worker_conn_pg_log(&rt->conn, res, "commit");
        rc = BILLOW_EUNAVAILABLE;
        goto fail;
    }
    PQclear(res);
    return 0;

fail:
    PQclear(res);
    worker_conn_pg_abandon(&rt->conn);
    return rc;
}

/* Appends the commands that publish a final status (succeeded or failed). */
static int append_final(runtime_t *rt, const envelope_t *env, const char *status, const char *field,
                        const char *value, long long now, int *n)
{
    const char *job_id = env->id;
    char key[JOBQ_KEY_MAX];
    jobq_status_key(job_id, key);
    redisContext *c = rt->conn.redis;
    bool ok =
        redisAppendCommand(c, "HSET %s status %s %s %s finished_at %lld", key, status, field, value,
                           now) == REDIS_OK &&
        redisAppendCommand(c, "HDEL %s next_attempt_at %s", key,
                           strcmp(field, "result") == 0 ? "error" : "result") == REDIS_OK &&
        redisAppendCommand(c, "EXPIRE %s %d", key, rt->cfg->job_status_ttl_s) == REDIS_OK &&
        redisAppendCommand(c, "PUBLISH %s %s:%s", JOBQ_DONE_CHANNEL, job_id, env->type) == REDIS_OK;
    *n += 4;
    return ok ? 0 : BILLOW_EUNAVAILABLE;
}

/* Appends the commands for a job that ran (or was refused) in this batch. */
static int append_decided(runtime_t *rt, batch_job_t *bj, long long now, int *n)
{
    char key[JOBQ_KEY_MAX];
    redisContext *c = rt->conn.redis;
    const char *id = bj->env.id;
    char *err = bj->job.error ? json_text(bj->job.error) : NULL;
    int rc = 0;

    jobq_status_key(id, key);
    switch (bj->action) {
    case RUNTIME_ACT_SUCCEED: {
        char *result = json_text(bj->job.result);
        rc = append_final(rt, &bj->env, "succeeded", "result", result, now, n);
        free(result);
        break;
    }
    case RUNTIME_ACT_FAIL:
        rc = append_final(rt, &bj->env, "failed", "error", err, now, n);
        break;
    case RUNTIME_ACT_RETRY: {
        int attempts = bj->env.attempt + 1;
        uint64_t random;
        crypto_random_bytes(&random, sizeof random);
        long long due = now + backoff_delay_ms(attempts, rt->cfg->backoff_base_ms,
                                               rt->cfg->backoff_max_ms, random);
        /* The envelope in the hash is what billow_promote puts back in the
         * stream, so it carries the new attempt. Deliveries restart: they
         * count crashes of one attempt, not attempts. */
        bj->env.attempt = attempts;
        char *envelope = envelope_encode(&bj->env);
        if (envelope == NULL) {
            rc = BILLOW_EINTERNAL;
            break;
        }
        bool ok = redisAppendCommand(c,
                                     "HSET %s envelope %s status queued attempts %d error %s "
                                     "next_attempt_at %lld deliveries 0",
                                     key, envelope, attempts, err, due) == REDIS_OK &&
                  redisAppendCommand(c, "ZADD %s %lld %s", rt->delayed, due, id) == REDIS_OK;
        *n += 2;
        free(envelope);
        rc = ok ? 0 : BILLOW_EUNAVAILABLE;
        break;
    }
    case RUNTIME_ACT_DEAD: {
        /* Listed in the kind's dead set and, for a tenant's job, in the
         * tenant's own (a platform job, of no tenant, only in the first). */
        char tenant_dead[JOBQ_KEY_MAX];
        bool tenant = bj->env.tenant_id[0] != '\0';
        jobq_dead_tenant_key(rt->kind, bj->env.tenant_id, tenant_dead);
        /* The enqueue left the envelope in the stream only; billow_replay
         * takes it from here. */
        char *envelope = envelope_encode(&bj->env);
        if (envelope == NULL) {
            rc = BILLOW_EINTERNAL;
            break;
        }
        bool ok = redisAppendCommand(c,
                                     "HSET %s envelope %s status dead error %s attempts %d "
                                     "finished_at %lld",
                                     key, envelope, err, bj->env.attempt + 1, now) == REDIS_OK &&
                  redisAppendCommand(c, "HDEL %s next_attempt_at", key) == REDIS_OK &&
                  redisAppendCommand(c, "ZADD %s %lld %s", rt->dead, now, id) == REDIS_OK &&
                  (!tenant ||
                   redisAppendCommand(c, "ZADD %s %lld %s", tenant_dead, now, id) == REDIS_OK) &&
                  redisAppendCommand(c, "PUBLISH %s %s:%s", JOBQ_DONE_CHANNEL, id, bj->env.type) ==
                      REDIS_OK;
        *n += tenant ? 5 : 4;
        free(envelope);
        rc = ok ? 0 : BILLOW_EUNAVAILABLE;
        break;
    }
    }
    free(err);
    return rc;
}

/* Acks and deletes the batch's entries: XLEN stays the queue's depth. */
static int append_acks(runtime_t *rt, const batch_t *b, int *n)
{
    worker_conn_argv_t ack = {0}, del = {0};
    worker_conn_argv_add(&ack, "XACK");
    worker_conn_argv_add(&ack, rt->stream);
    worker_conn_argv_add(&ack, JOBQ_GROUP);
    worker_conn_argv_add(&del, "XDEL");
    worker_conn_argv_add(&del, rt->stream);
    for (size_t i = 0; i < b->nacks; i++) {
        worker_conn_argv_add(&ack, b->acks[i]);
        worker_conn_argv_add(&del, b->acks[i]);
    }
    int rc = worker_conn_redis_append(&rt->conn, &ack, n);
    if (rc == 0)
        rc = worker_conn_redis_append(&rt->conn, &del, n);
    worker_conn_argv_dispose(&ack);
    worker_conn_argv_dispose(&del);
    return rc;
}

/* Step 3: publishes every outcome, then acks the entries, in one pipeline
 * and one MULTI/EXEC: Redis out of memory refuses the status writes and the
 * retries' ZADD but would still take XACK and XDEL, which would lose the
 * job. Inside MULTI it refuses the whole, the entries stay pending, and
 * their redelivery publishes again (a finished job's outcome is in
 * processed_jobs). */
static int batch_publish(runtime_t *rt, batch_t *b)
{
    long long now = (long long)timeutil_now_ms();
    int n = 0, rc = 0;
    if (rt->conn.redis == NULL)
        return BILLOW_EUNAVAILABLE;
    if (redisAppendCommand(rt->conn.redis, "MULTI") != REDIS_OK)
        rc = BILLOW_EUNAVAILABLE;
    else
        n++;
    for (size_t i = 0; i < b->njobs && rc == 0; i++) {
        batch_job_t *bj = &b->jobs[i];
        if (bj->state == BJ_DECIDED) {
            rc = append_decided(rt, bj, now, &n);
        } else if (bj->state == BJ_PROCESSED) {
            const char *status = json_string_value(json_object_get(bj->record, "status"));
            bool ok = status != NULL && strcmp(status, "succeeded") == 0;
            const char *field = ok ? "result" : "error";
            char *value = json_text(json_object_get(bj->record, field));
            rc = append_final(rt, &bj->env, ok ? "succeeded" : "failed", field, value, now, &n);
            free(value);
        }
    }
    if (rc == 0)
        rc = append_acks(rt, b, &n);
    if (rc == 0) {
        if (redisAppendCommand(rt->conn.redis, "EXEC") != REDIS_OK)
            rc = BILLOW_EUNAVAILABLE;
        else
            n++;
    }
    if (rc != 0) {
        /* The pipeline is half-built: the connection cannot be trusted. */
        worker_conn_redis_lost(&rt->conn, "publish");
        return rc;
    }
    /* A command refused while queued makes EXEC fail (EXECABORT): nothing
     * was done. */
    return worker_conn_redis_replies_all(&rt->conn, n, "publish");
}

/* Step 4: relays the follow-ups the batch committed, then deletes them from
 * the outbox. Whatever fails here stays in the outbox for the sweeper. */
static void batch_relay(runtime_t *rt, batch_t *b)
{
    const char **tenants = mem_calloc(b->njobs, sizeof *tenants);
    const char **texts = NULL, **id_ptrs = NULL;
    char(*ids)[IDS_MAX] = NULL;
    bool *relayed = NULL;
    size_t cap = 0;
    size_t ntenants = batch_tenants(b, tenants);

    for (size_t t = 0; t < ntenants; t++) {
        size_t n = 0;
        for (size_t i = 0; i < b->njobs; i++) {
            batch_job_t *bj = &b->jobs[i];
            if (bj->state != BJ_DECIDED || bj->action != RUNTIME_ACT_SUCCEED ||
                bj->job.followups == NULL || strcmp(bj->env.tenant_id, tenants[t]) != 0)
                continue;
            size_t k;
            json_t *text;
            json_array_foreach(bj->job.followups, k, text)
            {
                if (n == cap) {
                    cap = cap ? cap * 2 : 16;
                    texts = mem_realloc(texts, cap * sizeof *texts);
                    ids = mem_realloc(ids, cap * sizeof *ids);
                    id_ptrs = mem_realloc(id_ptrs, cap * sizeof *id_ptrs);
                    relayed = mem_realloc(relayed, cap * sizeof *relayed);
                }
                texts[n++] = json_string_value(text);
            }
        }
        /* One pipeline per tenant: a renewal run's charges cost one round
         * trip per batch, not one each. */
        if (n == 0 || outbox_relay_many(&rt->conn, texts, n, rt->malformed, ids, relayed) != 0)
            continue;
        size_t done = 0;
        for (size_t i = 0; i < n; i++)
            if (relayed[i])
                id_ptrs[done++] = ids[i];
        if (done > 0 && outbox_delete(&rt->conn, tenants[t], id_ptrs, done) != 0)
            log_write(LOG_WARN, "outbox_delete_failed", "{s:s,s:i}", "tenant_id", tenants[t],
                      "count", (int)done);
    }
    free(relayed);
    free(id_ptrs);
    free(ids);
    free(texts);
    free(tenants);
}

/* When the malformed envelope raw still names a job whose status exists
 * (an api or a worker of another version wrote it, say), that job ends:
 * dead, with the reason, and its waiters told. Otherwise a client polling it
 * or waiting on it (Prefer: wait) would see it queued forever. It is kept
 * out of the dead sets: a replay would put the same envelope back. */
static int end_malformed_job(runtime_t *rt, const char *raw)
{
    json_t *j = json_loads(raw, 0, NULL);
    const char *id = json_string_value(json_object_get(j, "id"));
    const char *type = json_string_value(json_object_get(j, "type"));
    char key[JOBQ_KEY_MAX];
    int rc = 0;
    if (id == NULL || !ids_valid("job", id))
        goto done;
    jobq_status_key(id, key);
    redisReply *r = redisCommand(rt->conn.redis, "EXISTS %s", key);
    if (r == NULL) {
        worker_conn_redis_lost(&rt->conn, "malformed");
        rc = BILLOW_EUNAVAILABLE;
        goto done;
    }
    bool exists = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    if (!exists)
        goto done;
    json_t *err = error_json("api_error", "malformed_envelope",
                             "The job's envelope could not be read by this worker, so it was not "
                             "run. Enqueue it again.",
                             NULL, 500);
    char *err_text = json_text(err);
    json_decref(err);
    bool ok = redisAppendCommand(rt->conn.redis, "HSET %s status dead error %s finished_at %lld",
                                 key, err_text, (long long)timeutil_now_ms()) == REDIS_OK &&
              redisAppendCommand(rt->conn.redis, "PUBLISH %s %s:%s", JOBQ_DONE_CHANNEL, id,
                                 type ? type : "") == REDIS_OK;
    free(err_text);
    if (!ok) {
        worker_conn_redis_lost(&rt->conn, "malformed");
        rc = BILLOW_EUNAVAILABLE;
        goto done;
    }
    rc = worker_conn_redis_replies(&rt->conn, 2, "malformed");
done:
    json_decref(j);
    return rc;
}

/* Moves entries the batch cannot use out of the way: an envelope that does
 * not decode is kept in dead:<kind>:malformed for a human, and the job it
 * still names, if any, ends dead (end_malformed_job). */
static int drop_malformed(runtime_t *rt, const runtime_entry_t *e)
{
    char *raw =
        e->job ? mem_strndup(e->job, e->job_len) : mem_printf("(entry %s has no job field)", e->id);
    log_write(LOG_ERROR, "job_malformed", "{s:s,s:s}", "entry_id", e->id, "job", raw);
    if (rt->conn.redis == NULL || end_malformed_job(rt, raw) != 0) {
        free(raw);
        return BILLOW_EUNAVAILABLE;
    }
    bool ok = redisAppendCommand(rt->conn.redis, "LPUSH %s %s", rt->malformed, raw) == REDIS_OK &&
              redisAppendCommand(rt->conn.redis, "LTRIM %s 0 %d", rt->malformed,
                                 RUNTIME_MALFORMED_KEEP - 1) == REDIS_OK &&
              redisAppendCommand(rt->conn.redis, "XACK %s %s %s", rt->stream, JOBQ_GROUP, e->id) ==
                  REDIS_OK &&
              redisAppendCommand(rt->conn.redis, "XDEL %s %s", rt->stream, e->id) == REDIS_OK;
    free(raw);
    if (!ok) {
        worker_conn_redis_lost(&rt->conn, "malformed");
        return BILLOW_EUNAVAILABLE;
    }
    return worker_conn_redis_replies(&rt->conn, 4, "malformed");
}

/* Reads the entries of a reply into b: distinct jobs, and every entry id
 * for the ack. Malformed entries are dealt with at once. */
static int batch_load(runtime_t *rt, batch_t *b, const redisReply *entries, int *malformed)
{
    for (size_t i = 0; i < entries->elements; i++) {
        runtime_entry_t e;
        if (runtime_parse_entry(entries->element[i], &e) != 0) {
            log_write(LOG_ERROR, "stream_entry_unreadable", "{s:s}", "stream", rt->stream);
            continue;
        }
        if (e.deleted) {
            snprintf(b->acks[b->nacks++], ENTRY_ID_MAX, "%s", e.id);
            continue;
        }
        batch_job_t *bj = &b->jobs[b->njobs];
        if (e.job == NULL || envelope_decode(e.job, e.job_len, &bj->env) != 0) {
            (*malformed)++;
            if (drop_malformed(rt, &e) != 0)
                return BILLOW_EUNAVAILABLE;
            continue;
        }
        snprintf(b->acks[b->nacks++], ENTRY_ID_MAX, "%s", e.id);
        if (batch_find(b, NULL, bj->env.id) != NULL) {
            envelope_dispose(&bj->env);
            continue;
        }
        if (e.attempt >= 0)
            bj->env.attempt = e.attempt;
        bj->rt = rt;
        bj->state = BJ_NEW;
        b->njobs++;
    }
    return 0;
}

/* Counts the outcomes of a finished batch for its log line. */
static void log_batch(const runtime_t *rt, const batch_t *b, int malformed, uint64_t start_ns)
{
    int counts[4] = {0}, replayed = 0;
    for (size_t i = 0; i < b->njobs; i++) {
        if (b->jobs[i].state == BJ_PROCESSED)
            replayed++;
        else
            counts[b->jobs[i].action]++;
    }
    log_write(LOG_DEBUG, "batch_done", "{s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:I}", "entries",
              (int)b->nacks, "succeeded", counts[RUNTIME_ACT_SUCCEED], "failed",
              counts[RUNTIME_ACT_FAIL], "retried", counts[RUNTIME_ACT_RETRY], "dead",
              counts[RUNTIME_ACT_DEAD], "already_processed", replayed, "malformed", malformed, "ms",
              (json_int_t)((timeutil_mono_ns() - start_ns) / 1000000u));
}

/* Processes the entries of an XREADGROUP or XAUTOCLAIM reply as one batch.
 * Returns 0, or an error when the batch failed and its entries stay
 * pending. */
static int process_entries(runtime_t *rt, const redisReply *entries)
{
    batch_t b;
    int malformed = 0;
    uint64_t start_ns = timeutil_mono_ns();
    int rc;

    if (entries == NULL || entries->type != REDIS_REPLY_ARRAY || entries->elements == 0)
        return 0;
    batch_init(&b, entries->elements);
    rt->batch = &b;
    rt->heartbeat_ns = start_ns;
    rc = batch_load(rt, &b, entries, &malformed);
    if (rc != 0 || b.nacks == 0)
        goto done;
    if (b.njobs > 0) {
        /* BEGIN goes first: a Postgres connection that died while idle is
         * found here, before step 1 counts a delivery the outage would waste. */
        rc = worker_conn_pg_exec(&rt->conn, "BEGIN", PGRES_COMMAND_OK, "begin");
        if (rc == 0)
            rc = batch_mark_running(rt, &b);
        if (rc != 0) {
            worker_conn_pg_abandon(&rt->conn);
            goto done;
        }
        rc = batch_transact(rt, &b, false);
        if (rc == RUNTIME_REDO) {
            batch_reset(&b);
            rc = worker_conn_pg_exec(&rt->conn, "BEGIN", PGRES_COMMAND_OK, "begin");
            if (rc == 0)
                rc = batch_transact(rt, &b, true);
        }
        if (rc != 0)
            goto done;
        fault_point("worker.after_commit");
    }
    rc = batch_publish(rt, &b);
    if (rc != 0)
        goto done;
    fault_point("worker.before_relay");
    batch_relay(rt, &b);
    log_batch(rt, &b, malformed, start_ns);

done:
    if (rc != 0)
        log_write(LOG_WARN, "batch_failed", "{s:i,s:s}", "entries", (int)entries->elements, "error",
                  err_code(rc));
    rt->batch = NULL;
    batch_dispose(&b);
    return rc;
}

/* ---- the loop's steps ---- */

/* The entries array of an XREADGROUP reply ([[stream, entries]]), or NULL. */
static const redisReply *read_entries(const redisReply *r)
{
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 1)
        return NULL;
    const redisReply *s = r->element[0];
    if (s->type != REDIS_REPLY_ARRAY || s->elements != 2)
        return NULL;
    return s->element[1];
}

/* XREADGROUP from `from` ("0": our pending entries, ">": new ones).
 * Returns the reply (caller frees), or NULL when Redis failed. */
static redisReply *read_group(runtime_t *rt, const char *from, int count, int block_ms)
{
    char count_s[16], block_s[16];
    worker_conn_argv_t a = {0};
    snprintf(count_s, sizeof count_s, "%d", count);
    snprintf(block_s, sizeof block_s, "%d", block_ms);
    worker_conn_argv_add(&a, "XREADGROUP");
    worker_conn_argv_add(&a, "GROUP");
    worker_conn_argv_add(&a, JOBQ_GROUP);
    worker_conn_argv_add(&a, rt->consumer);
    worker_conn_argv_add(&a, "COUNT");
    worker_conn_argv_add(&a, count_s);
    if (block_ms > 0) {
        worker_conn_argv_add(&a, "BLOCK");
        worker_conn_argv_add(&a, block_s);
    }
    worker_conn_argv_add(&a, "STREAMS");
    worker_conn_argv_add(&a, rt->stream);
    worker_conn_argv_add(&a, from);
    redisReply *r = worker_conn_redis_argv(&rt->conn, &a, "xreadgroup");
    worker_conn_argv_dispose(&a);
    if (r && r->type == REDIS_REPLY_ERROR) {
        /* NOGROUP after Redis lost its data: reconnecting recreates it. */
        log_write(LOG_WARN, "xreadgroup_failed", "{s:s}", "error", r->str);
        freeReplyObject(r);
        worker_conn_redis_lost(&rt->conn, "xreadgroup");
        return NULL;
    }
    return r;
}

/* Processes this consumer's own pending entries until none is left. After
 * a failure the next drain reads one entry at a time, so a job that makes
 * its batch fail cannot keep taking the others down with it. */
static int drain_pending(runtime_t *rt)
{
    while (!stop_requested) {
        redisReply *r = read_group(rt, "0", rt->drain_count, 0);
        if (r == NULL)
            return BILLOW_EUNAVAILABLE;
        const redisReply *entries = read_entries(r);
        if (entries == NULL || entries->type != REDIS_REPLY_ARRAY || entries->elements == 0) {
            freeReplyObject(r);
            rt->drain_count = rt->cfg->worker_batch;
            return 0;
        }
        int rc = process_entries(rt, entries);
        freeReplyObject(r);
        if (rc != 0) {
            rt->drain_count = 1;
            return rc;
        }
    }
    return 0;
}

static void promote_due(runtime_t *rt)
{
    jobq_cmd_t cmd;
    jobq_promote_cmd(&cmd, rt->kind, timeutil_now_ms(), PROMOTE_LIMIT);
    redisReply *r = worker_conn_redis_cmd(&rt->conn, &cmd, "promote");
    if (r == NULL)
        return;
    if (r->type == REDIS_REPLY_ERROR)
        log_write(LOG_WARN, "promote_failed", "{s:s}", "error", r->str);
    else if (r->type == REDIS_REPLY_INTEGER && r->integer > 0)
        log_write(LOG_DEBUG, "retries_promoted", "{s:I}", "count", (json_int_t)r->integer);
    freeReplyObject(r);
}

/* Takes over entries idle longer than the visibility timeout (their
 * consumer died or hung) and processes them, each as a batch of its own:
 * the consumer may have died of one of them (a crash, the OOM killer), and
 * in one batch every entry would be counted a delivery each time that job
 * killed the next worker, until the whole batch went dead unrun. One at a
 * time, only the job that kills counts deliveries; the others are done
 * before it is reached or wait behind it until it goes dead.
 *
 * Design: one entry is claimed per call, not a batch's worth. A claim
 * starts an entry's idle time afresh, and the heartbeat covers only the
 * entry being run: entries claimed with it would sit idle in this
 * consumer's list while the others ran, and past the visibility timeout
 * another consumer would take them over again (a delivery counted each
 * time: jobs that never crashed anything could go dead). Unclaimed, they
 * wait in the dead consumer's list, for this consumer's next call or
 * another's. *more is set when the scan has not reached the end of the
 * pending list, and the loop calls again at once. */
static int claim_abandoned(runtime_t *rt, bool *more)
{
    char idle_s[16];
    worker_conn_argv_t a = {0};
    int rc = 0;
    *more = false;
    snprintf(idle_s, sizeof idle_s, "%d", rt->cfg->visibility_timeout_ms);
    worker_conn_argv_add(&a, "XAUTOCLAIM");
    worker_conn_argv_add(&a, rt->stream);
    worker_conn_argv_add(&a, JOBQ_GROUP);
    worker_conn_argv_add(&a, rt->consumer);
    worker_conn_argv_add(&a, idle_s);
    worker_conn_argv_add(&a, rt->claim_cursor);
    worker_conn_argv_add(&a, "COUNT");
    worker_conn_argv_add(&a, "1");
    redisReply *r = worker_conn_redis_argv(&rt->conn, &a, "xautoclaim");
    worker_conn_argv_dispose(&a);
    if (r == NULL)
        return BILLOW_EUNAVAILABLE;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[0]->len >= ENTRY_ID_MAX) {
        log_write(LOG_WARN, "xautoclaim_failed", "{s:s}", "error",
                  r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        freeReplyObject(r);
        return 0;
    }
    snprintf(rt->claim_cursor, sizeof rt->claim_cursor, "%s", r->element[0]->str);
    *more = strcmp(rt->claim_cursor, "0-0") != 0;
    const redisReply *entries = r->element[1];
    if (entries->type == REDIS_REPLY_ARRAY && entries->elements > 0) {
        log_write(LOG_INFO, "jobs_taken_over", "{s:i}", "count", (int)entries->elements);
        rc = process_entries(rt, entries); /* One entry (COUNT 1). */
    }
    freeReplyObject(r);
    return rc;
}

/* Reads and processes one batch of new entries, blocking up to block_ms. */
static int read_new(runtime_t *rt, int block_ms)
{
    redisReply *r = read_group(rt, ">", rt->cfg->worker_batch, block_ms);
    if (r == NULL)
        return BILLOW_EUNAVAILABLE;
    int rc = process_entries(rt, read_entries(r));
    freeReplyObject(r);
    return rc;
}

/* Removes our consumer from the group when it holds nothing, so restarts
 * do not pile up dead consumer names. */
static void forget_consumer(runtime_t *rt)
{
    if (rt->conn.redis == NULL)
        return;
    redisReply *r = redisCommand(rt->conn.redis, "XPENDING %s %s - + 1 %s", rt->stream, JOBQ_GROUP,
                                 rt->consumer);
    bool idle = r && r->type == REDIS_REPLY_ARRAY && r->elements == 0;
    if (r)
        freeReplyObject(r);
    if (!idle)
        return;
    r = redisCommand(rt->conn.redis, "XGROUP DELCONSUMER %s %s %s", rt->stream, JOBQ_GROUP,
                     rt->consumer);
    if (r)
        freeReplyObject(r);
}

static void make_consumer_name(char out[CONSUMER_MAX])
{
    char host[256] = "worker";
    unsigned char rnd[4];
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "worker");
    host[sizeof host - 1] = '\0';
    crypto_random_bytes(rnd, sizeof rnd);
    snprintf(out, CONSUMER_MAX, "%s-%ld-%02x%02x%02x%02x", host, (long)getpid(), rnd[0], rnd[1],
             rnd[2], rnd[3]);
}

void runtime_install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    /* No SA_RESTART: a sleep ends at once; blocking reads finish first. */
    sa.sa_flags = 0;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    /* A write to a Redis socket the server closed must be an error, not death. */
    signal(SIGPIPE, SIG_IGN);
}

/* Pause after a failed batch, growing with failures in a row. */
static void failure_pause(runtime_t *rt)
{
    int64_t ms = PAUSE_MIN_MS;
    for (int i = 0; i < rt->failures && ms < PAUSE_MAX_MS; i++)
        ms *= 2;
    rt->failures++;
    sleep_ms(ms > PAUSE_MAX_MS ? PAUSE_MAX_MS : ms);
}

int runtime_run(const config_t *cfg, const char *kind, const worker_handler_t *handlers,
                const runtime_tick_t *tick)
{
    runtime_t rt;
    memset(&rt, 0, sizeof rt);
    rt.cfg = cfg;
    rt.kind = kind;
    rt.handlers = handlers;
    rt.drain_count = cfg->worker_batch;
    snprintf(rt.claim_cursor, sizeof rt.claim_cursor, "0-0");
    jobq_stream_key(kind, rt.stream);
    jobq_delayed_key(kind, rt.delayed);
    jobq_dead_key(kind, rt.dead);
    snprintf(rt.malformed, sizeof rt.malformed, "%s:malformed", rt.dead);
    make_consumer_name(rt.consumer);

    snprintf(rt.app_name, sizeof rt.app_name, "billow-worker-%s", kind);
    rt.conn.database_url = cfg->database_url;
    rt.conn.app_name = rt.app_name;
    rt.conn.redis_timeout_ms = cfg->worker_block_ms + REDIS_REPLY_GRACE_MS;
    snprintf(rt.conn.stream, sizeof rt.conn.stream, "%s", rt.stream);
    int rc = redis_url_parse(cfg->redis_url, rt.conn.redis_host, sizeof rt.conn.redis_host,
                             &rt.conn.redis_port, &rt.conn.redis_db);
    if (rc == 0)
        rc = redis_url_credentials(cfg->redis_url, rt.conn.redis_user, rt.conn.redis_password);
    if (rc != 0) {
        log_write(LOG_ERROR, "worker_start_failed", "{s:s}", "error",
                  "REDIS_URL must look like redis://[[user]:password@]host:port/db");
        return rc;
    }
    rc = worker_conn_open(&rt.conn, START_GRACE_MS, &stop_requested);
    if (rc != 0 && stop_requested) {
        rc = 0;
        goto done;
    }
    if (rc != 0) {
        log_write(LOG_ERROR, "worker_start_failed", "{s:s,s:b,s:b}", "error",
                  "Postgres or Redis unreachable", "postgres", rt.conn.db != NULL, "redis",
                  rt.conn.redis != NULL);
        goto done;
    }
    log_write(LOG_INFO, "worker_started", "{s:s,s:s,s:i,s:i}", "kind", kind, "consumer",
              rt.consumer, "pid", (int)getpid(), "batch", cfg->worker_batch);

    bool need_drain = true;
    int64_t next_promote = 0, next_claim = 0, next_sweep = 0;
    int64_t next_tick = tick ? 0 : INT64_MAX;
    while (!stop_requested) {
        if (rt.conn.db == NULL || rt.conn.redis == NULL || PQstatus(rt.conn.db) != CONNECTION_OK) {
            if (worker_conn_open(&rt.conn, -1, &stop_requested) != 0)
                break;
            need_drain = true;
        }
        int64_t now = mono_ms();
        if (need_drain) {
            if (drain_pending(&rt) != 0) {
                failure_pause(&rt);
                continue;
            }
            need_drain = false;
        }
        if (now >= next_promote) {
            promote_due(&rt);
            next_promote = now + PROMOTE_EVERY_MS;
        }
        if (now >= next_claim && rt.conn.redis && rt.conn.db) {
            bool more = false;
            need_drain = claim_abandoned(&rt, &more) != 0;
            next_claim = more ? now : now + cfg->visibility_timeout_ms / 2;
        }
        if (now >= next_sweep && rt.conn.redis && rt.conn.db) {
            outbox_sweep(&rt.conn, rt.malformed);
            next_sweep = now + cfg->outbox_sweep_ms;
        }
        if (now >= next_tick && rt.conn.redis && rt.conn.db) {
            bool more = tick->fn(&rt.conn, cfg, tick->state);
            next_tick = more ? now : mono_ms() + tick->every_ms;
        }
        if (!need_drain && !stop_requested && rt.conn.redis && rt.conn.db &&
            PQstatus(rt.conn.db) == CONNECTION_OK) {
            /* Block no longer than until the next periodic step is due, so
             * an idle worker still promotes retries on time. */
            int64_t due = next_promote < next_claim ? next_promote : next_claim;
            due = due < next_sweep ? due : next_sweep;
            due = due < next_tick ? due : next_tick;
            int64_t block = due - mono_ms();
            block = block < 1 ? 1 : block > cfg->worker_block_ms ? cfg->worker_block_ms : block;
            need_drain = read_new(&rt, (int)block) != 0;
        }
        if (need_drain)
            failure_pause(&rt);
        else
            rt.failures = 0;
    }
    forget_consumer(&rt);
    log_write(LOG_INFO, "worker_stopped", "{s:s,s:s}", "kind", kind, "consumer", rt.consumer);
    rc = 0;

done:
    worker_conn_close(&rt.conn);
    return rc;
}

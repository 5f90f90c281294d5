/* routes_jobs: job status, and the operators' view of dead jobs.
 *
 * A tenant credential sees its own tenant's jobs (a job that changed users,
 * keys, sessions, settings or customers only with the permission to read
 * those, or when it asked for the job itself); the platform token sees all.
 * Dead jobs are listed from the dead:<kind> sets (newest death first) and
 * replayed through billow_replay, which puts the job back on its stream
 * under its own id and records who replayed it.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "ids.h"
#include "jobq.h"
#include "log.h"
#include "mem.h"
#include "permissions.h"
#include "query.h"
#include "routes.h"
#include "timeutil.h"

/* Dead jobs looked at per kind in one listing or bulk replay: bounds the
 * work of one request; a larger backlog is replayed in several calls. */
#define JOBS_DEAD_SCAN_MAX 1000
#define JOBS_LIST_DEFAULT  20
#define JOBS_LIST_MAX      100

/* Job types whose results only some roles may read: a job's result is
 * the object it made or changed, so reading the job is reading that
 * object, and needs that object's read permission. */
static const struct {
    const char *prefix;     /* Job type prefix. */
    const char *permission; /* What reading its result needs. */
} result_reads[] = {
    {"customer.", "customers:read"},
    {"user.", "users:read"},
    {"api_key.", "api_keys:read"},
    {"session.", "sessions:manage"},
    {"tenant.settings_", "settings:read"},
    /* tenant.create's result holds the owner user and the owner key. */
    {"tenant.", "api_keys:read"},
};

/* True when the job names actor as who asked: the hash's actor field, or
 * for a job enqueued before that field existed, its envelope's. */
static bool asked_by(const redisReply *r, const char *actor)
{
    const char *who_field = jobq_reply_field(r, "actor");
    if (who_field)
        return strcmp(who_field, actor) == 0;
    const char *text = jobq_reply_field(r, "envelope");
    json_t *env = text ? json_loads(text, 0, NULL) : NULL;
    const char *who = json_string_value(json_object_get(env, "actor"));
    bool same = who && strcmp(who, actor) == 0;
    json_decref(env);
    return same;
}

/* A job is visible to the platform, and within its tenant to whoever asked
 * for it or holds the read permission of what it changes. Others get 404,
 * as for another tenant's job. */
static int visible(const api_req_t *ar, const redisReply *r)
{
    if (ar->auth.kind == AUTH_PLATFORM)
        return 1;
    const char *t = jobq_reply_field(r, "tenant_id");
    if (t == NULL || strcmp(t, ar->auth.tenant_id) != 0)
        return 0;
    const char *type = jobq_reply_field(r, "type");
    for (size_t i = 0; type && i < sizeof result_reads / sizeof result_reads[0]; i++) {
        if (strncmp(type, result_reads[i].prefix, strlen(result_reads[i].prefix)) != 0)
            continue;
        return permissions_allows(ar->auth.role, result_reads[i].permission) ||
               asked_by(r, ar->auth.actor);
    }
    return 1;
}

static void no_such_job(api_req_t *ar, const char *id)
{
    respond_error(ar, BILLOW_ENOT_FOUND, "id", "No such job: '%s'.", id);
}

static int send_or_fail(api_req_t *ar, redis_reply_cb cb, void *data, int argc, const char **argv)
{
    size_t lens[8];
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    if (redis_conn_command(ar->app->redis, cb, data, argc, argv, lens) != 0) {
        respond_error(ar, BILLOW_EUNAVAILABLE, NULL, "The job queue is unavailable.");
        return -1;
    }
    return 0;
}

static void on_job(void *data, redisReply *r)
{
    api_req_t *ar = data;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        respond_error(ar, BILLOW_EUNAVAILABLE, NULL, "The job queue is unavailable.");
        return;
    }
    json_t *job = visible(ar, r) ? jobq_status_json(r) : NULL;
    if (job == NULL) {
        no_such_job(ar, ar->params[0]);
        return;
    }
    respond_json(ar, 200, job);
}

static void get_job(api_req_t *ar, redis_reply_cb cb)
{
    char key[JOBQ_KEY_MAX];
    jobq_status_key(ar->params[0], key);
    const char *argv[2] = {"HGETALL", key};
    send_or_fail(ar, cb, ar, 2, argv);
}

void routes_jobs_get(api_req_t *ar)
{
    if (!ids_valid("job", ar->params[0])) {
        no_such_job(ar, ar->params[0]);
        return;
    }
    get_job(ar, on_job);
}

static void on_replayed(void *data, redisReply *r)
{
    api_req_t *ar = data;
    if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
        respond_error(ar, BILLOW_EUNAVAILABLE, NULL, "The job queue is unavailable.");
        return;
    }
    if (r->integer == 0) {
        respond_error_custom(ar, 409, "invalid_request_error", "job_not_dead", "id",
                             "Only dead jobs can be replayed; this one is not dead.");
        return;
    }
    if (r->integer < 0) {
        no_such_job(ar, ar->params[0]);
        return;
    }
    log_write(LOG_INFO, "job_replayed", "{s:s,s:s,s:s}", "job_id", ar->params[0], "actor",
              ar->auth.actor, "request_id", ar->http->request_id);
    get_job(ar, on_job);
}

static void on_replay_check(void *data, redisReply *r)
{
    api_req_t *ar = data;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        respond_error(ar, BILLOW_EUNAVAILABLE, NULL, "The job queue is unavailable.");
        return;
    }
    if (jobq_reply_field(r, "id") == NULL || !visible(ar, r)) {
        no_such_job(ar, ar->params[0]);
        return;
    }
    jobq_cmd_t cmd;
    jobq_replay_cmd(&cmd, ar->params[0], ar->auth.actor, timeutil_now_ms());
    if (redis_conn_command(ar->app->redis, on_replayed, ar, cmd.argc, cmd.argv, cmd.argvlen) != 0)
        respond_error(ar, BILLOW_EUNAVAILABLE, NULL, "The job queue is unavailable.");
}

void routes_jobs_replay(api_req_t *ar)
{
    if (!ids_valid("job", ar->params[0])) {
        no_such_job(ar, ar->params[0]);
        return;
    }
    get_job(ar, on_replay_check);
}

/* A scan of the dead sets: ids with their time of death, then their
 * status hashes, filtered by tenant, type and time. */
typedef struct {
    char id[IDS_MAX]; /* Job id. */
    int64_t died_ms;  /* Score in dead:<kind>. */
    json_t *job;      /* The job object once read, if it passes the filters. */
} dead_item_t;

typedef struct scan_s scan_t;
typedef void (*scan_done_fn)(scan_t *scan);

struct scan_s {
    api_req_t *ar;          /* The request. */
    char kind[32];          /* Only this kind, or "" for all. */
    char type[64];          /* Only this type, or "". */
    int64_t since_ms;       /* Died at or after (0: no bound). */
    int64_t until_ms;       /* Died before (0: no bound). */
    int64_t after_ms;       /* A listing's cursor: died at or before (0: none)… */
    char after_id[IDS_MAX]; /* …and, at that time, an id below this one. */
    int truncated;          /* A dead set had more in range than one scan reads. */
    dead_item_t *items;     /* Collected. */
    size_t nitems, cap;     /* Used and allocated. */
    int pending;            /* Replies due. */
    int failed;             /* A Redis call failed. */
    scan_done_fn done;      /* Called once all is read. */
    int limit;              /* For listings. */
    size_t replayed;        /* For bulk replays. */
    json_t *ids;            /* For bulk replays. */
};

typedef struct {
    scan_t *scan; /* The scan. */
    size_t index; /* Item the reply is for. */
} scan_ref_t;

static void scan_free(scan_t *s)
{
    for (size_t i = 0; i < s->nitems; i++)
        if (s->items[i].job)
            json_decref(s->items[i].job);
    free(s->items);
    if (s->ids)
        json_decref(s->ids);
    free(s);
}

static void scan_step_done(scan_t *s)
{
    if (--s->pending == 0)
        s->done(s);
}

static void on_dead_hash(void *data, redisReply *r)
{
    scan_ref_t *ref = data;
    scan_t *s = ref->scan;
    dead_item_t *it = &s->items[ref->index];
    free(ref);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        s->failed = 1;
    } else if (visible(s->ar, r)) {
        const char *type = jobq_reply_field(r, "type");
        const char *status = jobq_reply_field(r, "status");
        if (status && strcmp(status, "dead") == 0 &&
            (s->type[0] == '\0' || (type && strcmp(type, s->type) == 0)))
            it->job = jobq_status_json(r);
    }
    scan_step_done(s);
}

static void on_dead_ids(void *data, redisReply *r)
{
    scan_t *s = data;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        s->failed = 1;
        scan_step_done(s);
        return;
    }
    if (r->elements / 2 >= JOBS_DEAD_SCAN_MAX)
        s->truncated = 1;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        int64_t died = strtoll(r->element[i + 1]->str, NULL, 10);
        if ((s->since_ms && died < s->since_ms) || (s->until_ms && died >= s->until_ms))
            continue;
        /* After the cursor: older, or as old with a lower id (by_death_desc). */
        if (s->after_ms && (died > s->after_ms ||
                            (died == s->after_ms && strcmp(r->element[i]->str, s->after_id) >= 0)))
            continue;
        if (s->nitems == s->cap) {
            s->cap = s->cap ? s->cap * 2 : 64;
            s->items = mem_realloc(s->items, s->cap * sizeof(dead_item_t));
        }
        dead_item_t *it = &s->items[s->nitems];
        memset(it, 0, sizeof(*it));
        snprintf(it->id, sizeof(it->id), "%s", r->element[i]->str);
        it->died_ms = died;
        scan_ref_t *ref = mem_alloc(sizeof(*ref));
        ref->scan = s;
        ref->index = s->nitems++;
        char key[JOBQ_KEY_MAX];
        jobq_status_key(it->id, key);
        const char *argv[2] = {"HGETALL", key};
        size_t lens[2] = {7, strlen(key)};
        s->pending++;
        if (redis_conn_command(s->ar->app->redis, on_dead_hash, ref, 2, argv, lens) != 0) {
            free(ref);
            s->failed = 1;
            s->pending--;
        }
    }
    scan_step_done(s);
}

/* Reads, for each kind in scope, the newest JOBS_DEAD_SCAN_MAX ids dead
 * within the time bounds and before the cursor: from the kind's set for the
 * platform, from the tenant's own set (dead:<kind>:<tenant>) for a tenant,
 * so no other tenant's dead jobs crowd a tenant's out. */
static void scan_start(scan_t *s)
{
    /* until is exclusive ("(" in ZRANGEBYSCORE); the cursor's time is
     * inclusive, its ties told apart by id in on_dead_ids. */
    char hi[24] = "+inf", lo[24] = "-inf", count[16];
    if (s->after_ms && (s->until_ms == 0 || s->after_ms < s->until_ms))
        snprintf(hi, sizeof hi, "%lld", (long long)s->after_ms);
    else if (s->until_ms)
        snprintf(hi, sizeof hi, "(%lld", (long long)s->until_ms);
    if (s->since_ms)
        snprintf(lo, sizeof lo, "%lld", (long long)s->since_ms);
    snprintf(count, sizeof count, "%d", JOBS_DEAD_SCAN_MAX);
    s->pending = 1;
    for (size_t i = 0; JOBQ_KINDS[i]; i++) {
        if (s->kind[0] && strcmp(s->kind, JOBQ_KINDS[i]) != 0)
            continue;
        if (s->type[0] && strcmp(jobq_kind_for_type(s->type), JOBQ_KINDS[i]) != 0)
            continue;
        char key[JOBQ_KEY_MAX];
        if (s->ar->auth.kind == AUTH_PLATFORM)
            jobq_dead_key(JOBQ_KINDS[i], key);
        else
            jobq_dead_tenant_key(JOBQ_KINDS[i], s->ar->auth.tenant_id, key);
        const char *argv[8] = {"ZREVRANGEBYSCORE", key, hi, lo, "WITHSCORES", "LIMIT", "0", count};
        size_t lens[8];
        for (int k = 0; k < 8; k++)
            lens[k] = strlen(argv[k]);
        s->pending++;
        if (redis_conn_command(s->ar->app->redis, on_dead_ids, s, 8, argv, lens) != 0) {
            s->failed = 1;
            s->pending--;
        }
    }
    scan_step_done(s);
}

static int by_death_desc(const void *a, const void *b)
{
    const dead_item_t *x = a, *y = b;
    return x->died_ms < y->died_ms ? 1 : x->died_ms > y->died_ms ? -1 : strcmp(y->id, x->id);
}

static void list_done(scan_t *s)
{
    api_req_t *ar = s->ar;
    if (s->failed) {
        scan_free(s);
        respond_error(ar, BILLOW_EUNAVAILABLE, NULL, "The job queue is unavailable.");
        return;
    }
    if (s->nitems > 0)
        qsort(s->items, s->nitems, sizeof(dead_item_t), by_death_desc);
    json_t *data = json_array();
    int has_more = s->truncated;
    for (size_t i = 0; i < s->nitems; i++) {
        if (s->items[i].job == NULL)
            continue;
        if ((int)json_array_size(data) == s->limit) {
            has_more = 1;
            break;
        }
        json_array_append(data, s->items[i].job);
    }
    scan_free(s);
    respond_json(ar, 200,
                 json_pack("{s:s,s:s,s:o,s:b}", "object", "list", "url", "/v1/jobs", "data", data,
                           "has_more", has_more));
}

/* Reads kind and type filters (query or body) into s; answers on error. */
static int scan_filters_or_respond(api_req_t *ar, scan_t *s, const char *kind, const char *type)
{
    if (kind && *kind) {
        if (!jobq_kind_valid(kind)) {
            respond_error(ar, BILLOW_EPARAM_INVALID, "kind", "Unknown worker kind '%s'.", kind);
            return -1;
        }
        snprintf(s->kind, sizeof(s->kind), "%s", kind);
    }
    if (type && *type) {
        if (jobq_kind_for_type(type) == NULL || strlen(type) >= sizeof(s->type)) {
            respond_error(ar, BILLOW_EPARAM_INVALID, "type", "Unknown job type '%s'.", type);
            return -1;
        }
        snprintf(s->type, sizeof(s->type), "%s", type);
    }
    return 0;
}

/* The cursor job's hash: a dead job the caller can see sets where the
 * listing resumes; anything else is the caller's mistake. */
static void on_cursor_job(void *data, redisReply *r)
{
    scan_t *s = data;
    api_req_t *ar = s->ar;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        scan_free(s);
        respond_error(ar, BILLOW_EUNAVAILABLE, NULL, "The job queue is unavailable.");
        return;
    }
    const char *status = jobq_reply_field(r, "status");
    const char *finished = jobq_reply_field(r, "finished_at");
    if (jobq_reply_field(r, "id") == NULL || !visible(ar, r) || status == NULL ||
        strcmp(status, "dead") != 0 || finished == NULL) {
        respond_error(ar, BILLOW_EPARAM_INVALID, "starting_after",
                      "starting_after must be the id of a dead job listed before: '%s' is not.",
                      s->after_id);
        scan_free(s);
        return;
    }
    s->after_ms = strtoll(finished, NULL, 10);
    scan_start(s);
}

void routes_jobs_list(api_req_t *ar)
{
    static const char *const allowed[] = {"status", "type",           "kind",
                                          "limit",  "starting_after", NULL};
    char unknown[64], status[16], type[64], kind[32], after[IDS_MAX];
    if (query_unknown(ar->http->query, allowed, unknown, sizeof(unknown))) {
        respond_error(ar, BILLOW_EPARAM_UNKNOWN, unknown, "Unknown query parameter '%s'.", unknown);
        return;
    }
    if (query_get(ar->http->query, "status", status, sizeof(status)) != 1 ||
        strcmp(status, "dead") != 0) {
        respond_error(ar, BILLOW_EPARAM_INVALID, "status",
                      "Jobs are listed by status=dead; read other jobs by id.");
        return;
    }
    int has_type = query_get(ar->http->query, "type", type, sizeof(type));
    int has_kind = query_get(ar->http->query, "kind", kind, sizeof(kind));
    if (has_type < 0 || has_kind < 0) {
        respond_error(ar, BILLOW_EPARAM_INVALID, has_type < 0 ? "type" : "kind",
                      "%s is too long or badly encoded.", has_type < 0 ? "type" : "kind");
        return;
    }
    int limit;
    if (query_get_limit(ar->http->query, JOBS_LIST_DEFAULT, JOBS_LIST_MAX, &limit) != 0) {
        respond_error(ar, BILLOW_EPARAM_INVALID, "limit", "limit must be an integer from 1 to %d.",
                      JOBS_LIST_MAX);
        return;
    }
    scan_t *s = mem_calloc(1, sizeof(*s));
    s->ar = ar;
    s->limit = limit;
    s->done = list_done;
    if (scan_filters_or_respond(ar, s, has_kind ? kind : NULL, has_type ? type : NULL) != 0) {
        scan_free(s);
        return;
    }
    int has_after = query_get(ar->http->query, "starting_after", after, sizeof(after));
    if (has_after == 0) {
        scan_start(s);
        return;
    }
    if (has_after < 0 || !ids_valid("job", after)) {
        scan_free(s);
        respond_error(ar, BILLOW_EPARAM_INVALID, "starting_after",
                      "starting_after must be a job id (job_…).");
        return;
    }
    snprintf(s->after_id, sizeof s->after_id, "%s", after);
    char key[JOBQ_KEY_MAX];
    jobq_status_key(after, key);
    const char *argv[2] = {"HGETALL", key};
    size_t lens[2] = {7, strlen(key)};
    if (redis_conn_command(ar->app->redis, on_cursor_job, s, 2, argv, lens) != 0) {
        scan_free(s);
        respond_error(ar, BILLOW_EUNAVAILABLE, NULL, "The job queue is unavailable.");
    }
}

static void replay_step_done(scan_t *s)
{
    if (--s->pending > 0)
        return;
    api_req_t *ar = s->ar;
    if (s->failed) {
        scan_free(s);
        respond_error(ar, BILLOW_EUNAVAILABLE, NULL, "The job queue is unavailable.");
        return;
    }
    json_t *ids = json_incref(s->ids);
    size_t n = s->replayed;
    int more = s->truncated;
    scan_free(s);
    log_write(LOG_INFO, "jobs_replayed", "{s:I,s:s,s:s}", "count", (json_int_t)n, "actor",
              ar->auth.actor, "request_id", ar->http->request_id);
    respond_json(ar, 200,
                 json_pack("{s:s,s:I,s:o,s:b}", "object", "replay", "replayed", (json_int_t)n,
                           "ids", ids, "has_more", more));
}

typedef struct {
    scan_t *scan;     /* The scan. */
    char id[IDS_MAX]; /* The job replayed. */
} replay_ref_t;

static void on_bulk_replayed(void *data, redisReply *r)
{
    replay_ref_t *ref = data;
    scan_t *s = ref->scan;
    if (r == NULL || r->type != REDIS_REPLY_INTEGER)
        s->failed = 1;
    else if (r->integer == 1) {
        s->replayed++;
        json_array_append_new(s->ids, json_string(ref->id));
    }
    free(ref);
    replay_step_done(s);
}

static void replay_scan_done(scan_t *s)
{
    if (s->failed) {
        s->pending = 1;
        replay_step_done(s);
        return;
    }
    s->ids = json_array();
    s->pending = 1;
    int64_t now = timeutil_now_ms();
    if (s->nitems > 0)
        qsort(s->items, s->nitems, sizeof(dead_item_t), by_death_desc);
    for (size_t i = 0; i < s->nitems; i++) {
        if (s->items[i].job == NULL)
            continue;
        replay_ref_t *ref = mem_alloc(sizeof(*ref));
        ref->scan = s;
        snprintf(ref->id, sizeof(ref->id), "%s", s->items[i].id);
        jobq_cmd_t cmd;
        jobq_replay_cmd(&cmd, s->items[i].id, s->ar->auth.actor, now);
        s->pending++;
        if (redis_conn_command(s->ar->app->redis, on_bulk_replayed, ref, cmd.argc, cmd.argv,
                               cmd.argvlen) != 0) {
            free(ref);
            s->failed = 1;
            s->pending--;
        }
    }
    replay_step_done(s);
}

/* An optional RFC 3339 time field of the body into *ms; answers on error. */
static int time_field_or_respond(api_req_t *ar, const char *name, int64_t *ms)
{
    json_t *v = json_object_get(ar->body, name);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v) || timeutil_parse_rfc3339(json_string_value(v), ms) != 0) {
        respond_error(ar, BILLOW_EPARAM_INVALID, name,
                      "%s must be an RFC 3339 time such as 2026-11-25T00:00:00Z.", name);
        return -1;
    }
    return 0;
}

void routes_jobs_replay_many(api_req_t *ar)
{
    static const char *const allowed[] = {"type", "kind", "since", "until", NULL};
    json_t *body = ar->body;
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v)
    {
        int known = 0;
        for (size_t i = 0; allowed[i]; i++)
            known |= strcmp(allowed[i], key) == 0;
        if (!known) {
            respond_error(ar, BILLOW_EPARAM_UNKNOWN, key, "Unknown parameter '%s'.", key);
            return;
        }
        if (!json_is_string(v) && !json_is_null(v)) {
            respond_error(ar, BILLOW_EPARAM_INVALID, key, "%s must be a string.", key);
            return;
        }
    }
    scan_t *s = mem_calloc(1, sizeof(*s));
    s->ar = ar;
    s->done = replay_scan_done;
    if (time_field_or_respond(ar, "since", &s->since_ms) != 0 ||
        time_field_or_respond(ar, "until", &s->until_ms) != 0) {
        scan_free(s);
        return;
    }
    if (scan_filters_or_respond(ar, s, json_string_value(json_object_get(body, "kind")),
                                json_string_value(json_object_get(body, "type"))) != 0) {
        scan_free(s);
        return;
    }
    scan_start(s);
}

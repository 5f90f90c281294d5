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
#include "deadscan.h"
#include "ids.h"
#include "jobq.h"
#include "log.h"
#include "mem.h"
#include "permissions.h"
#include "query.h"
#include "routes.h"
#include "timeutil.h"

/* Entries of a dead set read per Redis call, reads of one set in one
 * listing or bulk replay (50,000 dead jobs per worker kind), and status
 * hashes read in all in one request: they bound the work of one request;
 * the answer's next_starting_after resumes a longer scan. */
#define JOBS_DEAD_SCAN_BATCH  1000
#define JOBS_DEAD_SCAN_ROUNDS 50
#define JOBS_DEAD_SCAN_BUDGET 100000
/* Entries of the millisecond a read resumes in that it returns again: as
 * many of them may be replayed or added during one request without an
 * entry being passed over or shown twice. */
#define JOBS_DEAD_SCAN_SLACK 100
/* Matching jobs a bulk replay looks for per worker kind before it stops
 * reading (it replays all it found: fewer than twice this). */
#define JOBS_REPLAY_MAX 1000
/* Longest starting_after read (a sealed cursor is about 100 characters). */
#define JOBS_CURSOR_MAX   256
#define JOBS_LIST_DEFAULT 20
#define JOBS_LIST_MAX     100

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

/* A scan of the dead sets. Each set in scope (one per worker kind: the
 * kind's for the platform, the tenant's own for a tenant) is read newest
 * death first, JOBS_DEAD_SCAN_BATCH entries at a time, and each entry's
 * status hash is read and filtered (tenant, role, type, still dead). A set
 * is read again until it has given `want` matching jobs, has nothing more
 * in range, or has been read JOBS_DEAD_SCAN_ROUNDS times (or, once past
 * the cursor, the request has read JOBS_DEAD_SCAN_BUDGET status hashes in
 * all); so jobs that do not match never stop a scan from reaching older
 * ones that do, and one request's work is bounded. Where each read resumes
 * is deadscan.c's.
 *
 * Where a set stopped early is its frontier. The newest frontier of all the
 * sets is where the answer stops (a listing lists nothing older, since an
 * unread job of that set may come before it) and where the next request
 * resumes. That place is handed out sealed (next_starting_after), as a
 * time of death and an id the caller cannot read or forge: it may be a job
 * the caller may not see, and it stays valid when that job is replayed. */
typedef struct {
    deadscan_pos_t at; /* Its death (score in the dead set) and id. */
    json_t *job;       /* The job object once read, if it passes the filters. */
} dead_item_t;

typedef struct scan_s scan_t;
typedef void (*scan_done_fn)(scan_t *scan);

/* One dead set being read. */
typedef struct {
    scan_t *scan;           /* The scan it belongs to. */
    char key[JOBQ_KEY_MAX]; /* dead:<kind> or dead:<kind>:<tenant>. */
    dead_item_t *items;     /* Matching jobs, then the current read's entries. */
    size_t nitems, cap;     /* Used and allocated. */
    size_t read_from;       /* First item of the current read. */
    size_t due;             /* Hash replies due for the current read. */
    int reads;              /* Reads so far. */
    bool exhausted;         /* Nothing more in range. */
    deadscan_t rd;          /* Where its reading stands: the last entry read, and the next read. */
} dead_set_t;

struct scan_s {
    api_req_t *ar;        /* The request. */
    char kind[32];        /* Only this kind, or "" for all. */
    char type[64];        /* Only this type, or "". */
    int64_t since_ms;     /* Died at or after (0: no bound). */
    int64_t until_ms;     /* Died before (0: no bound). */
    bool has_after;       /* Resume after… */
    deadscan_pos_t after; /* …this place. */
    size_t want;          /* Matching jobs wanted from each set. */
    dead_set_t *sets;     /* One per kind in scope. */
    size_t nsets;         /* Used. */
    long hashes_left;     /* Of JOBS_DEAD_SCAN_BUDGET. */
    size_t reading;       /* Sets not finished yet. */
    int failed;           /* A Redis call failed. */
    scan_done_fn done;    /* Called once every set is finished. */
    int limit;            /* For listings. */
    size_t pending;       /* For bulk replays: replies due. */
    size_t replayed;      /* For bulk replays. */
    json_t *ids;          /* For bulk replays. */
};

typedef struct {
    dead_set_t *set; /* The set. */
    size_t index;    /* Item the reply is for. */
} scan_ref_t;

static void scan_free(scan_t *s)
{
    for (size_t k = 0; k < s->nsets; k++) {
        dead_set_t *d = &s->sets[k];
        for (size_t i = 0; i < d->nitems; i++)
            if (d->items[i].job)
                json_decref(d->items[i].job);
        free(d->items);
    }
    free(s->sets);
    if (s->ids)
        json_decref(s->ids);
    free(s);
}

static int by_death_desc(const void *a, const void *b)
{
    return deadscan_compare(&((const dead_item_t *)a)->at, &((const dead_item_t *)b)->at);
}

/* The sealed-cursor context, bound to the caller's tenant: one tenant's
 * cursor does not open for another. */
static void cursor_context(const api_req_t *ar, char *out, size_t len)
{
    snprintf(out, len, "billow dead jobs cursor %s",
             ar->auth.kind == AUTH_PLATFORM ? "platform" : ar->auth.tenant_id);
}

/* next_starting_after for the place p: sealed "<ms> <id>". */
static json_t *cursor_json(const api_req_t *ar, const deadscan_pos_t *p)
{
    char ctx[64 + IDS_MAX], plain[32 + IDS_MAX];
    cursor_context(ar, ctx, sizeof ctx);
    int n = snprintf(plain, sizeof plain, "%lld %s", (long long)p->ms, p->id);
    char *sealed = seal_encrypt(&ar->app->cursor_key, ctx, plain, (size_t)n);
    json_t *j = sealed ? json_string(sealed) : json_null();
    free(sealed);
    return j;
}

/* Opens a sealed cursor into *p. Returns 0, or -1 when it does not open. */
static int cursor_open(const api_req_t *ar, const char *text, deadscan_pos_t *p)
{
    char ctx[64 + IDS_MAX], *plain = NULL, *end;
    size_t len;
    cursor_context(ar, ctx, sizeof ctx);
    if (seal_decrypt(&ar->app->cursor_key, ctx, text, &plain, &len) != 0)
        return -1;
    long long ms = strtoll(plain, &end, 10);
    int rc = *end == ' ' && ids_valid("job", end + 1) ? 0 : -1;
    if (rc == 0) {
        p->ms = ms;
        snprintf(p->id, sizeof p->id, "%s", end + 1);
    }
    free(plain);
    return rc;
}

static void set_read(dead_set_t *d);

static void set_finished(dead_set_t *d)
{
    scan_t *s = d->scan;
    if (--s->reading == 0)
        s->done(s);
}

/* Every hash of the current read is in: keeps the matching jobs, then
 * reads on or stops. */
static void set_read_done(dead_set_t *d)
{
    scan_t *s = d->scan;
    size_t keep = d->read_from;
    for (size_t i = d->read_from; i < d->nitems; i++)
        if (d->items[i].job)
            d->items[keep++] = d->items[i];
    d->nitems = keep;
    /* The budget stops a set only once it has got past the cursor: reading
     * up to it costs no hashes, and a set stopped short of it would hand
     * back the cursor it was given. */
    if (s->failed || d->exhausted || d->nitems >= s->want || d->reads >= JOBS_DEAD_SCAN_ROUNDS ||
        (s->hashes_left <= 0 && d->rd.positioned))
        set_finished(d);
    else
        set_read(d);
}

static void set_read_step(dead_set_t *d)
{
    if (--d->due == 0)
        set_read_done(d);
}

static void on_dead_hash(void *data, redisReply *r)
{
    scan_ref_t *ref = data;
    dead_set_t *d = ref->set;
    scan_t *s = d->scan;
    dead_item_t *it = &d->items[ref->index];
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
    set_read_step(d);
}

/* Reads one entry of a read's answer: where the next read starts, and,
 * when it comes after the last one read (or the cursor), its hash. */
static void set_take_entry(dead_set_t *d, const char *id, int64_t died)
{
    scan_t *s = d->scan;
    if (!deadscan_take(&d->rd, s->has_after ? &s->after : NULL, died, id) || s->failed)
        return;
    if (d->nitems == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 64;
        d->items = mem_realloc(d->items, d->cap * sizeof(dead_item_t));
    }
    dead_item_t *it = &d->items[d->nitems];
    memset(it, 0, sizeof(*it));
    it->at.ms = died;
    snprintf(it->at.id, sizeof(it->at.id), "%s", id);
    scan_ref_t *ref = mem_alloc(sizeof(*ref));
    ref->set = d;
    ref->index = d->nitems++;
    char key[JOBQ_KEY_MAX];
    jobq_status_key(it->at.id, key);
    const char *argv[2] = {"HGETALL", key};
    size_t lens[2] = {7, strlen(key)};
    d->due++;
    s->hashes_left--;
    if (redis_conn_command(s->ar->app->redis, on_dead_hash, ref, 2, argv, lens) != 0) {
        free(ref);
        s->failed = 1;
        d->due--;
    }
}

static void on_dead_ids(void *data, redisReply *r)
{
    dead_set_t *d = data;
    scan_t *s = d->scan;
    d->read_from = d->nitems;
    d->due = 1;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        s->failed = 1;
        set_read_step(d);
        return;
    }
    if (r->elements / 2 < JOBS_DEAD_SCAN_BATCH)
        d->exhausted = true;
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        set_take_entry(d, r->element[i]->str, strtoll(r->element[i + 1]->str, NULL, 10));
    set_read_step(d);
}

/* Reads the set's next JOBS_DEAD_SCAN_BATCH entries within the time bounds:
 * from the millisecond of the last entry returned (past those of it already
 * returned, less the slack), else from the cursor's millisecond or the upper
 * bound (until is exclusive: "(" in ZRANGEBYSCORE). */
static void set_read(dead_set_t *d)
{
    scan_t *s = d->scan;
    char hi[24] = "+inf", lo[24] = "-inf", offset[24], count[16];
    long skip = 0;
    int64_t hi_ms;
    if (deadscan_next(&d->rd, JOBS_DEAD_SCAN_SLACK, &hi_ms, &skip)) {
        snprintf(hi, sizeof hi, "%lld", (long long)hi_ms);
    } else if (s->has_after && (s->until_ms == 0 || s->after.ms < s->until_ms)) {
        snprintf(hi, sizeof hi, "%lld", (long long)s->after.ms);
    } else if (s->until_ms) {
        snprintf(hi, sizeof hi, "(%lld", (long long)s->until_ms);
    }
    if (s->since_ms)
        snprintf(lo, sizeof lo, "%lld", (long long)s->since_ms);
    snprintf(offset, sizeof offset, "%ld", skip);
    snprintf(count, sizeof count, "%d", JOBS_DEAD_SCAN_BATCH);
    const char *argv[8] = {"ZREVRANGEBYSCORE", d->key,  hi,     lo,
                           "WITHSCORES",       "LIMIT", offset, count};
    size_t lens[8];
    for (int k = 0; k < 8; k++)
        lens[k] = strlen(argv[k]);
    d->reads++;
    if (redis_conn_command(s->ar->app->redis, on_dead_ids, d, 8, argv, lens) != 0) {
        s->failed = 1;
        set_finished(d);
    }
}

/* Starts reading every dead set in scope; s->done runs once all are read. */
static void scan_start(scan_t *s)
{
    size_t kinds = 0;
    while (JOBQ_KINDS[kinds])
        kinds++;
    s->sets = mem_calloc(kinds, sizeof(dead_set_t));
    s->hashes_left = JOBS_DEAD_SCAN_BUDGET;
    for (size_t i = 0; i < kinds; i++) {
        if (s->kind[0] && strcmp(s->kind, JOBQ_KINDS[i]) != 0)
            continue;
        if (s->type[0] && strcmp(jobq_kind_for_type(s->type), JOBQ_KINDS[i]) != 0)
            continue;
        dead_set_t *d = &s->sets[s->nsets++];
        d->scan = s;
        if (s->ar->auth.kind == AUTH_PLATFORM)
            jobq_dead_key(JOBQ_KINDS[i], d->key);
        else
            jobq_dead_tenant_key(JOBQ_KINDS[i], s->ar->auth.tenant_id, d->key);
    }
    s->reading = s->nsets + 1;
    for (size_t k = 0; k < s->nsets; k++)
        set_read(&s->sets[k]);
    if (--s->reading == 0)
        s->done(s);
}

/* The newest frontier among the sets that stopped before their end: the
 * last entry such a set read, or the cursor when it read none past it.
 * NULL when every set was read to its end. */
static const deadscan_pos_t *scan_frontier(const scan_t *s)
{
    const deadscan_pos_t *f = NULL;
    for (size_t k = 0; k < s->nsets; k++) {
        const dead_set_t *d = &s->sets[k];
        if (d->exhausted || (!d->rd.positioned && !s->has_after))
            continue;
        const deadscan_pos_t *p = d->rd.positioned ? &d->rd.pos : &s->after;
        if (f == NULL || deadscan_comes_after(f->ms, f->id, p))
            f = p;
    }
    return f;
}

/* Every matching job the sets gave, newest death first; those after
 * `frontier` (when not NULL) left out. *n is set to the count. */
static dead_item_t *scan_matches(const scan_t *s, const deadscan_pos_t *frontier, size_t *n)
{
    size_t total = 0;
    for (size_t k = 0; k < s->nsets; k++)
        total += s->sets[k].nitems;
    dead_item_t *all = mem_alloc((total ? total : 1) * sizeof(dead_item_t));
    *n = 0;
    for (size_t k = 0; k < s->nsets; k++) {
        const dead_set_t *d = &s->sets[k];
        for (size_t i = 0; i < d->nitems; i++) {
            const dead_item_t *it = &d->items[i];
            if (frontier && deadscan_comes_after(it->at.ms, it->at.id, frontier))
                continue;
            all[(*n)++] = *it;
        }
    }
    if (*n > 1)
        qsort(all, *n, sizeof(dead_item_t), by_death_desc);
    return all;
}

static void list_done(scan_t *s)
{
    api_req_t *ar = s->ar;
    if (s->failed) {
        scan_free(s);
        respond_error(ar, BILLOW_EUNAVAILABLE, NULL, "The job queue is unavailable.");
        return;
    }
    const deadscan_pos_t *frontier = scan_frontier(s);
    size_t n;
    dead_item_t *matches = scan_matches(s, frontier, &n);
    size_t shown = n < (size_t)s->limit ? n : (size_t)s->limit;
    json_t *data = json_array();
    for (size_t i = 0; i < shown; i++)
        json_array_append(data, matches[i].job);
    /* A full page resumes after its last job; a short one (what lay between
     * was not the caller's to see) where the scan stopped. */
    json_t *next = json_null();
    if (n > shown) {
        next = cursor_json(ar, &matches[shown - 1].at);
    } else if (frontier) {
        next = cursor_json(ar, frontier);
    }
    free(matches);
    scan_free(s);
    respond_json(ar, 200,
                 json_pack("{s:s,s:s,s:o,s:b,s:o}", "object", "list", "url", "/v1/jobs", "data",
                           data, "has_more", !json_is_null(next), "next_starting_after", next));
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

/* The cursor job's hash: a dead job the caller can see sets where the scan
 * resumes; anything else is the caller's mistake. */
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
                      "starting_after must be a next_starting_after or the id of a dead job "
                      "listed before: '%s' is neither.",
                      s->after.id);
        scan_free(s);
        return;
    }
    s->has_after = true;
    s->after.ms = strtoll(finished, NULL, 10);
    scan_start(s);
}

/* Starts the scan, after `after` when it is not NULL: a sealed cursor (a
 * next_starting_after), or the id of a dead job the caller can see (read
 * first, to know when it died). Answers on error. */
static void scan_resume(scan_t *s, const char *after)
{
    api_req_t *ar = s->ar;
    if (after == NULL) {
        scan_start(s);
        return;
    }
    if (!ids_valid("job", after)) {
        if (cursor_open(ar, after, &s->after) != 0) {
            scan_free(s);
            respond_error(ar, BILLOW_EPARAM_INVALID, "starting_after",
                          "starting_after must be a next_starting_after from an earlier answer "
                          "or a job id (job_…).");
            return;
        }
        s->has_after = true;
        scan_start(s);
        return;
    }
    snprintf(s->after.id, sizeof s->after.id, "%s", after);
    char key[JOBQ_KEY_MAX];
    jobq_status_key(after, key);
    const char *argv[2] = {"HGETALL", key};
    size_t lens[2] = {7, strlen(key)};
    if (redis_conn_command(ar->app->redis, on_cursor_job, s, 2, argv, lens) != 0) {
        scan_free(s);
        respond_error(ar, BILLOW_EUNAVAILABLE, NULL, "The job queue is unavailable.");
    }
}

void routes_jobs_list(api_req_t *ar)
{
    static const char *const allowed[] = {"status", "type",           "kind",
                                          "limit",  "starting_after", NULL};
    char unknown[64], status[16], type[64], kind[32], after[JOBS_CURSOR_MAX];
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
    int has_after = query_get(ar->http->query, "starting_after", after, sizeof(after));
    if (has_after < 0) {
        respond_error(ar, BILLOW_EPARAM_INVALID, "starting_after",
                      "starting_after must be a next_starting_after from an earlier answer or a "
                      "job id (job_…).");
        return;
    }
    scan_t *s = mem_calloc(1, sizeof(*s));
    s->ar = ar;
    s->limit = limit;
    s->want = (size_t)limit + 1;
    s->done = list_done;
    if (scan_filters_or_respond(ar, s, has_kind ? kind : NULL, has_type ? type : NULL) != 0) {
        scan_free(s);
        return;
    }
    scan_resume(s, has_after ? after : NULL);
}

static void replay_step_done(scan_t *s)
{
    if (--s->pending > 0)
        return;
    api_req_t *ar = s->ar;
    json_t *ids = json_incref(s->ids);
    size_t n = s->replayed;
    if (s->failed) {
        scan_free(s);
        if (n == 0) {
            json_decref(ids);
            respond_error(ar, BILLOW_EUNAVAILABLE, NULL, "The job queue is unavailable.");
            return;
        }
        /* Those replayed are queued and no longer dead: the log names them,
         * and calling again replays the rest, each once. */
        log_write(LOG_WARN, "jobs_replayed_partly", "{s:I,s:O,s:s,s:s}", "count", (json_int_t)n,
                  "ids", ids, "actor", ar->auth.actor, "request_id", ar->http->request_id);
        json_decref(ids);
        respond_error(ar, BILLOW_EUNAVAILABLE, NULL,
                      "The job queue failed after %zu of the jobs were replayed (they are queued "
                      "again; the log lists them under this request id). Call again to replay the "
                      "rest: a replayed job is no longer dead, so none is replayed twice.",
                      n);
        return;
    }
    const deadscan_pos_t *frontier = scan_frontier(s);
    json_t *next = frontier ? cursor_json(ar, frontier) : json_null();
    scan_free(s);
    log_write(LOG_INFO, "jobs_replayed", "{s:I,s:s,s:s}", "count", (json_int_t)n, "actor",
              ar->auth.actor, "request_id", ar->http->request_id);
    respond_json(ar, 200,
                 json_pack("{s:s,s:I,s:o,s:b,s:o}", "object", "replay", "replayed", (json_int_t)n,
                           "ids", ids, "has_more", !json_is_null(next), "next_starting_after",
                           next));
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

/* Replays every matching job the scan found, newest death first; the next
 * call resumes where the scan stopped (a job that dies again meanwhile dies
 * later than that, so it is not replayed twice by one run of calls). */
static void replay_scan_done(scan_t *s)
{
    s->ids = json_array();
    s->pending = 1;
    if (s->failed) {
        replay_step_done(s);
        return;
    }
    int64_t now = timeutil_now_ms();
    size_t n;
    dead_item_t *matches = scan_matches(s, NULL, &n);
    for (size_t i = 0; i < n && !s->failed; i++) {
        replay_ref_t *ref = mem_alloc(sizeof(*ref));
        ref->scan = s;
        snprintf(ref->id, sizeof(ref->id), "%s", matches[i].at.id);
        jobq_cmd_t cmd;
        jobq_replay_cmd(&cmd, matches[i].at.id, s->ar->auth.actor, now);
        s->pending++;
        if (redis_conn_command(s->ar->app->redis, on_bulk_replayed, ref, cmd.argc, cmd.argv,
                               cmd.argvlen) != 0) {
            free(ref);
            s->failed = 1;
            s->pending--;
        }
    }
    free(matches);
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
    static const char *const allowed[] = {"type", "kind", "since", "until", "starting_after", NULL};
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
    s->want = JOBS_REPLAY_MAX;
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
    scan_resume(s, json_string_value(json_object_get(body, "starting_after")));
}

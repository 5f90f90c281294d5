/* submit: a validated request becomes a job (see submit.h).
 *
 * States of a submission: ENQUEUEING (billow_enqueue in flight), WAITING
 * (Prefer: wait; a waiter armed and the status being read), READING (the
 * status hash being read for the answer). Every path ends in exactly one
 * answer, after which the submission is freed with its request.
 *
 * Design: the idempotency fingerprint is the HMAC-SHA256 (under a key
 * derived from ENCRYPTION_KEY) of the method, the path and the body re-encoded with
 * sorted keys, so the same parameters
 * sent with other whitespace or key order count as the same request, as
 * with Stripe.
 */
#include "submit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "crypto.h"
#include "jobq.h"
#include "log.h"
#include "mem.h"
#include "timeutil.h"

typedef struct {
    api_req_t *ar;                       /* The request; answered once. */
    envelope_t env;                      /* The job. */
    char *env_json;                      /* Its encoding (sent to Redis). */
    json_t *reveal;                      /* Shown once, when this request made the job. */
    const char *reveal_at;               /* Where reveal goes in the result. */
    bool reveal_only;                    /* The finished answer is reveal alone. */
    json_t *answer;                      /* Fixed answer right after enqueueing, or NULL. */
    int answer_status;                   /* Its status. */
    int created_status;                  /* 201 or 200. */
    int wait_s;                          /* Seconds to wait for the outcome, 0 for none. */
    int prefer_s;                        /* What Prefer: wait asked (for Preference-Applied). */
    int replayed;                        /* Idempotent replay of an earlier job. */
    bool derived;                        /* The route named the job's id (submit_t.job_id). */
    char job_id[IDS_MAX];                /* The job answered for. */
    waiter_t *waiter;                    /* Armed while waiting. */
    int reading;                         /* An HGETALL of the status is in flight. */
    int reread;                          /* The waiter fired during that read: read again. */
    jobq_cmd_t cmd;                      /* The enqueue command (must outlive the send). */
    char fingerprint[CRYPTO_SHA256_HEX]; /* Idempotency fingerprint. */
} submission_t;

static void submission_free(submission_t *s)
{
    envelope_dispose(&s->env);
    free(s->env_json);
    if (s->reveal)
        json_decref(s->reveal);
    if (s->answer)
        json_decref(s->answer);
    free(s);
}

int submit_parse_prefer_wait(const char *prefer, int max)
{
    if (prefer == NULL)
        return 0;
    /* Prefer: a list of preferences, e.g. "respond-async, wait=10". */
    const char *p = prefer;
    while ((p = strcasestr(p, "wait")) != NULL) {
        int at_start = p == prefer || p[-1] == ' ' || p[-1] == ',' || p[-1] == ';';
        const char *q = p + 4;
        while (*q == ' ')
            q++;
        if (at_start && *q == '=') {
            q++;
            while (*q == ' ')
                q++;
            char *end;
            long n = strtol(q, &end, 10);
            if (end == q || n <= 0)
                return 0;
            return n > max ? max : (int)n;
        }
        p += 4;
    }
    return 0;
}

int submit_check_idempotency_key(const char *key)
{
    size_t n = strlen(key);
    if (n == 0 || n > SUBMIT_IDEMPOTENCY_KEY_MAX)
        return BILLOW_EPARAM_INVALID;
    for (size_t i = 0; i < n; i++)
        if (key[i] < 0x21 || key[i] > 0x7e)
            return BILLOW_EPARAM_INVALID;
    return 0;
}

/* Merges the members of src into dst (both objects). */
static void merge(json_t *dst, json_t *src)
{
    if (json_is_object(dst) && json_is_object(src))
        json_object_update(dst, src);
}

/* A 202's Location: where the job's status can be polled. */
static void location_header(submission_t *s)
{
    char loc[IDS_MAX + 16];
    snprintf(loc, sizeof(loc), "/v1/jobs/%s", s->job_id);
    respond_header(s->ar, "Location", loc);
}

static void answer_job(submission_t *s, json_t *job)
{
    api_req_t *ar = s->ar;
    /* A dead job made nothing: a secret drawn for it would name nothing. */
    const char *status = json_string_value(json_object_get(job, "status"));
    if (status && strcmp(status, "dead") == 0) {
        json_decref(s->reveal);
        s->reveal = NULL;
    }
    /* A reveal_only answer is the finished outcome's alone: the job
     * object of a 202 keeps its own shape. */
    if (s->reveal && !s->replayed && !s->reveal_only)
        merge(job, s->reveal);
    location_header(s);
    submission_free(s);
    respond_json(ar, 202, job);
}

/* Answers from the job's status hash: the outcome if final, else the job. */
static void answer_from_status(submission_t *s, const redisReply *r)
{
    api_req_t *ar = s->ar;
    json_t *job = jobq_status_json(r);
    if (job == NULL) {
        submission_free(s);
        respond_error(ar, BILLOW_EUNAVAILABLE, NULL, "The job's status could not be read.");
        return;
    }
    const char *status = json_string_value(json_object_get(job, "status"));
    if (s->wait_s > 0 && status && strcmp(status, "succeeded") == 0) {
        char pref[32];
        snprintf(pref, sizeof(pref), "wait=%d", s->wait_s);
        if (s->prefer_s > 0)
            respond_header(ar, "Preference-Applied", pref);
        json_t *result = json_incref(json_object_get(job, "result"));
        if (s->reveal_only && s->reveal && !s->replayed) {
            json_decref(result);
            result = json_incref(s->reveal);
        } else if (s->reveal && !s->replayed)
            merge(s->reveal_at && json_object_get(result, s->reveal_at)
                      ? json_object_get(result, s->reveal_at)
                      : result,
                  s->reveal_at ? json_object_get(s->reveal, s->reveal_at) : s->reveal);
        json_decref(job);
        int st = s->created_status;
        submission_free(s);
        respond_json(ar, st, result);
        return;
    }
    if (s->wait_s > 0 && status && strcmp(status, "failed") == 0) {
        char pref[32];
        snprintf(pref, sizeof(pref), "wait=%d", s->wait_s);
        if (s->prefer_s > 0)
            respond_header(ar, "Preference-Applied", pref);
        json_t *e = json_object_get(job, "error");
        json_t *st = json_object_get(e, "http_status");
        int http = json_is_integer(st) ? (int)json_integer_value(st) : 400;
        if (http < 400 || http > 499)
            http = 400;
        const char *type = json_string_value(json_object_get(e, "type"));
        const char *code = json_string_value(json_object_get(e, "code"));
        const char *msg = json_string_value(json_object_get(e, "message"));
        const char *param = json_string_value(json_object_get(e, "param"));
        char *c_type = mem_strdup(type ? type : "invalid_request_error");
        char *c_code = mem_strdup(code ? code : "job_failed");
        char *c_msg = mem_strdup(msg ? msg : "The job failed.");
        char *c_param = mem_strdup(param);
        json_decref(job);
        submission_free(s);
        respond_error_custom(ar, http, c_type, c_code, c_param, c_msg);
        free(c_type);
        free(c_code);
        free(c_msg);
        free(c_param);
        return;
    }
    answer_job(s, job);
}

static void read_status(submission_t *s);

static void on_status(void *data, redisReply *r)
{
    submission_t *s = data;
    s->reading = 0;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        api_req_t *ar = s->ar;
        if (s->waiter)
            waiters_cancel(s->waiter);
        submission_free(s);
        respond_error(ar, BILLOW_EUNAVAILABLE, NULL, "The job queue is unavailable.");
        return;
    }
    const char *status = jobq_reply_field(r, "status");
    int final = status && (strcmp(status, "succeeded") == 0 || strcmp(status, "failed") == 0 ||
                           strcmp(status, "dead") == 0);
    if (s->waiter && !final)
        return; /* Keep waiting: the waiter fires on completion or timeout. */
    if (!final && s->reread) {
        /* The job was announced (or the wait ran out) while this read was in
         * flight: this reply may predate it, so read once more. */
        s->reread = 0;
        read_status(s);
        return;
    }
    if (s->waiter) {
        waiters_cancel(s->waiter);
        s->waiter = NULL;
    }
    answer_from_status(s, r);
}

static void read_status(submission_t *s)
{
    char key[JOBQ_KEY_MAX];
    jobq_status_key(s->job_id, key);
    const char *argv[2] = {"HGETALL", key};
    size_t lens[2] = {7, strlen(key)};
    s->reading = 1;
    if (redis_conn_command(s->ar->app->redis, on_status, s, 2, argv, lens) != 0) {
        api_req_t *ar = s->ar;
        if (s->waiter)
            waiters_cancel(s->waiter);
        submission_free(s);
        respond_error(ar, BILLOW_EUNAVAILABLE, NULL, "The job queue is unavailable.");
    }
}

static void on_waited(void *data, bool done)
{
    submission_t *s = data;
    s->waiter = NULL;
    if (s->reading) {
        s->reread = 1; /* on_status reads again if the reply in flight is stale. */
        return;
    }
    read_status(s);
}

static void on_enqueued(void *data, redisReply *r)
{
    submission_t *s = data;
    api_req_t *ar = s->ar;
    jobq_outcome_t outcome;
    if (r == NULL || r->type == REDIS_REPLY_ERROR ||
        jobq_enqueue_reply(r, &outcome, s->job_id) != 0) {
        log_write(LOG_ERROR, "enqueue_failed", "{s:s,s:s}", "request_id", ar->http->request_id,
                  "error", r && r->type == REDIS_REPLY_ERROR ? r->str : "no reply");
        submission_free(s);
        respond_error(ar, BILLOW_EUNAVAILABLE, NULL, "The job queue is unavailable.");
        return;
    }
    switch (outcome) {
    case JOBQ_CONFLICT:
        submission_free(s);
        respond_error(ar, BILLOW_EIDEMPOTENCY_REUSED, "Idempotency-Key",
                      "This Idempotency-Key was already used with other parameters (job %s); "
                      "use a new key for a new request.",
                      r->element[1]->str);
        return;
    case JOBQ_EXISTS:
        if (!s->derived) {
            submission_free(s);
            respond_error(ar, BILLOW_EINTERNAL, NULL, "A job id collided; retry the request.");
            return;
        }
        /* The same fact asked for again: its job, not a new one. */
        s->replayed = 1;
        break;
    case JOBQ_REPLAYED:
        s->replayed = 1;
        respond_header(ar, "Idempotent-Replayed", "true");
        break;
    case JOBQ_ENQUEUED:
        metrics_job_enqueued(ar->app->metrics, s->env.type);
        break;
    }
    if (s->answer) {
        json_t *answer = json_incref(s->answer);
        if (s->derived && json_object_get(answer, "duplicate") != NULL)
            json_object_set_new(answer, "duplicate", json_boolean(outcome == JOBQ_EXISTS));
        int status = s->answer_status;
        submission_free(s);
        respond_json(ar, status, answer);
        return;
    }
    if (s->wait_s > 0) {
        s->waiter =
            waiters_add(ar->app->waiters, s->job_id, (uint64_t)s->wait_s * 1000, on_waited, s);
        read_status(s);
        return;
    }
    if (outcome == JOBQ_ENQUEUED && s->reveal == NULL) {
        /* The hot path: the job object is known without reading it back. */
        char text[JOBQ_NEW_JOB_MAX];
        size_t n = jobq_new_job_text(&s->env, text, sizeof(text));
        location_header(s);
        submission_free(s);
        respond_raw_json(ar, 202, text, n);
        return;
    }
    if (outcome == JOBQ_ENQUEUED) {
        answer_job(s, jobq_new_job_json(&s->env));
        return;
    }
    read_status(s);
}

void submit_job_or_respond(api_req_t *ar, submit_t *in)
{
    submission_t *s = mem_calloc(1, sizeof(*s));
    s->ar = ar;
    s->reveal = in->reveal;
    s->reveal_at = in->reveal_at;
    s->reveal_only = in->reveal_only;
    s->answer = in->answer;
    s->answer_status = in->answer_status;
    s->created_status = in->created_status;
    envelope_init(&s->env);
    s->env.payload = in->payload;

    const char *idem = in->no_idempotency ? NULL : http_req_header(ar->http, "Idempotency-Key");
    if (idem && submit_check_idempotency_key(idem) != 0) {
        submission_free(s);
        respond_error(ar, BILLOW_EPARAM_INVALID, "Idempotency-Key",
                      "Idempotency-Key must be 1 to %d printable ASCII characters.",
                      SUBMIT_IDEMPOTENCY_KEY_MAX);
        return;
    }
    s->wait_s = submit_parse_prefer_wait(http_req_header(ar->http, "Prefer"),
                                         ar->app->cfg->max_wait_seconds);
    s->prefer_s = s->wait_s;
    if (in->wait_s > s->wait_s)
        s->wait_s = in->wait_s;

    if (in->job_id) {
        snprintf(s->env.id, sizeof(s->env.id), "%s", in->job_id);
        s->derived = true;
    } else {
        ids_generate("job", s->env.id);
    }
    snprintf(s->env.type, sizeof(s->env.type), "%s", in->type);
    snprintf(s->env.tenant_id, sizeof(s->env.tenant_id), "%s", in->tenant_id);
    snprintf(s->env.actor, sizeof(s->env.actor), "%s", ar->auth.actor);
    s->env.idempotency_key = mem_strdup(idem);
    s->env.attempt = 0;
    s->env.enqueued_at_ms = timeutil_now_ms();
    snprintf(s->env.trace, sizeof(s->env.trace), "%s", ar->http->request_id);
    snprintf(s->env.client, sizeof(s->env.client), "%s", ar->http->client_addr);
    if (idem) {
        char *canon = json_dumps(ar->body, JSON_COMPACT | JSON_SORT_KEYS);
        /* The caller is part of the request: another credential reusing a
         * key for the same body must not be handed this caller's job. */
        char *material = mem_printf("%s %s\n%s\n%s", http_method_str(ar->http->method),
                                    ar->http->path, ar->auth.actor, canon ? canon : "");
        /* Keyed, because a body may hold a password: a plain hash of it
         * in Redis could be attacked offline; this one needs the key. */
        crypto_hmac_sha256_hex(ar->app->idempotency_key, sizeof ar->app->idempotency_key, material,
                               strlen(material), s->fingerprint);
        free(material);
        free(canon);
    }
    if (in->object_id)
        json_object_set_new(s->env.payload, "id", json_string(in->object_id));
    s->env_json = envelope_encode(&s->env);
    const char *scope = ar->auth.kind == AUTH_PLATFORM ? "platform" : ar->auth.tenant_id;
    if (jobq_enqueue_cmd(&s->cmd, &s->env, s->env_json, scope, idem, idem ? s->fingerprint : NULL,
                         s->env.enqueued_at_ms) != 0) {
        /* A route submitted a type no worker kind runs: a bug, never input. */
        log_write(LOG_ERROR, "job_type_unrouted", "{s:s,s:s}", "type", s->env.type, "request_id",
                  ar->http->request_id);
        submission_free(s);
        respond_error(ar, BILLOW_EINTERNAL, NULL, NULL);
        return;
    }
    if (redis_conn_command(ar->app->redis, on_enqueued, s, s->cmd.argc, s->cmd.argv,
                           s->cmd.argvlen) != 0) {
        submission_free(s);
        respond_error(ar, BILLOW_EUNAVAILABLE, NULL, "The job queue is unavailable.");
    }
}

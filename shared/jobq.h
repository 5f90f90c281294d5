/* jobq: the job queue protocol in Redis, shared by the front and the workers.
 *
 * Keys (all shard-local to a tenant once Redis is sharded by tenant):
 *   jobs:<kind>        stream, one entry per delivery, field "job" = envelope;
 *                      consumer group "workers". Acked entries are deleted,
 *                      so XLEN is the depth of the queue.
 *   job:<id>           status hash: id, type, kind, tenant_id, status,
 *                      attempts, envelope, result, error, request_id,
 *                      enqueued_at, started_at, finished_at, next_attempt_at,
 *                      replayed_by, replayed_at (times in Unix ms).
 *   idem:<scope>:<k>   "<fingerprint> <job id>", 24 hours; scope = tenant id
 *                      or "platform".
 *   delayed:<kind>     sorted set of job ids by due time (retries).
 *   dead:<kind>        sorted set of job ids by time of death.
 *   channel billow:jobs:done   "<job id>:<type>" of jobs whose status became final.
 *
 * API: the Redis function library JOBQ_LIBRARY (loaded by every process with
 * FUNCTION LOAD REPLACE) holds the three steps that must be atomic: enqueue
 * (idempotency check, status hash, XADD), promote (due retries back to the
 * stream) and replay (a dead job back to the stream under its own id).
 * jobq_*_cmd() build their argument vectors so the synchronous (workers) and
 * asynchronous (api) hiredis clients send the same words.
 *
 * Design: one stream per worker kind keeps a slow kind (reports) from
 * delaying a fast one (charges); the job type names the kind through
 * jobq_kind_for_type(), the single routing table.
 */
#ifndef BILLOW_JOBQ_H
#define BILLOW_JOBQ_H

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "envelope.h"
#include "err.h"

#define JOBQ_GROUP        "workers"
#define JOBQ_DONE_CHANNEL "billow:jobs:done"
/* How long an Idempotency-Key is remembered, per tenant (as Stripe). */
#define JOBQ_IDEMPOTENCY_TTL_S 86400
/* Longest key name built by jobq (prefix + tenant + idempotency key). */
#define JOBQ_KEY_MAX (ENVELOPE_IDEMPOTENCY_KEY_MAX + 2 * IDS_MAX)

/* A job's lifecycle; the strings are the API's `status`. */
typedef enum {
    JOBQ_QUEUED,    /* Accepted, waiting in its stream, or in the delayed set for a retry
                       (next_attempt_at set, error = the last error). */
    JOBQ_RUNNING,   /* A worker holds it. */
    JOBQ_SUCCEEDED, /* Done; `result` holds the outcome. Final. */
    JOBQ_FAILED,    /* The request was rejected by its handler (4xx error). Final. */
    JOBQ_DEAD,      /* Failed permanently or too often; waits for a replay. Final until then. */
} jobq_status_t;

/* What an enqueue did. */
typedef enum {
    JOBQ_ENQUEUED, /* A new job. */
    JOBQ_REPLAYED, /* Same Idempotency-Key and same request: the earlier job. */
    JOBQ_CONFLICT, /* Same Idempotency-Key, another request. */
    JOBQ_EXISTS,   /* A job with this id exists already (outbox relayed twice). */
} jobq_outcome_t;

/* An argument vector for redisCommandArgv / redisAsyncCommandArgv. The
 * strings point into the struct or into caller memory that must outlive the
 * send (hiredis copies on send). */
#define JOBQ_CMD_ARGS 16
typedef struct {
    int argc;
    const char *argv[JOBQ_CMD_ARGS];
    size_t argvlen[JOBQ_CMD_ARGS];
    char keys[3][JOBQ_KEY_MAX]; /* Storage for key names. */
    char nums[3][24];           /* Storage for numbers. */
} jobq_cmd_t;

/* Worker kinds, in Procfile order; NULL-terminated. */
extern const char *const JOBQ_KINDS[];
/* The worker kind that runs jobs of `type`, or NULL if no kind does. */
const char *jobq_kind_for_type(const char *type);
/* True when kind is one of JOBQ_KINDS. */
bool jobq_kind_valid(const char *kind);
/* "queued" etc.; jobq_status_parse returns -1 for unknown text. */
const char *jobq_status_name(jobq_status_t s);
int jobq_status_parse(const char *s);

/* The Redis function library (Lua) with billow_enqueue, billow_promote,
 * billow_replay. */
extern const char JOBQ_LIBRARY[];
/* FUNCTION LOAD REPLACE of JOBQ_LIBRARY on a synchronous connection. */
int jobq_load_library(redisContext *c) BILLOW_MUSTCHECK;
/* The argv of FUNCTION LOAD REPLACE (for the async client). */
void jobq_load_library_cmd(jobq_cmd_t *cmd);

/* FCALL billow_enqueue for env, whose encoded form is envelope_json (both
 * must outlive the send). idem_key and fingerprint may be NULL for a job
 * without an Idempotency-Key; a job with a key is checked against earlier
 * uses of the key within idem_scope (the caller's tenant id, or "platform"),
 * and a job whose id already exists is never enqueued twice. Returns 0, or
 * BILLOW_EPARAM_INVALID when no worker kind runs env's type (nothing is
 * built: such a job would wait forever). */
int jobq_enqueue_cmd(jobq_cmd_t *cmd, const envelope_t *env, const char *envelope_json,
                     const char *idem_scope, const char *idem_key, const char *fingerprint,
                     int64_t now_ms) BILLOW_MUSTCHECK;
/* Reads the reply of billow_enqueue: the outcome and the job id it refers
 * to (the earlier job's for REPLAYED and CONFLICT). */
int jobq_enqueue_reply(const redisReply *r, jobq_outcome_t *outcome,
                       char job_id[IDS_MAX]) BILLOW_MUSTCHECK;
/* Enqueue on a synchronous connection (workers' outbox relay, tools).
 * BILLOW_EPARAM_INVALID for an unroutable type, BILLOW_EUNAVAILABLE when
 * Redis does not answer. */
int jobq_enqueue_sync(redisContext *c, const envelope_t *env, const char *idem_scope,
                      const char *idem_key, const char *fingerprint, jobq_outcome_t *outcome,
                      char job_id[IDS_MAX]) BILLOW_MUSTCHECK;

/* FCALL billow_promote: up to `limit` jobs of kind whose retry is due by
 * now_ms go back to the stream. Reply: the number moved. */
void jobq_promote_cmd(jobq_cmd_t *cmd, const char *kind, int64_t now_ms, int limit);
/* FCALL billow_replay: a dead job back to its stream under its own id,
 * recording actor. Reply: 1 replayed, 0 not dead, -1 no such job. */
void jobq_replay_cmd(jobq_cmd_t *cmd, const char *job_id, const char *actor, int64_t now_ms);

/* Key names. */
void jobq_stream_key(const char *kind, char out[JOBQ_KEY_MAX]);
void jobq_status_key(const char *job_id, char out[JOBQ_KEY_MAX]);
void jobq_delayed_key(const char *kind, char out[JOBQ_KEY_MAX]);
void jobq_dead_key(const char *kind, char out[JOBQ_KEY_MAX]);
/* dead:<kind>:<tenant>: the tenant's own dead jobs of kind, by time of
 * death (beside dead:<kind>, which holds every tenant's), so a tenant's
 * listing reads its own jobs only. */
void jobq_dead_tenant_key(const char *kind, const char *tenant_id, char out[JOBQ_KEY_MAX]);
void jobq_idem_key(const char *scope, const char *key, char out[JOBQ_KEY_MAX]);

/* The API's job object from the reply of HGETALL job:<id> (an array of
 * field/value pairs). Returns NULL for an empty reply (no such job). Caller
 * decrefs. The envelope's payload is not included; `result` and `error` are
 * parsed JSON. */
json_t *jobq_status_json(const redisReply *hgetall);
/* Room for the text of a just-enqueued job's object. */
#define JOBQ_NEW_JOB_MAX 768
/* Writes the API's job object of a job just enqueued from env as JSON text
 * into out; returns its length, or 0 if it does not fit. */
size_t jobq_new_job_text(const envelope_t *env, char *out, size_t len);
/* The API's job object of a job just enqueued from env (what HGETALL would
 * return right after billow_enqueue). Caller decrefs. */
json_t *jobq_new_job_json(const envelope_t *env);
/* The value of field in an HGETALL reply, or NULL. */
const char *jobq_reply_field(const redisReply *hgetall, const char *field);

#endif

/* runtime: the consumer loop every worker kind runs.
 *
 * API: a kind is a NULL-terminated table of worker_handler_t (job type →
 * function). runtime_run() consumes jobs:<kind> until SIGTERM. A handler
 * runs inside the batch's Postgres transaction (under its own savepoint when
 * the batch is re-run after a failure), with app.tenant_id set to the job's
 * tenant; it does its SQL on job->db,
 * sets job->result on success, and may queue follow-up jobs with
 * runtime_followup(), which go through the outbox.
 *
 * Design: jobs are read in batches (XREADGROUP COUNT worker_batch) and the
 * whole batch commits in one transaction, so throughput is not one commit
 * per job. The batch first runs without savepoints; if a job fails, it is
 * rolled back and run again with a savepoint per job, so one failing job
 * does not undo the others. A handler must therefore have no effect outside
 * the transaction: it may run twice before its batch commits. processed_jobs records each finished
 * job in that transaction; a job delivered again finds its record, republishes the stored outcome,
 * and does nothing else. Only after the commit are statuses published, entries acked and follow-ups
 * relayed; a crash before that loses nothing, it only repeats the publish.
 */
#ifndef BILLOW_RUNTIME_H
#define BILLOW_RUNTIME_H

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "envelope.h"
#include "ids.h"
#include "worker_conn.h"

/* How a handler's attempt ended. */
typedef enum {
    HANDLER_OK,        /* Effects done; job->result holds the outcome. Final: succeeded. */
    HANDLER_REJECTED,  /* The request cannot succeed (validation, not found, conflict).
                          Final: failed, with job->error; effects rolled back. */
    HANDLER_RETRY,     /* A passing fault (deadlock, lost connection, outside service down).
                          Retried after a backoff, until max_attempts. */
    HANDLER_PERMANENT, /* A fault no retry fixes (bad data, bug). Dead until replayed. */
} handler_outcome_t;

typedef struct worker_job_s worker_job_t;
struct worker_job_s {
    const envelope_t *env; /* The job; valid during the handler. */
    PGconn *db;            /* In the batch transaction (under this job's savepoint on a re-run). */
    json_t *result;        /* Set by the handler on HANDLER_OK (owned by the runtime after). */
    json_t *error;         /* Set via runtime_reject/runtime_fault/runtime_db_fault: {type, code,
                              message, param, http_status}. */
    json_t *followups;     /* Private: envelopes (JSON text) written to the outbox by this job. */
};

typedef handler_outcome_t (*worker_handler_fn)(worker_job_t *job);

/* A set-based handler: runs n jobs of one type and one tenant together
 * (app.tenant_id is set; app.job holds the type, actor and trace of the
 * first, without a job id). It takes the jobs it can do in a few
 * statements, setting taken[i] and jobs[i]->result, and leaves the others
 * (taken[i] false, nothing written for them) to the per-job handler. A
 * failure other than HANDLER_OK undoes the whole pass, which then runs
 * again job by job with the per-job handler only. */
typedef handler_outcome_t (*worker_batch_fn)(worker_job_t *const *jobs, size_t n, bool *taken);

typedef struct {
    const char *type;     /* Job type, e.g. "customer.create". */
    worker_handler_fn fn; /* Its handler. */
    /* The handler changes no audited table (a no-op, a derived rollup): the
     * runtime then skips setting the audit context (app.job), one statement
     * per job. Every other handler's row changes are audited by triggers
     * that read app.job: {"id","type","actor","trace","client"}. */
    bool unaudited;
    /* Optional: the set-based form of fn, for high-volume types
     * (renewals); used only while a batch runs without savepoints. */
    worker_batch_fn batch_fn;
} worker_handler_t;

/* A kind's periodic work beside its jobs (the renewal scheduler's scan).
 * fn runs on the worker's own connections between batches, every every_ms,
 * and again at once while it returns true (more to do). It must leave no
 * transaction open. */
typedef struct {
    /* One pass; true: run again at once. */
    bool (*fn)(worker_conn_t *conn, const config_t *cfg, void *state);
    int every_ms; /* Pause between passes. */
    void *state;  /* The kind's own state, passed to fn. */
} runtime_tick_t;

/* Makes SIGTERM and SIGINT ask the runtime to stop (and SIGPIPE harmless).
 * The first thing main does: a stop asked for while the worker is still
 * loading its settings or connecting is then a clean exit 0, not death by
 * the signal. */
void runtime_install_signals(void);

/* Runs the consumer loop of `kind` with `handlers` (and tick, when not
 * NULL, between batches) until SIGTERM or SIGINT (runtime_install_signals
 * first),
 * then finishes the batch in hand and returns 0; returns an error if it
 * cannot start (no Postgres or Redis within the start-up grace time). */
int runtime_run(const config_t *cfg, const char *kind, const worker_handler_t *handlers,
                const runtime_tick_t *tick);

/* Writes a follow-up job of `type` with `payload` (stolen) into the outbox,
 * in the job's transaction: same tenant, actor and trace as the job,
 * attempt 0. It is relayed to Redis after the batch commits, and dropped
 * if this job's effects are rolled back. Returns 0 or an error, with the
 * error recorded on job (the handler should then return HANDLER_RETRY). */
int runtime_followup(worker_job_t *job, const char *type, json_t *payload) BILLOW_MUSTCHECK;

/* As runtime_followup, under the given job id (see ids_derive) instead of a
 * new one. A follow-up with that id already in the outbox is not written
 * again, and the queue refuses an id it already holds, so asking for the
 * same derived job twice makes it once. */
int runtime_followup_id(worker_job_t *job, const char *type, json_t *payload,
                        const char *job_id) BILLOW_MUSTCHECK;

/* For a set-based handler that writes outbox rows itself, in bulk: the
 * envelope of a follow-up of job (as runtime_followup_id would write it,
 * under job_id, or a new id when NULL; the id in id_out; payload stolen;
 * caller frees), and, once its row is written, the note that job has it
 * (so it is relayed after the commit). NULL when type cannot be routed
 * (the fault is then recorded on job). */
char *runtime_followup_envelope(worker_job_t *job, const char *type, json_t *payload,
                                const char *job_id, char id_out[IDS_MAX]);
void runtime_followup_written(worker_job_t *job, const char *envelope);

/* Records a client-facing error on job and returns HANDLER_REJECTED:
 * http_status (4xx), code ("resource_missing"), param (may be NULL) and a
 * printf message. */
handler_outcome_t runtime_reject(worker_job_t *job, int http_status, const char *code,
                                 const char *param, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* The error type of a rejection with http_status, as the api's own errors
 * have it (shared/err.h): 401 authentication_error, 403 permission_error,
 * 429 rate_limit_error, any other 4xx invalid_request_error. So a code has
 * one type whether the front or a worker decided it. */
const char *runtime_reject_type(int http_status);

/* Classifies a failed libpq result (res may be NULL: the connection failed)
 * by its SQLSTATE through runtime_sqlstate_outcome and records the error on
 * job (code "database_error", the server's message). Returns the outcome. */
handler_outcome_t runtime_db_fault(worker_job_t *job, const PGresult *res);

/* Records a server-side error on job ({type "api_error", code, message,
 * param null, http_status 500}) and returns `outcome` (HANDLER_RETRY or
 * HANDLER_PERMANENT). For faults that are not the client's, such as a
 * payload the handler cannot read. */
handler_outcome_t runtime_fault(worker_job_t *job, handler_outcome_t outcome, const char *code,
                                const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* The outcome for a failed statement's SQLSTATE (NULL: no server answer,
 * the connection failed): passing faults — serialization failure (40001),
 * deadlock (40P01), connection errors (class 08), server shutting down or
 * starting (57P01-57P03), statement timeout (57014), insufficient resources
 * (class 53) — are HANDLER_RETRY; anything else HANDLER_PERMANENT. */
handler_outcome_t runtime_sqlstate_outcome(const char *sqlstate);

/* Tells the queue this job, and the rest of its batch (which commits with
 * it), is still being worked on, so no other consumer takes the entries
 * over after the visibility timeout: when a third of that timeout has
 * passed since the entries were last claimed, it claims them again (one
 * Redis round trip); otherwise it costs a clock read. A handler that runs
 * long calls it between its steps, as often as it likes; the runtime also
 * does it between jobs. */
void runtime_heartbeat(worker_job_t *job);

/* runtime_heartbeat as a callback, for a library that waits on a handler's
 * behalf (stripe_client_on_wait): installed with arg =
 * runtime_heartbeat_arg(job). That arg stays valid for as long as the
 * worker runs, not only during job, so the callback may stay installed
 * between jobs: it does nothing while no batch is in hand. */
void runtime_heartbeat_cb(void *arg);
void *runtime_heartbeat_arg(worker_job_t *job);

/* What happens to a job after an attempt (pure; unit-tested). */
typedef enum {
    RUNTIME_ACT_SUCCEED, /* Publish succeeded. */
    RUNTIME_ACT_FAIL,    /* Publish failed (final). */
    RUNTIME_ACT_RETRY,   /* Back to the delayed set with attempt + 1. */
    RUNTIME_ACT_DEAD,    /* To dead:<kind>. */
} runtime_action_t;

/* The action for `outcome` of an attempt when the job had failed `attempt`
 * times before and has been delivered `deliveries` times (this one
 * included). A job over max_deliveries is dead whatever the outcome (it kept
 * crashing its workers); a retry that would exceed max_attempts is dead.
 * The runtime checks deliveries before running a job too, and then does not
 * run it at all. */
runtime_action_t runtime_decide(handler_outcome_t outcome, int attempt, int deliveries,
                                const config_t *cfg);

/* Entries kept in dead:<kind>:malformed (envelopes that do not decode, so
 * no status can be written for them): enough to diagnose, and bounded so a
 * flood of garbage cannot fill Redis. */
#define RUNTIME_MALFORMED_KEEP 1000

/* Pure helpers of the runtime, exposed for the unit tests. */

/* One stream entry as XREADGROUP or XAUTOCLAIM returns it. */
typedef struct {
    const char *id;  /* Entry id ("1700000000000-0"); points into the reply. */
    const char *job; /* The "job" field (envelope JSON), or NULL when the entry has none
                        (deleted, or written by something else); points into the reply. */
    size_t job_len;  /* Length of job. */
    int attempt;     /* The "attempt" field, or -1 when absent or not a number. */
    bool deleted;    /* The entry was deleted (nil fields): only its pending record is left. */
} runtime_entry_t;

/* Reads entry ([id, [field, value, ...]] or [id, nil]) into out. Returns 0,
 * or BILLOW_EPARAM_INVALID when the reply does not have that shape. */
int runtime_parse_entry(const redisReply *entry, runtime_entry_t *out) BILLOW_MUSTCHECK;

/* The Postgres array literal ({"a","b"}) of n strings (none NULL), quoted
 * and escaped so any text survives, for $1::text[] and $1::jsonb[]
 * parameters. Caller frees with free(). */
char *runtime_pg_array(const char *const *items, size_t n);

#endif

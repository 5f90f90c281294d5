/* worker_conn: a worker's two connections, Postgres and Redis, and the few
 * ways the runtime talks through them.
 *
 * Workers are not on an event loop: they use synchronous libpq and hiredis,
 * with timeouts, and block. A connection that fails is dropped at once (its
 * pointer becomes NULL) and worker_conn_open() connects it again; callers
 * treat a NULL connection as "unavailable" and leave their work for a later
 * pass. Every failure is logged here, so callers only decide what to do.
 *
 * API: worker_conn_open() connects what is not connected (Redis: SELECT the
 * database, load the jobq function library, create the consumer group);
 * worker_conn_redis_*() send commands and pipelines; worker_conn_pg_*() run
 * the runtime's own statements (not handlers', which report through
 * runtime_db_fault).
 */
#ifndef BILLOW_WORKER_CONN_H
#define BILLOW_WORKER_CONN_H

#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdint.h>

#include "err.h"
#include "jobq.h"
#include "redis_url.h"

/* Longest Redis host name accepted in REDIS_URL. */
#define WORKER_CONN_HOST_MAX 256

typedef struct {
    const char *database_url;                /* Postgres URL (role billow_worker); borrowed. */
    const char *app_name;                    /* Postgres application_name; borrowed. */
    char redis_host[WORKER_CONN_HOST_MAX];   /* From REDIS_URL. */
    int redis_port;                          /* From REDIS_URL. */
    int redis_db;                            /* From REDIS_URL. */
    char redis_user[REDIS_URL_CRED_MAX];     /* From REDIS_URL: AUTH user, or "". */
    char redis_password[REDIS_URL_CRED_MAX]; /* From REDIS_URL: AUTH password, or "". */
    int redis_timeout_ms;                    /* Longest wait for a reply (BLOCK time + grace). */
    char stream[JOBQ_KEY_MAX];               /* The stream whose consumer group must exist. */
    PGconn *db;                              /* NULL while disconnected. */
    redisContext *redis;                     /* NULL while disconnected. */
} worker_conn_t;

/* Connects whichever of the two is not connected (or has failed), retrying
 * with backoff for grace_ms, or until *stop becomes non-zero when grace_ms
 * is negative. Returns 0 when both are up, else BILLOW_EUNAVAILABLE. */
int worker_conn_open(worker_conn_t *c, int64_t grace_ms,
                     const volatile sig_atomic_t *stop) BILLOW_MUSTCHECK;
/* Closes both connections. */
void worker_conn_close(worker_conn_t *c);

/* An argument vector whose strings are borrowed: they must outlive the
 * send or append (hiredis copies them then). */
typedef struct {
    int argc;          /* Arguments in use. */
    int cap;           /* Room in argv and len. */
    const char **argv; /* The arguments. */
    size_t *len;       /* Their lengths. */
} worker_conn_argv_t;

/* Appends s (borrowed) to a, which starts zeroed. */
void worker_conn_argv_add(worker_conn_argv_t *a, const char *s);
/* Frees a's arrays (not the strings) and zeroes it. */
void worker_conn_argv_dispose(worker_conn_argv_t *a);

/* Drops the Redis connection after a failure seen at `where` (logged). */
void worker_conn_redis_lost(worker_conn_t *c, const char *where);
/* Sends one command and returns its reply (caller frees with
 * freeReplyObject), or NULL when Redis is unavailable (the connection is
 * then dropped). An error reply is returned like any other. */
redisReply *worker_conn_redis_argv(worker_conn_t *c, const worker_conn_argv_t *a,
                                   const char *where);
/* As worker_conn_redis_argv for a jobq command. */
redisReply *worker_conn_redis_cmd(worker_conn_t *c, const jobq_cmd_t *cmd, const char *where);
/* Appends a command to the pipeline and counts it in *n. Returns 0 or
 * BILLOW_EUNAVAILABLE. */
int worker_conn_redis_append(worker_conn_t *c, const worker_conn_argv_t *a,
                             int *n) BILLOW_MUSTCHECK;
/* Reads the replies of `count` pipelined commands. Error replies are logged
 * and skipped (one odd key must not stop the rest). Returns 0, or
 * BILLOW_EUNAVAILABLE when the connection failed (it is then dropped). */
int worker_conn_redis_replies(worker_conn_t *c, int count, const char *where) BILLOW_MUSTCHECK;
/* As worker_conn_redis_replies, but any error reply fails the whole
 * (BILLOW_EUNAVAILABLE, the connection kept: every reply was read). For the
 * writes a job's fate hangs on, which Redis refuses whole when it is out of
 * memory (maxmemory with noeviction) while still taking XACK and XDEL. */
int worker_conn_redis_replies_all(worker_conn_t *c, int count, const char *where) BILLOW_MUSTCHECK;

/* The primary message of a failed result, or the connection's error when
 * res is NULL, without libpq's trailing newline. Caller frees. */
char *worker_conn_pg_message(const PGconn *db, const PGresult *res);
/* Logs a failed statement of the runtime's own (`what` names it); res may
 * be NULL when the connection failed. */
void worker_conn_pg_log(const worker_conn_t *c, const PGresult *res, const char *what);
/* Runs sql (no parameters; may be several statements) and checks that the
 * last result has status want. Returns 0 or BILLOW_EUNAVAILABLE (logged). */
int worker_conn_pg_exec(worker_conn_t *c, const char *sql, ExecStatusType want,
                        const char *what) BILLOW_MUSTCHECK;
/* Runs sql with n text parameters. Returns the result (caller PQclears)
 * when its status is want, else NULL (logged). */
PGresult *worker_conn_pg_params(worker_conn_t *c, const char *sql, int n, const char *const *params,
                                ExecStatusType want, const char *what);
/* Sets app.tenant_id until the end of the current transaction. Returns 0
 * or BILLOW_EUNAVAILABLE. */
int worker_conn_pg_set_tenant(worker_conn_t *c, const char *tenant) BILLOW_MUSTCHECK;
/* Rolls back a transaction a failure left open, if the connection still
 * works. */
void worker_conn_pg_abandon(worker_conn_t *c);

#endif

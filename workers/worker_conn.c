/* worker_conn: a worker's Postgres and Redis connections (see
 * worker_conn.h).
 *
 * Design: Redis set-up (SELECT, FUNCTION LOAD, XGROUP CREATE) runs on every
 * connect, not once at start: a Redis that restarted without its data lost
 * the library and the consumer group too, and a worker that only
 * reconnected would then fail every read with NOGROUP.
 */
#include "worker_conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "log.h"
#include "mem.h"
#include "timeutil.h"

/* Reconnect backoff bounds: quick after a blip, at most one attempt (and
 * one log line) every two seconds during an outage. */
#define RECONNECT_MIN_MS 100
#define RECONNECT_MAX_MS 2000
/* Seconds libpq waits for a connection (its connect_timeout). */
#define PG_CONNECT_TIMEOUT_S "5"
/* Server-side limit on one statement, so a stuck query cannot hold a
 * batch's locks, and its entries, forever. */
#define PG_STATEMENT_TIMEOUT_MS 30000
/* Time allowed to open a Redis connection. */
#define REDIS_CONNECT_TIMEOUT_MS 5000

static struct timeval ms_to_tv(int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return tv;
}

static int64_t mono_ms(void)
{
    return (int64_t)(timeutil_mono_ns() / 1000000u);
}

char *worker_conn_pg_message(const PGconn *db, const PGresult *res)
{
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *msg = primary ? primary : db ? PQerrorMessage(db) : "";
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        n--;
    return mem_strndup(msg, n);
}

static int pg_connect(worker_conn_t *c)
{
    char options[64];
    snprintf(options, sizeof options, "-c statement_timeout=%d", PG_STATEMENT_TIMEOUT_MS);
    const char *keys[] = {"dbname", "connect_timeout", "application_name", "options", NULL};
    const char *values[] = {c->database_url, PG_CONNECT_TIMEOUT_S, c->app_name, options, NULL};
    PGconn *db = PQconnectdbParams(keys, values, 1);
    if (PQstatus(db) != CONNECTION_OK) {
        char *msg = worker_conn_pg_message(db, NULL);
        log_write(LOG_WARN, "postgres_connect_failed", "{s:s}", "error", msg);
        free(msg);
        PQfinish(db);
        return BILLOW_EUNAVAILABLE;
    }
    c->db = db;
    return 0;
}

static int redis_connect(worker_conn_t *c)
{
    redisContext *r =
        redisConnectWithTimeout(c->redis_host, c->redis_port, ms_to_tv(REDIS_CONNECT_TIMEOUT_MS));
    redisReply *reply = NULL;
    const char *why = NULL;

    if (r == NULL || r->err) {
        why = r ? r->errstr : "out of memory";
        goto fail;
    }
    if (redisSetTimeout(r, ms_to_tv(c->redis_timeout_ms)) != REDIS_OK) {
        why = "cannot set the socket timeout";
        goto fail;
    }
    const char *auth[3];
    int auth_argc = redis_url_auth_argv(c->redis_user, c->redis_password, auth);
    if (auth_argc > 0) {
        reply = redisCommandArgv(r, auth_argc, auth, NULL);
        if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
            why = reply ? reply->str : r->errstr;
            goto fail;
        }
        freeReplyObject(reply);
        reply = NULL;
    }
    if (c->redis_db != 0) {
        reply = redisCommand(r, "SELECT %d", c->redis_db);
        if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
            why = reply ? reply->str : r->errstr;
            goto fail;
        }
        freeReplyObject(reply);
        reply = NULL;
    }
    if (jobq_load_library(r) != 0) {
        why = r->err ? r->errstr : "FUNCTION LOAD refused";
        goto fail;
    }
    reply = redisCommand(r, "XGROUP CREATE %s %s 0 MKSTREAM", c->stream, JOBQ_GROUP);
    if (reply == NULL ||
        (reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "BUSYGROUP", 9) != 0)) {
        why = reply ? reply->str : r->errstr;
        goto fail;
    }
    freeReplyObject(reply);
    c->redis = r;
    return 0;

fail:
    log_write(LOG_WARN, "redis_connect_failed", "{s:s,s:i,s:s}", "host", c->redis_host, "port",
              c->redis_port, "error", why ? why : "unknown");
    if (reply)
        freeReplyObject(reply);
    if (r)
        redisFree(r);
    return BILLOW_EUNAVAILABLE;
}

int worker_conn_open(worker_conn_t *c, int64_t grace_ms, const volatile sig_atomic_t *stop)
{
    int64_t deadline = mono_ms() + grace_ms;
    int64_t delay = RECONNECT_MIN_MS;
    if (c->db && PQstatus(c->db) != CONNECTION_OK) {
        PQfinish(c->db);
        c->db = NULL;
    }
    for (;;) {
        if (c->db == NULL)
            (void)pg_connect(c);
        if (c->redis == NULL)
            (void)redis_connect(c);
        if (c->db && c->redis)
            return 0;
        if (*stop || (grace_ms >= 0 && mono_ms() >= deadline))
            return BILLOW_EUNAVAILABLE;
        /* A stop signal interrupts the sleep (EINTR); the flag ends the loop. */
        struct timespec ts = {.tv_sec = delay / 1000, .tv_nsec = (long)(delay % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        delay = delay * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : delay * 2;
    }
}

void worker_conn_close(worker_conn_t *c)
{
    if (c->redis)
        redisFree(c->redis);
    if (c->db)
        PQfinish(c->db);
    c->redis = NULL;
    c->db = NULL;
}

void worker_conn_argv_add(worker_conn_argv_t *a, const char *s)
{
    if (a->argc == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 16;
        a->argv = mem_realloc(a->argv, (size_t)a->cap * sizeof *a->argv);
        a->len = mem_realloc(a->len, (size_t)a->cap * sizeof *a->len);
    }
    a->argv[a->argc] = s;
    a->len[a->argc] = strlen(s);
    a->argc++;
}

void worker_conn_argv_dispose(worker_conn_argv_t *a)
{
    free(a->argv);
    free(a->len);
    memset(a, 0, sizeof *a);
}

void worker_conn_redis_lost(worker_conn_t *c, const char *where)
{
    if (c->redis == NULL)
        return;
    log_write(LOG_WARN, "redis_lost", "{s:s,s:s}", "where", where, "error",
              c->redis->errstr[0] ? c->redis->errstr : "protocol error");
    redisFree(c->redis);
    c->redis = NULL;
}

redisReply *worker_conn_redis_argv(worker_conn_t *c, const worker_conn_argv_t *a, const char *where)
{
    if (c->redis == NULL)
        return NULL;
    redisReply *r = redisCommandArgv(c->redis, a->argc, a->argv, a->len);
    if (r == NULL)
        worker_conn_redis_lost(c, where);
    return r;
}

redisReply *worker_conn_redis_cmd(worker_conn_t *c, const jobq_cmd_t *cmd, const char *where)
{
    if (c->redis == NULL)
        return NULL;
    /* hiredis 0.14 takes a non-const argv it never writes to. */
    redisReply *r = redisCommandArgv(c->redis, cmd->argc, (const char **)cmd->argv, cmd->argvlen);
    if (r == NULL)
        worker_conn_redis_lost(c, where);
    return r;
}

int worker_conn_redis_append(worker_conn_t *c, const worker_conn_argv_t *a, int *n)
{
    if (c->redis == NULL || redisAppendCommandArgv(c->redis, a->argc, a->argv, a->len) != REDIS_OK)
        return BILLOW_EUNAVAILABLE;
    (*n)++;
    return 0;
}

/* Reads count replies; *errors counts the error replies among them. */
static int read_replies(worker_conn_t *c, int count, const char *where, int *errors)
{
    *errors = 0;
    for (int i = 0; i < count; i++) {
        void *reply = NULL;
        if (c->redis == NULL || redisGetReply(c->redis, &reply) != REDIS_OK) {
            worker_conn_redis_lost(c, where);
            return BILLOW_EUNAVAILABLE;
        }
        redisReply *r = reply;
        if (r->type == REDIS_REPLY_ERROR) {
            log_write(LOG_WARN, "redis_error", "{s:s,s:s}", "where", where, "error", r->str);
            (*errors)++;
        }
        freeReplyObject(r);
    }
    return 0;
}

int worker_conn_redis_replies(worker_conn_t *c, int count, const char *where)
{
    int errors;
    return read_replies(c, count, where, &errors);
}

int worker_conn_redis_replies_all(worker_conn_t *c, int count, const char *where)
{
    int errors;
    int rc = read_replies(c, count, where, &errors);
    return rc != 0 ? rc : errors > 0 ? BILLOW_EUNAVAILABLE : 0;
}

void worker_conn_pg_log(const worker_conn_t *c, const PGresult *res, const char *what)
{
    const char *sqlstate = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    char *msg = worker_conn_pg_message(c->db, res);
    log_write(LOG_WARN, "postgres_failed", "{s:s,s:s,s:s}", "what", what, "sqlstate",
              sqlstate ? sqlstate : "", "error", msg);
    free(msg);
}

int worker_conn_pg_exec(worker_conn_t *c, const char *sql, ExecStatusType want, const char *what)
{
    PGresult *res = PQexec(c->db, sql);
    int rc = PQresultStatus(res) == want ? 0 : BILLOW_EUNAVAILABLE;
    if (rc != 0)
        worker_conn_pg_log(c, res, what);
    PQclear(res);
    return rc;
}

PGresult *worker_conn_pg_params(worker_conn_t *c, const char *sql, int n, const char *const *params,
                                ExecStatusType want, const char *what)
{
    PGresult *res = PQexecParams(c->db, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) == want)
        return res;
    worker_conn_pg_log(c, res, what);
    PQclear(res);
    return NULL;
}

int worker_conn_pg_set_tenant(worker_conn_t *c, const char *tenant)
{
    const char *params[] = {tenant};
    PGresult *res = worker_conn_pg_params(c, "SELECT set_config('app.tenant_id', $1, true)", 1,
                                          params, PGRES_TUPLES_OK, "set_tenant");
    PQclear(res);
    return res ? 0 : BILLOW_EUNAVAILABLE;
}

void worker_conn_pg_abandon(worker_conn_t *c)
{
    if (c->db == NULL || PQstatus(c->db) != CONNECTION_OK)
        return;
    /* A ROLLBACK that fails means the connection is gone, which the next
     * use finds; there is nothing else to undo. */
    if (PQtransactionStatus(c->db) != PQTRANS_IDLE)
        PQclear(PQexec(c->db, "ROLLBACK"));
}

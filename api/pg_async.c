/* pg_async: a pool of non-blocking libpq connections on the libuv loop.
 *
 * Design: each connection is a small state machine (conn_state_t) driven by
 * two handles: a uv_poll_t on its socket and a uv_timer_t whose meaning
 * depends on the state (connect timeout, query deadline or reconnect delay).
 * A connection runs one query at a time, as one libpq pipeline:
 *
 *   set_config('app.tenant_id', tenant) ; the caller's query ; Sync
 *
 * so the tenant is set in the same round trip as the query, and because the
 * next query sets it again, no query ever runs with the previous caller's
 * tenant. Results arrive as set_config's result, NULL, the query's result,
 * NULL, PGRES_PIPELINE_SYNC; the callback runs once the Sync is read, when
 * the connection is ready for the next query.
 *
 * Waiting queries sit in a list ordered by deadline (which is arrival order
 * while the timeout does not change); one pool timer fires at the head's
 * deadline. Nothing here blocks: there is no PQexec, PQconnectdb or PQcancel
 * (PQcancel opens a new connection synchronously). A query that runs past its
 * deadline is failed and its connection closed and reopened instead.
 *
 * Handles are freed only in their close callbacks. A poll handle carries the
 * PGconn it watched and PQfinish()es it in its close callback, because libuv
 * must stop polling a socket before the socket is closed. The pool itself is
 * freed when the last of its handles has closed.
 */
#include "pg_async.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "mem.h"

/* A connect attempt (TCP, TLS, authentication) that takes longer is
 * abandoned and retried: libpq enforces connect_timeout only in its blocking
 * calls, and a server that never answers must not hold a slot forever. */
#define PG_POOL_CONNECT_TIMEOUT_MS 5000
/* First delay before reconnecting a failed connection, doubled on each
 * failure up to the maximum, so a down server is not hammered with connects
 * while the pool still notices quickly when it comes back. */
#define PG_POOL_BACKOFF_START_MS 100
#define PG_POOL_BACKOFF_MAX_MS   5000

/* Sent before each query, in the same pipeline: scopes row-level security. */
static const char SET_TENANT_SQL[] = "SELECT set_config('app.tenant_id', $1, false)";

typedef struct pg_query_s pg_query_t;
typedef struct pg_conn_s pg_conn_t;

/* A query from pg_pool_query() until its callback has run. */
struct pg_query_s {
    pg_query_t *prev;  /* Neighbour towards the head of the waiting list. */
    pg_query_t *next;  /* Neighbour towards the tail of the waiting list. */
    char *tenant_id;   /* Copy; NULL means no tenant (set as ""). */
    char *sql;         /* Copy of the statement. */
    int nparams;       /* Entries in params. */
    char **params;     /* Copies; an entry may be NULL for SQL NULL. */
    pg_query_cb cb;    /* Called exactly once. */
    void *data;        /* Passed to cb. */
    uint64_t deadline; /* uv_now() value at which the query fails unanswered. */
};

/* What a connection is doing. Every transition is in this file. */
typedef enum {
    CONN_CONNECTING, /* PQconnectPoll() in progress; timer is the connect timeout. */
    CONN_IDLE,       /* Up and in pipeline mode, no query: takes the next one. */
    CONN_BUSY,       /* One query's pipeline in flight; timer is its deadline. */
    CONN_BACKOFF,    /* No PGconn; timer fires the next connect attempt. */
    CONN_CLOSED,     /* The pool is being destroyed; handles are closing. */
} conn_state_t;

/* Which part of the pipeline a busy connection reads next. */
typedef enum {
    STEP_TENANT, /* set_config's result, then the NULL that ends it. */
    STEP_QUERY,  /* The caller's query result, then the NULL that ends it. */
    STEP_SYNC,   /* PGRES_PIPELINE_SYNC, which ends the pipeline. */
} conn_step_t;

/* A poll handle on one socket of a connection. Allocated apart from the
 * connection because libpq may replace the socket while connecting and the
 * old handle must then close while a new one is in use. */
typedef struct {
    uv_poll_t handle; /* Watches fd. */
    pg_conn_t *conn;  /* The connection it serves. */
    int fd;           /* The socket watched. */
    ino_t ino;        /* Its inode, to tell a new socket that reused the number. */
    PGconn *finish;   /* PQfinish()ed in the close callback, or NULL. */
} pg_watch_t;

struct pg_conn_s {
    pg_pool_t *pool;     /* Owner. */
    conn_state_t state;  /* See conn_state_t. */
    PGconn *pg;          /* NULL in CONN_BACKOFF and CONN_CLOSED. */
    pg_watch_t *watch;   /* Poll handle on PQsocket(pg), or NULL. */
    uv_timer_t timer;    /* Meaning depends on state. */
    uint64_t backoff_ms; /* Delay before the next reconnect after a failure. */
    pg_query_t *query;   /* The query in flight in CONN_BUSY, else NULL. */
    conn_step_t step;    /* Pipeline position in CONN_BUSY. */
    PGresult *res;       /* The query's successful result, once read. */
    PGresult *error;     /* The first error result of the pipeline, once read. */
};

struct pg_pool_s {
    uv_loop_t *loop;       /* The loop everything runs on. */
    char *conninfo;        /* Copy of the connection string. */
    pg_conn_t *conns;      /* nconns connections; never moves (timers live in it). */
    int nconns;            /* Size of the pool. */
    pg_query_t *head;      /* Waiting query with the earliest deadline. */
    pg_query_t *tail;      /* Waiting query with the latest deadline. */
    int nwaiting;          /* Queries in the waiting list. */
    uv_timer_t wait_timer; /* Fires at the head's deadline. */
    uint64_t timeout_ms;   /* Deadline of newly queued queries, from now. */
    int open_handles;      /* Handles initialised whose close callback has not run. */
    bool destroying;       /* pg_pool_destroy() was called. */
};

static void conn_connect(pg_conn_t *c);
static void dispatch(pg_pool_t *pool);

/* Queries ------------------------------------------------------------------ */

static void query_free(pg_query_t *q)
{
    for (int i = 0; i < q->nparams; i++)
        free(q->params[i]);
    free(q->params);
    free(q->sql);
    free(q->tenant_id);
    free(q);
}

/* Runs q's callback, then frees q and res (which the callback only borrows). */
static void query_finish(pg_query_t *q, int err, PGresult *res)
{
    q->cb(q->data, err, res);
    PQclear(res);
    query_free(q);
}

/* The waiting list ----------------------------------------------------------- */

static void wait_timer_arm(pg_pool_t *pool);

/* Inserts q by deadline, after any query with the same deadline, so the list
 * is FIFO while the timeout stays the same. */
static void waiting_insert(pg_pool_t *pool, pg_query_t *q)
{
    pg_query_t *after = pool->tail;
    while (after != NULL && after->deadline > q->deadline)
        after = after->prev;
    q->prev = after;
    q->next = after != NULL ? after->next : pool->head;
    if (q->next != NULL)
        q->next->prev = q;
    else
        pool->tail = q;
    if (after != NULL)
        after->next = q;
    else
        pool->head = q;
    pool->nwaiting++;
    wait_timer_arm(pool);
}

/* Removes and returns the head, or NULL. */
static pg_query_t *waiting_pop(pg_pool_t *pool)
{
    pg_query_t *q = pool->head;
    if (q == NULL)
        return NULL;
    pool->head = q->next;
    if (pool->head != NULL)
        pool->head->prev = NULL;
    else
        pool->tail = NULL;
    q->prev = q->next = NULL;
    pool->nwaiting--;
    wait_timer_arm(pool);
    return q;
}

/* Puts q back at the head: it was taken for a connection that broke before
 * the query could be sent. Its deadline is the earliest, as it was. */
static void waiting_push_front(pg_pool_t *pool, pg_query_t *q)
{
    q->prev = NULL;
    q->next = pool->head;
    if (pool->head != NULL)
        pool->head->prev = q;
    else
        pool->tail = q;
    pool->head = q;
    pool->nwaiting++;
    wait_timer_arm(pool);
}

/* The length of a libpq message without the newline libpq ends it with. */
static size_t message_len(const char *msg)
{
    size_t len = strlen(msg);
    while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
        len--;
    return len;
}

static uint64_t ms_until(const pg_pool_t *pool, uint64_t deadline)
{
    uint64_t now = uv_now(pool->loop);
    return deadline > now ? deadline - now : 0;
}

static void on_wait_timer(uv_timer_t *timer)
{
    pg_pool_t *pool = timer->data;
    uint64_t now = uv_now(pool->loop);
    /* The list is ordered by deadline, so the expired queries are a prefix.
     * A callback may queue more queries or destroy the pool; both keep the
     * list consistent, so re-reading the head each time is enough. */
    while (pool->head != NULL && pool->head->deadline <= now) {
        pg_query_t *q = waiting_pop(pool);
        query_finish(q, BILLOW_EUNAVAILABLE, NULL);
    }
    wait_timer_arm(pool);
}

/* Makes the wait timer fire at the head's deadline, or stops it. */
static void wait_timer_arm(pg_pool_t *pool)
{
    if (pool->destroying)
        return;
    if (pool->head == NULL) {
        uv_timer_stop(&pool->wait_timer);
        return;
    }
    uv_timer_start(&pool->wait_timer, on_wait_timer, ms_until(pool, pool->head->deadline), 0);
}

/* Handles ----------------------------------------------------------------------- */

/* Frees the pool once it is being destroyed and its last handle has closed. */
static void pool_handle_closed(pg_pool_t *pool)
{
    pool->open_handles--;
    if (!pool->destroying || pool->open_handles > 0)
        return;
    free(pool->conns);
    free(pool->conninfo);
    free(pool);
}

static void on_watch_close(uv_handle_t *handle)
{
    pg_watch_t *w = handle->data;
    pg_pool_t *pool = w->conn->pool;
    PQfinish(w->finish);
    free(w);
    pool_handle_closed(pool);
}

static void on_conn_timer_close(uv_handle_t *handle)
{
    pg_conn_t *c = handle->data;
    pool_handle_closed(c->pool);
}

static void on_wait_timer_close(uv_handle_t *handle)
{
    pool_handle_closed(handle->data);
}

/* Closes c's poll handle, if any; finish (may be NULL) is PQfinish()ed once
 * the handle no longer watches its socket. */
static void watch_close(pg_conn_t *c, PGconn *finish)
{
    pg_watch_t *w = c->watch;
    if (w == NULL) {
        PQfinish(finish);
        return;
    }
    c->watch = NULL;
    w->finish = finish;
    uv_close((uv_handle_t *)&w->handle, on_watch_close);
}

static void on_poll(uv_poll_t *handle, int status, int events);

/* Makes c->watch watch PQsocket(c->pg), replacing the handle if libpq has
 * moved to another socket (a new socket may reuse the old one's number, so
 * the inode tells them apart). Returns 0 or a negative libuv error. */
static int watch_socket(pg_conn_t *c)
{
    int fd = PQsocket(c->pg);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0)
        return UV_EBADF;
    if (c->watch != NULL && (c->watch->fd != fd || c->watch->ino != st.st_ino))
        watch_close(c, NULL);
    if (c->watch != NULL)
        return 0;

    pg_watch_t *w = mem_calloc(1, sizeof *w);
    int rc = uv_poll_init_socket(c->pool->loop, &w->handle, fd);
    if (rc < 0) {
        free(w);
        return rc;
    }
    w->handle.data = w;
    w->conn = c;
    w->fd = fd;
    w->ino = st.st_ino;
    c->watch = w;
    c->pool->open_handles++;
    return 0;
}

/* Connections -------------------------------------------------------------- */

static void on_conn_timer(uv_timer_t *timer);

/* Takes c's query and whatever results of it were read. */
static pg_query_t *conn_take_query(pg_conn_t *c)
{
    pg_query_t *q = c->query;
    c->query = NULL;
    PQclear(c->res);
    PQclear(c->error);
    c->res = c->error = NULL;
    return q;
}

/* Drops c's PGconn and schedules the next connect attempt. */
static void conn_reset(pg_conn_t *c)
{
    watch_close(c, c->pg);
    c->pg = NULL;
    c->state = CONN_BACKOFF;
    uv_timer_start(&c->timer, on_conn_timer, c->backoff_ms, 0);
    c->backoff_ms *= 2;
    if (c->backoff_ms > PG_POOL_BACKOFF_MAX_MS)
        c->backoff_ms = PG_POOL_BACKOFF_MAX_MS;
}

/* Logs why c is being dropped, with libpq's message. */
static void conn_log_failure(const pg_conn_t *c, const char *event, const char *why)
{
    const char *msg = c->pg != NULL ? PQerrorMessage(c->pg) : "";
    log_write(LOG_WARN, event, "{s:s, s:s%, s:i, s:I}", "reason", why, "error", msg,
              message_len(msg), "conn", (int)(c - c->pool->conns), "retry_ms",
              (json_int_t)c->backoff_ms);
}

/* Closes c (reconnecting after a backoff) and fails its query, if any, with
 * err. The connection is reset before the callback runs, so the callback sees
 * a consistent pool. */
static void conn_fail(pg_conn_t *c, int err, const char *why)
{
    conn_log_failure(c, "pg_conn_lost", why);
    pg_query_t *q = conn_take_query(c);
    conn_reset(c);
    if (q != NULL)
        query_finish(q, err, NULL);
}

/* Watches c's socket for reading, and for writing while libpq has output
 * queued (PQflush() returned 1). Returns 0, or -1 if the connection broke. */
static int conn_poll(pg_conn_t *c)
{
    int pending = PQflush(c->pg);
    if (pending < 0)
        return -1;
    int events = UV_READABLE | (pending ? UV_WRITABLE : 0);
    return uv_poll_start(&c->watch->handle, events, on_poll) < 0 ? -1 : 0;
}

/* Sends q's pipeline on idle c. Returns false if sending failed; c is then
 * reset and q is left to the caller, which queues it again: the server has
 * not answered it, and pool queries are reads, so running it on another
 * connection is safe (and no callback runs inside pg_pool_query()). */
static bool conn_send(pg_conn_t *c, pg_query_t *q)
{
    const char *tenant = q->tenant_id != NULL ? q->tenant_id : "";
    if (!PQsendQueryParams(c->pg, SET_TENANT_SQL, 1, NULL, &tenant, NULL, NULL, 0) ||
        !PQsendQueryParams(c->pg, q->sql, q->nparams, NULL, (const char *const *)q->params, NULL,
                           NULL, 0) ||
        !PQpipelineSync(c->pg) || conn_poll(c) < 0) {
        conn_log_failure(c, "pg_conn_lost", "send");
        conn_reset(c);
        return false;
    }
    c->state = CONN_BUSY;
    c->query = q;
    c->step = STEP_TENANT;
    uv_timer_start(&c->timer, on_conn_timer, ms_until(c->pool, q->deadline), 0);
    return true;
}

/* A result that ends the session (FATAL, such as pg_terminate_backend(), or
 * one libpq made up because the connection broke) is a lost connection, not
 * a query error. */
static bool result_ends_session(const pg_conn_t *c, const PGresult *res)
{
    if (PQstatus(c->pg) == CONNECTION_BAD)
        return true;
    const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    return severity != NULL && (strcmp(severity, "FATAL") == 0 || strcmp(severity, "PANIC") == 0);
}

/* The pipeline of c has ended: runs the callback and frees c for the next
 * query. */
static void conn_complete(pg_conn_t *c)
{
    PGresult *res = c->error != NULL ? c->error : c->res;
    int err = c->error != NULL ? BILLOW_EINTERNAL : 0;
    if (c->error != NULL)
        PQclear(c->res);
    c->res = c->error = NULL;
    pg_query_t *q = c->query;
    c->query = NULL;
    c->state = CONN_IDLE;
    uv_timer_stop(&c->timer);
    query_finish(q, err, res);
    /* The callback may have queued a query (already sent then, on c or
     * another connection) or destroyed the pool; dispatch handles both. */
    dispatch(c->pool);
}

/* A NULL from PQgetResult(): the current query of the pipeline has ended.
 * Returns false when there is nothing more to take until more input. */
static bool conn_end_step(pg_conn_t *c)
{
    switch (c->step) {
    case STEP_TENANT:
        c->step = STEP_QUERY;
        return true;
    case STEP_QUERY:
        c->step = STEP_SYNC;
        return true;
    case STEP_SYNC:
        break;
    }
    return false;
}

/* Takes one result (or NULL) of c's pipeline. Returns false if there is
 * nothing more to take now, or c stopped being busy with this pipeline
 * (failed, completed or closed). */
static bool conn_take_result(pg_conn_t *c, PGresult *res)
{
    if (res == NULL)
        return conn_end_step(c);
    ExecStatusType status = PQresultStatus(res);
    bool failed = status == PGRES_FATAL_ERROR || status == PGRES_BAD_RESPONSE ||
                  status == PGRES_NONFATAL_ERROR;
    if (failed && result_ends_session(c, res)) {
        PQclear(res);
        conn_fail(c, BILLOW_EUNAVAILABLE, "server ended the session");
        return false;
    }

    switch (c->step) {
    case STEP_TENANT:
        if (status != PGRES_TUPLES_OK && c->error == NULL) {
            /* The query will come back PGRES_PIPELINE_ABORTED; this result
             * says why, so it is the one the caller gets. */
            c->error = res;
            return true;
        }
        break;
    case STEP_QUERY:
        if ((status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK) && c->res == NULL) {
            c->res = res;
            return true;
        }
        if (status == PGRES_COPY_IN || status == PGRES_COPY_OUT || status == PGRES_COPY_BOTH) {
            /* COPY needs an exchange the pool does not speak; the
             * connection cannot be reused. */
            PQclear(res);
            conn_fail(c, BILLOW_EINTERNAL, "query started COPY");
            return false;
        }
        if (status != PGRES_PIPELINE_ABORTED && c->error == NULL) {
            c->error = res;
            return true;
        }
        break;
    case STEP_SYNC:
        PQclear(res);
        if (status != PGRES_PIPELINE_SYNC) {
            conn_fail(c, BILLOW_EINTERNAL, "unexpected result after the query");
            return false;
        }
        conn_complete(c);
        return false;
    }
    PQclear(res);
    return true;
}

/* Reads what arrived on c. Returns false if c was failed or closed. */
static bool conn_read(pg_conn_t *c)
{
    if (!PQconsumeInput(c->pg)) {
        conn_fail(c, BILLOW_EUNAVAILABLE, "read");
        return false;
    }
    while (c->state == CONN_BUSY && !PQisBusy(c->pg)) {
        if (!conn_take_result(c, PQgetResult(c->pg)))
            break;
    }
    /* A callback may have destroyed the pool or queued a query on c. */
    if (c->state != CONN_IDLE && c->state != CONN_BUSY)
        return false;
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        conn_fail(c, BILLOW_EUNAVAILABLE, "connection broken");
        return false;
    }
    return true;
}

/* The connection came up: pipeline mode, then the first waiting query. */
static void conn_ready(pg_conn_t *c)
{
    if (PQsetnonblocking(c->pg, 1) != 0 || !PQenterPipelineMode(c->pg)) {
        conn_log_failure(c, "pg_connect_failed", "pipeline mode");
        conn_reset(c);
        return;
    }
    c->state = CONN_IDLE;
    c->backoff_ms = PG_POOL_BACKOFF_START_MS;
    uv_timer_stop(&c->timer);
    /* Watch for reading even when idle, to notice a server that ends the
     * session before a query is sent on it. */
    if (conn_poll(c) < 0) {
        conn_fail(c, BILLOW_EUNAVAILABLE, "poll");
        return;
    }
    dispatch(c->pool);
}

/* One step of PQconnectPoll(), then waits for what it asks. */
static void conn_connect_step(pg_conn_t *c, PostgresPollingStatusType poll)
{
    if (poll == PGRES_POLLING_OK) {
        conn_ready(c);
        return;
    }
    if (poll == PGRES_POLLING_FAILED) {
        conn_log_failure(c, "pg_connect_failed", "connect");
        conn_reset(c);
        return;
    }
    int rc = watch_socket(c);
    if (rc == 0) {
        int events = poll == PGRES_POLLING_READING ? UV_READABLE : UV_WRITABLE;
        rc = uv_poll_start(&c->watch->handle, events, on_poll);
    }
    if (rc < 0) {
        conn_log_failure(c, "pg_connect_failed", uv_strerror(rc));
        conn_reset(c);
    }
}

/* Logs what the server says outside results: warnings from a query, and
 * the reason it gives before ending an idle session. */
static void on_notice(void *arg, const PGresult *res)
{
    const pg_conn_t *c = arg;
    const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *message = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    bool routine =
        severity != NULL && (strcmp(severity, "NOTICE") == 0 || strcmp(severity, "INFO") == 0 ||
                             strcmp(severity, "LOG") == 0 || strcmp(severity, "DEBUG") == 0);
    log_write(routine ? LOG_DEBUG : LOG_WARN, "pg_notice", "{s:s, s:s, s:s, s:i}", "severity",
              severity != NULL ? severity : "", "sqlstate", sqlstate != NULL ? sqlstate : "",
              "message", message != NULL ? message : "", "conn", (int)(c - c->pool->conns));
}

/* Starts a connection attempt; c is in CONN_BACKOFF with no PGconn. */
static void conn_connect(pg_conn_t *c)
{
    c->pg = PQconnectStart(c->pool->conninfo);
    c->state = CONN_CONNECTING;
    if (c->pg == NULL || PQstatus(c->pg) == CONNECTION_BAD) {
        conn_log_failure(c, "pg_connect_failed", "start");
        conn_reset(c);
        return;
    }
    PQsetNoticeReceiver(c->pg, on_notice, c);
    uv_timer_start(&c->timer, on_conn_timer, PG_POOL_CONNECT_TIMEOUT_MS, 0);
    /* libpq's documented first step: act as if PQconnectPoll asked to write. */
    conn_connect_step(c, PGRES_POLLING_WRITING);
}

static void on_poll(uv_poll_t *handle, int status, int events)
{
    pg_watch_t *w = handle->data;
    pg_conn_t *c = w->conn;
    if (c->watch != w)
        return;
    if (c->state == CONN_CONNECTING) {
        /* PQconnectPoll() reports a socket error itself. */
        conn_connect_step(c, PQconnectPoll(c->pg));
        return;
    }
    if (status < 0) {
        conn_fail(c, BILLOW_EUNAVAILABLE, uv_strerror(status));
        return;
    }
    if ((events & UV_READABLE) && !conn_read(c))
        return;
    /* Reading may have completed the query, or let the server take more of
     * our output; either way the set of events to watch may change. */
    if (conn_poll(c) < 0)
        conn_fail(c, BILLOW_EUNAVAILABLE, "write");
}

static void on_conn_timer(uv_timer_t *timer)
{
    pg_conn_t *c = timer->data;
    switch (c->state) {
    case CONN_BACKOFF:
        conn_connect(c);
        break;
    case CONN_CONNECTING:
        conn_log_failure(c, "pg_connect_failed", "connect timeout");
        conn_reset(c);
        break;
    case CONN_BUSY:
        /* Cancelling would block the loop (PQcancel connects synchronously);
         * closing the connection makes the server stop the query when it
         * next writes to the socket. */
        conn_fail(c, BILLOW_EUNAVAILABLE, "query timeout");
        break;
    case CONN_IDLE:
    case CONN_CLOSED:
        break;
    }
}

/* Sends waiting queries to idle connections, oldest first. */
static void dispatch(pg_pool_t *pool)
{
    for (int i = 0; i < pool->nconns && pool->head != NULL && !pool->destroying; i++) {
        pg_conn_t *c = &pool->conns[i];
        if (c->state != CONN_IDLE)
            continue;
        pg_query_t *q = waiting_pop(pool);
        if (!conn_send(c, q))
            waiting_push_front(pool, q);
    }
}

/* API ------------------------------------------------------------------------------ */

int pg_pool_create(uv_loop_t *loop, const char *conninfo, int size, pg_pool_t **out)
{
    char *parse_error = NULL;
    PQconninfoOption *options = NULL;

    if (loop == NULL || conninfo == NULL || out == NULL || size < 1 || size > PG_POOL_MAX_SIZE)
        goto fail;
    /* Reject a malformed string now, at start-up, rather than log connect
     * failures for it forever. */
    options = PQconninfoParse(conninfo, &parse_error);
    if (options == NULL) {
        const char *msg = parse_error != NULL ? parse_error : "out of memory";
        log_write(LOG_ERROR, "pg_conninfo_invalid", "{s:s%}", "error", msg, message_len(msg));
        goto fail;
    }
    PQconninfoFree(options);

    pg_pool_t *pool = mem_calloc(1, sizeof *pool);
    pool->loop = loop;
    pool->conninfo = mem_strdup(conninfo);
    pool->conns = mem_calloc((size_t)size, sizeof *pool->conns);
    pool->nconns = size;
    pool->timeout_ms = PG_POOL_QUERY_TIMEOUT_MS;
    uv_timer_init(loop, &pool->wait_timer);
    pool->wait_timer.data = pool;
    pool->open_handles++;
    for (int i = 0; i < size; i++) {
        pg_conn_t *c = &pool->conns[i];
        c->pool = pool;
        c->state = CONN_BACKOFF;
        c->backoff_ms = PG_POOL_BACKOFF_START_MS;
        uv_timer_init(loop, &c->timer);
        c->timer.data = c;
        pool->open_handles++;
    }
    for (int i = 0; i < size; i++)
        conn_connect(&pool->conns[i]);
    *out = pool;
    return 0;

fail:
    PQfreemem(parse_error);
    return BILLOW_EINTERNAL;
}

int pg_pool_query(pg_pool_t *pool, const char *tenant_id, const char *sql, int nparams,
                  const char *const *params, pg_query_cb cb, void *data)
{
    if (pool == NULL || sql == NULL || cb == NULL || nparams < 0 || nparams > PG_POOL_MAX_PARAMS ||
        (nparams > 0 && params == NULL))
        return BILLOW_EINTERNAL;
    if (pool->destroying || pool->nwaiting >= PG_POOL_MAX_WAITING)
        return BILLOW_EUNAVAILABLE;

    pg_query_t *q = mem_calloc(1, sizeof *q);
    q->tenant_id = mem_strdup(tenant_id);
    q->sql = mem_strdup(sql);
    q->nparams = nparams;
    q->params = mem_calloc((size_t)nparams, sizeof *q->params);
    for (int i = 0; i < nparams; i++)
        q->params[i] = mem_strdup(params[i]);
    q->cb = cb;
    q->data = data;
    uint64_t now = uv_now(pool->loop);
    q->deadline = pool->timeout_ms < UINT64_MAX - now ? now + pool->timeout_ms : UINT64_MAX;
    waiting_insert(pool, q);
    dispatch(pool);
    return 0;
}

void pg_pool_set_timeout_ms(pg_pool_t *pool, uint64_t timeout_ms)
{
    pool->timeout_ms = timeout_ms;
}

bool pg_pool_ready(const pg_pool_t *pool)
{
    for (int i = 0; i < pool->nconns; i++) {
        if (pool->conns[i].state == CONN_IDLE || pool->conns[i].state == CONN_BUSY)
            return true;
    }
    return false;
}

void pg_pool_destroy(pg_pool_t *pool)
{
    if (pool == NULL || pool->destroying)
        return;
    pool->destroying = true;

    /* Close everything first, so callbacks run against a pool that takes no
     * more queries and has no connection left to misuse. */
    pg_query_t *inflight = NULL;
    for (int i = 0; i < pool->nconns; i++) {
        pg_conn_t *c = &pool->conns[i];
        pg_query_t *q = conn_take_query(c);
        if (q != NULL) {
            q->next = inflight;
            inflight = q;
        }
        watch_close(c, c->pg);
        c->pg = NULL;
        c->state = CONN_CLOSED;
        uv_close((uv_handle_t *)&c->timer, on_conn_timer_close);
    }
    uv_close((uv_handle_t *)&pool->wait_timer, on_wait_timer_close);

    while (inflight != NULL) {
        pg_query_t *q = inflight;
        inflight = q->next;
        query_finish(q, BILLOW_EUNAVAILABLE, NULL);
    }
    pg_query_t *q;
    while ((q = waiting_pop(pool)) != NULL)
        query_finish(q, BILLOW_EUNAVAILABLE, NULL);
}

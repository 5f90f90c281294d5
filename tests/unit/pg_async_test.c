/* pg_async tests: the pool against a real Postgres.
 *
 * BILLOW_TEST_DATABASE_URL names the database; a test that needs it fails
 * (never skips) when it is not set. Each test gives its connections an
 * application_name of its own, so it can find and kill exactly its own
 * backends in pg_stat_activity while other tests run in parallel. Tests that
 * need no server point the pool at a loopback port nobody listens on.
 * Every test ends by destroying the pool and checking that the loop closes.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mem.h"
#include "pg_async.h"

#define CONCURRENT_QUERIES 200

/* What one query's callback saw. */
typedef struct {
    int calls;             /* Times the callback ran. */
    int err;               /* Its err. */
    bool had_res;          /* Whether res was non-NULL. */
    ExecStatusType status; /* PQresultStatus(res). */
    char *value;           /* Row 0, column 0, copied; NULL if none. */
    char *value2;          /* Row 0, column 1, copied; NULL if none. */
    char *sqlstate;        /* SQLSTATE of an error result, copied. */
    int *done;             /* Incremented on each call, if set. */
} result_t;

static void result_dispose(result_t *r)
{
    free(r->value);
    free(r->value2);
    free(r->sqlstate);
}

static void on_result(void *data, int err, const PGresult *res)
{
    result_t *r = data;
    r->calls++;
    r->err = err;
    r->had_res = res != NULL;
    if (r->done != NULL)
        (*r->done)++;
    if (res == NULL)
        return;
    r->status = PQresultStatus(res);
    if (PQntuples(res) > 0 && PQnfields(res) > 0) {
        free(r->value);
        r->value = mem_strdup(PQgetisnull(res, 0, 0) ? NULL : PQgetvalue(res, 0, 0));
    }
    if (PQntuples(res) > 0 && PQnfields(res) > 1) {
        free(r->value2);
        r->value2 = mem_strdup(PQgetvalue(res, 0, 1));
    }
    free(r->sqlstate);
    r->sqlstate = mem_strdup(PQresultErrorField(res, PG_DIAG_SQLSTATE));
}

/* The test's own application_name: unique per test process. */
static char *app_name(void)
{
    return mem_printf("billow_pg_async_test_%d", (int)getpid());
}

/* BILLOW_TEST_DATABASE_URL with this test's application_name added. */
static char *test_conninfo(void)
{
    const char *url = getenv("BILLOW_TEST_DATABASE_URL");
    if (url == NULL || url[0] == '\0')
        cr_assert_fail("BILLOW_TEST_DATABASE_URL is not set: the pg_async tests need a real "
                       "Postgres 15 (e.g. postgresql://user@127.0.0.1:5432/db)");
    char *app = app_name();
    char *conninfo;
    if (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0)
        conninfo = mem_printf("%s%capplication_name=%s", url, strchr(url, '?') ? '&' : '?', app);
    else
        conninfo = mem_printf("%s application_name=%s", url, app);
    free(app);
    return conninfo;
}

/* A loopback address where nothing listens: bind a port, then free it. */
static char *closed_port_conninfo(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    socklen_t len = sizeof addr;
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
    close(fd);
    return mem_printf("host=127.0.0.1 port=%d dbname=none user=none", ntohs(addr.sin_port));
}

static pg_pool_t *pool_open(uv_loop_t *loop, const char *conninfo, int size)
{
    cr_assert_eq(uv_loop_init(loop), 0);
    pg_pool_t *pool = NULL;
    cr_assert_eq(pg_pool_create(loop, conninfo, size, &pool), 0);
    cr_assert_not_null(pool);
    return pool;
}

/* Destroys pool (unless NULL: already destroyed), lets every handle close
 * and checks the loop is left empty. */
static void pool_close(uv_loop_t *loop, pg_pool_t *pool)
{
    pg_pool_destroy(pool);
    cr_assert_eq(uv_run(loop, UV_RUN_DEFAULT), 0);
    cr_assert_eq(uv_loop_close(loop), 0, "the loop still has handles after destroy");
}

static void run_until(uv_loop_t *loop, const int *done, int target)
{
    while (*done < target)
        uv_run(loop, UV_RUN_ONCE);
}

/* Runs one query and the loop until its callback has run. */
static void query_sync(uv_loop_t *loop, pg_pool_t *pool, const char *tenant, const char *sql,
                       int nparams, const char *const *params, result_t *r)
{
    int done = 0;
    result_dispose(r);
    *r = (result_t){.done = &done};
    cr_assert_eq(pg_pool_query(pool, tenant, sql, nparams, params, on_result, r), 0);
    run_until(loop, &done, 1);
    r->done = NULL;
    cr_assert_eq(r->calls, 1, "callback ran %d times", r->calls);
}

static void on_sleep_timer(uv_timer_t *timer)
{
    *(bool *)timer->data = true;
}

/* Lets the loop run for ms (to give a reconnect time), without blocking it. */
static void loop_sleep(uv_loop_t *loop, uint64_t ms)
{
    uv_timer_t timer;
    bool fired = false;
    uv_timer_init(loop, &timer);
    timer.data = &fired;
    uv_timer_start(&timer, on_sleep_timer, ms, 0);
    while (!fired)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&timer, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

Test(pg_async, query_with_params_returns_the_computed_value, .timeout = 30)
{
    char *conninfo = test_conninfo();
    uv_loop_t loop;
    pg_pool_t *pool = pool_open(&loop, conninfo, 2);
    result_t r = {0};

    const char *params[] = {"41"};
    query_sync(&loop, pool, "ten_a", "SELECT $1::int + 1", 1, params, &r);
    cr_assert_eq(r.err, 0);
    cr_assert_eq(r.status, PGRES_TUPLES_OK);
    cr_assert_str_eq(r.value, "42");
    cr_assert(pg_pool_ready(pool));

    const char *null_param[] = {NULL};
    query_sync(&loop, pool, "ten_a", "SELECT $1::text IS NULL", 1, null_param, &r);
    cr_assert_eq(r.err, 0);
    cr_assert_str_eq(r.value, "t", "a NULL param must reach the server as SQL NULL");

    result_dispose(&r);
    pool_close(&loop, pool);
    free(conninfo);
}

Test(pg_async, tenant_id_is_set_per_query_and_null_tenant_sees_empty, .timeout = 30)
{
    char *conninfo = test_conninfo();
    uv_loop_t loop;
    /* One connection, so every query reuses the session the previous one
     * set the tenant on. */
    pg_pool_t *pool = pool_open(&loop, conninfo, 1);
    result_t r = {0};
    const char *sql = "SELECT current_setting('app.tenant_id', true)";

    query_sync(&loop, pool, "ten_01", sql, 0, NULL, &r);
    cr_assert_eq(r.err, 0);
    cr_assert_str_eq(r.value, "ten_01");

    query_sync(&loop, pool, NULL, sql, 0, NULL, &r);
    cr_assert_eq(r.err, 0);
    cr_assert_str_eq(r.value, "", "a NULL tenant must not inherit the previous tenant");

    query_sync(&loop, pool, "o'brien'; RESET ALL; --", sql, 0, NULL, &r);
    cr_assert_eq(r.err, 0);
    cr_assert_str_eq(r.value, "o'brien'; RESET ALL; --", "the tenant id is a parameter, not SQL");

    result_dispose(&r);
    pool_close(&loop, pool);
    free(conninfo);
}

Test(pg_async, two_hundred_concurrent_queries_on_four_connections_all_answer, .timeout = 60)
{
    char *conninfo = test_conninfo();
    uv_loop_t loop;
    pg_pool_t *pool = pool_open(&loop, conninfo, 4);
    result_t *r = mem_calloc(CONCURRENT_QUERIES, sizeof *r);
    char tenants[CONCURRENT_QUERIES][16];
    int done = 0;

    for (int i = 0; i < CONCURRENT_QUERIES; i++) {
        char n[16];
        snprintf(n, sizeof n, "%d", i);
        snprintf(tenants[i], sizeof tenants[i], "ten_%d", i);
        const char *params[] = {n};
        r[i].done = &done;
        cr_assert_eq(pg_pool_query(pool, tenants[i],
                                   "SELECT $1::int * 2, current_setting('app.tenant_id')", 1,
                                   params, on_result, &r[i]),
                     0);
    }
    run_until(&loop, &done, CONCURRENT_QUERIES);

    for (int i = 0; i < CONCURRENT_QUERIES; i++) {
        char want[16];
        snprintf(want, sizeof want, "%d", i * 2);
        cr_assert_eq(r[i].calls, 1, "query %d: callback ran %d times", i, r[i].calls);
        cr_assert_eq(r[i].err, 0, "query %d failed", i);
        cr_assert_str_eq(r[i].value, want, "query %d", i);
        cr_assert_str_eq(r[i].value2, tenants[i], "query %d ran as another tenant", i);
        result_dispose(&r[i]);
    }
    free(r);
    pool_close(&loop, pool);
    free(conninfo);
}

Test(pg_async, sql_error_is_internal_with_sqlstate_and_connection_stays_usable, .timeout = 30)
{
    char *conninfo = test_conninfo();
    uv_loop_t loop;
    pg_pool_t *pool = pool_open(&loop, conninfo, 1);
    result_t r = {0};

    query_sync(&loop, pool, "ten_a", "SELECT 'abc'::int", 0, NULL, &r);
    cr_assert_eq(r.err, BILLOW_EINTERNAL);
    cr_assert(r.had_res, "the error result must reach the callback");
    cr_assert_eq(r.status, PGRES_FATAL_ERROR);
    cr_assert_str_eq(r.sqlstate, "22P02");

    query_sync(&loop, pool, "ten_a", "SELEC 1", 0, NULL, &r);
    cr_assert_eq(r.err, BILLOW_EINTERNAL);
    cr_assert_str_eq(r.sqlstate, "42601");

    const char *params[] = {"1"};
    query_sync(&loop, pool, "ten_a", "SELECT $1::int + 1", 1, params, &r);
    cr_assert_eq(r.err, 0, "the connection must serve again after a failed query");
    cr_assert_str_eq(r.value, "2");

    result_dispose(&r);
    pool_close(&loop, pool);
    free(conninfo);
}

/* The number of this test's backends that are not `except` (a pid, or "0"). */
static int own_backends(uv_loop_t *loop, pg_pool_t *pool, const char *except, int *failures)
{
    char *app = app_name();
    const char *params[] = {app, except};
    result_t r = {0};
    query_sync(loop, pool, NULL,
               "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 "
               "AND pid <> $2::int",
               2, params, &r);
    free(app);
    int n = -1;
    if (r.err == 0) {
        n = atoi(r.value);
    } else {
        cr_assert_eq(r.err, BILLOW_EUNAVAILABLE, "only the killed connection may fail");
        (*failures)++;
    }
    result_dispose(&r);
    return n;
}

Test(pg_async, killed_connection_fails_at_most_its_query_and_is_reconnected, .timeout = 60)
{
    char *conninfo = test_conninfo();
    uv_loop_t loop;
    pg_pool_t *pool = pool_open(&loop, conninfo, 2);
    int failures = 0;
    result_t r = {0};

    while (own_backends(&loop, pool, "0", &failures) != 2)
        loop_sleep(&loop, 20);
    cr_assert_eq(failures, 0);

    char *app = app_name();
    const char *params[] = {app};
    query_sync(&loop, pool, NULL,
               "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity "
               "WHERE application_name = $1 AND pid <> pg_backend_pid()",
               1, params, &r);
    free(app);
    cr_assert_eq(r.err, 0);
    cr_assert_str_eq(r.value2, "t", "the other pool connection was not terminated");
    char *killed = mem_strdup(r.value);

    /* Both connections live again, neither of them the killed backend: the
     * pool reconnected. Meanwhile queries keep being answered. */
    while (own_backends(&loop, pool, killed, &failures) != 2)
        loop_sleep(&loop, 20);
    cr_assert_leq(failures, 1, "%d queries failed; only the killed one's may", failures);

    for (int i = 0; i < 10; i++) {
        const char *p[] = {"6"};
        query_sync(&loop, pool, "ten_a", "SELECT $1::int * 7", 1, p, &r);
        cr_assert_eq(r.err, 0);
        cr_assert_str_eq(r.value, "42");
    }

    free(killed);
    result_dispose(&r);
    pool_close(&loop, pool);
    free(conninfo);
}

Test(pg_async, killed_connection_fails_its_running_query_with_unavailable, .timeout = 60)
{
    char *conninfo = test_conninfo();
    uv_loop_t loop;
    pg_pool_t *pool = pool_open(&loop, conninfo, 2);
    int failures = 0;
    while (own_backends(&loop, pool, "0", &failures) != 2)
        loop_sleep(&loop, 20);

    /* The sleep takes one connection; the kill runs on the other and ends
     * the sleeping one's session mid-query. */
    int done = 0;
    result_t sleeper = {.done = &done};
    result_t killer = {.done = &done};
    char *app = app_name();
    const char *params[] = {app};
    cr_assert_eq(pg_pool_query(pool, NULL, "SELECT pg_sleep(20)", 0, NULL, on_result, &sleeper), 0);
    cr_assert_eq(pg_pool_query(pool, NULL,
                               "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) "
                               "FROM pg_stat_activity "
                               "WHERE application_name = $1 AND pid <> pg_backend_pid()",
                               1, params, on_result, &killer),
                 0);
    run_until(&loop, &done, 2);
    free(app);

    cr_assert_eq(killer.err, 0);
    cr_assert_str_eq(killer.value, "1");
    cr_assert_eq(sleeper.calls, 1);
    cr_assert_eq(sleeper.err, BILLOW_EUNAVAILABLE,
                 "a lost session is unavailable, not a SQL error");
    cr_assert_not(sleeper.had_res);

    result_t r = {0};
    for (int i = 0; i < 4; i++) {
        query_sync(&loop, pool, NULL, "SELECT 1", 0, NULL, &r);
        cr_assert_eq(r.err, 0);
    }

    result_dispose(&r);
    result_dispose(&killer);
    result_dispose(&sleeper);
    pool_close(&loop, pool);
    free(conninfo);
}

Test(pg_async, running_query_past_timeout_fails_and_connection_is_replaced, .timeout = 30)
{
    char *conninfo = test_conninfo();
    uv_loop_t loop;
    pg_pool_t *pool = pool_open(&loop, conninfo, 1);
    result_t r = {0};

    query_sync(&loop, pool, NULL, "SELECT pg_backend_pid()", 0, NULL, &r);
    cr_assert_eq(r.err, 0);
    char *first_pid = mem_strdup(r.value);

    pg_pool_set_timeout_ms(pool, 200);
    query_sync(&loop, pool, NULL, "SELECT pg_sleep(3)", 0, NULL, &r);
    cr_assert_eq(r.err, BILLOW_EUNAVAILABLE);
    cr_assert_not(r.had_res);

    pg_pool_set_timeout_ms(pool, PG_POOL_QUERY_TIMEOUT_MS);
    query_sync(&loop, pool, NULL, "SELECT pg_backend_pid()", 0, NULL, &r);
    cr_assert_eq(r.err, 0, "the pool must reconnect after a timed-out query");
    cr_assert_str_neq(r.value, first_pid, "the timed-out connection must have been closed");

    free(first_pid);
    result_dispose(&r);
    pool_close(&loop, pool);
    free(conninfo);
}

Test(pg_async, closed_port_fails_queries_with_unavailable_after_timeout, .timeout = 30)
{
    char *conninfo = closed_port_conninfo();
    uv_loop_t loop;
    pg_pool_t *pool = pool_open(&loop, conninfo, 2);
    pg_pool_set_timeout_ms(pool, 300);
    result_t r[3] = {{0}};
    int done = 0;

    for (int i = 0; i < 3; i++) {
        r[i].done = &done;
        cr_assert_eq(pg_pool_query(pool, "ten_a", "SELECT 1", 0, NULL, on_result, &r[i]), 0);
    }
    cr_assert_eq(done, 0, "callbacks must not run inside pg_pool_query");
    run_until(&loop, &done, 3);

    for (int i = 0; i < 3; i++) {
        cr_assert_eq(r[i].calls, 1);
        cr_assert_eq(r[i].err, BILLOW_EUNAVAILABLE);
        cr_assert_not(r[i].had_res);
    }
    cr_assert_not(pg_pool_ready(pool));
    pool_close(&loop, pool);
    free(conninfo);
}

Test(pg_async, destroy_fails_each_waiting_query_once)
{
    char *conninfo = closed_port_conninfo();
    uv_loop_t loop;
    pg_pool_t *pool = pool_open(&loop, conninfo, 2);
    result_t r[5] = {{0}};

    for (int i = 0; i < 5; i++)
        cr_assert_eq(pg_pool_query(pool, NULL, "SELECT 1", 0, NULL, on_result, &r[i]), 0);
    uv_run(&loop, UV_RUN_NOWAIT);

    pg_pool_destroy(pool);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(r[i].calls, 1, "query %d: callback ran %d times", i, r[i].calls);
        cr_assert_eq(r[i].err, BILLOW_EUNAVAILABLE);
    }
    pool_close(&loop, NULL);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(r[i].calls, 1, "query %d was failed again while closing", i);
    free(conninfo);
}

Test(pg_async, destroy_fails_running_and_waiting_queries_once, .timeout = 30)
{
    char *conninfo = test_conninfo();
    uv_loop_t loop;
    pg_pool_t *pool = pool_open(&loop, conninfo, 1);
    result_t r[4] = {{0}};

    for (int i = 0; i < 4; i++)
        cr_assert_eq(pg_pool_query(pool, NULL, "SELECT pg_sleep(2)", 0, NULL, on_result, &r[i]), 0);
    /* The first query is sent as soon as the connection is up. */
    while (!pg_pool_ready(pool))
        uv_run(&loop, UV_RUN_ONCE);

    pg_pool_destroy(pool);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(r[i].calls, 1, "query %d: callback ran %d times", i, r[i].calls);
        cr_assert_eq(r[i].err, BILLOW_EUNAVAILABLE);
    }
    pool_close(&loop, NULL);
    free(conninfo);
}

/* Destroys the pool from inside the first callback. */
typedef struct destroy_ctx_s destroy_ctx_t;
typedef struct {
    result_t r;         /* What the callback saw. */
    destroy_ctx_t *ctx; /* The test's state. */
} destroy_query_t;
struct destroy_ctx_s {
    pg_pool_t *pool;      /* Destroyed by the first callback, then NULL. */
    destroy_query_t q[4]; /* One per query. */
};

static void on_result_then_destroy(void *data, int err, const PGresult *res)
{
    destroy_query_t *q = data;
    on_result(&q->r, err, res);
    if (q->ctx->pool != NULL) {
        pg_pool_t *pool = q->ctx->pool;
        q->ctx->pool = NULL;
        pg_pool_destroy(pool);
    }
}

Test(pg_async, destroy_from_a_callback_fails_the_rest_once, .timeout = 30)
{
    char *conninfo = test_conninfo();
    uv_loop_t loop;
    destroy_ctx_t ctx = {0};
    ctx.pool = pool_open(&loop, conninfo, 1);

    for (int i = 0; i < 4; i++) {
        ctx.q[i].ctx = &ctx;
        cr_assert_eq(
            pg_pool_query(ctx.pool, NULL, "SELECT 1", 0, NULL, on_result_then_destroy, &ctx.q[i]),
            0);
    }
    while (ctx.q[0].r.calls == 0)
        uv_run(&loop, UV_RUN_ONCE);

    cr_assert_eq(ctx.q[0].r.err, 0);
    cr_assert_str_eq(ctx.q[0].r.value, "1");
    for (int i = 1; i < 4; i++) {
        cr_assert_eq(ctx.q[i].r.calls, 1, "query %d: callback ran %d times", i, ctx.q[i].r.calls);
        cr_assert_eq(ctx.q[i].r.err, BILLOW_EUNAVAILABLE);
    }
    pool_close(&loop, NULL);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(ctx.q[i].r.calls, 1);
        result_dispose(&ctx.q[i].r);
    }
    free(conninfo);
}

/* Queues the next query of a chain from inside the callback of the last. */
typedef struct {
    pg_pool_t *pool; /* The pool queried. */
    int answered;    /* Queries answered so far. */
    int wrong;       /* Answers that were not the expected number. */
    int failed;      /* Queries that failed. */
} chain_t;

static void on_chain_result(void *data, int err, const PGresult *res)
{
    chain_t *chain = data;
    if (err != 0) {
        chain->failed++;
        return;
    }
    chain->answered++;
    if (atoi(PQgetvalue(res, 0, 0)) != chain->answered)
        chain->wrong++;
    if (chain->answered == 20)
        return;
    char n[16];
    snprintf(n, sizeof n, "%d", chain->answered);
    const char *params[] = {n};
    if (pg_pool_query(chain->pool, "ten_a", "SELECT $1::int + 1", 1, params, on_chain_result,
                      chain) != 0)
        chain->failed++;
}

Test(pg_async, callback_may_queue_the_next_query, .timeout = 30)
{
    char *conninfo = test_conninfo();
    uv_loop_t loop;
    chain_t chain = {0};
    chain.pool = pool_open(&loop, conninfo, 1);

    const char *params[] = {"0"};
    cr_assert_eq(pg_pool_query(chain.pool, "ten_a", "SELECT $1::int + 1", 1, params,
                               on_chain_result, &chain),
                 0);
    while (chain.answered < 20 && chain.failed == 0)
        uv_run(&loop, UV_RUN_ONCE);

    cr_assert_eq(chain.failed, 0);
    cr_assert_eq(chain.wrong, 0);
    cr_assert_eq(chain.answered, 20);
    pool_close(&loop, chain.pool);
    free(conninfo);
}

Test(pg_async, queue_beyond_max_waiting_fails_at_once_without_callback)
{
    char *conninfo = closed_port_conninfo();
    uv_loop_t loop;
    pg_pool_t *pool = pool_open(&loop, conninfo, 1);
    result_t *r = mem_calloc(PG_POOL_MAX_WAITING + 1, sizeof *r);

    for (int i = 0; i < PG_POOL_MAX_WAITING; i++)
        cr_assert_eq(pg_pool_query(pool, NULL, "SELECT 1", 0, NULL, on_result, &r[i]), 0);
    cr_assert_eq(pg_pool_query(pool, NULL, "SELECT 1", 0, NULL, on_result, &r[PG_POOL_MAX_WAITING]),
                 BILLOW_EUNAVAILABLE);

    pg_pool_destroy(pool);
    for (int i = 0; i < PG_POOL_MAX_WAITING; i++)
        cr_assert_eq(r[i].calls, 1, "query %d: callback ran %d times", i, r[i].calls);
    cr_assert_eq(r[PG_POOL_MAX_WAITING].calls, 0, "a refused query's callback must never run");
    pool_close(&loop, NULL);
    free(r);
    free(conninfo);
}

Test(pg_async, bad_arguments_are_refused_without_callback)
{
    char *conninfo = closed_port_conninfo();
    uv_loop_t loop;
    pg_pool_t *other = NULL;
    cr_assert_eq(pg_pool_create(&loop, conninfo, 0, &other), BILLOW_EINTERNAL);
    cr_assert_eq(pg_pool_create(&loop, conninfo, PG_POOL_MAX_SIZE + 1, &other), BILLOW_EINTERNAL);
    cr_assert_eq(pg_pool_create(&loop, "this is not a conninfo", 1, &other), BILLOW_EINTERNAL);
    cr_assert_null(other);

    pg_pool_t *pool = pool_open(&loop, conninfo, 1);
    result_t r = {0};
    const char *params[PG_POOL_MAX_PARAMS + 1] = {0};
    cr_assert_eq(
        pg_pool_query(pool, NULL, "SELECT 1", PG_POOL_MAX_PARAMS + 1, params, on_result, &r),
        BILLOW_EINTERNAL);
    cr_assert_eq(pg_pool_query(pool, NULL, "SELECT $1", 1, NULL, on_result, &r), BILLOW_EINTERNAL);
    cr_assert_eq(pg_pool_query(pool, NULL, NULL, 0, NULL, on_result, &r), BILLOW_EINTERNAL);
    pool_close(&loop, pool);
    cr_assert_eq(r.calls, 0);
    free(conninfo);
}

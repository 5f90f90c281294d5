/* pg_async: a pool of non-blocking libpq connections on the libuv loop.
 *
 * The api reads Postgres without ever blocking its loop: every connection
 * is in non-blocking mode and watched by a uv_poll_t, queries are sent with
 * PQsendQueryParams and results collected as the socket becomes readable.
 *
 * API: pg_pool_query() queues a read; the callback runs exactly once, on the
 * loop thread, with the result or an error. Each query runs as the tenant it
 * is given: the pool sets app.tenant_id for the session before the query (in
 * one pipeline with it, so it costs no extra round trip), and row-level
 * security scopes every row the query can see. A NULL tenant sets "" and
 * sees no tenant rows.
 *
 * Design: a fixed number of connections, a FIFO of waiting queries bounded
 * by PG_POOL_MAX_WAITING (beyond it, queries fail at once with
 * BILLOW_EUNAVAILABLE rather than queue without limit). A broken connection
 * fails its query and is reconnected with a backoff; the pool keeps serving
 * on the others.
 */
#ifndef BILLOW_PG_ASYNC_H
#define BILLOW_PG_ASYNC_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "err.h"

/* Queries waiting for a free connection, at most; more fail fast (503)
 * instead of growing memory and latency without bound under overload. */
#define PG_POOL_MAX_WAITING 4096
/* Longest a query may wait for a connection plus run, before it fails. */
#define PG_POOL_QUERY_TIMEOUT_MS 10000
#define PG_POOL_MAX_PARAMS       16
/* Most connections a pool may open: each is a Postgres backend process, and
 * a configuration typo must not fork thousands of them. Matches the bound
 * config.c puts on PG_POOL_SIZE. */
#define PG_POOL_MAX_SIZE 256

typedef struct pg_pool_s pg_pool_t;

/* res is the query's result (PGRES_TUPLES_OK or PGRES_COMMAND_OK) when err
 * is 0; owned by the pool and valid only during the callback. On failure err
 * is BILLOW_EUNAVAILABLE (no connection, timeout) or BILLOW_EINTERNAL (the
 * query failed; res then holds the error result, or NULL). */
typedef void (*pg_query_cb)(void *data, int err, const PGresult *res);

/* Opens `size` (1..PG_POOL_MAX_SIZE) connections to conninfo on loop.
 * Connecting continues in the background; queries sent before a connection is
 * up wait for it. Returns 0 and sets *out, or BILLOW_EINTERNAL for a bad
 * argument or a conninfo libpq cannot parse. */
int pg_pool_create(uv_loop_t *loop, const char *conninfo, int size,
                   pg_pool_t **out) BILLOW_MUSTCHECK;
/* Queues sql with text params (copied) for tenant_id (NULL: no tenant).
 * Returns 0 and later calls cb once, or returns an error and never calls it. */
int pg_pool_query(pg_pool_t *pool, const char *tenant_id, const char *sql, int nparams,
                  const char *const *params, pg_query_cb cb, void *data) BILLOW_MUSTCHECK;
/* Sets the timeout of queries queued from now on (PG_POOL_QUERY_TIMEOUT_MS
 * by default), counted from pg_pool_query(): waiting plus running. */
void pg_pool_set_timeout_ms(pg_pool_t *pool, uint64_t timeout_ms);
/* True when at least one connection is up. */
bool pg_pool_ready(const pg_pool_t *pool);
/* Fails queued queries with BILLOW_EUNAVAILABLE, closes every connection and
 * frees the pool once the handles are closed. */
void pg_pool_destroy(pg_pool_t *pool);

#endif

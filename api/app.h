/* app: the api process's context, passed to every handler.
 *
 * All mutable state of the front lives here (loop->data points to it), not
 * in globals: the configuration (read-only after start), the HTTP server,
 * the Postgres read pool, the two Redis connections, the waiters of
 * `Prefer: wait` requests, the auth cache and the metrics.
 */
#ifndef BILLOW_APP_H
#define BILLOW_APP_H

#include <stdbool.h>
#include <uv.h>

#include "auth.h"
#include "config.h"
#include "http_conn.h"
#include "metrics.h"
#include "pg_async.h"
#include "password.h"
#include "redis_conn.h"
#include "seal.h"
#include "waiters.h"

typedef struct app_s {
    uv_loop_t *loop;          /* The one loop of the process. */
    const config_t *cfg;      /* Settings; read-only. */
    http_server_t *http;      /* The listener and its connections. */
    pg_pool_t *pg;            /* Read-only Postgres pool (role billow_api). */
    redis_conn_t *redis;      /* Commands: enqueue, status, replay. */
    redis_conn_t *redis_sub;  /* SUBSCRIBE billow:jobs:done for waiters. */
    waiters_t *waiters;       /* Requests waiting for jobs (Prefer: wait). */
    auth_cache_t *auth_cache; /* Recently verified API keys. */
    metrics_t *metrics;       /* Counters and histograms for /metrics. */
    seal_key_t seal_key;      /* ENCRYPTION_KEY, parsed. */
    unsigned char
        idempotency_key[32];        /* Keys the idempotency fingerprints (from ENCRYPTION_KEY). */
    unsigned char recovery_key[32]; /* Keys the recovery-code hashes (from ENCRYPTION_KEY). */
    seal_key_t cursor_key;       /* Seals dead-job listing cursors (from ENCRYPTION_KEY): a key of
                                    their own, since any caller can have many made. */
    password_params_t pw_params; /* scrypt cost of new hashes. */
    struct pwhash_s *pwhash;     /* Password hashing off the loop (pwhash.c). */
    char *openapi_json;          /* The API document served at /openapi.json. */
    size_t openapi_len;          /* Its length. */
    uv_signal_t sigterm;         /* Graceful stop. */
    uv_signal_t sigint;          /* Graceful stop (Ctrl-C). */
    uv_prepare_t log_flush;      /* Flushes the log buffer before the loop waits. */
    bool stopping;               /* SIGTERM seen: finishing in-flight requests. */
} app_t;

#endif

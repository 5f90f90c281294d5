/* billow-api: the HTTP front.
 *
 * One process, one libuv loop, no threads in the request path. It reads its
 * settings once, opens the Postgres read pool and two Redis connections (one
 * for commands, one subscribed to job completions), and serves HTTP until
 * SIGTERM or SIGINT: then it stops accepting, lets in-flight requests
 * finish, closes everything and exits 0.
 *
 *   billow-api                    serve
 *   billow-api --config-markdown  print the settings table (for the README)
 */
#include <limits.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "app.h"
#include "config.h"
#include "crypto.h"
#include "jobq.h"
#include "log.h"
#include "mem.h"
#include "permissions.h"
#include "pwhash.h"
#include "router.h"
#include "validate.h"

/* The API document is read at start-up from beside the executable, where
 * the build puts the JSON form of docs/openapi.yaml. Bounded so a wrong
 * file cannot exhaust memory. */
#define OPENAPI_MAX_BYTES (8 * 1024 * 1024)

static int load_openapi(app_t *app)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return -1;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash == NULL)
        return -1;
    *slash = '\0';
    char *path = mem_printf("%s/openapi.json", exe);
    FILE *f = fopen(path, "rb");
    free(path);
    if (f == NULL)
        return -1;
    char *buf = mem_alloc(OPENAPI_MAX_BYTES);
    size_t len = fread(buf, 1, OPENAPI_MAX_BYTES, f);
    int bad = ferror(f) || len == OPENAPI_MAX_BYTES;
    fclose(f);
    if (bad) {
        free(buf);
        return -1;
    }
    app->openapi_json = buf;
    app->openapi_len = len;
    return 0;
}

/* Before the loop waits for I/O, the iteration's Redis commands go out (see
 * redis_conn_flush), then its log: one write(2) carries the access lines of
 * every request of the iteration instead of one write per line. */
static void on_log_flush(uv_prepare_t *h)
{
    app_t *app = h->data;
    redis_conn_flush(app->redis);
    fflush(stderr);
}

/* Each client connection is a file descriptor: lift the soft limit to the
 * hard one so MAX_CONNECTIONS, not a default of 1,024, is what bounds them. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            log_write(LOG_WARN, "fd_limit_unchanged", NULL);
    }
}

static void on_job_done(void *data, const char *channel, const char *message, size_t len)
{
    app_t *app = data;
    char id[IDS_MAX];
    /* "<job id>:<type>". */
    const char *colon = memchr(message, ':', len);
    size_t id_len = colon ? (size_t)(colon - message) : len;
    if (id_len == 0 || id_len >= sizeof(id))
        return;
    memcpy(id, message, id_len);
    id[id_len] = '\0';
    /* A key was revoked or rotated (by any api): forget every cached key,
     * so the old one stops working here now rather than within the TTL. */
    static const char key_jobs[] = "api_key.";
    size_t type_len = colon ? len - id_len - 1 : 0;
    if (type_len > strlen(key_jobs) && memcmp(colon + 1, key_jobs, strlen(key_jobs)) == 0)
        auth_cache_flush(app->auth_cache);
    waiters_notify(app->waiters, id);
}

static void on_http_stopped(void *data)
{
    app_t *app = data;
    waiters_destroy(app->waiters);
    app->waiters = NULL;
    pg_pool_destroy(app->pg);
    redis_conn_destroy(app->redis);
    redis_conn_destroy(app->redis_sub);
    uv_close((uv_handle_t *)&app->sigterm, NULL);
    uv_close((uv_handle_t *)&app->sigint, NULL);
    uv_close((uv_handle_t *)&app->log_flush, NULL);
    log_write(LOG_INFO, "api_stopped", NULL);
    fflush(stderr);
}

/* --hash-password: the scrypt hash of the password on stdin (one line),
 * for the demo seed, so set-up scripts never hash passwords themselves. */
static int hash_password_stdin(const config_t *cfg)
{
    char line[PASSWORD_MAX_BYTES + 2];
    if (fgets(line, sizeof line, stdin) == NULL) {
        fprintf(stderr, "billow-api: --hash-password reads the password from stdin\n");
        return 2;
    }
    line[strcspn(line, "\r\n")] = '\0';
    validate_error_t e;
    if (password_check_policy("password", line, &e) != 0) {
        fprintf(stderr, "billow-api: %s\n", e.message);
        return 1;
    }
    password_params_t params = {cfg->password_scrypt_log_n, PASSWORD_SCRYPT_R, PASSWORD_SCRYPT_P};
    char encoded[PASSWORD_ENCODED_MAX];
    int rc = password_hash(line, &params, encoded);
    OPENSSL_cleanse(line, sizeof line);
    if (rc != 0) {
        fprintf(stderr, "billow-api: hashing failed\n");
        return 1;
    }
    printf("%s\n", encoded);
    return 0;
}

static void on_signal(uv_signal_t *sig, int signum)
{
    app_t *app = sig->data;
    if (app->stopping)
        return;
    app->stopping = true;
    log_write(LOG_INFO, "api_stopping", "{s:i}", "signal", signum);
    http_server_stop(app->http, on_http_stopped, app);
}

int main(int argc, char **argv)
{
    config_t cfg;
    char err[256];
    if (argc == 2 && strcmp(argv[1], "--config-markdown") == 0) {
        config_print_markdown(stdout);
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "--permissions-markdown") == 0) {
        permissions_print_markdown(stdout);
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "--routes-json") == 0) {
        router_print_json(stdout);
        return 0;
    }
    if (argc != 1 && !(argc == 2 && strcmp(argv[1], "--hash-password") == 0)) {
        fprintf(stderr, "usage: billow-api [--config-markdown | --permissions-markdown | "
                        "--routes-json | --hash-password]\n");
        return 2;
    }
    if (config_load(&cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "billow-api: %s\n", err);
        return 1;
    }
    if (argc == 2) {
        int hrc = hash_password_stdin(&cfg);
        config_dispose(&cfg);
        return hrc;
    }
    seal_key_t seal_key;
    if (seal_key_parse(cfg.encryption_key, &seal_key) != 0) {
        fprintf(stderr, "billow-api: ENCRYPTION_KEY is not set: it must be 64 hex digits "
                        "(./scripts/up makes one in .data/encryption_key).\n");
        config_dispose(&cfg);
        return 1;
    }
    log_init("api", cfg.log_level);
    /* Fully buffered: flushed by the loop's prepare handle (on_log_flush). */
    static char log_buffer[1 << 16];
    setvbuf(stderr, log_buffer, _IOFBF, sizeof(log_buffer));
    if (router_check(err, sizeof(err)) != 0) {
        log_write(LOG_ERROR, "routes_invalid", "{s:s}", "error", err);
        config_dispose(&cfg);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();

    app_t app;
    memset(&app, 0, sizeof(app));
    app.cfg = &cfg;
    app.seal_key = seal_key;
    crypto_derive_key(seal_key.key, "billow idempotency fingerprints", app.idempotency_key);
    crypto_derive_key(seal_key.key, "billow recovery codes", app.recovery_key);
    crypto_derive_key(seal_key.key, "billow dead jobs cursors", app.cursor_key.key);
    app.pw_params =
        (password_params_t){cfg.password_scrypt_log_n, PASSWORD_SCRYPT_R, PASSWORD_SCRYPT_P};
    if (load_openapi(&app) != 0) {
        log_write(LOG_ERROR, "openapi_missing", "{s:s}", "error",
                  "openapi.json must be next to the billow-api executable (the build puts it "
                  "there)");
        config_dispose(&cfg);
        return 1;
    }
    uv_loop_t *loop = uv_default_loop();
    app.loop = loop;
    loop->data = &app;
    if (pwhash_init(&app, cfg.password_hash_concurrency) != 0) {
        log_write(LOG_ERROR, "pwhash_failed", "{s:s}", "error", "scrypt is not available");
        free(app.openapi_json);
        config_dispose(&cfg);
        return 1;
    }

    size_t nroutes;
    const route_t *routes = router_routes(&nroutes);
    const char **names = mem_calloc(nroutes, sizeof(char *));
    for (size_t i = 0; i < nroutes; i++)
        names[i] = routes[i].pattern;
    app.metrics = metrics_create(names, nroutes);
    app.auth_cache = auth_cache_create();
    app.waiters = waiters_create(loop);

    int exit_code = 0;
    if (pg_pool_create(loop, cfg.database_read_url, cfg.pg_pool_size, &app.pg) != 0 ||
        redis_conn_create(loop, cfg.redis_url, NULL, NULL, NULL, &app.redis) != 0 ||
        redis_conn_create(loop, cfg.redis_url, JOBQ_DONE_CHANNEL, on_job_done, &app,
                          &app.redis_sub) != 0) {
        log_write(LOG_ERROR, "backends_invalid", "{s:s}", "error",
                  "DATABASE_READ_URL or REDIS_URL is not usable");
        exit_code = 1;
        goto unwind;
    }

    http_limits_t limits = {
        .max_header_bytes = (size_t)cfg.max_header_bytes,
        .max_body_bytes = (size_t)cfg.max_body_bytes,
        .header_timeout_ms = (uint64_t)cfg.header_timeout_ms,
        .body_timeout_ms = (uint64_t)cfg.body_timeout_ms,
        .idle_timeout_ms = (uint64_t)cfg.idle_timeout_ms,
        .write_timeout_ms = (uint64_t)cfg.write_timeout_ms,
        .max_connections = cfg.max_connections,
    };
    int rc = http_server_start(loop, cfg.host, cfg.port, &limits, router_dispatch, router_log, &app,
                               &app.http);
    if (rc != 0) {
        log_write(LOG_ERROR, "listen_failed", "{s:s,s:i,s:s}", "host", cfg.host, "port", cfg.port,
                  "error", uv_strerror(rc));
        exit_code = 1;
        goto unwind;
    }
    uv_signal_init(loop, &app.sigterm);
    uv_signal_init(loop, &app.sigint);
    app.sigterm.data = app.sigint.data = &app;
    uv_signal_start(&app.sigterm, on_signal, SIGTERM);
    uv_signal_start(&app.sigint, on_signal, SIGINT);
    uv_prepare_init(loop, &app.log_flush);
    app.log_flush.data = &app;
    uv_prepare_start(&app.log_flush, on_log_flush);
    log_write(LOG_INFO, "api_listening", "{s:s,s:i}", "host", cfg.host, "port",
              http_server_port(app.http));

    uv_run(loop, UV_RUN_DEFAULT);
    goto done;

unwind:
    /* A start that failed half-way lets go of what it made, as a stop does,
     * so it exits with its reason and nothing else. */
    waiters_destroy(app.waiters);
    pg_pool_destroy(app.pg);
    redis_conn_destroy(app.redis);
    redis_conn_destroy(app.redis_sub);
    uv_run(loop, UV_RUN_DEFAULT);
done:
    rc = uv_loop_close(loop);
    if (rc != 0)
        log_write(LOG_WARN, "loop_not_closed", "{s:s}", "error", uv_strerror(rc));
    metrics_destroy(app.metrics);
    auth_cache_destroy(app.auth_cache);
    pwhash_dispose(&app);
    free(names);
    free(app.openapi_json);
    config_dispose(&cfg);
    return exit_code;
}

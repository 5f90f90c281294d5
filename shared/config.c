/* config: every setting of Billow, in one table, read once at start-up.
 *
 * Design: the table below is the only place a setting is named. Loading,
 * the error messages and the documentation (config_print_markdown) all walk
 * it, so a setting cannot exist without a default, bounds and a meaning.
 * Integers are parsed strictly (the whole text, in range) because a typo
 * such as PORT=80800 or MAX_BODY_BYTES=1m should stop the process at start-up,
 * not quietly become something else. Defaults are for a developer machine:
 * loopback addresses and the local services' own ports.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "redis_url.h"

#define STR(field, env, def, secret, meaning)                                                      \
    {                                                                                              \
#field, env, CONFIG_STRING, def, 0, 0, offsetof(config_t, field), secret, meaning          \
    }
#define INT(field, env, def, min, max, meaning)                                                    \
    {                                                                                              \
#field, env, CONFIG_INT, #def, min, max, offsetof(config_t, field), 0, meaning             \
    }

/* The bounds below are what keeps a mistyped value from turning into abuse
 * of the process itself: a body limit of gigabytes, a pool of thousands of
 * Postgres connections, a BLOCK of 0 (forever, which would stall shutdown). */
static const config_setting_t settings[] = {
    STR(database_url, "DATABASE_URL", "postgresql://billow_worker@127.0.0.1:15432/billow", 1,
        "Postgres URL of the workers (role billow_worker), with its password (the scripts "
        "draw one per data folder: $BILLOW_DATA/pg_billow_worker_password)."),
    STR(database_read_url, "DATABASE_READ_URL", "postgresql://billow_api@127.0.0.1:15432/billow", 1,
        "Postgres URL of the api's read path (read-only role billow_api), with its password "
        "($BILLOW_DATA/pg_billow_api_password); may point at a replica."),
    STR(redis_url, "REDIS_URL", "redis://127.0.0.1:16379/0", 1,
        "Redis URL: job queues, job status, idempotency keys. "
        "`redis://[[user]:password@]host[:port][/db]`: with a password every connection "
        "sends AUTH first (with a user: a Redis ACL user); both percent-encoded."),
    STR(host, "HOST", "127.0.0.1", 0, "Address the api listens on."),
    INT(port, "PORT", 8080, 1, 65535, "Port the api listens on."),
    STR(platform_admin_token, "PLATFORM_ADMIN_TOKEN", "", 1,
        "Bearer token of the platform operator; empty refuses every platform route."),
    STR(log_level, "LOG_LEVEL", "info", 0, "Lowest level logged: debug, info, warn or error."),
    INT(pg_pool_size, "PG_POOL_SIZE", 8, 1, 256, "Postgres connections per api process."),
    INT(max_header_bytes, "MAX_HEADER_BYTES", 16384, 1024, 1048576,
        "Largest request head in bytes; larger is answered 431."),
    INT(max_body_bytes, "MAX_BODY_BYTES", 1048576, 1024, 67108864,
        "Largest request body in bytes; larger is answered 413."),
    INT(header_timeout_ms, "HEADER_TIMEOUT_MS", 10000, 10, 600000,
        "Time allowed to receive a request head, in milliseconds."),
    INT(body_timeout_ms, "BODY_TIMEOUT_MS", 30000, 10, 600000,
        "Time allowed to receive a request body, in milliseconds."),
    INT(idle_timeout_ms, "IDLE_TIMEOUT_MS", 60000, 10, 3600000,
        "Time a keep-alive connection may sit idle, in milliseconds."),
    INT(write_timeout_ms, "WRITE_TIMEOUT_MS", 60000, 10, 3600000,
        "Time allowed to send a response, in milliseconds: a client that reads it more slowly "
        "is cut off (as is one that reads nothing for IDLE_TIMEOUT_MS)."),
    INT(max_connections, "MAX_CONNECTIONS", 10000, 1, 1000000,
        "Open client connections per api process; more are refused."),
    INT(max_wait_seconds, "MAX_WAIT_SECONDS", 30, 0, 300,
        "Largest Prefer: wait=N honoured, in seconds; 0 never waits."),
    INT(worker_batch, "WORKER_BATCH", 256, 1, 10000,
        "Jobs a worker reads and commits in one transaction."),
    INT(invoice_worker_batch, "INVOICE_WORKER_BATCH", 1000, 1, 10000,
        "WORKER_BATCH for the invoice kind: renewals are written set-based, a batch at a time, "
        "so a larger batch costs less per renewal."),
    INT(worker_block_ms, "WORKER_BLOCK_MS", 2000, 1, 60000,
        "How long a worker's XREADGROUP blocks waiting for jobs, in milliseconds."),
    INT(visibility_timeout_ms, "VISIBILITY_TIMEOUT_MS", 60000, 100, 86400000,
        "Idle time after which another worker takes over a delivered job, in milliseconds."),
    INT(max_deliveries, "MAX_DELIVERIES", 10, 1, 1000, "Deliveries after which a job goes dead."),
    INT(max_attempts, "MAX_ATTEMPTS", 8, 1, 1000,
        "Retryable failures after which a job goes dead."),
    INT(backoff_base_ms, "BACKOFF_BASE_MS", 1000, 1, 86400000,
        "Delay before the first retry, in milliseconds; doubles each retry."),
    INT(backoff_max_ms, "BACKOFF_MAX_MS", 3600000, 1, 604800000,
        "Longest delay between retries, in milliseconds."),
    INT(job_status_ttl_s, "JOB_STATUS_TTL_S", 604800, 60, 31536000,
        "How long a finished job's status is kept, in seconds."),
    INT(outbox_sweep_ms, "OUTBOX_SWEEP_MS", 2000, 10, 3600000,
        "How often workers relay outbox rows left behind by a crash, in milliseconds."),
    INT(renewal_scan_ms, "RENEWAL_SCAN_MS", 1000, 10, 3600000,
        "How often the renewal scheduler looks for ended periods and advancing test clocks, in "
        "milliseconds."),
    INT(renewal_batch, "RENEWAL_BATCH", 1000, 1, 100000,
        "Due subscriptions the renewal scheduler enqueues per scan step."),
    STR(faults, "BILLOW_FAULTS", "", 0,
        "Crash points for the crash-safety tests (\"point\" or \"point:N\", comma-separated); "
        "empty in production."),
    STR(encryption_key, "ENCRYPTION_KEY", "", 1,
        "64 hex digits: the AES-256-GCM key that seals TOTP secrets and emailed tokens at rest "
        "(the api refuses to start without it; the scripts generate one)."),
    STR(stripe_api_base, "STRIPE_API_BASE", "https://api.stripe.com", 0,
        "Where the workers reach Stripe (the scripts point it at the Stripe fake unless "
        "STRIPE_API_KEY is set). Each tenant's own secret key is a tenant setting."),
    INT(charger_worker_batch, "CHARGER_WORKER_BATCH", 32, 1, 1000,
        "WORKER_BATCH for the charger kind: each job calls Stripe inside the batch's "
        "transaction, so a smaller batch holds its locks for less time."),
    INT(charger_parallel, "CHARGER_PARALLEL", 16, 1, 32,
        "Calls to Stripe a charger makes at once for the charges of one batch (Stripe answers "
        "in a few hundred milliseconds; one at a time, a charger would make a few charges per "
        "second)."),
    INT(dunning_scan_ms, "DUNNING_SCAN_MS", 1000, 10, 3600000,
        "How often the dunning kind looks for payment retries and dunning ends that are due, in "
        "milliseconds."),
    INT(session_ttl_s, "SESSION_TTL_S", 43200, 60, 2592000,
        "Absolute lifetime of a staff session, in seconds."),
    INT(session_idle_s, "SESSION_IDLE_S", 1800, 1, 2592000,
        "A staff session unused this long ends, in seconds."),
    INT(login_max_failures, "LOGIN_MAX_FAILURES", 5, 1, 1000,
        "Failed sign-ins per account within LOGIN_LOCKOUT_S before sign-in is refused (429)."),
    INT(login_max_failures_address, "LOGIN_MAX_FAILURES_ADDRESS", 20, 1, 100000,
        "Failed sign-ins per client address within LOGIN_LOCKOUT_S before sign-in is refused."),
    INT(login_lockout_s, "LOGIN_LOCKOUT_S", 900, 1, 86400,
        "Window of the failed sign-in counters, in seconds; a lockout lasts until it ends."),
    INT(reset_token_ttl_s, "RESET_TOKEN_TTL_S", 3600, 60, 86400,
        "Lifetime of a password-reset token, in seconds."),
    INT(invite_token_ttl_s, "INVITE_TOKEN_TTL_S", 604800, 3600, 2592000,
        "Lifetime of an invitation token, in seconds."),
    INT(password_scrypt_log_n, "PASSWORD_SCRYPT_LOG_N", 15, 14, 20,
        "scrypt cost of new password hashes: N = 2^this, r = 8, p = 1 (stored with each hash)."),
    INT(password_hash_concurrency, "PASSWORD_HASH_CONCURRENCY", 0, 0, 256,
        "Password checks an api runs at once, on its thread pool; 0 is one fewer than the "
        "machine's cores (at least one), which keeps a core for every other request."),
    STR(trusted_proxies, "TRUSTED_PROXIES", "", 0,
        "Load balancers and proxies in front of the api, as addresses and CIDR blocks separated "
        "by commas. A request from one of them is from the right-most address of "
        "X-Forwarded-For that is not one of them (for the sign-in limits, sessions, logs and "
        "jobs); empty: the header is ignored and the connection's peer is the client."),
};

#undef STR
#undef INT

#define SETTING_COUNT (sizeof settings / sizeof settings[0])

/* Values accepted for LOG_LEVEL; log_init would quietly fall back to info
 * on anything else, so a typo is caught here instead. */
static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};

const config_setting_t *config_settings(size_t *count)
{
    *count = SETTING_COUNT;
    return settings;
}

static void set_error(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_error(char *err, size_t err_len, const char *fmt, ...)
{
    if (err == NULL || err_len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

/* Parses all of text as a decimal integer within [min, max]. */
static bool parse_int(const char *text, long min, long max, int *out)
{
    /* strtol would skip leading spaces and accept "+"; neither belongs in
     * a setting, and refusing them keeps "the whole string" literal. */
    if (!(isdigit((unsigned char)text[0]) || (text[0] == '-' && isdigit((unsigned char)text[1]))))
        return false;
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return false;
    *out = (int)v;
    return true;
}

static const char *env_getter(const char *name, void *ud)
{
    return getenv(name);
}

int config_load(config_t *cfg, char *err, size_t err_len)
{
    return config_load_from(cfg, env_getter, NULL, err, err_len);
}

int config_load_from(config_t *cfg, const char *(*getter)(const char *name, void *ud), void *ud,
                     char *err, size_t err_len)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < SETTING_COUNT; i++) {
        const config_setting_t *s = &settings[i];
        const char *text = getter(s->env, ud);
        if (text == NULL)
            text = s->def;
        char *field = (char *)cfg + s->offset;
        if (s->type == CONFIG_STRING) {
            char **slot = (char **)(void *)field;
            *slot = mem_strdup(text);
            continue;
        }
        int *slot = (int *)(void *)field;
        if (!parse_int(text, s->min, s->max, slot)) {
            set_error(err, err_len, "%s must be an integer from %ld to %ld (got \"%.40s\").",
                      s->env, s->min, s->max, text);
            goto fail;
        }
    }

    bool level_ok = false;
    for (size_t i = 0; log_levels[i] != NULL; i++)
        level_ok = level_ok || strcmp(cfg->log_level, log_levels[i]) == 0;
    if (!level_ok) {
        set_error(err, err_len,
                  "LOG_LEVEL must be one of debug, info, warn, error (got \"%.40s\").",
                  cfg->log_level);
        goto fail;
    }
    size_t plen = strlen(cfg->platform_admin_token);
    if (plen > 0 &&
        (plen < CONFIG_PLATFORM_TOKEN_MIN || strncmp(cfg->platform_admin_token, "sk_", 3) == 0 ||
         strncmp(cfg->platform_admin_token, "bst_", 4) == 0)) {
        set_error(err, err_len,
                  "PLATFORM_ADMIN_TOKEN must be at least %d characters and must not start with "
                  "\"sk_\" or \"bst_\" (the prefixes of secret keys and session tokens).",
                  CONFIG_PLATFORM_TOKEN_MIN);
        goto fail;
    }
    size_t klen = strlen(cfg->encryption_key);
    bool key_hex = klen == 64;
    for (size_t i = 0; key_hex && i < klen; i++)
        key_hex = isxdigit((unsigned char)cfg->encryption_key[i]) != 0;
    if (klen > 0 && !key_hex) {
        set_error(err, err_len, "ENCRYPTION_KEY must be 64 hex digits (32 bytes).");
        goto fail;
    }
    if (netaddr_trusted_parse(cfg->trusted_proxies, &cfg->proxies, err, err_len) != 0)
        goto fail;
    char host[REDIS_URL_HOST_MAX];
    int port, db;
    if (redis_url_parse(cfg->redis_url, host, sizeof host, &port, &db) != 0) {
        /* The URL may hold a password: it is not repeated. */
        set_error(err, err_len,
                  "REDIS_URL must look like redis://[[user]:password@]host[:port][/db] (user and "
                  "password percent-encoded).");
        goto fail;
    }
    if (cfg->backoff_base_ms > cfg->backoff_max_ms) {
        set_error(err, err_len, "BACKOFF_BASE_MS (%d) must not exceed BACKOFF_MAX_MS (%d).",
                  cfg->backoff_base_ms, cfg->backoff_max_ms);
        goto fail;
    }
    return 0;

fail:
    config_dispose(cfg);
    return BILLOW_EPARAM_INVALID;
}

void config_dispose(config_t *cfg)
{
    for (size_t i = 0; i < SETTING_COUNT; i++) {
        if (settings[i].type != CONFIG_STRING)
            continue;
        char **slot = (char **)(void *)((char *)cfg + settings[i].offset);
        free(*slot);
        *slot = NULL;
    }
    memset(cfg, 0, sizeof *cfg);
}

/* Writes text into a Markdown table cell, escaping the column separator. */
static void print_cell(FILE *out, const char *text)
{
    for (const char *p = text; *p != '\0'; p++) {
        if (*p == '|')
            fputc('\\', out);
        fputc(*p, out);
    }
}

void config_print_markdown(FILE *out)
{
    fputs("| Variable | Default | Meaning |\n", out);
    fputs("|---|---|---|\n", out);
    for (size_t i = 0; i < SETTING_COUNT; i++) {
        const config_setting_t *s = &settings[i];
        fprintf(out, "| `%s` | ", s->env);
        if (s->def[0] == '\0') {
            fputs("(empty)", out);
        } else {
            fputc('`', out);
            print_cell(out, s->def);
            fputc('`', out);
        }
        fputs(" | ", out);
        print_cell(out, s->meaning);
        if (s->type == CONFIG_INT)
            fprintf(out, " Range %ld to %ld.", s->min, s->max);
        if (s->secret)
            fputs(" (secret)", out);
        fputs(" |\n", out);
    }
}

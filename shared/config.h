/* config: every setting of Billow, in one table, read once at start-up.
 *
 * Configuration is the environment (12-factor). config.c holds one table of
 * settings (name, environment variable, type, default, meaning);
 * config_load() fills a config_t from it and the result is read-only
 * afterwards. `billow-api --config-markdown` prints the table, and the
 * README's configuration section is checked against it.
 */
#ifndef BILLOW_CONFIG_H
#define BILLOW_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "err.h"
#include "netaddr.h"

/* Shortest PLATFORM_ADMIN_TOKEN accepted: the token opens every tenant's job
 * operations, so it must not be guessable. */
#define CONFIG_PLATFORM_TOKEN_MIN 20

typedef struct {
    char *database_url;             /* Workers' Postgres URL (role billow_worker). */
    char *database_read_url;        /* The api's read-only Postgres URL (role billow_api). */
    char *redis_url;                /* Redis URL: queues, job status, idempotency keys. */
    char *host;                     /* Address the api listens on. */
    int port;                       /* Port the api listens on. */
    char *platform_admin_token;     /* Bearer token of the platform operator. */
    char *log_level;                /* debug, info, warn or error. */
    int pg_pool_size;               /* Postgres connections per api process. */
    int max_header_bytes;           /* Largest request head (431 beyond). */
    int max_body_bytes;             /* Largest request body (413 beyond). */
    int header_timeout_ms;          /* Time allowed to receive a request head. */
    int body_timeout_ms;            /* Time allowed to receive a request body. */
    int idle_timeout_ms;            /* Keep-alive connection idle limit. */
    int write_timeout_ms;           /* Time allowed to send a response. */
    int max_connections;            /* Open client connections per api process. */
    int max_wait_seconds;           /* Largest Prefer: wait=N honoured. */
    int worker_batch;               /* Jobs a worker reads and commits at once. */
    int invoice_worker_batch;       /* worker_batch of the invoice kind. */
    int worker_block_ms;            /* XREADGROUP BLOCK time. */
    int visibility_timeout_ms;      /* Idle time after which another consumer takes a job over. */
    int max_deliveries;             /* Deliveries after which a job goes dead. */
    int max_attempts;               /* Retryable failures after which a job goes dead. */
    int backoff_base_ms;            /* First retry delay. */
    int backoff_max_ms;             /* Longest retry delay. */
    int job_status_ttl_s;           /* How long a finished job's status is kept. */
    int outbox_sweep_ms;            /* How often workers relay orphaned outbox rows. */
    int renewal_scan_ms;            /* Pause between the renewal scheduler's scans. */
    int renewal_batch;              /* Due subscriptions enqueued per scan step. */
    char *faults;                   /* Fault-injection points for crash tests (empty: none). */
    char *encryption_key;           /* 64 hex digits: AES-256-GCM key of sealed secrets. */
    char *stripe_api_base;          /* Stripe's base URL (or the fake's). */
    int charger_worker_batch;       /* worker_batch of the charger kind. */
    int charger_parallel;           /* Stripe calls a charger makes at once. */
    int dunning_scan_ms;            /* Pause between the dunning kind's scans. */
    int session_ttl_s;              /* A staff session's absolute lifetime. */
    int session_idle_s;             /* A staff session ends after this long unused. */
    int login_max_failures;         /* Failed sign-ins per account before a lockout. */
    int login_max_failures_address; /* Failed sign-ins per client address before a lockout. */
    int login_lockout_s;            /* Window of the failure counters and length of a lockout. */
    int reset_token_ttl_s;          /* Lifetime of a password-reset token. */
    int invite_token_ttl_s;         /* Lifetime of an invitation token. */
    int password_scrypt_log_n;      /* scrypt cost: N = 2^this (r = 8, p = 1). */
    int password_hash_concurrency;  /* Password hashes at once per api (0: cores - 1). */
    char *trusted_proxies;          /* Proxies whose X-Forwarded-For is believed (text). */
    netaddr_trusted_t proxies;      /* trusted_proxies, parsed by config_load. */
} config_t;

typedef enum {
    CONFIG_STRING, /* char *, strdup'ed */
    CONFIG_INT,    /* int, with bounds */
} config_type_t;

typedef struct {
    const char *name;    /* Setting name as documented. */
    const char *env;     /* Environment variable. */
    config_type_t type;  /* How to parse it. */
    const char *def;     /* Default, as text. */
    long min, max;       /* Bounds for CONFIG_INT. */
    size_t offset;       /* Field in config_t. */
    int secret;          /* Never print the value. */
    const char *meaning; /* One sentence for the docs. */
} config_setting_t;

/* The settings table and its length. */
const config_setting_t *config_settings(size_t *count);

/* Fills cfg from the environment and the defaults. On a bad value returns
 * BILLOW_EPARAM_INVALID and writes a message naming the variable into err;
 * cfg is then disposed already. */
int config_load(config_t *cfg, char *err, size_t err_len) BILLOW_MUSTCHECK;
/* As config_load, reading variables through getter (tests). */
int config_load_from(config_t *cfg, const char *(*getter)(const char *name, void *ud), void *ud,
                     char *err, size_t err_len) BILLOW_MUSTCHECK;
/* Frees the strings of cfg. */
void config_dispose(config_t *cfg);
/* Prints the table as a Markdown table (variable, default, meaning). */
void config_print_markdown(FILE *out);

#endif

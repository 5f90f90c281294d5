/* config_test: defaults, overrides and refusals of the settings table. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

/* A fake environment: NULL-terminated name/value pairs. */
typedef struct {
    const char *const *pairs;
} fake_env_t;

static const char *fake_getter(const char *name, void *ud)
{
    const fake_env_t *env = ud;
    for (size_t i = 0; env->pairs[i] != NULL; i += 2) {
        if (strcmp(env->pairs[i], name) == 0)
            return env->pairs[i + 1];
    }
    return NULL;
}

static int load(config_t *cfg, const char *const *pairs, char *err, size_t err_len)
{
    fake_env_t env = {pairs};
    return config_load_from(cfg, fake_getter, &env, err, err_len);
}

Test(config, an_empty_environment_gives_the_defaults)
{
    static const char *const none[] = {NULL};
    config_t cfg;
    char err[256] = "";
    cr_assert_eq(load(&cfg, none, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(cfg.database_url, "postgresql://billow_worker@127.0.0.1:15432/billow");
    cr_assert_str_eq(cfg.database_read_url, "postgresql://billow_api@127.0.0.1:15432/billow");
    cr_assert_str_eq(cfg.redis_url, "redis://127.0.0.1:16379/0");
    cr_assert_str_eq(cfg.host, "127.0.0.1");
    cr_assert_eq(cfg.port, 8080);
    cr_assert_str_eq(cfg.platform_admin_token, "");
    cr_assert_str_eq(cfg.log_level, "info");
    cr_assert_eq(cfg.pg_pool_size, 8);
    cr_assert_eq(cfg.max_header_bytes, 16384);
    cr_assert_eq(cfg.max_body_bytes, 1048576);
    cr_assert_eq(cfg.header_timeout_ms, 10000);
    cr_assert_eq(cfg.body_timeout_ms, 30000);
    cr_assert_eq(cfg.idle_timeout_ms, 60000);
    cr_assert_eq(cfg.max_connections, 10000);
    cr_assert_eq(cfg.max_wait_seconds, 30);
    cr_assert_eq(cfg.worker_batch, 256);
    cr_assert_eq(cfg.worker_block_ms, 2000);
    cr_assert_eq(cfg.visibility_timeout_ms, 60000);
    cr_assert_eq(cfg.max_deliveries, 10);
    cr_assert_eq(cfg.max_attempts, 8);
    cr_assert_eq(cfg.backoff_base_ms, 1000);
    cr_assert_eq(cfg.backoff_max_ms, 3600000);
    cr_assert_eq(cfg.job_status_ttl_s, 604800);
    cr_assert_eq(cfg.outbox_sweep_ms, 2000);
    cr_assert_str_eq(cfg.faults, "");
    config_dispose(&cfg);
    cr_assert_null(cfg.database_url);
}

Test(config, environment_values_override_the_defaults)
{
    static const char *const env[] = {"PORT",
                                      "9090",
                                      "DATABASE_URL",
                                      "postgresql://x@db/y",
                                      "LOG_LEVEL",
                                      "debug",
                                      "MAX_WAIT_SECONDS",
                                      "0",
                                      "BILLOW_FAULTS",
                                      "worker.after_commit:2",
                                      NULL};
    config_t cfg;
    char err[256] = "";
    cr_assert_eq(load(&cfg, env, err, sizeof err), 0, "%s", err);
    cr_assert_eq(cfg.port, 9090);
    cr_assert_str_eq(cfg.database_url, "postgresql://x@db/y");
    cr_assert_str_eq(cfg.log_level, "debug");
    cr_assert_eq(cfg.max_wait_seconds, 0);
    cr_assert_str_eq(cfg.faults, "worker.after_commit:2");
    cr_assert_eq(cfg.pg_pool_size, 8);
    config_dispose(&cfg);
}

Test(config, a_non_numeric_integer_is_refused_naming_the_variable)
{
    const char *const bad[] = {"abc", "", "80a", " 80", "80 ", "+80", "0x50", "8e3", "-"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *const env[] = {"PORT", bad[i], NULL};
        config_t cfg;
        char err[256] = "";
        cr_assert_eq(load(&cfg, env, err, sizeof err), BILLOW_EPARAM_INVALID, "PORT=\"%s\"",
                     bad[i]);
        cr_assert_not_null(strstr(err, "PORT"), "%s", err);
        cr_assert_null(cfg.database_url, "a failed load leaves cfg disposed");
    }
}

Test(config, an_out_of_range_integer_is_refused_with_the_range)
{
    static const char *const env[] = {"PORT", "70000", NULL};
    config_t cfg;
    char err[256] = "";
    cr_assert_eq(load(&cfg, env, err, sizeof err), BILLOW_EPARAM_INVALID);
    cr_assert_not_null(strstr(err, "PORT"), "%s", err);
    cr_assert_not_null(strstr(err, "1 to 65535"), "%s", err);

    static const char *const huge[] = {"MAX_BODY_BYTES", "99999999999999999999", NULL};
    cr_assert_eq(load(&cfg, huge, err, sizeof err), BILLOW_EPARAM_INVALID);
    cr_assert_not_null(strstr(err, "MAX_BODY_BYTES"), "%s", err);

    static const char *const negative[] = {"WORKER_BATCH", "-1", NULL};
    cr_assert_eq(load(&cfg, negative, err, sizeof err), BILLOW_EPARAM_INVALID);
    cr_assert_not_null(strstr(err, "WORKER_BATCH"), "%s", err);
}

Test(config, an_unknown_log_level_is_refused)
{
    static const char *const env[] = {"LOG_LEVEL", "verbose", NULL};
    config_t cfg;
    char err[256] = "";
    cr_assert_eq(load(&cfg, env, err, sizeof err), BILLOW_EPARAM_INVALID);
    cr_assert_not_null(strstr(err, "LOG_LEVEL"), "%s", err);
}

Test(config, a_backoff_base_above_its_max_is_refused)
{
    static const char *const env[] = {"BACKOFF_BASE_MS", "5000", "BACKOFF_MAX_MS", "4000", NULL};
    config_t cfg;
    char err[256] = "";
    cr_assert_eq(load(&cfg, env, err, sizeof err), BILLOW_EPARAM_INVALID);
    cr_assert_not_null(strstr(err, "BACKOFF_BASE_MS"), "%s", err);
}

Test(config, a_malformed_redis_url_is_refused_without_repeating_its_password)
{
    static const char *const env[] = {"REDIS_URL", "redis://billow:s3cret%zz@cache:6379/0", NULL};
    config_t cfg;
    char err[256] = "";
    cr_assert_eq(load(&cfg, env, err, sizeof err), BILLOW_EPARAM_INVALID);
    cr_assert_not_null(strstr(err, "REDIS_URL"), "%s", err);
    cr_assert_null(strstr(err, "s3cret"), "%s", err);

    static const char *const ok[] = {"REDIS_URL", "redis://billow:s3cret@cache:6379/0", NULL};
    cr_assert_eq(load(&cfg, ok, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(cfg.redis_url, "redis://billow:s3cret@cache:6379/0");
    config_dispose(&cfg);
}

Test(config, trusted_proxies_are_parsed_or_refused_at_start)
{
    config_t cfg;
    char err[256];
    static const char *const ok[] = {"TRUSTED_PROXIES", "10.0.0.0/8, fd00::/8", NULL};
    cr_assert_eq(load(&cfg, ok, err, sizeof err), 0, "%s", err);
    cr_assert_eq(cfg.proxies.n, 2);
    cr_assert(netaddr_trusted_has(&cfg.proxies, "10.1.2.3"));
    config_dispose(&cfg);
    static const char *const none[] = {NULL};
    cr_assert_eq(load(&cfg, none, err, sizeof err), 0, "%s", err);
    cr_assert_eq(cfg.proxies.n, 0, "none by default: X-Forwarded-For is ignored");
    config_dispose(&cfg);
    static const char *const bad[] = {"TRUSTED_PROXIES", "10.0.0.0/8,lb.internal", NULL};
    cr_assert_eq(load(&cfg, bad, err, sizeof err), BILLOW_EPARAM_INVALID);
    cr_assert(strstr(err, "lb.internal") != NULL, "%s", err);
}

Test(config, a_failed_load_with_no_error_buffer_still_fails)
{
    static const char *const env[] = {"PORT", "x", NULL};
    config_t cfg;
    cr_assert_eq(load(&cfg, env, NULL, 0), BILLOW_EPARAM_INVALID);
}

Test(config, every_setting_is_documented_and_its_default_loads)
{
    size_t count = 0;
    const config_setting_t *s = config_settings(&count);
    cr_assert_eq(count, 44);
    for (size_t i = 0; i < count; i++) {
        cr_assert_gt(strlen(s[i].env), 0);
        cr_assert_gt(strlen(s[i].name), 0);
        cr_assert_gt(strlen(s[i].meaning), 0, "%s", s[i].env);
        if (s[i].type == CONFIG_INT) {
            long v = strtol(s[i].def, NULL, 10);
            cr_assert(v >= s[i].min && v <= s[i].max, "%s default out of bounds", s[i].env);
        }
    }
}

Test(config, markdown_lists_every_variable_and_marks_secrets)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    config_print_markdown(out);
    fclose(out);
    cr_assert_not_null(strstr(text, "| Variable | Default | Meaning |"));
    size_t count = 0;
    const config_setting_t *s = config_settings(&count);
    for (size_t i = 0; i < count; i++) {
        char cell[64];
        snprintf(cell, sizeof cell, "| `%s` |", s[i].env);
        const char *row = strstr(text, cell);
        cr_assert_not_null(row, "%s missing", s[i].env);
        const char *eol = strchr(row, '\n');
        const char *mark = strstr(row, "(secret)");
        bool marked = mark != NULL && mark < eol;
        cr_assert_eq(marked, s[i].secret != 0, "%s", s[i].env);
    }
    cr_assert_not_null(strstr(text, "| `PORT` | `8080` |"));
    free(text);
}

Test(config, a_short_or_key_like_platform_token_is_refused)
{
    static const char *const short_token[] = {"PLATFORM_ADMIN_TOKEN", "too-short", NULL};
    static const char *const key_like[] = {"PLATFORM_ADMIN_TOKEN", "sk_test_0123456789abcdefghij",
                                           NULL};
    static const char *const good[] = {"PLATFORM_ADMIN_TOKEN", "platform-0123456789abcdef", NULL};
    config_t cfg;
    char err[256] = "";
    cr_assert_eq(load(&cfg, short_token, err, sizeof err), BILLOW_EPARAM_INVALID);
    cr_assert(strstr(err, "PLATFORM_ADMIN_TOKEN") != NULL, "%s", err);
    cr_assert_eq(load(&cfg, key_like, err, sizeof err), BILLOW_EPARAM_INVALID);
    cr_assert(strstr(err, "sk_") != NULL, "%s", err);
    cr_assert_eq(load(&cfg, good, err, sizeof err), 0, "%s", err);
    config_dispose(&cfg);
    static const char *const session_like[] = {"PLATFORM_ADMIN_TOKEN",
                                               "bst_0123456789abcdefghijklmnop", NULL};
    cr_assert_eq(load(&cfg, session_like, err, sizeof err), BILLOW_EPARAM_INVALID);
    cr_assert(strstr(err, "bst_") != NULL, "%s", err);
}

Test(config, an_encryption_key_must_be_64_hex_digits)
{
    static const char *const good[] = {
        "ENCRYPTION_KEY", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1F", NULL};
    static const char *const short_key[] = {"ENCRYPTION_KEY", "00010203", NULL};
    static const char *const not_hex[] = {
        "ENCRYPTION_KEY", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1g", NULL};
    config_t cfg;
    char err[256] = "";
    cr_assert_eq(load(&cfg, good, err, sizeof err), 0, "%s", err);
    cr_assert_eq(strlen(cfg.encryption_key), 64);
    config_dispose(&cfg);
    cr_assert_eq(load(&cfg, short_key, err, sizeof err), BILLOW_EPARAM_INVALID);
    cr_assert(strstr(err, "ENCRYPTION_KEY") != NULL, "%s", err);
    cr_assert_eq(load(&cfg, not_hex, err, sizeof err), BILLOW_EPARAM_INVALID);
}

Test(config, session_and_login_settings_have_safe_defaults)
{
    static const char *const none[] = {NULL};
    config_t cfg;
    char err[256] = "";
    cr_assert_eq(load(&cfg, none, err, sizeof err), 0, "%s", err);
    cr_assert_eq(cfg.session_ttl_s, 43200);
    cr_assert_eq(cfg.session_idle_s, 1800);
    cr_assert_eq(cfg.login_max_failures, 5);
    cr_assert_eq(cfg.login_max_failures_address, 20);
    cr_assert_eq(cfg.login_lockout_s, 900);
    cr_assert_eq(cfg.password_scrypt_log_n, 15);
    cr_assert_str_eq(cfg.encryption_key, "");
    config_dispose(&cfg);
    static const char *const weak[] = {"PASSWORD_SCRYPT_LOG_N", "10", NULL};
    cr_assert_eq(load(&cfg, weak, err, sizeof err), BILLOW_EPARAM_INVALID);
    cr_assert(strstr(err, "PASSWORD_SCRYPT_LOG_N") != NULL, "%s", err);
}

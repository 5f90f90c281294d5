/* redis_url: REDIS_URL parsing (shared by the api and the workers). */
#include <criterion/criterion.h>
#include <stdio.h>

#include "redis_url.h"

Test(redis_url, redis_url_with_host_port_and_db_parses)
{
    char host[REDIS_URL_HOST_MAX];
    int port = 0, db = -1;
    cr_assert_eq(redis_url_parse("redis://127.0.0.1:56379/3", host, sizeof host, &port, &db), 0);
    cr_assert_str_eq(host, "127.0.0.1");
    cr_assert_eq(port, 56379);
    cr_assert_eq(db, 3);
}

Test(redis_url, redis_url_defaults_port_6379_and_db_0)
{
    char host[REDIS_URL_HOST_MAX];
    int port = 0, db = -1;
    cr_assert_eq(redis_url_parse("redis://cache.internal", host, sizeof host, &port, &db), 0);
    cr_assert_str_eq(host, "cache.internal");
    cr_assert_eq(port, 6379);
    cr_assert_eq(db, 0);
    cr_assert_eq(redis_url_parse("redis://h:7000/", host, sizeof host, &port, &db), 0);
    cr_assert_eq(port, 7000);
    cr_assert_eq(db, 0);
}

Test(redis_url, redis_url_with_bracketed_ipv6_host_parses)
{
    char host[REDIS_URL_HOST_MAX];
    int port = 0, db = -1;
    cr_assert_eq(redis_url_parse("redis://[::1]:6380/2", host, sizeof host, &port, &db), 0);
    cr_assert_str_eq(host, "::1");
    cr_assert_eq(port, 6380);
    cr_assert_eq(db, 2);
}

Test(redis_url, malformed_redis_urls_are_refused)
{
    const char *bad[] = {
        "http://127.0.0.1:6379/0",
        "redis://",
        "redis://:6379/0",
        "redis://h:0/0",
        "redis://h:65536/0",
        "redis://h:port/0",
        "redis://h:6379/x",
        "redis://h:6379/-1",
        "redis://user@h:6379/0",
        "redis://user:@h:6379/0",
        "redis://:@h:6379/0",
        "redis://:p%zz@h:6379/0",
        "redis://:p%2@h:6379/0",
        "redis://:p%00w@h:6379/0",
        "redis://:pw@:6379/0",
        "redis://[::1:6379/0",
        "redis://[::1]x/0",
        "redis://h:6379?timeout=1",
        "redis://h:6379/99999999999",
    };
    char host[REDIS_URL_HOST_MAX];
    int port, db;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(redis_url_parse(bad[i], host, sizeof host, &port, &db), BILLOW_EPARAM_INVALID,
                     "%s", bad[i]);
    cr_assert_eq(redis_url_parse(NULL, host, sizeof host, &port, &db), BILLOW_EPARAM_INVALID);
}

Test(redis_url, redis_host_longer_than_the_buffer_is_refused)
{
    char host[8];
    int port, db;
    cr_assert_eq(redis_url_parse("redis://a-long-host-name:1/0", host, sizeof host, &port, &db),
                 BILLOW_EPARAM_INVALID);
    cr_assert_eq(redis_url_parse("redis://short:1/0", host, sizeof host, &port, &db), 0);
    cr_assert_str_eq(host, "short");
}

Test(redis_url, credentials_are_read_and_percent_decoded)
{
    char host[REDIS_URL_HOST_MAX], user[REDIS_URL_CRED_MAX], password[REDIS_URL_CRED_MAX];
    int port = 0, db = -1;
    const char *url = "redis://billow:p%40ss%3Aw%2Frd%25@cache.internal:6380/4";
    cr_assert_eq(redis_url_parse(url, host, sizeof host, &port, &db), 0);
    cr_assert_str_eq(host, "cache.internal");
    cr_assert_eq(port, 6380);
    cr_assert_eq(db, 4);
    cr_assert_eq(redis_url_credentials(url, user, password), 0);
    cr_assert_str_eq(user, "billow");
    cr_assert_str_eq(password, "p@ss:w/rd%");

    /* A password alone is Redis's default user. */
    cr_assert_eq(redis_url_credentials("redis://:s3cret@[::1]:6379/0", user, password), 0);
    cr_assert_str_eq(user, "");
    cr_assert_str_eq(password, "s3cret");
    cr_assert_eq(redis_url_parse("redis://:s3cret@[::1]:6379/0", host, sizeof host, &port, &db), 0);
    cr_assert_str_eq(host, "::1");

    /* An "@" left unencoded in the password: the last one ends it. */
    cr_assert_eq(redis_url_credentials("redis://:a@b@h/0", user, password), 0);
    cr_assert_str_eq(password, "a@b");

    cr_assert_eq(redis_url_credentials("redis://h:6379/0", user, password), 0);
    cr_assert_str_eq(user, "");
    cr_assert_str_eq(password, "", "no password, no AUTH");
}

Test(redis_url, credentials_longer_than_the_limit_are_refused)
{
    char url[3 * REDIS_URL_CRED_MAX], user[REDIS_URL_CRED_MAX], password[REDIS_URL_CRED_MAX];
    char host[REDIS_URL_HOST_MAX];
    int port, db;
    for (int len = REDIS_URL_CRED_MAX - 1; len <= REDIS_URL_CRED_MAX; len++) {
        int n = snprintf(url, sizeof url, "redis://:");
        for (int i = 0; i < len; i++)
            url[n++] = 'p';
        snprintf(url + n, sizeof url - (size_t)n, "@h:1/0");
        int want = len < REDIS_URL_CRED_MAX ? 0 : BILLOW_EPARAM_INVALID;
        cr_assert_eq(redis_url_credentials(url, user, password), want, "length %d", len);
        cr_assert_eq(redis_url_parse(url, host, sizeof host, &port, &db), want, "length %d", len);
    }
}

Test(redis_url, auth_command_has_the_password_and_the_user_when_there_is_one)
{
    const char *argv[3];
    cr_assert_eq(redis_url_auth_argv("", "", argv), 0);
    cr_assert_eq(redis_url_auth_argv(NULL, NULL, argv), 0);
    cr_assert_eq(redis_url_auth_argv("", "pw", argv), 2);
    cr_assert_str_eq(argv[0], "AUTH");
    cr_assert_str_eq(argv[1], "pw");
    cr_assert_eq(redis_url_auth_argv("billow", "pw", argv), 3);
    cr_assert_str_eq(argv[1], "billow");
    cr_assert_str_eq(argv[2], "pw");
}

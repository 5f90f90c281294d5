/* redis_url: REDIS_URL parsing (shared by the api and the workers). */
#include <criterion/criterion.h>

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
        "redis://user:pw@h:6379/0",
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

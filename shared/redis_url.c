/* redis_url: REDIS_URL, read the same way by the api and the workers.
 *
 * "redis://[[user]:password@]host[:port][/db]", host possibly a bracketed
 * IPv6 address. With a password every connection authenticates first (AUTH
 * password, or AUTH user password for a Redis 6 ACL user); the user and the
 * password are percent-encoded as in any URL ("p%40ss" for "p@ss").
 */
#include "redis_url.h"

#include <string.h>

#include "decimal.h"
#include "percent.h"

/* Finds the authority of a redis:// URL: *auth its start, *end where the
 * path begins, *at its last "@" (the end of the credentials) or NULL.
 * Returns 0, or BILLOW_EPARAM_INVALID for another scheme. */
static int authority(const char *url, const char **auth, const char **end, const char **at)
{
    static const char scheme[] = "redis://";
    if (url == NULL || strncmp(url, scheme, sizeof scheme - 1) != 0)
        return BILLOW_EPARAM_INVALID;
    *auth = url + sizeof scheme - 1;
    *end = *auth + strcspn(*auth, "/?#");
    *at = NULL;
    for (const char *c = *auth; c < *end; c++)
        if (*c == '@')
            *at = c;
    return 0;
}

int redis_url_parse(const char *url, char *host, size_t host_len, int *port, int *db)
{
    char user[REDIS_URL_CRED_MAX], password[REDIS_URL_CRED_MAX];
    const char *auth, *end, *at;
    if (redis_url_credentials(url, user, password) != 0 || authority(url, &auth, &end, &at) != 0)
        return BILLOW_EPARAM_INVALID;
    if (at != NULL)
        auth = at + 1; /* The credentials: redis_url_credentials. */

    const char *h = auth, *h_end, *port_at = NULL;
    if (*auth == '[') {
        const char *close = memchr(auth, ']', (size_t)(end - auth));
        if (close == NULL)
            return BILLOW_EPARAM_INVALID;
        h = auth + 1;
        h_end = close;
        if (close + 1 < end) {
            if (close[1] != ':')
                return BILLOW_EPARAM_INVALID;
            port_at = close + 2;
        }
    } else {
        const char *colon = memchr(auth, ':', (size_t)(end - auth));
        h_end = colon ? colon : end;
        if (colon)
            port_at = colon + 1;
    }
    size_t n = (size_t)(h_end - h);
    if (n == 0 || n >= host_len)
        return BILLOW_EPARAM_INVALID;

    long p = REDIS_URL_DEFAULT_PORT, d = 0;
    if (port_at && decimal_parse(port_at, (size_t)(end - port_at), 1, 65535, &p) != 0)
        return BILLOW_EPARAM_INVALID;
    if (*end == '/') {
        const char *d_at = end + 1;
        if (*d_at != '\0' && decimal_parse(d_at, strlen(d_at), 0, REDIS_URL_DB_MAX, &d) != 0)
            return BILLOW_EPARAM_INVALID;
    } else if (*end != '\0') {
        return BILLOW_EPARAM_INVALID;
    }
    memcpy(host, h, n);
    host[n] = '\0';
    *port = (int)p;
    *db = (int)d;
    return 0;
}

int redis_url_credentials(const char *url, char user[REDIS_URL_CRED_MAX],
                          char password[REDIS_URL_CRED_MAX])
{
    const char *auth, *end, *at;
    user[0] = password[0] = '\0';
    if (authority(url, &auth, &end, &at) != 0)
        return BILLOW_EPARAM_INVALID;
    if (at == NULL)
        return 0;
    const char *colon = memchr(auth, ':', (size_t)(at - auth));
    if (colon == NULL || colon + 1 == at)
        return BILLOW_EPARAM_INVALID; /* A user without a password. */
    if (percent_decode(auth, (size_t)(colon - auth), false, user, REDIS_URL_CRED_MAX) != 0 ||
        percent_decode(colon + 1, (size_t)(at - colon - 1), false, password, REDIS_URL_CRED_MAX) !=
            0) {
        user[0] = password[0] = '\0';
        return BILLOW_EPARAM_INVALID;
    }
    return 0;
}

int redis_url_auth_argv(const char *user, const char *password, const char *argv[3])
{
    if (password == NULL || password[0] == '\0')
        return 0;
    argv[0] = "AUTH";
    if (user == NULL || user[0] == '\0') {
        argv[1] = password;
        return 2;
    }
    argv[1] = user;
    argv[2] = password;
    return 3;
}

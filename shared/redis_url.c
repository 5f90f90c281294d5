/* redis_url: REDIS_URL, read the same way by the api and the workers.
 *
 * "redis://host[:port][/db]", host possibly a bracketed IPv6 address. A URL
 * with credentials is refused rather than half-honoured: Billow's Redis runs
 * on loopback or a private network and the client sends no AUTH.
 */
#include "redis_url.h"

#include <string.h>

#include "decimal.h"

int redis_url_parse(const char *url, char *host, size_t host_len, int *port, int *db)
{
    static const char scheme[] = "redis://";
    const size_t scheme_len = sizeof scheme - 1;
    if (url == NULL || strncmp(url, scheme, scheme_len) != 0)
        return BILLOW_EPARAM_INVALID;
    const char *auth = url + scheme_len;
    const char *end = auth + strcspn(auth, "/?#");
    if (memchr(auth, '@', (size_t)(end - auth)) != NULL)
        return BILLOW_EPARAM_INVALID;

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

/* query: URL query parameters, percent-decoded (see query.h). */
#include "query.h"

#include <string.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes s[0..len) into out; '+' is a space as in forms. */
static int decode(const char *s, size_t len, char *out, size_t out_len)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= len)
                return BILLOW_EPARAM_INVALID;
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0)
                return BILLOW_EPARAM_INVALID;
            c = (char)(hi * 16 + lo);
            if (c == '\0')
                return BILLOW_EPARAM_INVALID;
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (o + 1 >= out_len)
            return BILLOW_EPARAM_INVALID;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

int query_get(const char *query, const char *name, char *out, size_t out_len)
{
    if (query == NULL)
        return 0;
    size_t nlen = strlen(name);
    const char *p = query;
    while (*p) {
        const char *end = strchr(p, '&');
        size_t plen = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', plen);
        size_t klen = eq ? (size_t)(eq - p) : plen;
        if (klen == nlen && memcmp(p, name, nlen) == 0) {
            const char *v = eq ? eq + 1 : p + plen;
            size_t vlen = eq ? plen - klen - 1 : 0;
            int rc = decode(v, vlen, out, out_len);
            return rc < 0 ? rc : 1;
        }
        if (!end)
            break;
        p = end + 1;
    }
    return 0;
}

int query_unknown(const char *query, const char *const *allowed, char *out, size_t out_len)
{
    if (query == NULL)
        return 0;
    const char *p = query;
    while (*p) {
        const char *end = strchr(p, '&');
        size_t plen = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', plen);
        size_t klen = eq ? (size_t)(eq - p) : plen;
        int known = klen == 0;
        for (size_t i = 0; !known && allowed[i]; i++)
            known = strlen(allowed[i]) == klen && memcmp(allowed[i], p, klen) == 0;
        if (!known) {
            size_t n = klen < out_len - 1 ? klen : out_len - 1;
            memcpy(out, p, n);
            out[n] = '\0';
            return 1;
        }
        if (!end)
            break;
        p = end + 1;
    }
    return 0;
}

/* query: URL query parameters, percent-decoded (see query.h). */
#include "query.h"

#include <string.h>

#include "decimal.h"
#include "percent.h"
#include "validate.h"

/* One "key=value" pair of a query string. */
typedef struct {
    const char *key;   /* Start of the key. */
    size_t key_len;    /* Its length. */
    const char *value; /* Start of the value (empty when there is no "="). */
    size_t value_len;  /* Its length. */
} pair_t;

/* Reads the pair at *p and moves *p past it; returns 0 at the end. */
static int next_pair(const char **p, pair_t *out)
{
    if (*p == NULL || **p == '\0')
        return 0;
    const char *end = strchr(*p, '&');
    size_t len = end ? (size_t)(end - *p) : strlen(*p);
    const char *eq = memchr(*p, '=', len);
    out->key = *p;
    out->key_len = eq ? (size_t)(eq - *p) : len;
    out->value = eq ? eq + 1 : *p + len;
    out->value_len = eq ? len - out->key_len - 1 : 0;
    *p = end ? end + 1 : *p + len;
    return 1;
}

int query_get(const char *query, const char *name, char *out, size_t out_len)
{
    if (out_len == 0)
        return BILLOW_EPARAM_INVALID;
    size_t nlen = strlen(name);
    pair_t pair;
    while (next_pair(&query, &pair)) {
        if (pair.key_len == nlen && memcmp(pair.key, name, nlen) == 0) {
            int rc = percent_decode(pair.value, pair.value_len, true, out, out_len);
            if (rc < 0)
                return rc;
            /* Values reach Postgres, which refuses text that is not UTF-8,
             * and answers, which must be JSON. */
            return validate_utf8_printable(out, strlen(out)) ? 1 : BILLOW_EPARAM_INVALID;
        }
    }
    return 0;
}

int query_unknown(const char *query, const char *const *allowed, char *out, size_t out_len)
{
    if (out_len == 0)
        return 0;
    pair_t pair;
    while (next_pair(&query, &pair)) {
        int known = pair.key_len == 0;
        for (size_t i = 0; !known && allowed[i]; i++)
            known = strlen(allowed[i]) == pair.key_len &&
                    memcmp(allowed[i], pair.key, pair.key_len) == 0;
        if (!known) {
            size_t n = pair.key_len < out_len - 1 ? pair.key_len : out_len - 1;
            memcpy(out, pair.key, n);
            out[n] = '\0';
            return 1;
        }
    }
    return 0;
}

int query_get_limit(const char *query, int def, int max, int *out)
{
    char text[16];
    int rc = query_get(query, "limit", text, sizeof(text));
    if (rc < 0)
        return rc;
    if (rc == 0) {
        *out = def;
        return 0;
    }
    long v;
    if (decimal_parse(text, strlen(text), 1, max, &v) != 0)
        return BILLOW_EPARAM_INVALID;
    *out = (int)v;
    return 0;
}

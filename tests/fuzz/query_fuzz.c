/* query_fuzz: query_get, query_unknown and query_get_limit on arbitrary
 * query strings.
 *
 * The query string is the request target after "?", straight from the
 * client. The first input byte picks the output buffer size (1 to 64 bytes,
 * allocated exactly so AddressSanitizer catches any write past it); the rest
 * is the query. Checked: return values are the documented ones; whatever is
 * written is NUL-terminated within the buffer; a value found is a complete
 * percent-decoding without NUL; a name reported unknown really is not in the
 * allowed list and really occurs in the query; a page size is the default
 * when "limit" is absent and within [1, max] otherwise.
 */
#include <stdbool.h>

#include "fuzz.h"
#include "query.h"

/* Buffer sizes tried: small enough that overflow paths are reached often. */
#define OUT_MAX 64
/* query_get_limit's default and maximum, as a list route would pass them. */
#define LIMIT_DEFAULT 10
#define LIMIT_MAX     100

static const char *const names[] = {"limit", "starting_after", "status", "a", NULL};
static const char *const allowed[] = {"limit", "starting_after", "ending_before", "status", NULL};

static bool terminated(const char *out, size_t out_len)
{
    return memchr(out, '\0', out_len) != NULL;
}

static bool is_allowed(const char *name)
{
    for (size_t i = 0; allowed[i] != NULL; i++) {
        if (strcmp(allowed[i], name) == 0)
            return true;
    }
    return false;
}

/* True if some parameter name of query (the part before "=" or "&") begins
 * with prefix and, when whole, is exactly prefix. */
static bool names_in_query(const char *query, const char *prefix, bool whole)
{
    size_t plen = strlen(prefix);
    const char *p = query;
    for (;;) {
        size_t seg = strcspn(p, "&");
        size_t klen = strcspn(p, "=&");
        if (klen > seg)
            klen = seg;
        if (klen >= plen && memcmp(p, prefix, plen) == 0 && (!whole || klen == plen))
            return true;
        if (p[seg] == '\0')
            return false;
        p += seg + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t out_len = 1 + data[0] % OUT_MAX;
    char *query = fuzz_cstring(data + 1, size - 1);
    char *out = mem_alloc(out_len);

    for (size_t i = 0; names[i] != NULL; i++) {
        memset(out, 'X', out_len);
        int rc = query_get(query, names[i], out, out_len);
        FUZZ_CHECK(rc == 0 || rc == 1 || rc == BILLOW_EPARAM_INVALID,
                   "query_get returned %d for \"%s\"", rc, names[i]);
        if (rc == 1) {
            FUZZ_CHECK(terminated(out, out_len), "query_get's value for \"%s\" is not terminated",
                       names[i]);
            FUZZ_CHECK(names_in_query(query, names[i], true),
                       "query_get found \"%s\" which is not in the query", names[i]);
        }
        if (rc == 0)
            FUZZ_CHECK(!names_in_query(query, names[i], true),
                       "query_get missed \"%s\", which is in the query", names[i]);
    }
    FUZZ_CHECK(query_get(NULL, "limit", out, out_len) == 0, "a NULL query has a parameter");

    memset(out, 'X', out_len);
    int rc = query_unknown(query, allowed, out, out_len);
    FUZZ_CHECK(rc == 0 || rc == 1, "query_unknown returned %d", rc);
    if (rc == 1) {
        FUZZ_CHECK(terminated(out, out_len), "query_unknown's name is not terminated");
        FUZZ_CHECK(names_in_query(query, out, false),
                   "query_unknown named \"%s\", not in the query", out);
        /* A name cut to fit out may be a prefix of an allowed one; only a
         * name that fitted whole can be checked against the list. */
        if (strlen(out) + 1 < out_len)
            FUZZ_CHECK(!is_allowed(out), "query_unknown named the allowed \"%s\"", out);
    }

    int limit = -1;
    rc = query_get_limit(query, LIMIT_DEFAULT, LIMIT_MAX, &limit);
    FUZZ_CHECK(rc == 0 || rc == BILLOW_EPARAM_INVALID, "query_get_limit returned %d", rc);
    if (rc == 0 && !names_in_query(query, "limit", true))
        FUZZ_CHECK(limit == LIMIT_DEFAULT, "no limit given, but the page size is %d", limit);
    else if (rc == 0)
        FUZZ_CHECK(limit >= 1 && limit <= LIMIT_MAX, "page size %d outside [1, %d]", limit,
                   LIMIT_MAX);

    free(out);
    free(query);
    return 0;
}

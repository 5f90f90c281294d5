/* query: reading parameters from a URL query string ("a=1&b=x%20y"). */
#ifndef BILLOW_QUERY_H
#define BILLOW_QUERY_H

#include <stddef.h>

#include "err.h"

/* Finds name in query (may be NULL) and writes its percent-decoded value
 * into out. Returns 1 when found, 0 when absent, BILLOW_EPARAM_INVALID when
 * the value is badly encoded, is not UTF-8 without control characters,
 * contains a NUL or does not fit in out_len. */
int query_get(const char *query, const char *name, char *out, size_t out_len) BILLOW_MUSTCHECK;
/* The first parameter name in query that is not in the NULL-terminated
 * list allowed, copied into out; returns 1 if there is one, else 0. */
int query_unknown(const char *query, const char *const *allowed, char *out, size_t out_len);

/* The page size of a list: the "limit" parameter, 1 to max, or def when
 * absent. Returns 0, or BILLOW_EPARAM_INVALID for anything else. */
int query_get_limit(const char *query, int def, int max, int *out) BILLOW_MUSTCHECK;

#endif

/* redis_url: parsing REDIS_URL (see redis_url.c). */
#ifndef BILLOW_REDIS_URL_H
#define BILLOW_REDIS_URL_H

#include <stddef.h>

#include "err.h"

/* Longest Redis host name accepted in REDIS_URL. */
#define REDIS_URL_HOST_MAX 256
/* Redis's port when the URL names none. */
#define REDIS_URL_DEFAULT_PORT 6379
/* Largest database number accepted (Redis is configured with 16 by default;
 * the bound only stops absurd numbers). */
#define REDIS_URL_DB_MAX 1000000

/* Parses "redis://host[:port][/db]" (port defaults to 6379, db to 0).
 * Returns 0 with host, port and db set, or BILLOW_EPARAM_INVALID (outputs
 * then unspecified). */
int redis_url_parse(const char *url, char *host, size_t host_len, int *port,
                    int *db) BILLOW_MUSTCHECK;

#endif

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

/* Longest user name or password accepted in REDIS_URL, once decoded. */
#define REDIS_URL_CRED_MAX 256

/* Parses "redis://[[user]:password@]host[:port][/db]" (port defaults to
 * 6379, db to 0; the credentials are read by redis_url_credentials).
 * Returns 0 with host, port and db set, or BILLOW_EPARAM_INVALID (outputs
 * then unspecified). */
int redis_url_parse(const char *url, char *host, size_t host_len, int *port,
                    int *db) BILLOW_MUSTCHECK;

/* The credentials of a URL redis_url_parse accepts, percent-decoded:
 * password "" when the URL has none (no AUTH is sent); user "" when only a
 * password is given (AUTH password: Redis's default user). Returns 0, or
 * BILLOW_EPARAM_INVALID for a user without a password, an empty password,
 * a bad %-escape, a %00, or a value longer than REDIS_URL_CRED_MAX - 1. */
int redis_url_credentials(const char *url, char user[REDIS_URL_CRED_MAX],
                          char password[REDIS_URL_CRED_MAX]) BILLOW_MUSTCHECK;

/* The AUTH command for the credentials (as redis_url_credentials gives
 * them) in argv: returns its argc, 0 when there is no password (no AUTH). */
int redis_url_auth_argv(const char *user, const char *password, const char *argv[3]);

#endif

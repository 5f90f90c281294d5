/* auth: who is asking, from the Authorization header.
 *
 * Two kinds of bearer token exist in the spine: the platform operator's
 * token (PLATFORM_ADMIN_TOKEN, compared in constant time) and a tenant's
 * secret API key ("sk_…"). A key is looked up by its SHA-256 through the
 * SECURITY DEFINER function auth_api_key() on the read pool, and a verified
 * key is cached for AUTH_CACHE_TTL_MS so the hot path needs no query.
 */
#ifndef BILLOW_AUTH_H
#define BILLOW_AUTH_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "http_conn.h"
#include "ids.h"

/* A verified key is trusted this long without asking Postgres again; a
 * revoked key therefore keeps working for at most this long on an api
 * process that used it recently. */
#define AUTH_CACHE_TTL_MS 30000
/* Keys kept in the cache; when full it is emptied, so a flood of distinct
 * keys cannot grow memory. */
#define AUTH_CACHE_MAX 10000
/* Longest bearer token looked at; longer ones are refused unread. */
#define AUTH_TOKEN_MAX 256

typedef enum {
    AUTH_ANONYMOUS, /* No credentials (only public routes). */
    AUTH_PLATFORM,  /* The platform operator. */
    AUTH_KEY,       /* A tenant's secret API key. */
} auth_kind_t;

typedef struct {
    auth_kind_t kind;        /* Which credential. */
    char tenant_id[IDS_MAX]; /* The key's tenant ("" for the platform). */
    char key_id[IDS_MAX];    /* The key's id ("" for the platform). */
    char role[16];           /* The key's role ("owner"). */
    bool livemode;           /* The tenant is live (not test mode). */
    char actor[IDS_MAX];     /* "platform" or the key id: recorded on jobs. */
} auth_t;

typedef struct auth_cache_s auth_cache_t;
struct app_s;

auth_cache_t *auth_cache_create(void);
void auth_cache_destroy(auth_cache_t *cache);

/* Called once with 0 and *out filled, or BILLOW_EUNAUTHENTICATED (no or
 * unknown token) or BILLOW_EUNAVAILABLE (Postgres down). */
typedef void (*auth_cb)(void *data, int err);

/* Authenticates req into *out (which must stay valid until cb). Returns 0
 * and calls cb once later or right away, or returns an error and never calls cb. */
int auth_start(struct app_s *app, const http_req_t *req, auth_t *out, auth_cb cb,
               void *data) BILLOW_MUSTCHECK;

#endif

/* auth: who is asking, from the Authorization header.
 *
 * Three kinds of bearer token: the platform operator's token
 * (PLATFORM_ADMIN_TOKEN, compared in constant time), a tenant's secret API
 * key ("sk_…") and a staff user's session token ("bst_…"). Keys and
 * sessions are looked up by the SHA-256 of the token through SECURITY
 * DEFINER functions on the read pool (auth_api_key(), auth_session()).
 *
 * A verified key is cached for AUTH_CACHE_TTL_MS so the hot path of
 * integrations needs no query; a revoked or rotated key's job completion
 * flushes the cache of every api (auth_cache_flush). Sessions are not
 * cached: disabling a user, changing a password or ending a session takes
 * effect on the next request. A session's idle expiry is kept in Redis
 * (sess:<id> holds its last use), its absolute expiry in Postgres; both are
 * judged by the api's clock (auth_session_state).
 */
#ifndef BILLOW_AUTH_H
#define BILLOW_AUTH_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "http_conn.h"
#include "ids.h"
#include "permissions.h"

/* A verified key is trusted this long without asking Postgres again; a
 * revoked key therefore keeps working for at most this long on an api
 * process that used it recently. */
#define AUTH_CACHE_TTL_MS 30000
/* Keys kept in the cache; when full it is emptied, so a flood of distinct
 * keys cannot grow memory. */
#define AUTH_CACHE_MAX 10000
/* A staff session token: this prefix and 43 random characters. */
#define AUTH_SESSION_PREFIX "bst_"
/* The Redis key of a session's last use ("sess:" + session id). */
#define AUTH_SESSION_KEY_MAX (IDS_MAX + 8)
/* Longest bearer token looked at; longer ones are refused unread. */
#define AUTH_TOKEN_MAX 256

typedef enum {
    AUTH_ANONYMOUS, /* No credentials (only public routes). */
    AUTH_PLATFORM,  /* The platform operator. */
    AUTH_KEY,       /* A tenant's secret API key. */
    AUTH_SESSION,   /* A signed-in staff user's session token. */
} auth_kind_t;

typedef struct {
    auth_kind_t kind;                /* Which credential. */
    char tenant_id[IDS_MAX];         /* The tenant ("" for the platform). */
    char key_id[IDS_MAX];            /* AUTH_KEY: the key's id, else "". */
    char user_id[IDS_MAX];           /* AUTH_SESSION: the user's id, else "". */
    char session_id[IDS_MAX];        /* AUTH_SESSION: the session's id, else "". */
    char role[PERMISSIONS_ROLE_MAX]; /* The key's or user's role ("" for the platform). */
    bool livemode;                   /* The tenant is live (not test mode). */
    bool must_enroll_totp;           /* The tenant requires TOTP and the user has none yet. */
    char actor[IDS_MAX];             /* "platform", the key id or the user id: recorded on jobs. */
} auth_t;

typedef struct auth_cache_s auth_cache_t;
struct app_s;

auth_cache_t *auth_cache_create(void);
void auth_cache_destroy(auth_cache_t *cache);
/* Forgets every cached key (a key was revoked or rotated somewhere). */
void auth_cache_flush(auth_cache_t *cache);
/* The flushes so far: a look-up takes it when it starts and hands it to
 * auth_cache_put, so that an answer read before a revocation committed and
 * arriving after its flush is not cached again. */
uint64_t auth_cache_generation(const auth_cache_t *cache);
/* Caches auth under hash until now + AUTH_CACHE_TTL_MS, or until ends_ms (the
 * key's own end, a rotation's grace) when that is sooner (ends_ms < 0: none),
 * unless the cache was flushed since generation was taken. */
void auth_cache_put(auth_cache_t *cache, uint64_t generation, const char *hash, const auth_t *auth,
                    int64_t now, int64_t ends_ms);
/* The cached auth of hash at now, or NULL. */
const auth_t *auth_cache_get(auth_cache_t *cache, const char *hash, int64_t now);

/* How a session stands at now_ms: AUTH_SESSION_LIVE, or ended by its
 * absolute expiry, or idle since last_used_ms for longer than idle_ms
 * (last_used_ms < 0: no use is known, which counts as idle). Pure: the
 * clock is the caller's, so tests can move it. */
typedef enum {
    AUTH_SESSION_LIVE,
    AUTH_SESSION_EXPIRED,
    AUTH_SESSION_IDLE,
} auth_session_state_t;
auth_session_state_t auth_session_state(int64_t now_ms, int64_t expires_ms, int64_t last_used_ms,
                                        int64_t idle_ms);

/* The Redis key holding a session's last use. */
void auth_session_key(const char *session_id, char out[AUTH_SESSION_KEY_MAX]);

/* Called once with 0 and *out filled, or BILLOW_EUNAUTHENTICATED (no or
 * unknown token) or BILLOW_EUNAVAILABLE (Postgres down). */
typedef void (*auth_cb)(void *data, int err);

/* Authenticates req into *out (which must stay valid until cb). Returns 0
 * and calls cb once later or right away, or returns an error and never calls cb. */
int auth_start(struct app_s *app, const http_req_t *req, auth_t *out, auth_cb cb,
               void *data) BILLOW_MUSTCHECK;

#endif

/* auth: bearer tokens to an auth_t (see auth.h).
 *
 * Design: the secret never leaves this file except as its SHA-256. The cache
 * is a chained hash table keyed by that hash; entries expire after
 * AUTH_CACHE_TTL_MS and the whole table is dropped when it reaches
 * AUTH_CACHE_MAX, which bounds memory without an LRU list.
 */
#include "auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app.h"
#include "crypto.h"
#include "mem.h"
#include "timeutil.h"

#define AUTH_CACHE_BUCKETS 4096

typedef struct cache_entry_s {
    char hash[CRYPTO_SHA256_HEX]; /* SHA-256 of the secret. */
    auth_t auth;                  /* What the key resolved to. */
    int64_t expires_ms;           /* Wall-clock expiry. */
    struct cache_entry_s *next;   /* Bucket chain. */
} cache_entry_t;

struct auth_cache_s {
    cache_entry_t *buckets[AUTH_CACHE_BUCKETS]; /* Chains by hash prefix. */
    size_t count;                               /* Entries in all chains. */
    uint64_t generation;                        /* Flushes so far (auth_cache_put). */
};

auth_cache_t *auth_cache_create(void)
{
    return mem_calloc(1, sizeof(auth_cache_t));
}

static void cache_clear(auth_cache_t *cache)
{
    for (size_t i = 0; i < AUTH_CACHE_BUCKETS; i++) {
        cache_entry_t *e = cache->buckets[i];
        while (e) {
            cache_entry_t *next = e->next;
            free(e);
            e = next;
        }
        cache->buckets[i] = NULL;
    }
    cache->count = 0;
}

void auth_cache_flush(auth_cache_t *cache)
{
    cache_clear(cache);
    cache->generation++;
}

uint64_t auth_cache_generation(const auth_cache_t *cache)
{
    return cache->generation;
}

void auth_cache_destroy(auth_cache_t *cache)
{
    if (cache == NULL)
        return;
    cache_clear(cache);
    free(cache);
}

static size_t bucket_of(const char *hash)
{
    return strtoul((char[4]){hash[0], hash[1], hash[2], '\0'}, NULL, 16) % AUTH_CACHE_BUCKETS;
}

const auth_t *auth_cache_get(auth_cache_t *cache, const char *hash, int64_t now)
{
    for (cache_entry_t *e = cache->buckets[bucket_of(hash)]; e; e = e->next)
        if (strcmp(e->hash, hash) == 0)
            return e->expires_ms > now ? &e->auth : NULL;
    return NULL;
}

void auth_cache_put(auth_cache_t *cache, uint64_t generation, const char *hash, const auth_t *auth,
                    int64_t now, int64_t ends_ms)
{
    if (generation != cache->generation)
        return;
    int64_t expires = now + AUTH_CACHE_TTL_MS;
    if (ends_ms >= 0 && ends_ms < expires)
        expires = ends_ms;
    size_t b = bucket_of(hash);
    for (cache_entry_t *e = cache->buckets[b]; e; e = e->next) {
        if (strcmp(e->hash, hash) == 0) {
            e->auth = *auth;
            e->expires_ms = expires;
            return;
        }
    }
    if (cache->count >= AUTH_CACHE_MAX)
        cache_clear(cache);
    cache_entry_t *e = mem_calloc(1, sizeof(*e));
    memcpy(e->hash, hash, sizeof(e->hash));
    e->auth = *auth;
    e->expires_ms = expires;
    e->next = cache->buckets[b];
    cache->buckets[b] = e;
    cache->count++;
}

auth_session_state_t auth_session_state(int64_t now_ms, int64_t expires_ms, int64_t last_used_ms,
                                        int64_t idle_ms)
{
    if (now_ms >= expires_ms)
        return AUTH_SESSION_EXPIRED;
    if (last_used_ms < 0 || now_ms - last_used_ms > idle_ms)
        return AUTH_SESSION_IDLE;
    return AUTH_SESSION_LIVE;
}

void auth_session_key(const char *session_id, char out[AUTH_SESSION_KEY_MAX])
{
    snprintf(out, AUTH_SESSION_KEY_MAX, "sess:%s", session_id);
}

typedef struct {
    app_t *app;                   /* For the cache. */
    auth_t *out;                  /* Caller's result. */
    auth_cb cb;                   /* Caller's callback. */
    void *data;                   /* Caller's data. */
    char hash[CRYPTO_SHA256_HEX]; /* The key's hash. */
    uint64_t generation;          /* The cache's when the look-up began. */
} lookup_t;

static void copy_field(char *dst, size_t len, const PGresult *res, int col)
{
    snprintf(dst, len, "%s", PQgetvalue(res, 0, col));
}

static void on_lookup(void *data, int err, const PGresult *res)
{
    lookup_t *lk = data;
    if (err) {
        lk->cb(lk->data, BILLOW_EUNAVAILABLE);
    } else if (PQntuples(res) != 1) {
        lk->cb(lk->data, BILLOW_EUNAUTHENTICATED);
    } else {
        auth_t *a = lk->out;
        memset(a, 0, sizeof(*a));
        a->kind = AUTH_KEY;
        copy_field(a->tenant_id, sizeof(a->tenant_id), res, 0);
        copy_field(a->key_id, sizeof(a->key_id), res, 1);
        copy_field(a->role, sizeof(a->role), res, 2);
        a->livemode = PQgetvalue(res, 0, 3)[0] == 't';
        snprintf(a->actor, sizeof(a->actor), "%s", a->key_id);
        int64_t ends = PQgetisnull(res, 0, 4) ? -1 : strtoll(PQgetvalue(res, 0, 4), NULL, 10);
        auth_cache_put(lk->app->auth_cache, lk->generation, lk->hash, a, timeutil_now_ms(), ends);
        lk->cb(lk->data, 0);
    }
    free(lk);
}

/* A session being checked: its row from Postgres, then its last use. */
typedef struct {
    lookup_t lk;        /* The look-up (first, so a lookup_t * is this). */
    int64_t now;        /* The clock of this check. */
    int64_t expires_ms; /* The session's absolute end. */
} session_check_t;

/* Redis answered the session's previous use (0: none known, or idle too
 * long, and then forgotten); the verdict is auth_session_state's. */
static void on_session_touched(void *data, redisReply *r)
{
    session_check_t *sc = data;
    int err = 0;
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        err = BILLOW_EUNAVAILABLE;
    } else {
        int64_t last = r->type == REDIS_REPLY_INTEGER && r->integer > 0 ? r->integer : -1;
        int64_t idle = (int64_t)sc->lk.app->cfg->session_idle_s * 1000;
        if (auth_session_state(sc->now, sc->expires_ms, last, idle) != AUTH_SESSION_LIVE)
            err = BILLOW_EUNAUTHENTICATED;
    }
    sc->lk.cb(sc->lk.data, err);
    free(sc);
}

static void on_session(void *data, int err, const PGresult *res)
{
    session_check_t *sc = data;
    lookup_t *lk = &sc->lk;
    if (err || PQntuples(res) != 1) {
        lk->cb(lk->data, err ? BILLOW_EUNAVAILABLE : BILLOW_EUNAUTHENTICATED);
        free(sc);
        return;
    }
    /* tenant_id, session_id, user_id, role, livemode, expires_ms, must_enroll_totp */
    auth_t *a = lk->out;
    memset(a, 0, sizeof(*a));
    a->kind = AUTH_SESSION;
    copy_field(a->tenant_id, sizeof(a->tenant_id), res, 0);
    copy_field(a->session_id, sizeof(a->session_id), res, 1);
    copy_field(a->user_id, sizeof(a->user_id), res, 2);
    copy_field(a->role, sizeof(a->role), res, 3);
    a->livemode = PQgetvalue(res, 0, 4)[0] == 't';
    sc->expires_ms = strtoll(PQgetvalue(res, 0, 5), NULL, 10);
    a->must_enroll_totp = PQgetvalue(res, 0, 6)[0] == 't';
    snprintf(a->actor, sizeof(a->actor), "%s", a->user_id);

    /* The idle check and this use's record are one atomic step in Redis
     * (two requests at once cannot both revive an idle session); the
     * verdict, with the absolute expiry, is made here by this clock. */
    sc->now = timeutil_now_ms();
    char key[AUTH_SESSION_KEY_MAX], now_s[24], idle_s[24];
    auth_session_key(a->session_id, key);
    snprintf(now_s, sizeof now_s, "%lld", (long long)sc->now);
    snprintf(idle_s, sizeof idle_s, "%lld", (long long)lk->app->cfg->session_idle_s * 1000);
    const char *argv[] = {"FCALL", "billow_session_touch", "1", key, now_s, idle_s};
    if (redis_conn_commandv(lk->app->redis, on_session_touched, sc, 6, argv) != 0) {
        lk->cb(lk->data, BILLOW_EUNAVAILABLE);
        free(sc);
    }
}

/* Asks Postgres who the token with this hash is (sql takes it as $1);
 * on_row finishes the answer. Returns 0 or BILLOW_EUNAVAILABLE. */
static int lookup(app_t *app, const char *hash, auth_t *out, auth_cb cb, void *data,
                  const char *sql, pg_query_cb on_row, size_t size)
{
    lookup_t *lk = mem_calloc(1, size);
    memcpy(lk->hash, hash, sizeof(lk->hash));
    lk->app = app;
    lk->generation = auth_cache_generation(app->auth_cache);
    lk->out = out;
    lk->cb = cb;
    lk->data = data;
    const char *params[1] = {lk->hash};
    if (pg_pool_query(app->pg, NULL, sql, 1, params, on_row, lk) != 0) {
        free(lk);
        return BILLOW_EUNAVAILABLE;
    }
    return 0;
}

int auth_start(app_t *app, const http_req_t *req, auth_t *out, auth_cb cb, void *data)
{
    const char *h = http_req_header(req, "Authorization");
    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
        return BILLOW_EUNAUTHENTICATED;
    const char *token = h + 7;
    while (*token == ' ')
        token++;
    size_t len = strlen(token);
    if (len == 0 || len > AUTH_TOKEN_MAX)
        return BILLOW_EUNAUTHENTICATED;

    if (strncmp(token, AUTH_SESSION_PREFIX, strlen(AUTH_SESSION_PREFIX)) == 0) {
        char hash[CRYPTO_SHA256_HEX];
        crypto_sha256_hex(token, len, hash);
        return lookup(app, hash, out, cb, data,
                      "SELECT tenant_id, session_id, user_id, role, livemode, expires_ms,"
                      " must_enroll_totp FROM auth_session($1)",
                      on_session, sizeof(session_check_t));
    }

    const char *platform = app->cfg->platform_admin_token;
    size_t plen = strlen(platform);
    if (plen > 0 && strncmp(token, "sk_", 3) != 0) {
        /* Compare hashes so the comparison takes the same time whatever the length. */
        char a[CRYPTO_SHA256_HEX], b[CRYPTO_SHA256_HEX];
        crypto_sha256_hex(token, len, a);
        crypto_sha256_hex(platform, plen, b);
        if (!crypto_equal(a, b, sizeof(a)))
            return BILLOW_EUNAUTHENTICATED;
        memset(out, 0, sizeof(*out));
        out->kind = AUTH_PLATFORM;
        snprintf(out->actor, sizeof(out->actor), "platform");
        cb(data, 0);
        return 0;
    }
    if (strncmp(token, "sk_", 3) != 0)
        return BILLOW_EUNAUTHENTICATED;

    char hash[CRYPTO_SHA256_HEX];
    crypto_sha256_hex(token, len, hash);
    const auth_t *cached = auth_cache_get(app->auth_cache, hash, timeutil_now_ms());
    if (cached) {
        *out = *cached;
        cb(data, 0);
        return 0;
    }
    return lookup(app, hash, out, cb, data,
                  "SELECT tenant_id, key_id, role, livemode, expires_ms FROM auth_api_key($1)",
                  on_lookup, sizeof(lookup_t));
}

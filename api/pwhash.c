/* pwhash: scrypt on libuv's thread pool (see pwhash.h).
 *
 * Each call copies what it needs into a work item, so the request that
 * asked may be answered or freed meanwhile only through its callback: the
 * item lives until the after-work callback on the loop thread. The
 * password copy is wiped before it is freed.
 */
#include "pwhash.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "log.h"
#include "mem.h"

/* The dummy hash's password: any fixed text; nobody's password is checked
 * against it with a chance of success, since a miss is reported either way. */
#define PWHASH_DUMMY_SECRET "billow-dummy-password-for-unknown-users"

typedef struct {
    uv_work_t work;                 /* The thread-pool request. */
    char *password;                 /* Copy; wiped and freed after. */
    char *encoded;                  /* In: the hash to verify (copy). */
    password_params_t params;       /* In: hashing cost. */
    int err;                        /* Out. */
    bool ok;                        /* Out: verify matched. */
    bool dummy;                     /* Verify against the dummy: report false. */
    char out[PASSWORD_ENCODED_MAX]; /* Out: the new hash. */
    pwhash_hash_cb hash_cb;
    pwhash_verify_cb verify_cb;
    void *data;
} pw_work_t;

static void work_free(pw_work_t *w)
{
    if (w->password) {
        OPENSSL_cleanse(w->password, strlen(w->password));
        free(w->password);
    }
    free(w->encoded);
    free(w);
}

static void do_hash(uv_work_t *req)
{
    pw_work_t *w = req->data;
    w->err = password_hash(w->password, &w->params, w->out);
}

static void after_hash(uv_work_t *req, int status)
{
    pw_work_t *w = req->data;
    int err = status != 0 ? BILLOW_EINTERNAL : w->err;
    w->hash_cb(w->data, err, err == 0 ? w->out : NULL);
    work_free(w);
}

static void do_verify(uv_work_t *req)
{
    pw_work_t *w = req->data;
    bool ok = false;
    w->err = password_verify(w->encoded, w->password, &ok);
    w->ok = w->err == 0 && ok && !w->dummy;
}

static void after_verify(uv_work_t *req, int status)
{
    pw_work_t *w = req->data;
    if (w->err != 0 && !w->dummy)
        log_write(LOG_WARN, "password_hash_unreadable", "{s:i}", "error", w->err);
    w->verify_cb(w->data, status == 0 && w->ok);
    work_free(w);
}

int pwhash_init(app_t *app)
{
    char encoded[PASSWORD_ENCODED_MAX];
    int rc = password_hash(PWHASH_DUMMY_SECRET, &app->pw_params, encoded);
    if (rc != 0)
        return rc;
    app->pw_dummy = mem_strdup(encoded);
    return 0;
}

void pwhash_dispose(app_t *app)
{
    free(app->pw_dummy);
    app->pw_dummy = NULL;
}

int pwhash_hash(app_t *app, const char *password, pwhash_hash_cb cb, void *data)
{
    pw_work_t *w = mem_calloc(1, sizeof(*w));
    w->work.data = w;
    w->password = mem_strdup(password);
    w->params = app->pw_params;
    w->hash_cb = cb;
    w->data = data;
    int rc = uv_queue_work(app->loop, &w->work, do_hash, after_hash);
    if (rc != 0) {
        work_free(w);
        return BILLOW_EINTERNAL;
    }
    return 0;
}

int pwhash_verify(app_t *app, const char *encoded, const char *password, pwhash_verify_cb cb,
                  void *data)
{
    pw_work_t *w = mem_calloc(1, sizeof(*w));
    w->work.data = w;
    w->password = mem_strdup(password);
    w->dummy = encoded == NULL;
    w->encoded = mem_strdup(encoded ? encoded : app->pw_dummy);
    w->verify_cb = cb;
    w->data = data;
    int rc = uv_queue_work(app->loop, &w->work, do_verify, after_verify);
    if (rc != 0) {
        work_free(w);
        return BILLOW_EINTERNAL;
    }
    return 0;
}

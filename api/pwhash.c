/* pwhash: scrypt on libuv's thread pool (see pwhash.h).
 *
 * Each call copies what it needs into a work item, so the request that
 * asked may be answered or freed meanwhile only through its callback: the
 * item lives until the after-work callback on the loop thread. The
 * password copy is wiped before it is freed.
 *
 * Design: items beyond the concurrency limit wait in a FIFO on the loop
 * thread (a singly linked list with a tail pointer); each finished item
 * starts the next. Only the loop thread touches the queue and the counts,
 * so they need no lock.
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

typedef struct pw_work_s {
    uv_work_t work;                 /* The thread-pool request. */
    char *password;                 /* Copy; wiped and freed after. */
    char *encoded;                  /* Verify: the hash to check (copy); NULL for a hash. */
    password_params_t params;       /* Hash: the cost. */
    int err;                        /* Out. */
    bool ok;                        /* Out: verify matched. */
    bool dummy;                     /* Verify against the dummy: report false. */
    char out[PASSWORD_ENCODED_MAX]; /* Out: the new hash. */
    pwhash_hash_cb hash_cb;         /* Set for a hash. */
    pwhash_verify_cb verify_cb;     /* Set for a verify. */
    void *data;                     /* The caller's. */
    struct pwhash_s *owner;         /* The queue it belongs to. */
    struct pw_work_s *next;         /* Queue link. */
} pw_work_t;

typedef struct pwhash_s {
    char *dummy;     /* A hash checked for unknown users. */
    int limit;       /* Hashes at once. */
    int running;     /* On the thread pool now. */
    int queued;      /* Waiting in the queue. */
    pw_work_t *head; /* The queue, oldest first. */
    pw_work_t *tail; /* Its newest. */
    uv_loop_t *loop; /* For uv_queue_work. */
} pwhash_t;

static void work_free(pw_work_t *w)
{
    if (w->password) {
        OPENSSL_cleanse(w->password, strlen(w->password));
        free(w->password);
    }
    free(w->encoded);
    free(w);
}

/* Runs on a pool thread: only w is touched. */
static void do_work(uv_work_t *req)
{
    pw_work_t *w = req->data;
    if (w->hash_cb) {
        w->err = password_hash(w->password, &w->params, w->out);
        return;
    }
    bool ok = false;
    w->err = password_verify(w->encoded, w->password, &ok);
    w->ok = w->err == 0 && ok && !w->dummy;
}

static void after_work(uv_work_t *req, int status);

/* Starts queued items while there is room. */
static void pump(pwhash_t *ph)
{
    while (ph->running < ph->limit && ph->head) {
        pw_work_t *w = ph->head;
        ph->head = w->next;
        if (ph->head == NULL)
            ph->tail = NULL;
        ph->queued--;
        w->next = NULL;
        if (uv_queue_work(ph->loop, &w->work, do_work, after_work) != 0) {
            /* Only an invalid argument fails here: answer it as a failure. */
            w->err = BILLOW_EINTERNAL;
            after_work(&w->work, UV_EINVAL);
            continue;
        }
        ph->running++;
    }
}

static void after_work(uv_work_t *req, int status)
{
    pw_work_t *w = req->data;
    pwhash_t *ph = w->owner;
    if (status == 0)
        ph->running--;
    if (w->hash_cb) {
        int err = status != 0 ? BILLOW_EINTERNAL : w->err;
        w->hash_cb(w->data, err, err == 0 ? w->out : NULL);
    } else {
        if (w->err != 0 && !w->dummy)
            log_write(LOG_WARN, "password_hash_unreadable", "{s:i}", "error", w->err);
        w->verify_cb(w->data, status == 0 && w->ok);
    }
    work_free(w);
    if (status == 0)
        pump(ph);
}

/* Queues w, or refuses it (freed) when the queue is full. */
static int submit(app_t *app, pw_work_t *w)
{
    pwhash_t *ph = app->pwhash;
    if (ph->queued >= PWHASH_QUEUE_MAX) {
        log_write(LOG_WARN, "password_queue_full", "{s:i}", "queued", ph->queued);
        work_free(w);
        return BILLOW_EUNAVAILABLE;
    }
    w->work.data = w;
    w->owner = ph;
    if (ph->tail)
        ph->tail->next = w;
    else
        ph->head = w;
    ph->tail = w;
    ph->queued++;
    pump(ph);
    return 0;
}

int pwhash_init(app_t *app, int concurrency)
{
    char encoded[PASSWORD_ENCODED_MAX];
    int rc = password_hash(PWHASH_DUMMY_SECRET, &app->pw_params, encoded);
    if (rc != 0)
        return rc;
    pwhash_t *ph = mem_calloc(1, sizeof(*ph));
    ph->dummy = mem_strdup(encoded);
    ph->loop = app->loop;
    if (concurrency <= 0) {
        unsigned cores = uv_available_parallelism();
        concurrency = cores > 1 ? (int)cores - 1 : 1;
    }
    ph->limit = concurrency;
    app->pwhash = ph;
    return 0;
}

void pwhash_dispose(app_t *app)
{
    pwhash_t *ph = app->pwhash;
    if (ph == NULL)
        return;
    while (ph->head) {
        pw_work_t *w = ph->head;
        ph->head = w->next;
        work_free(w);
    }
    free(ph->dummy);
    free(ph);
    app->pwhash = NULL;
}

int pwhash_hash(app_t *app, const char *password, pwhash_hash_cb cb, void *data)
{
    pw_work_t *w = mem_calloc(1, sizeof(*w));
    w->password = mem_strdup(password);
    w->params = app->pw_params;
    w->hash_cb = cb;
    w->data = data;
    return submit(app, w);
}

int pwhash_verify(app_t *app, const char *encoded, const char *password, pwhash_verify_cb cb,
                  void *data)
{
    pw_work_t *w = mem_calloc(1, sizeof(*w));
    w->password = mem_strdup(password);
    w->dummy = encoded == NULL;
    w->encoded = mem_strdup(encoded ? encoded : app->pwhash->dummy);
    w->verify_cb = cb;
    w->data = data;
    return submit(app, w);
}

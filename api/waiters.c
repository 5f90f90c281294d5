/* waiters: requests waiting for a job (see waiters.h).
 *
 * A waiter is in its bucket's list while armed. Firing (by notify, timeout
 * or shutdown) unlinks it, runs the callback once and closes its timer; the
 * memory goes in the close callback, as libuv requires.
 */
#include "waiters.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "mem.h"

/* Buckets of the id table: enough that thousands of concurrent waits keep
 * chains short. */
#define WAITERS_BUCKETS 4096

struct waiter_s {
    waiters_t *owner;      /* The table. */
    char job_id[IDS_MAX];  /* The awaited job. */
    waiter_cb cb;          /* Runs once. */
    void *data;            /* For cb. */
    uv_timer_t timer;      /* Timeout. */
    struct waiter_s *prev; /* Bucket list, while armed. */
    struct waiter_s *next; /* Bucket list, while armed. */
    int armed;             /* In the table and not yet fired. */
};

struct waiters_s {
    uv_loop_t *loop;                    /* The loop. */
    waiter_t *buckets[WAITERS_BUCKETS]; /* Armed waiters by id hash. */
    size_t closing;                     /* Timers not yet closed. */
    int destroying;                     /* Free the table when closing reaches 0. */
};

static size_t hash_id(const char *s)
{
    size_t h = 5381;
    while (*s)
        h = h * 33 + (unsigned char)*s++;
    return h % WAITERS_BUCKETS;
}

waiters_t *waiters_create(uv_loop_t *loop)
{
    waiters_t *w = mem_calloc(1, sizeof(*w));
    w->loop = loop;
    return w;
}

static void unlink_waiter(waiter_t *x)
{
    waiters_t *w = x->owner;
    if (x->prev)
        x->prev->next = x->next;
    else
        w->buckets[hash_id(x->job_id)] = x->next;
    if (x->next)
        x->next->prev = x->prev;
    x->prev = x->next = NULL;
    x->armed = 0;
}

static void on_closed(uv_handle_t *h)
{
    waiter_t *x = h->data;
    waiters_t *w = x->owner;
    free(x);
    w->closing--;
    if (w->destroying && w->closing == 0)
        free(w);
}

static void retire(waiter_t *x)
{
    uv_timer_stop(&x->timer);
    x->owner->closing++;
    uv_close((uv_handle_t *)&x->timer, on_closed);
}

static void fire(waiter_t *x, bool done)
{
    unlink_waiter(x);
    x->cb(x->data, done);
    retire(x);
}

static void on_timeout(uv_timer_t *t)
{
    fire(t->data, false);
}

waiter_t *waiters_add(waiters_t *w, const char *job_id, uint64_t timeout_ms, waiter_cb cb,
                      void *data)
{
    waiter_t *x = mem_calloc(1, sizeof(*x));
    x->owner = w;
    snprintf(x->job_id, sizeof(x->job_id), "%s", job_id);
    x->cb = cb;
    x->data = data;
    uv_timer_init(w->loop, &x->timer);
    x->timer.data = x;
    uv_timer_start(&x->timer, on_timeout, timeout_ms, 0);
    size_t b = hash_id(x->job_id);
    x->next = w->buckets[b];
    if (x->next)
        x->next->prev = x;
    w->buckets[b] = x;
    x->armed = 1;
    return x;
}

void waiters_cancel(waiter_t *x)
{
    if (!x->armed)
        return;
    unlink_waiter(x);
    retire(x);
}

void waiters_notify(waiters_t *w, const char *job_id)
{
    /* A callback may add or cancel waiters in this bucket: rescan after each. */
    size_t b = hash_id(job_id);
again:
    for (waiter_t *x = w->buckets[b]; x; x = x->next) {
        if (strcmp(x->job_id, job_id) == 0) {
            fire(x, true);
            goto again;
        }
    }
}

void waiters_destroy(waiters_t *w)
{
    for (size_t b = 0; b < WAITERS_BUCKETS; b++)
        while (w->buckets[b])
            fire(w->buckets[b], false);
    w->destroying = 1;
    if (w->closing == 0)
        free(w);
}

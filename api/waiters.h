/* waiters: requests that wait for a job to finish (Prefer: wait=N).
 *
 * Workers publish the id of every job that reaches a final status on
 * billow:jobs:done; the subscriber connection hands each id to
 * waiters_notify(). A waiter fires exactly once: when its job is announced,
 * or when its timeout passes, whichever comes first.
 *
 * Design: a hash table of job id → waiters, sized for many thousands of
 * concurrent waits; each waiter owns a uv_timer_t, freed in its close
 * callback.
 */
#ifndef BILLOW_WAITERS_H
#define BILLOW_WAITERS_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct waiters_s waiters_t;
typedef struct waiter_s waiter_t;

/* done is true when the job was announced, false on timeout or shutdown. */
typedef void (*waiter_cb)(void *data, bool done);

waiters_t *waiters_create(uv_loop_t *loop);
/* Waits up to timeout_ms for job_id. cb runs once, later, on the loop. */
waiter_t *waiters_add(waiters_t *w, const char *job_id, uint64_t timeout_ms, waiter_cb cb,
                      void *data);
/* Withdraws a waiter whose callback has not run; it never will. */
void waiters_cancel(waiter_t *waiter);
/* Fires every waiter of job_id with done = true. */
void waiters_notify(waiters_t *w, const char *job_id);
/* Fires every waiter with done = false, then frees w once its timers are closed. */
void waiters_destroy(waiters_t *w);

#endif

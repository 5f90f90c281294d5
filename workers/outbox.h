/* outbox: relaying follow-up jobs from the outbox table to Redis.
 *
 * A handler's follow-ups are rows in `outbox`, written in its job's
 * transaction (runtime_followup), so they exist exactly when the job's
 * effects do. After the commit the runtime relays them (outbox_relay, then
 * outbox_delete); a worker that dies in between leaves them behind, and
 * outbox_sweep, which every worker runs now and then, relays what is older
 * than a few seconds. Enqueue is idempotent by job id, so a row relayed
 * twice (by its worker and a sweeper) still makes one job.
 */
#ifndef BILLOW_OUTBOX_H
#define BILLOW_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"
#include "ids.h"
#include "worker_conn.h"

/* Enqueues one envelope (JSON text) and writes its job id into job_id.
 * Returns 0 when the job is in Redis (new or already there),
 * BILLOW_EPARAM_INVALID when the envelope does not decode (it can never be
 * relayed: it is logged and pushed onto the list `malformed_key`), or
 * BILLOW_EUNAVAILABLE when Redis failed. */
int outbox_relay(worker_conn_t *c, const char *envelope, const char *malformed_key,
                 char job_id[IDS_MAX]) BILLOW_MUSTCHECK;

/* Enqueues n envelopes in one pipeline (one round trip, whatever n).
 * relayed[i] says whether envelope i is in Redis now (new or already
 * there), with its id in job_ids[i]; an envelope that can never be relayed
 * is set aside as outbox_relay does, and one Redis refused is logged, both
 * with relayed[i] false. Returns 0, or BILLOW_EUNAVAILABLE when Redis
 * failed (then no relayed[i] counts). */
int outbox_relay_many(worker_conn_t *c, const char *const *envelopes, size_t n,
                      const char *malformed_key, char (*job_ids)[IDS_MAX],
                      bool *relayed) BILLOW_MUSTCHECK;

/* Deletes the relayed rows `job_ids` (n of them) of tenant, in a
 * transaction of its own. Returns 0 or BILLOW_EUNAVAILABLE (logged; the
 * rows are then relayed again by a sweep, harmlessly). */
int outbox_delete(worker_conn_t *c, const char *tenant, const char *const *job_ids,
                  size_t n) BILLOW_MUSTCHECK;

/* Relays outbox rows whose worker died between its commit and its relay:
 * for each tenant with rows older than a few seconds, up to a bounded
 * number of them. Failures are logged and left for the next sweep. */
void outbox_sweep(worker_conn_t *c, const char *malformed_key);

#endif

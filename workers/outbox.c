/* outbox: relaying follow-up jobs from the outbox table (see outbox.h).
 *
 * Design: the sweep deletes the rows it relays in the same transaction
 * (DELETE … RETURNING) rather than locking them with FOR UPDATE SKIP
 * LOCKED: the worker role may read and delete outbox rows but not update
 * them, and FOR UPDATE needs UPDATE. Two sweepers at once are still safe:
 * the second waits on the first's row locks and then finds the rows gone.
 * If Redis fails mid-sweep the rollback keeps the rows for the next sweep.
 */
#include "outbox.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "jobq.h"
#include "log.h"
#include "mem.h"
#include "runtime.h"

/* Outbox rows younger than this belong to a worker that is about to relay
 * them itself; the sweeper leaves them alone. */
#define SWEEP_AGE "5 seconds"
/* Rows one sweep relays per tenant, so one tenant's backlog cannot hold a
 * long transaction open; the next sweep takes the rest. */
#define SWEEP_LIMIT "200"

int outbox_relay(worker_conn_t *c, const char *envelope, const char *malformed_key,
                 char job_id[IDS_MAX])
{
    envelope_t env;
    jobq_outcome_t outcome;
    char id[IDS_MAX];
    if (c->redis == NULL)
        return BILLOW_EUNAVAILABLE;
    /* An envelope that cannot be read, or whose type no kind runs, can never
     * be relayed: it is set aside for an operator instead of retried. */
    bool bad = envelope_decode(envelope, strlen(envelope), &env) != 0;
    if (!bad && jobq_kind_for_type(env.type) == NULL) {
        envelope_dispose(&env);
        bad = true;
    }
    if (bad) {
        log_write(LOG_ERROR, "outbox_envelope_malformed", "{s:s}", "envelope", envelope);
        redisReply *r = redisCommand(c->redis, "LPUSH %s %s", malformed_key, envelope);
        if (r == NULL) {
            worker_conn_redis_lost(c, "outbox_relay");
            return BILLOW_EUNAVAILABLE;
        }
        freeReplyObject(r);
        r = redisCommand(c->redis, "LTRIM %s 0 %d", malformed_key, RUNTIME_MALFORMED_KEEP - 1);
        if (r)
            freeReplyObject(r);
        return BILLOW_EPARAM_INVALID;
    }
    snprintf(job_id, IDS_MAX, "%s", env.id);
    int rc = jobq_enqueue_sync(c->redis, &env, NULL, NULL, NULL, &outcome, id);
    if (rc != 0) {
        log_write(LOG_WARN, "outbox_relay_failed", "{s:s,s:s}", "job_id", env.id, "type", env.type);
        if (c->redis->err)
            worker_conn_redis_lost(c, "outbox_relay");
        rc = BILLOW_EUNAVAILABLE;
    }
    envelope_dispose(&env);
    return rc;
}

int outbox_delete(worker_conn_t *c, const char *tenant, const char *const *job_ids, size_t n)
{
    char *arr = runtime_pg_array(job_ids, n);
    char *tenant_lit = PQescapeLiteral(c->db, tenant, strlen(tenant));
    char *arr_lit = PQescapeLiteral(c->db, arr, strlen(arr));
    int rc = BILLOW_EUNAVAILABLE;
    if (tenant_lit && arr_lit) {
        /* One simple query is one transaction, so set_config(…, true)
         * holds for the DELETE and ends with it. */
        char *sql = mem_printf("SELECT set_config('app.tenant_id', %s, true); "
                               "DELETE FROM outbox WHERE job_id = ANY(%s::text[])",
                               tenant_lit, arr_lit);
        rc = worker_conn_pg_exec(c, sql, PGRES_COMMAND_OK, "outbox_delete");
        free(sql);
    }
    PQfreemem(tenant_lit);
    PQfreemem(arr_lit);
    free(arr);
    worker_conn_pg_abandon(c);
    return rc;
}

static void sweep_tenant(worker_conn_t *c, const char *tenant, const char *malformed_key)
{
    PGresult *res = NULL;
    int relayed = 0;
    if (worker_conn_pg_exec(c, "BEGIN", PGRES_COMMAND_OK, "sweep_begin") != 0 ||
        worker_conn_pg_set_tenant(c, tenant) != 0)
        goto fail;
    const char *params[] = {SWEEP_AGE};
    res = worker_conn_pg_params(c,
                                "DELETE FROM outbox WHERE job_id IN (SELECT job_id FROM outbox "
                                "WHERE created_at < now() - $1::interval ORDER BY created_at "
                                "LIMIT " SWEEP_LIMIT ") RETURNING job_id, envelope::text",
                                1, params, PGRES_TUPLES_OK, "sweep");
    if (res == NULL)
        goto fail;
    for (int row = 0; row < PQntuples(res); row++) {
        char id[IDS_MAX];
        int rc = outbox_relay(c, PQgetvalue(res, row, 1), malformed_key, id);
        if (rc == BILLOW_EUNAVAILABLE)
            goto fail;
        relayed += rc == 0;
    }
    if (worker_conn_pg_exec(c, "COMMIT", PGRES_COMMAND_OK, "sweep_commit") != 0)
        goto fail;
    if (relayed > 0)
        log_write(LOG_INFO, "outbox_swept", "{s:s,s:i}", "tenant_id", tenant, "count", relayed);
    PQclear(res);
    return;

fail:
    PQclear(res);
    worker_conn_pg_abandon(c);
}

void outbox_sweep(worker_conn_t *c, const char *malformed_key)
{
    const char *params[] = {SWEEP_AGE};
    if (c->db == NULL || c->redis == NULL)
        return;
    PGresult *res =
        worker_conn_pg_params(c, "SELECT t FROM outbox_pending_tenants($1::interval) AS t", 1,
                              params, PGRES_TUPLES_OK, "sweep_tenants");
    if (res == NULL)
        return;
    for (int row = 0; row < PQntuples(res) && c->redis != NULL; row++)
        sweep_tenant(c, PQgetvalue(res, row, 0), malformed_key);
    PQclear(res);
}

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
#include "timeutil.h"
#include "runtime.h"

/* Outbox rows younger than this belong to a worker that is about to relay
 * them itself; the sweeper leaves them alone. */
#define SWEEP_AGE "5 seconds"
/* Rows one sweep relays per tenant, so one tenant's backlog cannot hold a
 * long transaction open; the next sweep takes the rest. */
#define SWEEP_LIMIT "200"

/* Sets aside an envelope that can never be relayed (it does not decode,
 * or no kind runs its type): logged and pushed onto malformed_key. */
static int set_aside(worker_conn_t *c, const char *envelope, const char *malformed_key)
{
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

int outbox_relay_many(worker_conn_t *c, const char *const *envelopes, size_t n,
                      const char *malformed_key, char (*job_ids)[IDS_MAX], bool *relayed)
{
    envelope_t *envs = mem_calloc(n + 1, sizeof *envs);
    jobq_cmd_t *cmds = mem_calloc(n + 1, sizeof *cmds);
    bool *sent = mem_calloc(n + 1, sizeof *sent);
    int64_t now = timeutil_now_ms();
    int rc = 0, pending = 0;

    for (size_t i = 0; i < n; i++) {
        relayed[i] = false;
        envelope_init(&envs[i]);
    }
    if (c->redis == NULL) {
        rc = BILLOW_EUNAVAILABLE;
        goto done;
    }
    /* The stored text is the envelope as the handler encoded it, so it is
     * sent as is; decoding only finds the id and the routing. */
    for (size_t i = 0; i < n && rc == 0; i++) {
        bool bad = envelope_decode(envelopes[i], strlen(envelopes[i]), &envs[i]) != 0 ||
                   jobq_enqueue_cmd(&cmds[i], &envs[i], envelopes[i], NULL, NULL, NULL, now) != 0;
        if (bad) {
            rc = set_aside(c, envelopes[i], malformed_key) == BILLOW_EUNAVAILABLE
                     ? BILLOW_EUNAVAILABLE
                     : 0;
            continue;
        }
        if (redisAppendCommandArgv(c->redis, cmds[i].argc, cmds[i].argv, cmds[i].argvlen) !=
            REDIS_OK) {
            rc = BILLOW_EUNAVAILABLE;
            break;
        }
        snprintf(job_ids[i], IDS_MAX, "%s", envs[i].id);
        sent[i] = true;
        pending++;
    }
    bool lost = rc != 0;
    for (size_t i = 0; i < n && !lost; i++) {
        if (!sent[i])
            continue;
        void *reply = NULL;
        if (redisGetReply(c->redis, &reply) != REDIS_OK) {
            lost = true;
            break;
        }
        jobq_outcome_t outcome;
        char id[IDS_MAX];
        relayed[i] = jobq_enqueue_reply(reply, &outcome, id) == 0;
        freeReplyObject(reply);
        if (!relayed[i]) {
            /* Refused by Redis (not by its content): the row must stay
             * for a later relay, so the whole call counts as failed. */
            log_write(LOG_WARN, "outbox_relay_failed", "{s:s,s:s}", "job_id", envs[i].id, "type",
                      envs[i].type);
            rc = BILLOW_EUNAVAILABLE;
        }
    }
    if (lost) {
        rc = BILLOW_EUNAVAILABLE;
        if (c->redis != NULL)
            worker_conn_redis_lost(c, "outbox_relay");
    }

done:
    for (size_t i = 0; i < n; i++)
        envelope_dispose(&envs[i]);
    free(envs);
    free(cmds);
    free(sent);
    return rc;
}

int outbox_relay(worker_conn_t *c, const char *envelope, const char *malformed_key,
                 char job_id[IDS_MAX])
{
    char ids[1][IDS_MAX];
    bool relayed = false;
    int rc = outbox_relay_many(c, &envelope, 1, malformed_key, ids, &relayed);
    if (rc != 0)
        return rc;
    if (!relayed)
        return BILLOW_EPARAM_INVALID;
    snprintf(job_id, IDS_MAX, "%s", ids[0]);
    return 0;
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

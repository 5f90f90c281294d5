/* kind_dunning: the `dunning` worker kind (see kind_dunning.h).
 *
 * The charger writes, with each failed attempt, what the tenant's policy
 * says comes next onto the invoice (next_payment_attempt, or
 * dunning_ends_at). This kind acts on it: its tick enqueues the retries
 * and ends that have come due (by the customer's test clock when on one),
 * each under an id derived from (invoice, attempt) so a retry is asked for
 * once however many ticks see it; its jobs move the subscription (past_due
 * on a failure, the policy's end when nothing is left to try) and record
 * the customer's messages for the notifier.
 */
#include "kind_dunning.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "billing.h"
#include "envelope.h"
#include "handler_util.h"
#include "jobq.h"
#include "log.h"
#include "payments.h"
#include "timeutil.h"

/* Due invoices taken per scan step. */
#define DUNNING_SCAN_LIMIT 500

/* Moves the subscription of invoice_id by ev when the invoice is still
 * open and the move is allowed (a quiet no-op otherwise: a subscription
 * already past due stays so; a canceled one is left). Any open invoice of
 * the subscription counts, not only its latest: a renewal that fails after
 * a newer invoice was made (a credit invoiced at once, say) is as much
 * owed. An invoice paid or voided since the failure moves nothing. */
static handler_outcome_t move_subscription(worker_job_t *job, const char *invoice_id,
                                           substate_event_t ev, char status_out[32])
{
    const char *params[1] = {invoice_id};
    PGresult *res = NULL;
    handler_outcome_t out = handler_util_exec(
        job, "SELECT coalesce(subscription_id, ''), status = 'open' FROM invoices WHERE id = $1", 1,
        params, PGRES_TUPLES_OK, &res);
    billing_sub_t s;
    memset(&s, 0, sizeof s);
    status_out[0] = '\0';
    if (out != HANDLER_OK)
        goto done;
    if (PQntuples(res) == 0 || PQgetvalue(res, 0, 0)[0] == '\0')
        goto done;
    bool still_open = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
    out = billing_sub_load(job, PQgetvalue(res, 0, 0), "subscription", &s);
    if (out != HANDLER_OK)
        goto done;
    substate_t to;
    char why[160];
    if (still_open && substate_next(s.status, ev, &to, why) == 0 && to != s.status) {
        out = billing_sub_transition(job, &s, ev);
        if (out == HANDLER_OK)
            out = billing_sub_save(job, &s);
        json_decref(job->result); /* billing_sub_save's result is not this job's. */
        job->result = NULL;
    }
    snprintf(status_out, 32, "%s", substate_name(s.status));

done:
    PQclear(res);
    billing_sub_dispose(&s);
    return out;
}

/* dunning.payment_failed {invoice, attempt, status, hard, next,
 * next_payment_attempt?, code?, decline_code?}: the subscription goes
 * past due, and the customer is told what happened and what to do (unless
 * there is nothing they can do: PAYMENTS_AMOUNT_UNSUPPORTED). */
static handler_outcome_t payment_failed(worker_job_t *job)
{
    const json_t *p = job->env->payload;
    const char *invoice = handler_util_req_string(p, "invoice");
    const char *status = handler_util_req_string(p, "status");
    const char *next = handler_util_req_string(p, "next");
    char sub_status[32];
    if (!invoice || !status || !next)
        return handler_util_bad_payload(job, "invoice, status and next are required");
    handler_outcome_t out = payments_lock_invoice(job, invoice);
    if (out == HANDLER_OK)
        out = move_subscription(job, invoice, SUBSTATE_EV_PAYMENT_FAILED, sub_status);
    if (out != HANDLER_OK)
        return out;
    json_t *data =
        json_pack("{s:O?,s:O?,s:O?}", "attempt", json_object_get(p, "attempt"), "code",
                  json_object_get(p, "code"), "decline_code", json_object_get(p, "decline_code"));
    const json_t *at = json_object_get(p, "next_payment_attempt");
    if (json_is_integer(at)) {
        char when[TIMEUTIL_RFC3339_MAX];
        timeutil_format_rfc3339_s((int64_t)json_integer_value(at) * 1000, when);
        json_object_set_new(data, "next_payment_attempt", json_string(when));
    }
    const char *code = json_string_value(json_object_get(p, "code"));
    /* An amount Stripe cannot take is Billow's to settle, not the
     * customer's: no card or retry of theirs would help, so no message. */
    if (code && strcmp(code, PAYMENTS_AMOUNT_UNSUPPORTED) == 0)
        json_decref(data);
    else if (strcmp(status, "requires_action") == 0)
        out = payments_notify(job, invoice, DUNNING_NOTIFY_ACTION_REQUIRED,
                              "payment.action_required", data);
    else if (json_is_true(json_object_get(p, "hard")))
        out = payments_notify(job, invoice, DUNNING_NOTIFY_PAYMENT_METHOD_REQUIRED,
                              "payment.method_required", data);
    else
        out = payments_notify(job, invoice, DUNNING_NOTIFY_PAYMENT_FAILED, "payment.failed", data);
    if (out == HANDLER_OK)
        job->result = json_pack("{s:s,s:s,s:s,s:s}", "object", "dunning_step", "invoice", invoice,
                                "next", next, "subscription_status", sub_status);
    return out;
}

/* dunning.end {invoice}: nothing is left to try; the policy's end action
 * applies (cancel, unpaid, or leave past due) and the customer is told. */
static handler_outcome_t dunning_end(worker_job_t *job)
{
    const char *invoice = handler_util_req_string(job->env->payload, "invoice");
    char sub_status[32] = "", sub_id[IDS_MAX] = "";
    dunning_policy_t policy;
    PGresult *res = NULL;
    if (!invoice)
        return handler_util_bad_payload(job, "invoice is required");
    handler_outcome_t out = payments_lock_invoice(job, invoice);
    if (out != HANDLER_OK || (out = payments_policy(job, &policy)) != HANDLER_OK)
        return out;
    const char *params[1] = {invoice};
    /* Due still? (Paid, voided or retried since it was enqueued: done.) */
    out =
        handler_util_exec(job,
                          "UPDATE invoices i SET dunning_ends_at = NULL, updated_at = now() "
                          "FROM customers c LEFT JOIN test_clocks tc ON tc.tenant_id = c.tenant_id"
                          " AND tc.id = c.test_clock_id "
                          "WHERE i.id = $1 AND c.tenant_id = i.tenant_id AND c.id = i.customer_id"
                          " AND i.status = 'open' AND i.next_payment_attempt IS NULL"
                          " AND i.dunning_ends_at <= coalesce(tc.frozen_time, now()) "
                          "RETURNING coalesce(i.subscription_id, '')",
                          1, params, PGRES_TUPLES_OK, &res);
    if (out != HANDLER_OK)
        goto done;
    if (PQntuples(res) == 0) {
        job->result = json_pack("{s:s,s:s,s:s}", "object", "dunning_end", "invoice", invoice,
                                "skipped", "not_due");
        goto done;
    }
    snprintf(sub_id, sizeof sub_id, "%s", PQgetvalue(res, 0, 0));
    if (sub_id[0] && policy.end == DUNNING_END_MARK_UNPAID) {
        out = move_subscription(job, invoice, SUBSTATE_EV_RETRIES_EXHAUSTED, sub_status);
    } else if (sub_id[0] && policy.end == DUNNING_END_CANCEL) {
        /* The invoice kind cancels (the same path as staff's cancel now),
         * in its own job: a subscription change belongs to that kind. */
        char key[160], id[IDS_MAX];
        snprintf(key, sizeof key, "subscription.cancel|dunning|%s", invoice);
        ids_derive("job", (uint64_t)timeutil_now_ms(), key, id);
        if (runtime_followup_id(
                job, "subscription.cancel",
                json_pack("{s:s,s:s}", "id", sub_id, "cancellation_reason", "payment_failed"),
                id) != 0)
            out = HANDLER_RETRY;
        snprintf(sub_status, sizeof sub_status, "canceling");
    }
    if (out == HANDLER_OK)
        out = payments_notify(job, invoice, DUNNING_NOTIFY_RETRIES_EXHAUSTED,
                              "payment.retries_exhausted",
                              json_pack("{s:s}", "end_action", dunning_end_name(policy.end)));
    if (out == HANDLER_OK)
        job->result = json_pack("{s:s,s:s,s:s,s:s}", "object", "dunning_end", "invoice", invoice,
                                "end_action", dunning_end_name(policy.end), "subscription_status",
                                sub_status);

done:
    PQclear(res);
    return out;
}

/* Enqueues the due rows of res (tenant, invoice, what, attempt, due_at)
 * one by one: retries as payment.charge, ends as dunning.end, each under
 * an id derived from its invoice, attempt and due time. */
static void enqueue_due(worker_conn_t *c, const PGresult *res)
{
    char trace[IDS_MAX];
    ids_generate("req", trace);
    for (int r = 0; r < PQntuples(res) && c->redis != NULL; r++) {
        const char *invoice = PQgetvalue(res, r, 1);
        bool retry = strcmp(PQgetvalue(res, r, 2), "retry") == 0;
        int attempt = atoi(PQgetvalue(res, r, 3));
        int64_t due = strtoll(PQgetvalue(res, r, 4), NULL, 10);
        char key[160];
        envelope_t env;
        envelope_init(&env);
        snprintf(key, sizeof key, "%s|%s|%d", retry ? "payment.charge" : "dunning.end", invoice,
                 attempt);
        ids_derive("job", (uint64_t)due * 1000, key, env.id);
        snprintf(env.type, sizeof env.type, "%s", retry ? "payment.charge" : "dunning.end");
        snprintf(env.tenant_id, sizeof env.tenant_id, "%s", PQgetvalue(res, r, 0));
        snprintf(env.actor, sizeof env.actor, "system");
        snprintf(env.trace, sizeof env.trace, "%s", trace);
        env.payload = retry ? json_pack("{s:s,s:i}", "invoice", invoice, "attempt", attempt)
                            : json_pack("{s:s}", "invoice", invoice);
        env.enqueued_at_ms = timeutil_now_ms();
        jobq_outcome_t outcome;
        char id[IDS_MAX];
        int rc = jobq_enqueue_sync(c->redis, &env, NULL, NULL, NULL, &outcome, id);
        if (rc == BILLOW_EUNAVAILABLE)
            worker_conn_redis_lost(c, "dunning_enqueue");
        else if (rc != 0)
            log_write(LOG_WARN, "dunning_enqueue_failed", "{s:s,s:s}", "invoice", invoice, "type",
                      env.type);
        envelope_dispose(&env);
    }
}

bool kind_dunning_tick(worker_conn_t *c, const config_t *cfg, void *state)
{
    if (c->db == NULL || c->redis == NULL)
        return false;
    char limit[16];
    snprintf(limit, sizeof limit, "%d", DUNNING_SCAN_LIMIT);
    const char *params[1] = {limit};
    PGresult *res = PQexecParams(c->db,
                                 "SELECT tenant_id, invoice_id, what, attempt, due_at "
                                 "FROM dunning_due($1::int)",
                                 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_write(LOG_WARN, "dunning_scan_failed", "{s:s}", "error", PQerrorMessage(c->db));
        PQclear(res);
        return false;
    }
    enqueue_due(c, res);
    PQclear(res);
    /* Due work stays due until its job has run, so the next scan finds it
     * again (and the queue refuses the same id): never "more at once". */
    return false;
}

const worker_handler_t kind_dunning_handlers[] = {
    {"dunning.payment_failed", payment_failed, false, NULL},
    {"dunning.end", dunning_end, false, NULL},
    {NULL, NULL, false, NULL},
};

/* payments: the steps the charger, the webhook processor and dunning share
 * (see payments.h). */
#include "payments.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handler_util.h"
#include "ids.h"
#include "kind_invoice.h"
#include "log.h"
#include "mem.h"
#include "money.h"
#include "seal.h"
#include "timeutil.h"

/* The seal contexts of the tenant's Stripe secrets (as the api sealed them). */
#define SEAL_CONTEXT_SECRET_KEY "stripe_secret_key"

static struct {
    bool ready;
    seal_key_t seal;
    stripe_client_t stripe;
    int parallel;
} P;

int payments_init(const config_t *cfg)
{
    if (seal_key_parse(cfg->encryption_key, &P.seal) != 0) {
        fprintf(stderr, "billow-worker: ENCRYPTION_KEY must be 64 hex digits\n");
        return -1;
    }
    if (stripe_client_init(&P.stripe, cfg->stripe_api_base) != 0) {
        fprintf(stderr, "billow-worker: STRIPE_API_BASE must be an http(s):// URL\n");
        return -1;
    }
    P.parallel = cfg->charger_parallel;
    P.ready = true;
    return 0;
}

void payments_dispose(void)
{
    if (P.ready)
        stripe_client_dispose(&P.stripe);
    memset(&P, 0, sizeof P);
}

stripe_client_t *payments_stripe(worker_job_t *job)
{
    stripe_client_on_wait(&P.stripe, runtime_heartbeat_cb, runtime_heartbeat_arg(job));
    return &P.stripe;
}

int payments_parallel(void)
{
    return P.parallel > 0 ? P.parallel : 1;
}

handler_outcome_t payments_customer_ready(worker_job_t *job, const char *id, bool *ready)
{
    const char *params[1] = {id};
    PGresult *res = NULL;
    handler_outcome_t out =
        handler_util_exec(job,
                          "SELECT 1 FROM customers WHERE id = $1 AND status <> 'closed'"
                          " AND stripe_customer_id IS NOT NULL"
                          " AND default_payment_method IS NOT NULL",
                          1, params, PGRES_TUPLES_OK, &res);
    *ready = out == HANDLER_OK && PQntuples(res) == 1;
    PQclear(res);
    return out;
}

handler_outcome_t payments_stripe_key(worker_job_t *job, char **key)
{
    *key = NULL;
    PGresult *res = NULL;
    handler_outcome_t out = handler_util_exec(job,
                                              "SELECT secret_key_sealed FROM stripe_accounts "
                                              "WHERE tenant_id = current_setting('app.tenant_id')",
                                              0, NULL, PGRES_TUPLES_OK, &res);
    size_t len;
    if (out == HANDLER_OK && PQntuples(res) == 0)
        out = runtime_reject(job, 409, "stripe_not_configured", NULL,
                             "This tenant has no Stripe account connected: set its secret key "
                             "with POST /v1/settings/stripe.");
    else if (out == HANDLER_OK &&
             seal_decrypt(&P.seal, SEAL_CONTEXT_SECRET_KEY, PQgetvalue(res, 0, 0), key, &len) != 0)
        out = runtime_fault(job, HANDLER_PERMANENT, "stripe_key_unreadable",
                            "The tenant's Stripe key does not open with this ENCRYPTION_KEY.");
    PQclear(res);
    return out;
}

handler_outcome_t payments_stripe_fault(worker_job_t *job, const stripe_response_t *r)
{
    if (r->outcome == STRIPE_RETRY)
        return runtime_fault(job, HANDLER_RETRY, "stripe_unavailable",
                             "Stripe did not answer usefully (HTTP %ld): %s", r->status,
                             r->message);
    return runtime_fault(
        job, HANDLER_PERMANENT, "stripe_error", "Stripe refused the request (HTTP %ld, %s%s%s): %s",
        r->status, r->type[0] ? r->type : "no type", r->code[0] ? ", " : "", r->code, r->message);
}

handler_outcome_t payments_to_stripe(worker_job_t *job, const char *currency, int64_t amount,
                                     const char *param, int64_t *out)
{
    switch (money_to_stripe(currency, amount, out)) {
    case 0:
        return HANDLER_OK;
    case BILLOW_ESTRIPE_AMOUNT:
        return runtime_reject(job, 400, "stripe_amount_unsupported", param,
                              "Stripe takes %s amounts only in whole tens of the minor unit (the "
                              "last of the three decimals 0, for its card networks); %" PRId64
                              " is not one, and Billow does not charge a rounded amount. Nothing "
                              "was sent to Stripe.",
                              currency, amount);
    case BILLOW_ESTRIPE_CURRENCY:
        return runtime_reject(job, 400, "stripe_currency_unsupported", "currency",
                              "Stripe does not take payments in %s. Nothing was sent to Stripe.",
                              currency);
    default:
        return runtime_reject(job, 400, "amount_too_large", param,
                              "%" PRId64 " %s cannot be sent to Stripe.", amount, currency);
    }
}

bool payments_from_stripe(const json_t *amount, const char *currency, int64_t *out)
{
    return json_is_integer(amount) &&
           money_from_stripe(currency, (int64_t)json_integer_value(amount), out) == 0;
}

/* Copies a string member of obj into out (size n); "" when absent. */
static void copy_member(const json_t *obj, const char *key, char *out, size_t n)
{
    const char *v = json_string_value(json_object_get(obj, key));
    snprintf(out, n, "%s", v ? v : "");
}

handler_outcome_t payments_ensure_customer(worker_job_t *job, const char *api_key,
                                           const char *customer_id,
                                           char stripe_id[PAYMENTS_STRIPE_ID_MAX])
{
    const char *params[2] = {customer_id, NULL};
    PGresult *res = NULL;
    handler_outcome_t out =
        handler_util_exec(job,
                          "SELECT coalesce(stripe_customer_id, ''), email, name, phone "
                          "FROM customers WHERE id = $1",
                          1, params, PGRES_TUPLES_OK, &res);
    stripe_form_t *form = NULL;
    stripe_response_t r;
    memset(&r, 0, sizeof r);
    stripe_id[0] = '\0';
    if (out != HANDLER_OK)
        goto done;
    if (PQntuples(res) == 0) {
        out = runtime_reject(job, 404, "resource_missing", "customer", "No such customer: '%s'.",
                             customer_id);
        goto done;
    }
    if (PQgetvalue(res, 0, 0)[0]) {
        snprintf(stripe_id, PAYMENTS_STRIPE_ID_MAX, "%s", PQgetvalue(res, 0, 0));
        goto done;
    }
    form = stripe_form_new();
    static const char *const fields[] = {"email", "name", "phone"};
    for (int i = 0; i < 3; i++)
        if (!PQgetisnull(res, 0, 1 + i))
            stripe_form_add(form, fields[i], PQgetvalue(res, 0, 1 + i));
    stripe_form_add_metadata(form, "billow_customer", customer_id);
    stripe_form_add_metadata(form, "billow_tenant", job->env->tenant_id);
    char key[128];
    snprintf(key, sizeof key, "billow:cus:%s", customer_id);
    stripe_call(payments_stripe(job), api_key, "POST", "/v1/customers", form, key, &r);
    if (r.outcome != STRIPE_OK) {
        out = payments_stripe_fault(job, &r);
        goto done;
    }
    copy_member(r.body, "id", stripe_id, PAYMENTS_STRIPE_ID_MAX);
    params[1] = stripe_id;
    out = handler_util_exec(job, "UPDATE customers SET stripe_customer_id = $2 WHERE id = $1", 2,
                            params, PGRES_COMMAND_OK, NULL);

done:
    PQclear(res);
    stripe_form_free(form);
    stripe_response_dispose(&r);
    return out;
}

handler_outcome_t payments_lock_invoice(worker_job_t *job, const char *id)
{
    const char *params[1] = {id};
    /* One statement per lock, in billing.h's order: the subscription (if
     * any), the customer, the invoice. */
    static const char *const steps[] = {
        "SELECT 1 FROM subscriptions s WHERE s.id = (SELECT subscription_id FROM invoices "
        "WHERE id = $1) FOR UPDATE",
        "SELECT 1 FROM customers c WHERE c.id = (SELECT customer_id FROM invoices WHERE id = $1) "
        "FOR UPDATE",
        "SELECT 1 FROM invoices WHERE id = $1 FOR UPDATE",
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        PGresult *res = NULL;
        handler_outcome_t out = handler_util_exec(job, steps[i], 1, params, PGRES_TUPLES_OK, &res);
        bool none = out == HANDLER_OK && PQntuples(res) == 0 && i == 2;
        PQclear(res);
        if (out != HANDLER_OK)
            return out;
        if (none)
            return runtime_reject(job, 404, "resource_missing", "invoice", "No such invoice: '%s'.",
                                  id);
    }
    return HANDLER_OK;
}

handler_outcome_t payments_invoice_settled_elsewhere(worker_job_t *job, const char *invoice_id)
{
    const char *params[1] = {invoice_id};
    PGresult *res = NULL;
    handler_outcome_t out = handler_util_exec(
        job,
        "SELECT a.stripe_payment_intent FROM payment_attempts a WHERE a.invoice_id = $1"
        " AND a.stripe_payment_intent IS NOT NULL"
        " AND NOT EXISTS (SELECT 1 FROM payment_attempts b WHERE b.invoice_id = $1"
        "  AND b.status = 'succeeded') "
        "ORDER BY a.attempt DESC LIMIT 1",
        1, params, PGRES_TUPLES_OK, &res);
    if (out == HANDLER_OK && PQntuples(res) == 1) {
        char key[PAYMENTS_STRIPE_ID_MAX + 32], id[IDS_MAX];
        const char *intent = PQgetvalue(res, 0, 0);
        snprintf(key, sizeof key, "payment.cancel_intent|%s", intent);
        ids_derive("job", (uint64_t)timeutil_now_ms(), key, id);
        if (runtime_followup_id(job, "payment.cancel_intent",
                                json_pack("{s:s,s:s}", "invoice", invoice_id, "intent", intent),
                                id) != 0)
            out = HANDLER_RETRY;
    }
    PQclear(res);
    return out;
}

handler_outcome_t payments_policy(worker_job_t *job, dunning_policy_t *p)
{
    dunning_policy_default(p);
    PGresult *res = NULL;
    handler_outcome_t out = handler_util_exec(job,
                                              "SELECT dunning_policy::text FROM tenants "
                                              "WHERE id = current_setting('app.tenant_id')",
                                              0, NULL, PGRES_TUPLES_OK, &res);
    if (out == HANDLER_OK && PQntuples(res) == 1) {
        json_t *j = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
        char param[DUNNING_PARAM_MAX], why[160];
        /* A stored policy was checked when it was set; one that no longer
         * reads keeps the defaults rather than stopping collection. */
        if (j == NULL || dunning_policy_read(j, p, param, why, sizeof why) != 0) {
            log_write(LOG_WARN, "dunning_policy_unreadable", "{s:s}", "tenant_id",
                      job->env->tenant_id);
            dunning_policy_default(p);
        }
        json_decref(j);
    }
    PQclear(res);
    return out;
}

bool payments_needs_action(const char *code, const char *decline_code)
{
    return (code && strcmp(code, "authentication_required") == 0) ||
           (decline_code && strcmp(decline_code, "authentication_required") == 0);
}

static const char NOTIFY_SQL[] =
    "INSERT INTO notifications (tenant_id, id, channel, template, recipient, data) "
    "SELECT i.tenant_id, $2, 'email', $3, c.email,"
    "  jsonb_build_object('customer', c.id, 'name', c.name, 'invoice', i.id, 'number', i.number,"
    "   'amount_due', i.amount_due, 'amount_remaining', i.amount_remaining,"
    "   'currency', i.currency) || $4::jsonb "
    "FROM invoices i JOIN customers c ON c.tenant_id = i.tenant_id AND c.id = i.customer_id "
    "WHERE i.id = $1 AND c.email IS NOT NULL";

handler_outcome_t payments_notify(worker_job_t *job, const char *invoice_id, dunning_notify_t which,
                                  const char *template_name, json_t *data)
{
    dunning_policy_t p;
    handler_outcome_t out = payments_policy(job, &p);
    if (out != HANDLER_OK || !p.notify[which]) {
        json_decref(data);
        return out;
    }
    char id[IDS_MAX];
    ids_generate("ntf", id);
    char *text = json_dumps(data ? data : json_object(), JSON_COMPACT);
    const char *params[4] = {invoice_id, id, template_name, text};
    out = handler_util_exec(job, NOTIFY_SQL, 4, params, PGRES_COMMAND_OK, NULL);
    free(text);
    json_decref(data);
    return out;
}

handler_outcome_t payments_read_invoice(worker_job_t *job, const char *id, payments_invoice_t *v)
{
    const char *params[1] = {id};
    PGresult *res = NULL;
    handler_outcome_t out = handler_util_exec(
        job,
        "SELECT i.status, i.customer_id, i.billing_reason, i.attempt_count, i.scheduled_retries,"
        " floor(extract(epoch FROM i.first_failed_at))::bigint,"
        " floor(extract(epoch FROM coalesce(tc.frozen_time, now())))::bigint,"
        " i.amount_remaining, i.currency, coalesce(c.default_payment_method, ''),"
        " CASE WHEN i.billing_reason = 'manual' THEN coalesce(i.description, 'One-time payment')"
        "  ELSE coalesce(i.description, 'Invoice ' || i.number) END,"
        " coalesce((SELECT a.stripe_payment_intent FROM payment_attempts a"
        "  WHERE a.tenant_id = i.tenant_id AND a.invoice_id = i.id"
        "   AND a.stripe_payment_intent IS NOT NULL"
        "   AND NOT EXISTS (SELECT 1 FROM payment_attempts x WHERE x.tenant_id = a.tenant_id"
        "    AND x.invoice_id = a.invoice_id AND x.stripe_payment_intent = a.stripe_payment_intent"
        "    AND x.failure_code = 'payment_intent_canceled')"
        "  ORDER BY a.attempt DESC LIMIT 1), ''),"
        " coalesce(c.stripe_customer_id, '') "
        "FROM invoices i JOIN customers c ON c.tenant_id = i.tenant_id AND c.id = i.customer_id "
        "LEFT JOIN test_clocks tc ON tc.tenant_id = c.tenant_id AND tc.id = c.test_clock_id "
        "WHERE i.id = $1",
        1, params, PGRES_TUPLES_OK, &res);
    if (out == HANDLER_OK && PQntuples(res) == 0) {
        out = runtime_reject(job, 404, "resource_missing", "invoice", "No such invoice: '%s'.", id);
    } else if (out == HANDLER_OK) {
        snprintf(v->status, sizeof v->status, "%s", PQgetvalue(res, 0, 0));
        snprintf(v->customer, sizeof v->customer, "%s", PQgetvalue(res, 0, 1));
        snprintf(v->reason, sizeof v->reason, "%s", PQgetvalue(res, 0, 2));
        v->attempt_count = atoi(PQgetvalue(res, 0, 3));
        v->scheduled_retries = atoi(PQgetvalue(res, 0, 4));
        v->first_failed_at =
            PQgetisnull(res, 0, 5) ? INT64_MIN : strtoll(PQgetvalue(res, 0, 5), NULL, 10);
        v->now = strtoll(PQgetvalue(res, 0, 6), NULL, 10);
        v->amount_remaining = strtoll(PQgetvalue(res, 0, 7), NULL, 10);
        snprintf(v->currency, sizeof v->currency, "%s", PQgetvalue(res, 0, 8));
        snprintf(v->payment_method, sizeof v->payment_method, "%s", PQgetvalue(res, 0, 9));
        snprintf(v->description, sizeof v->description, "%s", PQgetvalue(res, 0, 10));
        snprintf(v->intent, sizeof v->intent, "%s", PQgetvalue(res, 0, 11));
        snprintf(v->stripe_customer, sizeof v->stripe_customer, "%s", PQgetvalue(res, 0, 12));
    }
    PQclear(res);
    return out;
}

/* Stripe's PaymentIntent status as an attempt's status. */
static const char *attempt_status(const payments_outcome_t *o)
{
    if (o->status)
        return o->status;
    const char *s = json_string_value(json_object_get(o->intent, "status"));
    if (s == NULL)
        return "failed";
    if (strcmp(s, "succeeded") == 0)
        return "succeeded";
    if (strcmp(s, "requires_action") == 0 || strcmp(s, "requires_confirmation") == 0)
        return "requires_action";
    if (strcmp(s, "processing") == 0 || strcmp(s, "requires_capture") == 0)
        return "processing";
    if (payments_needs_action(o->failure_code, o->decline_code))
        return "requires_action";
    return "failed";
}

/* The attempt row moves only forward: inserted, or updated while it is
 * still open (requires_action, processing) to another status. No row
 * back: it was settled already, and o changes nothing. */
static const char ATTEMPT_SQL[] =
    "INSERT INTO payment_attempts AS a (tenant_id, id, invoice_id, attempt, idempotency_key,"
    " amount, currency, payment_method, status, failure_code, decline_code, failure_message,"
    " hard_decline, stripe_payment_intent, stripe_charge, stripe_request_id, created_at) "
    "SELECT i.tenant_id, $1, i.id, $3::integer, $4, coalesce($5::bigint, i.amount_remaining),"
    " coalesce($6, i.currency), $7, $8, $9, $10, $11, $12::boolean, $13, $14, $15,"
    " to_timestamp($16::bigint) "
    "FROM invoices i WHERE i.id = $2 AND coalesce($5::bigint, i.amount_remaining) > 0 "
    "ON CONFLICT (tenant_id, invoice_id, attempt) DO UPDATE SET status = excluded.status,"
    " failure_code = excluded.failure_code, decline_code = excluded.decline_code,"
    " failure_message = excluded.failure_message, hard_decline = excluded.hard_decline,"
    " stripe_payment_intent = coalesce(excluded.stripe_payment_intent, a.stripe_payment_intent),"
    " stripe_charge = coalesce(excluded.stripe_charge, a.stripe_charge), updated_at = now() "
    "WHERE a.status IN ('requires_action', 'processing') AND a.status <> excluded.status "
    "RETURNING a.id, payment_attempt_object(a)::text, a.amount, a.currency, a.payment_method";

static const char PAYMENT_SQL[] =
    "INSERT INTO payments (tenant_id, id, customer_id, invoice_id, attempt_id, amount, currency,"
    " status, description, payment_method, stripe_payment_intent, stripe_charge, created_at) "
    "SELECT i.tenant_id, $1, i.customer_id, i.id, $3, $4::bigint, $5, 'succeeded',"
    " coalesce(i.description, 'Invoice ' || i.number), $6, $7, $8, to_timestamp($9::bigint) "
    "FROM invoices i WHERE i.id = $2 "
    "ON CONFLICT (tenant_id, stripe_payment_intent) DO NOTHING";

/* The success of attempt `attempt_id`: the payment, then the invoice paid;
 * unless `mismatch` (why the intent does not pay this invoice, or NULL):
 * then the money is recorded as received (when Billow can represent its
 * amount: `readable`), and the invoice stays open with that reason and
 * nothing scheduled, for staff to refund the payment or settle the invoice
 * out of band. */
static handler_outcome_t record_success(worker_job_t *job, const payments_outcome_t *o,
                                        const payments_invoice_t *v, const PGresult *att,
                                        const char *mismatch, bool readable)
{
    char pay_id[IDS_MAX], now[24];
    char pi[PAYMENTS_STRIPE_ID_MAX] = "", charge[PAYMENTS_STRIPE_ID_MAX] = "";
    copy_member(o->intent, "id", pi, sizeof pi);
    copy_member(o->intent, "latest_charge", charge, sizeof charge);
    ids_generate("pay", pay_id);
    snprintf(now, sizeof now, "%" PRId64, v->now);
    const char *params[9] = {pay_id,
                             o->invoice_id,
                             PQgetvalue(att, 0, 0),
                             PQgetvalue(att, 0, 2),
                             PQgetvalue(att, 0, 3),
                             PQgetisnull(att, 0, 4) ? NULL : PQgetvalue(att, 0, 4),
                             pi,
                             charge[0] ? charge : NULL,
                             now};
    /* An amount Billow cannot represent (a currency it does not know) is
     * no payment of any figure: the attempt's message quotes Stripe's. */
    handler_outcome_t out =
        readable ? handler_util_exec(job, PAYMENT_SQL, 9, params, PGRES_COMMAND_OK, NULL)
                 : HANDLER_OK;
    if (out != HANDLER_OK)
        return out;
    char attempt[16], *err_text = NULL;
    snprintf(attempt, sizeof attempt, "%d", o->attempt);
    if (mismatch) {
        json_t *err = json_pack("{s:i,s:s,s:s,s:s}", "attempt", o->attempt, "status", "succeeded",
                                "code", "amount_mismatch", "message", mismatch);
        err_text = json_dumps(err, JSON_COMPACT);
        json_decref(err);
    }
    const char *p2[3] = {o->invoice_id, attempt, err_text};
    out = handler_util_exec(
        job,
        "UPDATE invoices SET attempt_count = greatest(attempt_count, $2::integer),"
        " last_payment_error = $3::jsonb, payment_method_required = false,"
        " next_payment_attempt = CASE WHEN $3::jsonb IS NULL THEN next_payment_attempt END,"
        " dunning_ends_at = CASE WHEN $3::jsonb IS NULL THEN dunning_ends_at END "
        "WHERE id = $1",
        3, p2, PGRES_COMMAND_OK, NULL);
    free(err_text);
    /* An uncollectible invoice may still be paid: a late success (the
     * customer finished authenticating) settles it too. */
    if (out != HANDLER_OK || mismatch != NULL ||
        (strcmp(v->status, "open") != 0 && strcmp(v->status, "uncollectible") != 0))
        return out;
    bool moved = false;
    out = kind_invoice_settle(job, o->invoice_id, INVSTATE_EV_PAY, true, &moved);
    if (out == HANDLER_OK && moved)
        out = payments_notify(job, o->invoice_id, DUNNING_NOTIFY_PAYMENT_SUCCEEDED,
                              "payment.succeeded", json_pack("{s:s}", "payment", pay_id));
    return out;
}

static const char FAILURE_SQL[] =
    "UPDATE invoices SET attempt_count = $2::integer,"
    " first_failed_at = coalesce(first_failed_at, to_timestamp($3::bigint)),"
    " scheduled_retries = $4::integer, next_payment_attempt = to_timestamp($5::bigint),"
    " dunning_ends_at = to_timestamp($6::bigint), payment_method_required = $7::boolean,"
    " last_payment_error = $8::jsonb, updated_at = now() "
    "WHERE id = $1";

/* A new failure of an open invoice: count it, and write what comes next. */
static handler_outcome_t record_failure(worker_job_t *job, const payments_outcome_t *o,
                                        const payments_invoice_t *v, const char *status, bool hard)
{
    dunning_policy_t policy;
    handler_outcome_t out = payments_policy(job, &policy);
    if (out != HANDLER_OK)
        return out;
    int64_t first = v->first_failed_at == INT64_MIN ? v->now : v->first_failed_at;
    dunning_step_t step = {DUNNING_STEP_END, v->now, v->scheduled_retries};
    /* A one-time payment (POST /v1/payments) is tried once: its caller
     * learns the outcome, and nothing is scheduled. Nor for an amount
     * Stripe cannot take: no retry can succeed, and the policy's end must
     * not punish the customer for it; staff settle the invoice. */
    bool one_off = strcmp(v->reason, "manual") == 0 ||
                   (o->failure_code && strcmp(o->failure_code, PAYMENTS_AMOUNT_UNSUPPORTED) == 0);
    if (!one_off)
        step = dunning_after_failure(&policy, first, v->scheduled_retries, hard);
    char count[16], first_s[24], sched[16], next[24], ends[24];
    snprintf(count, sizeof count, "%d", o->attempt);
    snprintf(first_s, sizeof first_s, "%" PRId64, first);
    snprintf(sched, sizeof sched, "%d", step.scheduled_retries);
    snprintf(next, sizeof next, "%" PRId64, step.at);
    /* The end applies at the deadline when waiting for a new method, at
     * once when nothing is left (the tick finds it due). */
    snprintf(ends, sizeof ends, "%" PRId64, step.kind == DUNNING_STEP_END ? v->now : step.at);
    json_t *err =
        json_pack("{s:i,s:s,s:s?,s:s?,s:s?}", "attempt", o->attempt, "status", status, "code",
                  o->failure_code, "decline_code", o->decline_code, "message", o->failure_message);
    char *err_text = json_dumps(err, JSON_COMPACT);
    const char *params[8] = {o->invoice_id,
                             count,
                             first_s,
                             sched,
                             step.kind == DUNNING_STEP_RETRY ? next : NULL,
                             one_off ? NULL : ends,
                             hard ? "true" : "false",
                             err_text};
    out = handler_util_exec(job, FAILURE_SQL, 8, params, PGRES_COMMAND_OK, NULL);
    free(err_text);
    if (out == HANDLER_OK) {
        char key[160], id[IDS_MAX];
        snprintf(key, sizeof key, "dunning.payment_failed|%s|%d", o->invoice_id, o->attempt);
        ids_derive("job", (uint64_t)v->now * 1000, key, id);
        json_t *payload = json_pack("{s:s,s:i,s:s,s:b,s:s,s:s?,s:s?}", "invoice", o->invoice_id,
                                    "attempt", o->attempt, "status", status, "hard", hard, "next",
                                    step.kind == DUNNING_STEP_RETRY          ? "retry"
                                    : step.kind == DUNNING_STEP_AWAIT_METHOD ? "await_method"
                                                                             : "end",
                                    "code", o->failure_code, "decline_code", o->decline_code);
        if (one_off)
            json_object_set_new(payload, "next", json_string("none"));
        if (step.kind == DUNNING_STEP_RETRY && !one_off)
            json_object_set_new(payload, "next_payment_attempt", json_integer(step.at));
        if (runtime_followup_id(job, "dunning.payment_failed", payload, id) != 0)
            out = HANDLER_RETRY;
    }
    json_decref(err);
    return out;
}

/* Whether invoice `id` has nothing scheduled: no retry and no end. */
static handler_outcome_t invoice_idle(worker_job_t *job, const char *id, bool *idle)
{
    const char *params[1] = {id};
    PGresult *res = NULL;
    handler_outcome_t out =
        handler_util_exec(job,
                          "SELECT 1 FROM invoices WHERE id = $1 AND next_payment_attempt IS NULL"
                          " AND dunning_ends_at IS NULL",
                          1, params, PGRES_TUPLES_OK, &res);
    *idle = out == HANDLER_OK && PQntuples(res) == 1;
    PQclear(res);
    return out;
}

/* Earlier attempts still waiting on the invoice's PaymentIntent (for the
 * customer's authentication) are over once a later attempt has confirmed
 * it again: the intent now speaks for the latest. */
static handler_outcome_t supersede(worker_job_t *job, const char *invoice_id, const char *attempt)
{
    const char *params[2] = {invoice_id, attempt};
    return handler_util_exec(
        job,
        "UPDATE payment_attempts SET status = 'failed',"
        " failure_code = coalesce(failure_code, 'superseded'), updated_at = now() "
        "WHERE invoice_id = $1 AND attempt < $2::integer"
        " AND status IN ('requires_action', 'processing')",
        2, params, PGRES_COMMAND_OK, NULL);
}

handler_outcome_t payments_apply(worker_job_t *job, const payments_outcome_t *o,
                                 json_t **attempt_obj)
{
    payments_invoice_t v;
    PGresult *res = NULL;
    handler_outcome_t out;
    char att_id[IDS_MAX], attempt[16], idem[64 + IDS_MAX + PAYMENTS_STRIPE_ID_MAX], now[24];
    char pi[PAYMENTS_STRIPE_ID_MAX] = "", charge[PAYMENTS_STRIPE_ID_MAX] = "";
    char amount[24] = "", currency[8] = "";

    if (attempt_obj)
        *attempt_obj = NULL;
    memset(&v, 0, sizeof v);
    out = payments_read_invoice(job, o->invoice_id, &v);
    if (out != HANDLER_OK)
        return out;
    const char *status = attempt_status(o);
    bool hard = strcmp(status, "failed") == 0 &&
                (stripe_decline_is_hard(o->failure_code, o->decline_code) ||
                 (o->failure_code && strcmp(o->failure_code, "payment_method_missing") == 0));
    copy_member(o->intent, "id", pi, sizeof pi);
    copy_member(o->intent, "latest_charge", charge, sizeof charge);
    copy_member(o->intent, "currency", currency, sizeof currency);
    /* Stripe's figure in Billow's minor units (isk is two-decimal to
     * Stripe): the attempt and the payment record what moved. */
    const json_t *amt = json_object_get(o->intent, "amount");
    int64_t paid = 0;
    bool readable = payments_from_stripe(amt, currency, &paid);
    if (readable)
        snprintf(amount, sizeof amount, "%" PRId64, paid);
    /* An intent settles the invoice only for what the invoice asks, in its
     * currency: one made for another amount (by a charger that sent the
     * wrong units, or by hand in Stripe with the invoice's metadata) is
     * money received, not the invoice paid. */
    const char *failure_code = o->failure_code, *failure_message = o->failure_message;
    char mismatch[512] = "";
    if (strcmp(status, "succeeded") == 0 &&
        (strcmp(v.status, "open") == 0 || strcmp(v.status, "uncollectible") == 0) &&
        (!readable || paid != v.amount_remaining || strcmp(currency, v.currency) != 0)) {
        snprintf(mismatch, sizeof mismatch,
                 "PaymentIntent %s is for %s %s (%" JSON_INTEGER_FORMAT
                 " in Stripe's units); the invoice asks for %" PRId64 " %s. %s",
                 pi[0] ? pi : "(no id)", readable ? amount : "an amount Billow cannot represent",
                 currency[0] ? currency : "(no currency)",
                 json_is_integer(amt) ? json_integer_value(amt) : 0, v.amount_remaining, v.currency,
                 readable ? "The payment is recorded but does not settle the invoice."
                          : "No payment is recorded, and the invoice is not settled.");
        failure_code = "amount_mismatch";
        failure_message = mismatch;
    }
    const char *pm = o->payment_method;
    if (pm == NULL)
        pm = json_string_value(json_object_get(o->intent, "payment_method"));
    ids_generate("payatt", att_id);
    snprintf(attempt, sizeof attempt, "%d", o->attempt);
    if (o->idempotency_key)
        snprintf(idem, sizeof idem, "%s", o->idempotency_key);
    else
        snprintf(idem, sizeof idem, "billow:pi:%s:%d", o->invoice_id, o->attempt);
    snprintf(now, sizeof now, "%" PRId64, v.now);
    const char *params[16] = {att_id,
                              o->invoice_id,
                              attempt,
                              idem,
                              amount[0] ? amount : NULL,
                              readable && currency[0] ? currency : NULL,
                              pm,
                              status,
                              failure_code,
                              o->decline_code,
                              failure_message,
                              hard ? "true" : "false",
                              pi[0] ? pi : NULL,
                              charge[0] ? charge : NULL,
                              o->request_id && o->request_id[0] ? o->request_id : NULL,
                              now};
    /* A failure of the latest attempt, already counted: was it counted
     * while processing (and so never as a failure)? Asked only then. */
    bool was_processing = false;
    if (strcmp(v.status, "open") == 0 && o->attempt == v.attempt_count &&
        (strcmp(status, "failed") == 0 || strcmp(status, "requires_action") == 0)) {
        const char *p1[2] = {o->invoice_id, attempt};
        out = handler_util_exec(job,
                                "SELECT 1 FROM payment_attempts WHERE invoice_id = $1"
                                " AND attempt = $2::integer AND status = 'processing'",
                                2, p1, PGRES_TUPLES_OK, &res);
        if (out != HANDLER_OK)
            goto done;
        was_processing = PQntuples(res) == 1;
        PQclear(res);
        res = NULL;
    }
    out = handler_util_exec(job, ATTEMPT_SQL, 16, params, PGRES_TUPLES_OK, &res);
    if (out != HANDLER_OK)
        goto done;
    if (PQntuples(res) == 0)
        goto done; /* Settled before: nothing moves. */
    if (attempt_obj)
        *attempt_obj = json_loads(PQgetvalue(res, 0, 1), 0, NULL);
    if ((out = supersede(job, o->invoice_id, attempt)) != HANDLER_OK)
        goto done;
    if (strcmp(status, "succeeded") == 0) {
        if (mismatch[0])
            log_write(LOG_WARN, "payment_amount_mismatch", "{s:s,s:s,s:s}", "invoice",
                      o->invoice_id, "payment_intent", pi, "message", mismatch);
        out = record_success(job, o, &v, res, mismatch[0] ? mismatch : NULL, readable);
    } else if (strcmp(status, "processing") == 0) {
        /* Stripe will say how it ends; until then nothing is due: no retry,
         * and no end either, or the policy's end (cancel) would act on a
         * payment in flight. A failure later writes both again from the
         * policy (record_failure); a success settles the invoice. */
        const char *p2[2] = {o->invoice_id, attempt};
        out = handler_util_exec(job,
                                "UPDATE invoices SET attempt_count = greatest(attempt_count,"
                                " $2::integer), next_payment_attempt = NULL,"
                                " dunning_ends_at = NULL WHERE id = $1",
                                2, p2, PGRES_COMMAND_OK, NULL);
    } else if (strcmp(v.status, "open") == 0 && o->attempt > v.attempt_count) {
        out = record_failure(job, o, &v, status, hard);
    } else if (was_processing) {
        /* The latest attempt was counted while processing, which parked the
         * invoice's schedule, and has failed (or now waits for the
         * customer) since: this is its first failure, and what comes next
         * is written now, or the invoice would stay open with nothing to
         * move it. Only when nothing was scheduled since (a new payment
         * method's retry stands). An attempt that was requires_action went
         * through record_failure then: its retry or end is written (or has
         * run), and is not repeated. */
        bool idle = false;
        out = invoice_idle(job, o->invoice_id, &idle);
        if (out == HANDLER_OK && idle)
            out = record_failure(job, o, &v, status, hard);
    }

done:
    PQclear(res);
    return out;
}

/* Billow's refund status for Stripe's: requires_action (the customer must
 * give bank details for the money to go back) is still pending. */
static const char *refund_status(const char *s)
{
    if (s &&
        (strcmp(s, "succeeded") == 0 || strcmp(s, "failed") == 0 || strcmp(s, "canceled") == 0))
        return s;
    return "pending";
}

/* The reasons refunds.reason takes; Stripe's own (expired_uncaptured_charge
 * …) are not a tenant's and are left out. */
static const char *refund_reason(const char *s)
{
    static const char *const known[] = {"duplicate", "fraudulent", "requested_by_customer"};
    for (size_t i = 0; s && i < sizeof known / sizeof known[0]; i++)
        if (strcmp(s, known[i]) == 0)
            return s;
    return NULL;
}

handler_outcome_t payments_sync_refunded(worker_job_t *job, const char *payment_id,
                                         int64_t stripe_total, bool *changed)
{
    char total[24];
    snprintf(total, sizeof total, "%" PRId64, stripe_total);
    const char *params[2] = {payment_id, total};
    PGresult *res = NULL;
    if (changed)
        *changed = false;
    /* Totals, never increments: each source states one, so seeing one
     * twice, or a replayed answer after the event, changes nothing.
     * Stripe's is kept as the most it said (an older total reported late
     * cannot lower it), less the refunds that failed since: a failed
     * refund is counted off once, by its row's status, however often and
     * in whatever order Stripe reports it. The refunds that did not fail
     * are a floor (Stripe's total may not have caught up with them yet). */
    handler_outcome_t out = handler_util_exec(
        job,
        "WITH r AS ("
        "  SELECT coalesce(sum(r.amount) FILTER (WHERE r.status IN ('pending', 'succeeded')), 0)"
        "   AS live, coalesce(sum(r.amount) FILTER (WHERE r.status IN ('failed', 'canceled')), 0)"
        "   AS failed FROM refunds r, payments p WHERE p.id = $1 AND r.tenant_id = p.tenant_id"
        "   AND r.payment_id = p.id"
        "), v AS ("
        "  SELECT p.id, p.amount_refunded AS before,"
        "   greatest(p.stripe_amount_refunded, $2::bigint) AS stripe FROM payments p WHERE p.id = "
        "$1"
        "), t AS ("
        "  SELECT v.id, v.before, v.stripe,"
        "   least(p.amount, greatest(r.live, v.stripe - r.failed)) AS total"
        "  FROM v, r, payments p WHERE p.id = v.id"
        ") UPDATE payments p SET stripe_amount_refunded = t.stripe, amount_refunded = t.total,"
        "  status = CASE WHEN t.total >= p.amount THEN 'refunded'"
        "   WHEN t.total > 0 THEN 'partially_refunded' ELSE 'succeeded' END,"
        "  updated_at = now()"
        " FROM t WHERE p.id = t.id"
        "  AND (t.total <> t.before OR t.stripe <> p.stripe_amount_refunded)"
        " RETURNING p.invoice_id, t.total <> t.before",
        2, params, PGRES_TUPLES_OK, &res);
    if (out == HANDLER_OK && PQntuples(res) == 1) {
        const char *p2[1] = {PQgetvalue(res, 0, 0)};
        if (changed)
            *changed = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
        /* The invoice's is its payments' (a payment's may go down). */
        out = handler_util_exec(job,
                                "UPDATE invoices i SET amount_refunded ="
                                " (SELECT coalesce(sum(p.amount_refunded), 0) FROM payments p"
                                "  WHERE p.tenant_id = i.tenant_id AND p.invoice_id = i.id),"
                                " updated_at = now() WHERE i.id = $1",
                                1, p2, PGRES_COMMAND_OK, NULL);
    }
    PQclear(res);
    return out;
}

/* Inserted once per Stripe refund; met again (the job's replayed answer,
 * the webhook after the job), its status only moves forward (pending, then
 * succeeded, then failed or canceled: the last two are final) and it takes
 * the tenant's metadata if it had none. */
static const char REFUND_SQL[] =
    "INSERT INTO refunds AS r (tenant_id, id, payment_id, amount, currency, reason, status,"
    " stripe_refund, metadata, created_at) "
    "SELECT p.tenant_id, $1, p.id, $3::bigint, p.currency, $4, $5, $6,"
    " coalesce($7::jsonb, '{}'::jsonb), coalesce(tc.frozen_time, now()) "
    "FROM payments p JOIN customers c ON c.tenant_id = p.tenant_id AND c.id = p.customer_id "
    "LEFT JOIN test_clocks tc ON tc.tenant_id = c.tenant_id AND tc.id = c.test_clock_id "
    "WHERE p.id = $2 AND NOT EXISTS (SELECT 1 FROM refunds x WHERE x.tenant_id = p.tenant_id"
    " AND x.id = $1 AND x.stripe_refund IS DISTINCT FROM $6) "
    "ON CONFLICT (tenant_id, stripe_refund) WHERE stripe_refund IS NOT NULL DO UPDATE SET"
    " status = CASE WHEN r.status = 'pending' OR (r.status = 'succeeded'"
    "  AND excluded.status IN ('failed', 'canceled')) THEN excluded.status ELSE r.status END,"
    " metadata = CASE WHEN r.metadata = '{}'::jsonb THEN excluded.metadata ELSE r.metadata END,"
    " updated_at = now()";

handler_outcome_t payments_record_refund(worker_job_t *job, const char *id, const json_t *re,
                                         const char *metadata, json_t **refund_obj)
{
    const char *stripe_id = json_string_value(json_object_get(re, "id"));
    const char *pi = json_string_value(json_object_get(re, "payment_intent"));
    const json_t *charge = json_object_get(re, "charge");
    const char *charge_id = json_is_object(charge)
                                ? json_string_value(json_object_get(charge, "id"))
                                : json_string_value(charge);
    const char *currency = json_string_value(json_object_get(re, "currency"));
    int64_t refunded = 0, charge_total = -1;
    const char *meta_id =
        json_string_value(json_object_get(json_object_get(re, "metadata"), "billow_refund"));
    char row_id[IDS_MAX], pay_id[IDS_MAX], amount[24];
    PGresult *res = NULL;
    handler_outcome_t out;

    if (refund_obj)
        *refund_obj = NULL;
    /* Stripe's figures in Billow's minor units (isk is two-decimal to
     * Stripe); a refund Billow cannot read is not recorded. */
    if (stripe_id == NULL || currency == NULL ||
        !payments_from_stripe(json_object_get(re, "amount"), currency, &refunded) || refunded <= 0)
        return HANDLER_OK;
    if (!payments_from_stripe(json_object_get(charge, "amount_refunded"), currency, &charge_total))
        charge_total = -1;
    /* The payment first, locked: the job holds it across its Stripe call,
     * so the webhook's report of the same refund waits for the job's row. */
    const char *p1[2] = {pi, charge_id};
    out = handler_util_exec(job,
                            "SELECT id FROM payments WHERE stripe_payment_intent = $1"
                            " OR stripe_charge = $2 ORDER BY id LIMIT 1 FOR UPDATE",
                            2, p1, PGRES_TUPLES_OK, &res);
    if (out != HANDLER_OK || PQntuples(res) == 0)
        goto done;
    snprintf(pay_id, sizeof pay_id, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    res = NULL;
    if (id)
        snprintf(row_id, sizeof row_id, "%s", id);
    else if (meta_id && ids_valid("refund", meta_id))
        snprintf(row_id, sizeof row_id, "%s", meta_id);
    else
        ids_generate("refund", row_id);
    snprintf(amount, sizeof amount, "%" PRId64, refunded);
    const char *params[7] = {row_id,
                             pay_id,
                             amount,
                             refund_reason(json_string_value(json_object_get(re, "reason"))),
                             refund_status(json_string_value(json_object_get(re, "status"))),
                             stripe_id,
                             metadata};
    out = handler_util_exec(job, REFUND_SQL, 7, params, PGRES_COMMAND_OK, NULL);
    if (out != HANDLER_OK)
        goto done;
    out = payments_sync_refunded(job, pay_id, charge_total, NULL);
    if (out != HANDLER_OK || refund_obj == NULL)
        goto done;
    const char *p3[1] = {stripe_id};
    out = handler_util_exec(job,
                            "SELECT refund_object(r)::text FROM refunds r WHERE stripe_refund = $1",
                            1, p3, PGRES_TUPLES_OK, &res);
    if (out == HANDLER_OK && PQntuples(res) == 1)
        *refund_obj = json_loads(PQgetvalue(res, 0, 0), 0, NULL);

done:
    PQclear(res);
    return out;
}

/* The attempt an event of the invoice's PaymentIntent `pi` (in state
 * status) speaks of, or 0 for none: the attempt still waiting on that
 * intent (for authentication, or processing); else, for a success, a new
 * attempt (the customer paid on the tenant's page, or a charger recorded
 * nothing before it died: its retry then finds the attempt made), unless
 * the intent's success is recorded already (an intent succeeds once). A
 * failure with no attempt waiting was the charger's own, recorded by it. */
static handler_outcome_t attempt_of(worker_job_t *job, const char *invoice, const char *pi,
                                    const char *status, int *attempt)
{
    const char *params[3] = {invoice, pi, status};
    PGresult *res = NULL;
    handler_outcome_t out = handler_util_exec(
        job,
        "SELECT coalesce((SELECT a.attempt FROM payment_attempts a WHERE a.invoice_id = $1"
        "  AND a.stripe_payment_intent = $2 AND a.status IN ('requires_action', 'processing')"
        "  ORDER BY a.attempt DESC LIMIT 1),"
        " (SELECT i.attempt_count + 1 FROM invoices i WHERE i.id = $1 AND $3 = 'succeeded'"
        "   AND NOT EXISTS (SELECT 1 FROM payment_attempts b WHERE b.invoice_id = $1"
        "    AND b.stripe_payment_intent = $2 AND b.status = 'succeeded')), 0)",
        3, params, PGRES_TUPLES_OK, &res);
    *attempt = 0;
    if (out == HANDLER_OK)
        *attempt = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    return out;
}

handler_outcome_t payments_apply_intent(worker_job_t *job, const json_t *pi, bool *applied)
{
    const char *invoice =
        json_string_value(json_object_get(json_object_get(pi, "metadata"), "billow_invoice"));
    const char *id = json_string_value(json_object_get(pi, "id"));
    const char *status = json_string_value(json_object_get(pi, "status"));
    const json_t *err = json_object_get(pi, "last_payment_error");
    int attempt = 0;
    *applied = false;
    if (!invoice || !id || !status)
        return HANDLER_OK;
    handler_outcome_t out = payments_lock_invoice(job, invoice);
    if (out == HANDLER_REJECTED) {
        /* Not one of this tenant's invoices (or not yet: a one-off invoice
         * whose charger died is made again by its retry): recorded only. */
        json_decref(job->error);
        job->error = NULL;
        return HANDLER_OK;
    }
    if (out != HANDLER_OK || (out = attempt_of(job, invoice, id, status, &attempt)) != HANDLER_OK ||
        attempt == 0)
        return out;
    payments_outcome_t o = {
        .invoice_id = invoice,
        .attempt = attempt,
        .intent = pi,
        .failure_code = json_string_value(json_object_get(err, "code")),
        .decline_code = json_string_value(json_object_get(err, "decline_code")),
        .failure_message = json_string_value(json_object_get(err, "message")),
    };
    json_t *att = NULL;
    out = payments_apply(job, &o, &att);
    *applied = att != NULL;
    json_decref(att);
    return out;
}

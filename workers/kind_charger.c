/* kind_charger: the `charger` worker kind — money moves here (see
 * kind_charger.h).
 *
 * Every Stripe call is made inside the job's transaction, under an
 * Idempotency-Key derived from Billow's own ids (invoice and attempt, with
 * the payment method for a confirmation; refund, customer, job), which
 * name everything its parameters depend on: a key is never sent again with
 * other parameters (Stripe would refuse it). A charger that dies after
 * Stripe answered and before its commit leaves nothing behind; the job is
 * delivered again, asks Stripe the same question under the same key, gets
 * the same answer (Stripe replays it, it does not charge again) and
 * commits it. The
 * invoice's locks are held across the call, so two jobs never attempt one
 * invoice at once.
 */
#include "kind_charger.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "handler_util.h"
#include "ids.h"
#include "log.h"
#include "mem.h"
#include "money.h"
#include "payments.h"
#include "timeutil.h"

/* How long after a job was enqueued its first attempt's Idempotency-Key is
 * still trusted. Stripe keeps a key for 24 hours from its first use, which
 * is never before the job existed; the hour spare covers clocks. */
#define CHARGE_KEY_TRUSTED_MS (23LL * 3600 * 1000)

/* What a charge job found, for its result. */
static handler_outcome_t charge_result(worker_job_t *job, const char *invoice_id, json_t *attempt,
                                       const char *skipped)
{
    const char *params[1] = {invoice_id};
    PGresult *res = NULL;
    handler_outcome_t out =
        handler_util_exec(job,
                          "SELECT invoice_object(i, false)::text FROM invoices i "
                          "WHERE id = $1",
                          1, params, PGRES_TUPLES_OK, &res);
    if (out == HANDLER_OK && PQntuples(res) != 1)
        out = runtime_db_fault(job, res);
    if (out != HANDLER_OK) {
        json_decref(attempt);
    } else {
        json_decref(job->result);
        job->result = json_pack("{s:s,s:o,s:o,s:s?}", "object", "charge_result", "invoice",
                                json_loads(PQgetvalue(res, 0, 0), 0, NULL), "attempt",
                                attempt ? attempt : json_null(), "skipped", skipped);
    }
    PQclear(res);
    return out;
}

/* Longest Idempotency-Key the charger builds: its prefix, the invoice, the
 * attempt and a payment method id (Stripe's own limit, 255, is checked by
 * the Stripe client). */
#define CHARGE_IDEM_MAX (64 + IDS_MAX + PAYMENTS_STRIPE_ID_MAX)

/* One attempt at an invoice, from its checks to its recorded outcome:
 * charge_prepare decides whether Stripe is asked and builds the requests,
 * the caller makes the calls (alone, or with a batch's others at once):
 * the invoice's PaymentIntent made first if it has none (charge_created
 * reads that answer and prepares the confirmation), then its confirmation,
 * and charge_finish applies the answer. */
typedef struct {
    worker_job_t *job;
    const char *invoice_id;
    int attempt;
    const char *key;       /* The tenant's Stripe key (borrowed). */
    payments_invoice_t v;  /* The invoice, under its locks. */
    int64_t stripe_amount; /* v.amount_remaining as Stripe writes it. */
    const char *skipped;   /* Why nothing is attempted, or NULL. */
    bool create;           /* The intent is made first (create_form). */
    stripe_form_t *create_form;
    char create_idem[CHARGE_IDEM_MAX];
    stripe_response_t created; /* Stripe's answer to the create, once made. */
    bool send;                 /* A confirmation is prepared (or follows the create). */
    stripe_form_t *form;
    char path[PAYMENTS_STRIPE_ID_MAX + 64];
    char idem[CHARGE_IDEM_MAX];
    stripe_response_t r; /* Stripe's answer to the confirmation, once made. */
    json_t *attempt_obj; /* The attempt recorded (owned), or NULL. */
} charge_t;

static void charge_dispose(charge_t *ch)
{
    stripe_form_free(ch->create_form);
    stripe_response_dispose(&ch->created);
    stripe_form_free(ch->form);
    stripe_response_dispose(&ch->r);
    json_decref(ch->attempt_obj);
    memset(ch, 0, sizeof *ch);
}

/* GETs path with form (freed here) into *r. On anything but an answer,
 * records the fault on the job, disposes of *r and returns its outcome. */
static handler_outcome_t stripe_get(worker_job_t *job, const char *key, const char *path,
                                    stripe_form_t *form, stripe_response_t *r)
{
    stripe_call(payments_stripe(job), key, "GET", path, form, NULL, r);
    stripe_form_free(form);
    if (r->outcome == STRIPE_OK)
        return HANDLER_OK;
    handler_outcome_t out = payments_stripe_fault(job, r);
    stripe_response_dispose(r);
    return out;
}

/* Looks in Stripe for a PaymentIntent made for invoice_id (its metadata
 * names the invoice) that Billow never recorded: the one a first attempt
 * made before its job died unrecorded, when the job runs again after
 * Stripe has forgotten the attempt's Idempotency-Key. Copies into found
 * the id of one that succeeded, else the newest one not canceled, else "".
 * Stripe's search is eventually consistent (about a minute behind), which
 * is no concern for an intent made a day before. */
static handler_outcome_t find_unrecorded_intent(worker_job_t *job, const char *key,
                                                const char *invoice_id,
                                                char found[PAYMENTS_STRIPE_ID_MAX])
{
    char query[128];
    found[0] = '\0';
    snprintf(query, sizeof query, "metadata['billow_invoice']:'%s'", invoice_id);
    stripe_form_t *form = stripe_form_new();
    stripe_form_add(form, "query", query);
    stripe_form_add(form, "limit", "100");
    stripe_response_t r;
    handler_outcome_t out = stripe_get(job, key, "/v1/payment_intents/search", form, &r);
    if (out != HANDLER_OK)
        return out;
    const json_t *pick = NULL;
    json_int_t newest = -1;
    size_t i;
    const json_t *pi;
    json_array_foreach(json_object_get(r.body, "data"), i, pi)
    {
        const char *status = json_string_value(json_object_get(pi, "status"));
        const char *meta =
            json_string_value(json_object_get(json_object_get(pi, "metadata"), "billow_invoice"));
        json_int_t created = json_integer_value(json_object_get(pi, "created"));
        if (status == NULL || meta == NULL || strcmp(meta, invoice_id) != 0 ||
            strcmp(status, "canceled") == 0)
            continue;
        if (strcmp(status, "succeeded") == 0) {
            pick = pi;
            break;
        }
        if (created > newest) {
            newest = created;
            pick = pi;
        }
    }
    const char *id = json_string_value(json_object_get(pick, "id"));
    if (id != NULL && strlen(id) < PAYMENTS_STRIPE_ID_MAX) {
        strcpy(found, id);
        log_write(LOG_WARN, "stripe_intent_adopted", "{s:s,s:s,s:s}", "job_id", job->env->id,
                  "invoice", invoice_id, "payment_intent", id);
    }
    stripe_response_dispose(&r);
    return HANDLER_OK;
}

/* Prepares the confirmation of the invoice's PaymentIntent (ch->v.intent)
 * off-session with the customer's default payment method.
 *
 * Its Idempotency-Key names the payment method as well as the attempt: a
 * try whose answer was lost is asked again with the same parameters under
 * the same key (Stripe replays its answer), and a try after the default
 * changed meanwhile is another request under another key, where the same
 * key would be refused (idempotency_error) and the attempt could never end.
 * A new key cannot charge twice: the intent succeeds at most once, and
 * Stripe answers a confirmation of one that succeeded with that intent
 * (charge_finish takes it as the attempt's success). */
static void confirm_prepare(charge_t *ch)
{
    snprintf(ch->path, sizeof ch->path, "/v1/payment_intents/%s/confirm", ch->v.intent);
    snprintf(ch->idem, sizeof ch->idem, "billow:pi:%s:%d:%s", ch->invoice_id, ch->attempt,
             ch->v.payment_method);
    ch->form = stripe_form_new();
    stripe_form_add(ch->form, "payment_method", ch->v.payment_method);
    stripe_form_add(ch->form, "off_session", "true");
}

/* Records attempt ch->attempt as failed with PAYMENTS_AMOUNT_UNSUPPORTED:
 * the invoice asks for an amount Stripe cannot take in its currency (one
 * made before Billow rounded such invoices). A decline's path, so the
 * invoice shows why (last_payment_error) and staff see it; payments_apply
 * schedules no retry for it, since the same amount cannot succeed. */
static handler_outcome_t charge_amount_unsupported(charge_t *ch)
{
    char message[320];
    snprintf(message, sizeof message,
             "Stripe takes %s amounts only in whole tens of the minor unit; this invoice asks for "
             "%" PRId64 ", which Billow does not charge rounded. Nothing was sent to Stripe and "
             "no retry is scheduled: void the invoice, or record a payment made outside Billow.",
             ch->v.currency, ch->v.amount_remaining);
    log_write(LOG_WARN, "charge_amount_unsupported", "{s:s,s:s,s:I,s:s}", "job_id",
              ch->job->env->id, "invoice", ch->invoice_id, "amount",
              (json_int_t)ch->v.amount_remaining, "currency", ch->v.currency);
    payments_outcome_t o = {.invoice_id = ch->invoice_id,
                            .attempt = ch->attempt,
                            .status = "failed",
                            .failure_code = PAYMENTS_AMOUNT_UNSUPPORTED,
                            .failure_message = message};
    return payments_apply(ch->job, &o, &ch->attempt_obj);
}

/* Prepares attempt ch->attempt at ch->invoice_id, whose locks the caller
 * holds: the checks that may leave nothing to do (the invoice was paid out
 * of band or voided, the attempt was made already: its job delivered
 * twice, or the webhook recorded it after a crash), an attempt without a
 * payment method recorded at once, or the requests: the confirmation of
 * the invoice's PaymentIntent, made first by a first attempt. A first
 * attempt for a customer with no Stripe customer yet makes one when
 * may_create, else sets *deferred and prepares nothing.
 *
 * The create names no payment method and does not confirm: its parameters
 * are the invoice's alone, so whatever the customer's default is when a
 * try whose answer was lost runs again, the create is the same request
 * under the same key, and Stripe answers with the one intent it made. */
static handler_outcome_t charge_prepare(charge_t *ch, bool may_create, bool *deferred)
{
    worker_job_t *job = ch->job;
    char stripe_customer[PAYMENTS_STRIPE_ID_MAX];
    handler_outcome_t out;
    if (deferred)
        *deferred = false;
    if ((out = payments_read_invoice(job, ch->invoice_id, &ch->v)) != HANDLER_OK)
        return out;
    if (strcmp(ch->v.status, "open") != 0 || ch->v.amount_remaining <= 0) {
        ch->skipped = "invoice_not_open";
        return HANDLER_OK;
    }
    if (ch->attempt <= ch->v.attempt_count) {
        ch->skipped = "attempt_already_made";
        return HANDLER_OK;
    }
    if (ch->attempt != ch->v.attempt_count + 1) {
        ch->skipped = "attempt_out_of_order";
        return HANDLER_OK;
    }
    /* An amount Stripe cannot take fails before anything else: no card
     * would help, and nothing is sent to Stripe. */
    if (!ch->v.intent[0] && money_to_stripe(ch->v.currency, ch->v.amount_remaining,
                                            &ch->stripe_amount) == BILLOW_ESTRIPE_AMOUNT)
        return charge_amount_unsupported(ch);
    if (ch->v.payment_method[0] == '\0') {
        payments_outcome_t o = {.invoice_id = ch->invoice_id,
                                .attempt = ch->attempt,
                                .status = "failed",
                                .failure_code = "payment_method_missing",
                                .failure_message = "The customer has no default payment method."};
        return payments_apply(job, &o, &ch->attempt_obj);
    }
    if (!ch->v.intent[0]) {
        /* Checked before anything reaches Stripe: an amount Stripe cannot
         * take in this currency is refused, not charged rounded. */
        out = payments_to_stripe(job, ch->v.currency, ch->v.amount_remaining, "amount",
                                 &ch->stripe_amount);
        if (out != HANDLER_OK)
            return out;
        if (!may_create && !ch->v.stripe_customer[0]) {
            *deferred = true;
            return HANDLER_OK;
        }
        out = payments_ensure_customer(job, ch->key, ch->v.customer, stripe_customer);
        if (out != HANDLER_OK)
            return out;
        /* A job older than the key's life (replayed from dead, or run after
         * a long outage) may follow a try whose intent Stripe made and
         * Billow never recorded; creating another under the forgotten key
         * would charge twice. That intent is confirmed instead. */
        if (timeutil_now_ms() - job->env->enqueued_at_ms > CHARGE_KEY_TRUSTED_MS) {
            out = find_unrecorded_intent(job, ch->key, ch->invoice_id, ch->v.intent);
            if (out != HANDLER_OK)
                return out;
        }
    }
    ch->send = true;
    if (ch->v.intent[0]) {
        /* A retry confirms the invoice's PaymentIntent again. */
        confirm_prepare(ch);
        return HANDLER_OK;
    }
    /* The key is the one a create that also confirmed was sent under
     * before: a try of that kind whose answer was lost meets Stripe's
     * idempotency_error (the job goes dead, for ops to look at) rather
     * than a second intent. */
    ch->create = true;
    snprintf(ch->create_idem, sizeof ch->create_idem, "billow:pi:%s:%d", ch->invoice_id,
             ch->attempt);
    ch->create_form = stripe_form_new();
    stripe_form_add_int(ch->create_form, "amount", ch->stripe_amount);
    stripe_form_add(ch->create_form, "currency", ch->v.currency);
    stripe_form_add(ch->create_form, "customer", stripe_customer);
    stripe_form_add(ch->create_form, "description", ch->v.description);
    stripe_form_add_metadata(ch->create_form, "billow_tenant", job->env->tenant_id);
    stripe_form_add_metadata(ch->create_form, "billow_invoice", ch->invoice_id);
    return HANDLER_OK;
}

/* Reads Stripe's answer to the create in ch->created: the intent is the
 * invoice's, and its confirmation is prepared. Anything but the intent is
 * the job's fault (a passing one retries the create under its key). */
static handler_outcome_t charge_created(charge_t *ch)
{
    const char *id = json_string_value(json_object_get(ch->created.body, "id"));
    if (ch->created.outcome != STRIPE_OK)
        return payments_stripe_fault(ch->job, &ch->created);
    if (id == NULL || strlen(id) >= sizeof ch->v.intent)
        return runtime_fault(ch->job, HANDLER_PERMANENT, "stripe_error",
                             "Stripe answered the PaymentIntent's create without a usable id.");
    snprintf(ch->v.intent, sizeof ch->v.intent, "%s", id);
    confirm_prepare(ch);
    return HANDLER_OK;
}

/* Applies Stripe's answer in ch->r to the attempt. */
static handler_outcome_t charge_finish(charge_t *ch)
{
    stripe_response_t *r = &ch->r;
    payments_outcome_t o = {.invoice_id = ch->invoice_id,
                            .attempt = ch->attempt,
                            .payment_method = ch->v.payment_method,
                            .idempotency_key = ch->idem,
                            .request_id = r->request_id};
    json_t *made = NULL; /* The intent's id alone, when Stripe's error names none. */
    /* Stripe has answered and nothing is committed: the crash tests kill
     * the charger here. */
    fault_point("charger.after_stripe");
    switch (r->outcome) {
    case STRIPE_OK:
        o.intent = r->body;
        break;
    case STRIPE_DECLINED:
        o.intent = json_object_get(json_object_get(r->body, "error"), "payment_intent");
        o.status = payments_needs_action(r->code, r->decline_code) ? "requires_action" : "failed";
        o.failure_code = r->code[0] ? r->code : "card_declined";
        o.decline_code = r->decline_code[0] ? r->decline_code : NULL;
        o.failure_message = r->message;
        break;
    case STRIPE_REJECTED: {
        const json_t *err = json_object_get(r->body, "error");
        const json_t *pi = json_object_get(err, "payment_intent");
        const char *param = json_string_value(json_object_get(err, "param"));
        const char *pi_status = json_string_value(json_object_get(pi, "status"));
        /* The intent cannot be confirmed because it succeeded already (the
         * customer paid it on the tenant's page before its event arrived,
         * or this attempt's try whose answer was lost, with the payment
         * method the default was then): that success is this attempt's
         * outcome, with the payment method the intent was paid with. */
        if (pi_status && strcmp(pi_status, "succeeded") == 0) {
            o.intent = pi;
            o.payment_method = NULL;
            break;
        }
        /* Someone canceled the intent (in Stripe's dashboard): this
         * attempt fails, and the next one makes a new intent. */
        if (pi_status && strcmp(pi_status, "canceled") == 0) {
            o.intent = pi;
            o.status = "failed";
            o.failure_code = "payment_intent_canceled";
            o.failure_message = r->message;
            break;
        }
        /* The payment method on file is not one Stripe knows (deleted,
         * from another account): the customer must give a new one. */
        if (param && strcmp(param, "payment_method") == 0) {
            /* The intent this confirmation was for (made by this attempt's
             * create) is recorded on the attempt, so it stays the invoice's:
             * the next attempt confirms it with the new payment method
             * instead of making a second one that voids could not cancel. */
            if (pi == NULL && ch->v.intent[0])
                pi = made = json_pack("{s:s}", "id", ch->v.intent);
            o.intent = pi;
            o.status = "failed";
            o.failure_code = "payment_method_missing";
            o.failure_message = r->message;
            break;
        }
        return payments_stripe_fault(ch->job, r);
    }
    case STRIPE_RETRY:
        return payments_stripe_fault(ch->job, r);
    }
    handler_outcome_t out = payments_apply(ch->job, &o, &ch->attempt_obj);
    json_decref(made);
    return out;
}

/* One attempt, alone: prepared, called, applied. */
static handler_outcome_t charge_alone(charge_t *ch)
{
    char *key = NULL;
    handler_outcome_t out = payments_stripe_key(ch->job, &key);
    ch->key = key;
    if (out == HANDLER_OK)
        out = charge_prepare(ch, true, NULL);
    if (out == HANDLER_OK && ch->create) {
        stripe_call(payments_stripe(ch->job), ch->key, "POST", "/v1/payment_intents",
                    ch->create_form, ch->create_idem, &ch->created);
        out = charge_created(ch);
    }
    if (out == HANDLER_OK && ch->send) {
        stripe_call(payments_stripe(ch->job), ch->key, "POST", ch->path, ch->form, ch->idem,
                    &ch->r);
        out = charge_finish(ch);
    }
    ch->key = NULL;
    free(key);
    return out;
}

/* Reads payment.charge's payload {invoice, attempt} into ch. */
static handler_outcome_t charge_payload(worker_job_t *job, charge_t *ch)
{
    const json_t *p = job->env->payload;
    const json_t *a = json_object_get(p, "attempt");
    ch->job = job;
    ch->invoice_id = handler_util_req_string(p, "invoice");
    if (ch->invoice_id == NULL || (a != NULL && !json_is_integer(a)))
        return handler_util_bad_payload(job, "invoice is required; attempt is an integer");
    ch->attempt = a ? (int)json_integer_value(a) : 1;
    if (ch->attempt < 1)
        return handler_util_bad_payload(job, "attempt counts from 1");
    return HANDLER_OK;
}

/* payment.charge {invoice, attempt}: one attempt at an open invoice. */
static handler_outcome_t payment_charge(worker_job_t *job)
{
    charge_t ch;
    memset(&ch, 0, sizeof ch);
    handler_outcome_t out = charge_payload(job, &ch);
    if (out == HANDLER_OK)
        out = payments_lock_invoice(job, ch.invoice_id);
    if (out == HANDLER_OK)
        out = charge_alone(&ch);
    if (out == HANDLER_OK) {
        out = charge_result(job, ch.invoice_id, ch.attempt_obj, ch.skipped);
        ch.attempt_obj = NULL;
    }
    charge_dispose(&ch);
    return out;
}

/* A one-off invoice of one line, numbered from the tenant's sequence. */
static const char ONE_OFF_SQL[] =
    "WITH cust AS ("
    "  SELECT c.tenant_id, c.id, coalesce(tc.frozen_time, now()) AS at FROM customers c"
    "  LEFT JOIN test_clocks tc ON tc.tenant_id = c.tenant_id AND tc.id = c.test_clock_id"
    "  WHERE c.id = $2 AND c.status <> 'closed' FOR UPDATE OF c"
    "), seq AS ("
    "  INSERT INTO invoice_sequences AS q (tenant_id, last)"
    "  SELECT tenant_id, 1 FROM cust"
    "  ON CONFLICT (tenant_id) DO UPDATE SET last = q.last + 1 RETURNING last"
    "), inv AS ("
    "  INSERT INTO invoices (tenant_id, id, customer_id, number, status, billing_reason, currency,"
    "   period_start, period_end, subtotal, total, amount_due, amount_remaining, created_by_job,"
    "   created_at, finalized_at, description)"
    "  SELECT t.id, $1, cust.id, invoice_number(t.invoice_prefix, seq.last), 'open', 'manual',"
    "   $4, cust.at, cust.at, $3::bigint, $3::bigint, $3::bigint, $3::bigint, $6, cust.at,"
    "   cust.at, $5"
    "  FROM cust, seq, tenants t WHERE t.id = cust.tenant_id"
    "  RETURNING tenant_id, id, period_start"
    ") INSERT INTO invoice_lines (tenant_id, id, invoice_id, type, description, amount,"
    "   period_start, period_end, position)"
    "  SELECT inv.tenant_id, $7, inv.id, 'invoiceitem', coalesce($5, 'One-time payment'),"
    "   $3::bigint, inv.period_start, inv.period_start, 0 FROM inv "
    "RETURNING invoice_id";

/* payment.create's one-off invoice (payload {id, customer, amount,
 * currency, description?}), made and locked; ch is set for attempt 1. */
static handler_outcome_t one_off_invoice(worker_job_t *job, charge_t *ch)
{
    const json_t *p = job->env->payload;
    const char *id = handler_util_req_string(p, "id");
    const char *customer = handler_util_req_string(p, "customer");
    const char *currency = handler_util_req_string(p, "currency");
    const char *description = NULL;
    const json_t *amount = json_object_get(p, "amount");
    char amount_s[24], line[IDS_MAX];
    ch->job = job;
    ch->invoice_id = id;
    ch->attempt = 1;
    if (!id || !customer || !currency || !json_is_integer(amount) ||
        json_integer_value(amount) <= 0 || !handler_util_opt_string(p, "description", &description))
        return handler_util_bad_payload(job, "id, customer, currency and a positive amount are "
                                             "required");
    /* The api refuses an amount Stripe cannot take; a job queued before
     * it did is refused the same way, before any invoice is made. */
    int64_t stripe_amount;
    handler_outcome_t out = payments_to_stripe(job, currency, (int64_t)json_integer_value(amount),
                                               "amount", &stripe_amount);
    if (out != HANDLER_OK)
        return out;
    snprintf(amount_s, sizeof amount_s, "%" JSON_INTEGER_FORMAT, json_integer_value(amount));
    ids_generate("il", line);
    const char *params[7] = {id, customer, amount_s, currency, description, job->env->id, line};
    PGresult *res = NULL;
    out = handler_util_exec(job, ONE_OFF_SQL, 7, params, PGRES_TUPLES_OK, &res);
    if (out == HANDLER_OK && PQntuples(res) == 0)
        out = runtime_reject(job, 404, "resource_missing", "customer",
                             "No such customer (or it is closed): '%s'.", customer);
    PQclear(res);
    return out == HANDLER_OK ? payments_lock_invoice(job, id) : out;
}

/* payment.create's answer: the invoice, its first attempt and its payment. */
static handler_outcome_t one_off_result(worker_job_t *job, const char *id)
{
    const char *p1[1] = {id};
    PGresult *res = NULL;
    handler_outcome_t out = handler_util_exec(
        job,
        "SELECT invoice_object(i)::text,"
        " (SELECT payment_object(p)::text FROM payments p"
        "   WHERE p.tenant_id = i.tenant_id AND p.invoice_id = i.id LIMIT 1),"
        " (SELECT payment_attempt_object(a)::text FROM payment_attempts a"
        "   WHERE a.tenant_id = i.tenant_id AND a.invoice_id = i.id AND a.attempt = 1)"
        " FROM invoices i WHERE i.id = $1",
        1, p1, PGRES_TUPLES_OK, &res);
    if (out == HANDLER_OK && PQntuples(res) != 1) {
        out = runtime_db_fault(job, res);
    } else if (out == HANDLER_OK) {
        json_t *pay =
            PQgetisnull(res, 0, 1) ? json_null() : json_loads(PQgetvalue(res, 0, 1), 0, NULL);
        json_t *att =
            PQgetisnull(res, 0, 2) ? json_null() : json_loads(PQgetvalue(res, 0, 2), 0, NULL);
        json_decref(job->result);
        job->result =
            json_pack("{s:s,s:o,s:o,s:o}", "object", "payment_result", "invoice",
                      json_loads(PQgetvalue(res, 0, 0), 0, NULL), "attempt", att, "payment", pay);
    }
    PQclear(res);
    return out;
}

/* payment.create {id, customer, amount, currency, description?}: a one-off
 * invoice, charged at once (once: a one-time payment is not dunned). */
static handler_outcome_t payment_create(worker_job_t *job)
{
    charge_t ch;
    memset(&ch, 0, sizeof ch);
    handler_outcome_t out = one_off_invoice(job, &ch);
    if (out == HANDLER_OK)
        out = charge_alone(&ch);
    if (out == HANDLER_OK)
        out = one_off_result(job, ch.invoice_id);
    charge_dispose(&ch);
    return out;
}

/* The set-based form of payment.charge and payment.create: the charges of
 * a batch (one tenant's) are prepared one by one under their locks, sent
 * to Stripe together (up to CHARGER_PARALLEL at once: one process charges
 * as many invoices per second as Stripe answers in parallel, not one after
 * another): first the creates of the intents first attempts make, then
 * every confirmation; and applied one by one, in the batch's one
 * transaction. A charge that first needs a Stripe customer made, and a
 * payment whose customer is not ready for one, are left to the one-by-one
 * handler. */
static handler_outcome_t charge_batch(worker_job_t *const *jobs, size_t n, bool *taken, bool create)
{
    charge_t *chs = mem_calloc(n, sizeof *chs);
    stripe_request_t *reqs = mem_calloc(n, sizeof *reqs);
    size_t *of = mem_calloc(n, sizeof *of);
    size_t m = 0;
    char *key = NULL;
    handler_outcome_t out = n > 0 ? payments_stripe_key(jobs[0], &key) : HANDLER_OK;
    if (out != HANDLER_OK) {
        /* No Stripe account: each job is refused by the one-by-one handler. */
        json_decref(jobs[0]->error);
        jobs[0]->error = NULL;
        out = HANDLER_OK;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        charge_t *ch = &chs[i];
        bool deferred = false;
        if (create) {
            const char *customer = handler_util_req_string(jobs[i]->env->payload, "customer");
            bool ready = false;
            if (customer != NULL &&
                (out = payments_customer_ready(jobs[i], customer, &ready)) != HANDLER_OK)
                goto done;
            if (!ready)
                continue;
            out = one_off_invoice(jobs[i], ch);
        } else {
            out = charge_payload(jobs[i], ch);
            if (out == HANDLER_OK)
                out = payments_lock_invoice(jobs[i], ch->invoice_id);
        }
        ch->key = key;
        if (out == HANDLER_OK)
            out = charge_prepare(ch, false, &deferred);
        if (out != HANDLER_OK)
            goto done; /* The pass is undone; the jobs run one by one. */
        if (deferred)
            continue;
        taken[i] = true;
        if (ch->create) {
            reqs[m] = (stripe_request_t){
                key, "POST", "/v1/payment_intents", ch->create_form, ch->create_idem, &ch->created};
            of[m++] = i;
        }
    }
    stripe_call_many(payments_stripe(jobs[0]), reqs, m, payments_parallel());
    for (size_t j = 0; j < m && out == HANDLER_OK; j++)
        out = charge_created(&chs[of[j]]);
    m = 0;
    for (size_t i = 0; i < n && out == HANDLER_OK; i++) {
        charge_t *ch = &chs[i];
        if (taken[i] && ch->send) {
            reqs[m] = (stripe_request_t){key, "POST", ch->path, ch->form, ch->idem, &ch->r};
            of[m++] = i;
        }
    }
    if (out == HANDLER_OK)
        stripe_call_many(payments_stripe(jobs[0]), reqs, m, payments_parallel());
    for (size_t j = 0; j < m && out == HANDLER_OK; j++)
        out = charge_finish(&chs[of[j]]);
    for (size_t i = 0; i < n && out == HANDLER_OK; i++) {
        if (!taken[i])
            continue;
        if (create) {
            out = one_off_result(jobs[i], chs[i].invoice_id);
        } else {
            out = charge_result(jobs[i], chs[i].invoice_id, chs[i].attempt_obj, chs[i].skipped);
            chs[i].attempt_obj = NULL;
        }
    }

done:
    for (size_t i = 0; i < n; i++)
        charge_dispose(&chs[i]);
    free(chs);
    free(reqs);
    free(of);
    free(key);
    return out;
}

static handler_outcome_t payment_charge_batch(worker_job_t *const *jobs, size_t n, bool *taken)
{
    return charge_batch(jobs, n, taken, false);
}

static handler_outcome_t payment_create_batch(worker_job_t *const *jobs, size_t n, bool *taken)
{
    return charge_batch(jobs, n, taken, true);
}

/* How many pages of a payment's refunds (100 a page) a refund job reads
 * looking for its own: a payment refunded in over a thousand pieces is no
 * real case, and the bound keeps one job's calls to Stripe finite. */
#define REFUND_LIST_PAGES_MAX 10

/* Looks in Stripe for the refund that Billow's refund `id` made of
 * PaymentIntent `pi` (its metadata billow_refund names it) and Billow never
 * recorded: its answer was lost, and the job runs again after Stripe has
 * forgotten its Idempotency-Key, or after Stripe's charge.refunded already
 * counted it. *found receives it (new reference, its charge expanded), or
 * NULL when there is none. Refunds are listed newest first; Stripe has no
 * search by metadata for them. */
static handler_outcome_t find_unrecorded_refund(worker_job_t *job, const char *key, const char *pi,
                                                const char *id, json_t **found)
{
    char after[PAYMENTS_STRIPE_ID_MAX] = "";
    *found = NULL;
    for (int page = 0; page < REFUND_LIST_PAGES_MAX && *found == NULL; page++) {
        stripe_form_t *form = stripe_form_new();
        stripe_form_add(form, "payment_intent", pi);
        stripe_form_add(form, "limit", "100");
        stripe_form_add(form, "expand[]", "data.charge");
        if (after[0])
            stripe_form_add(form, "starting_after", after);
        stripe_response_t r;
        handler_outcome_t out = stripe_get(job, key, "/v1/refunds", form, &r);
        if (out != HANDLER_OK)
            return out;
        const json_t *data = json_object_get(r.body, "data");
        size_t i;
        json_t *re;
        json_array_foreach(data, i, re)
        {
            const char *meta = json_string_value(
                json_object_get(json_object_get(re, "metadata"), "billow_refund"));
            if (meta && strcmp(meta, id) == 0) {
                *found = json_incref(re);
                break;
            }
        }
        size_t n = json_array_size(data);
        const char *last =
            n ? json_string_value(json_object_get(json_array_get(data, n - 1), "id")) : NULL;
        bool more = json_is_true(json_object_get(r.body, "has_more")) && last != NULL;
        if (more)
            snprintf(after, sizeof after, "%s", last);
        stripe_response_dispose(&r);
        if (!more)
            break;
    }
    if (*found)
        log_write(LOG_WARN, "stripe_refund_adopted", "{s:s,s:s,s:s}", "job_id", job->env->id,
                  "refund", id, "stripe_refund", json_string_value(json_object_get(*found, "id")));
    return HANDLER_OK;
}

/* payment.refund {id, payment, amount?, reason?, metadata?}: a refund of
 * (part of) a payment, made in Stripe under the refund's own id, and
 * recorded against the payment and its invoice.
 *
 * A refund whose answer was lost (a timeout, a crash after Stripe
 * answered) may be counted by Stripe's charge.refunded, or recorded by
 * refund.created, before the job runs again. So the job asks Stripe only
 * when the refund is not recorded yet; what is left is Billow's view and
 * may already count this very refund, so before refusing for want of
 * money left it looks in Stripe for its own refund when Stripe counted
 * refunds Billow has no row for; and a job older than Stripe's memory of
 * its key looks before it asks. Whatever Stripe made is recorded by its
 * Stripe id, and the refunded amounts are Stripe's totals, not sums. */
static handler_outcome_t payment_refund(worker_job_t *job)
{
    const json_t *p = job->env->payload;
    const char *id = handler_util_req_string(p, "id");
    const char *payment = handler_util_req_string(p, "payment");
    const char *reason = NULL;
    const json_t *amount = json_object_get(p, "amount"), *metadata = json_object_get(p, "metadata");
    char *key = NULL, *meta_text = NULL, idem[160];
    stripe_form_t *form = NULL;
    stripe_response_t r;
    PGresult *res = NULL;
    json_t *found = NULL, *refund = NULL;
    handler_outcome_t out;

    memset(&r, 0, sizeof r);
    if (!id || !payment || (amount && !json_is_integer(amount)) ||
        (metadata && !json_is_object(metadata)) || !handler_util_opt_string(p, "reason", &reason)) {
        out = handler_util_bad_payload(job, "id and payment are required; amount is an integer");
        goto done;
    }
    meta_text = json_dumps(metadata ? metadata : json_object(), JSON_COMPACT);
    const char *p1[2] = {payment, id};
    out = handler_util_exec(
        job,
        "SELECT p.amount - p.amount_refunded, p.stripe_payment_intent, p.currency,"
        " p.amount_refunded > (SELECT coalesce(sum(r.amount), 0) FROM refunds r"
        "  WHERE r.tenant_id = p.tenant_id AND r.payment_id = p.id"
        "   AND r.status IN ('pending', 'succeeded')),"
        " EXISTS (SELECT 1 FROM refunds r WHERE r.tenant_id = p.tenant_id AND r.id = $2) "
        "FROM payments p WHERE p.id = $1 FOR UPDATE",
        2, p1, PGRES_TUPLES_OK, &res);
    if (out != HANDLER_OK)
        goto done;
    if (PQntuples(res) == 0) {
        out = runtime_reject(job, 404, "resource_missing", "id", "No such payment: '%s'.", payment);
        goto done;
    }
    char pi[PAYMENTS_STRIPE_ID_MAX], currency[8];
    int64_t left = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    int64_t want = amount ? (int64_t)json_integer_value(amount) : left, stripe_want = 0;
    snprintf(pi, sizeof pi, "%s", PQgetvalue(res, 0, 1));
    snprintf(currency, sizeof currency, "%s", PQgetvalue(res, 0, 2));
    bool unexplained = strcmp(PQgetvalue(res, 0, 3), "t") == 0;
    bool recorded = strcmp(PQgetvalue(res, 0, 4), "t") == 0;
    PQclear(res);
    res = NULL;
    /* Recorded already (this job ran before, or the webhook's
     * refund.created came first): Stripe is not asked again. */
    if (recorded) {
        const char *p2[2] = {id, meta_text};
        out = handler_util_exec(job,
                                "UPDATE refunds SET metadata = $2::jsonb WHERE id = $1"
                                " AND metadata = '{}'::jsonb AND $2::jsonb <> '{}'::jsonb",
                                2, p2, PGRES_COMMAND_OK, NULL);
        if (out == HANDLER_OK)
            out = payments_sync_refunded(job, payment, -1, NULL);
        if (out == HANDLER_OK)
            out =
                handler_util_exec(job, "SELECT refund_object(r)::text FROM refunds r WHERE id = $1",
                                  1, p2, PGRES_TUPLES_OK, &res);
        if (out == HANDLER_OK)
            out = handler_util_take_result(job, res);
        goto done;
    }
    bool refused = left <= 0 || want <= 0 || want > left;
    bool stale = timeutil_now_ms() - job->env->enqueued_at_ms > CHARGE_KEY_TRUSTED_MS;
    if ((refused && unexplained) || stale) {
        if ((out = payments_stripe_key(job, &key)) != HANDLER_OK ||
            (out = find_unrecorded_refund(job, key, pi, id, &found)) != HANDLER_OK)
            goto done;
    }
    if (found == NULL && left <= 0) {
        out = runtime_reject(job, 409, "payment_refunded", NULL,
                             "Payment '%s' has been refunded in full already.", payment);
        goto done;
    }
    if (found == NULL && (want <= 0 || want > left)) {
        out = runtime_reject(job, 400, "amount_too_large", "amount",
                             "A refund of payment '%s' may be at most %" PRId64
                             " (what is left of it).",
                             payment, left);
        goto done;
    }
    if (found == NULL) {
        if ((amount && (out = payments_to_stripe(job, currency, want, "amount", &stripe_want)) !=
                           HANDLER_OK) ||
            (key == NULL && (out = payments_stripe_key(job, &key)) != HANDLER_OK))
            goto done;
        /* Without an amount Stripe refunds what it has left: the request
         * (and so its Idempotency-Key's parameters) stays the same however
         * much Billow counted as left between two runs of the job. The
         * charge comes back expanded for Stripe's own refunded total. */
        form = stripe_form_new();
        stripe_form_add(form, "payment_intent", pi);
        if (amount)
            stripe_form_add_int(form, "amount", stripe_want);
        if (reason)
            stripe_form_add(form, "reason", reason);
        stripe_form_add(form, "expand[]", "charge");
        stripe_form_add_metadata(form, "billow_tenant", job->env->tenant_id);
        stripe_form_add_metadata(form, "billow_refund", id);
        snprintf(idem, sizeof idem, "billow:re:%s", id);
        stripe_call(payments_stripe(job), key, "POST", "/v1/refunds", form, idem, &r);
        fault_point("charger.after_stripe");
        if (r.outcome != STRIPE_OK) {
            if (r.outcome == STRIPE_REJECTED && r.status == 400)
                out = runtime_reject(job, 409, "refund_refused", NULL,
                                     "Stripe refused the refund: %s", r.message);
            else
                out = payments_stripe_fault(job, &r);
            goto done;
        }
    }
    out = payments_record_refund(job, id, found ? found : r.body, meta_text, &refund);
    if (out == HANDLER_OK && refund == NULL)
        out = runtime_fault(job, HANDLER_PERMANENT, "refund_unrecorded",
                            "Stripe made refund %s, but it could not be recorded against "
                            "payment '%s'.",
                            json_string_value(json_object_get(found ? found : r.body, "id")),
                            payment);
    if (out == HANDLER_OK) {
        json_decref(job->result);
        job->result = refund;
        refund = NULL;
    }

done:
    PQclear(res);
    free(key);
    free(meta_text);
    json_decref(found);
    json_decref(refund);
    stripe_form_free(form);
    stripe_response_dispose(&r);
    return out;
}

/* payment.setup_intent {customer, metadata?}: a SetupIntent for collecting
 * the customer's card off-session; its client_secret is for the tenant's
 * front end (Stripe.js). The default payment method is recorded when
 * Stripe reports the SetupIntent succeeded (setup_intent.succeeded). */
static handler_outcome_t payment_setup_intent(worker_job_t *job)
{
    const char *customer = handler_util_req_string(job->env->payload, "customer");
    char *key = NULL, stripe_customer[PAYMENTS_STRIPE_ID_MAX], idem[160];
    stripe_form_t *form = NULL;
    stripe_response_t r;
    handler_outcome_t out;

    memset(&r, 0, sizeof r);
    if (!customer) {
        out = handler_util_bad_payload(job, "customer is required");
        goto done;
    }
    if ((out = payments_stripe_key(job, &key)) != HANDLER_OK ||
        (out = payments_ensure_customer(job, key, customer, stripe_customer)) != HANDLER_OK)
        goto done;
    form = stripe_form_new();
    stripe_form_add(form, "customer", stripe_customer);
    stripe_form_add(form, "usage", "off_session");
    stripe_form_add(form, "payment_method_types[]", "card");
    stripe_form_add_metadata(form, "billow_tenant", job->env->tenant_id);
    stripe_form_add_metadata(form, "billow_customer", customer);
    snprintf(idem, sizeof idem, "billow:seti:%s", job->env->id);
    stripe_call(payments_stripe(job), key, "POST", "/v1/setup_intents", form, idem, &r);
    if (r.outcome != STRIPE_OK) {
        out = payments_stripe_fault(job, &r);
        goto done;
    }
    job->result =
        json_pack("{s:s,s:O?,s:O?,s:s,s:s,s:O?}", "object", "setup_intent", "id",
                  json_object_get(r.body, "id"), "client_secret",
                  json_object_get(r.body, "client_secret"), "customer", customer, "stripe_customer",
                  stripe_customer, "status", json_object_get(r.body, "status"));

done:
    free(key);
    stripe_form_free(form);
    stripe_response_dispose(&r);
    return out;
}

/* payment.cancel_intent {invoice, intent}: the invoice was settled other
 * than through Stripe (voided, or paid out of band), so its
 * PaymentIntent, still waiting (for the customer's authentication, say),
 * is canceled and can no longer take money. If the customer paid it in the
 * meantime, Stripe refuses with the succeeded intent, and the payment is
 * recorded against the settled invoice, for staff to refund (as its
 * payment_intent.succeeded event would record it, once). */
static handler_outcome_t payment_cancel_intent(worker_job_t *job)
{
    const json_t *p = job->env->payload;
    const char *invoice = handler_util_req_string(p, "invoice");
    const char *intent = handler_util_req_string(p, "intent");
    char *key = NULL, path[PAYMENTS_STRIPE_ID_MAX + 64], idem[PAYMENTS_STRIPE_ID_MAX + 32];
    stripe_form_t *form = NULL;
    stripe_response_t r;
    const char *status = NULL;
    handler_outcome_t out;

    memset(&r, 0, sizeof r);
    if (!invoice || !intent) {
        out = handler_util_bad_payload(job, "invoice and intent are required");
        goto done;
    }
    if ((out = payments_lock_invoice(job, invoice)) != HANDLER_OK ||
        (out = payments_stripe_key(job, &key)) != HANDLER_OK)
        goto done;
    snprintf(path, sizeof path, "/v1/payment_intents/%s/cancel", intent);
    snprintf(idem, sizeof idem, "billow:pi-cancel:%s", intent);
    form = stripe_form_new();
    stripe_form_add(form, "cancellation_reason", "abandoned");
    stripe_call(payments_stripe(job), key, "POST", path, form, idem, &r);
    if (r.outcome == STRIPE_OK) {
        status = "canceled";
    } else if (r.outcome == STRIPE_REJECTED) {
        status = json_string_value(json_object_get(
            json_object_get(json_object_get(r.body, "error"), "payment_intent"), "status"));
        if (status == NULL ||
            (strcmp(status, "canceled") != 0 && strcmp(status, "succeeded") != 0)) {
            out = payments_stripe_fault(job, &r);
            goto done;
        }
    } else {
        out = payments_stripe_fault(job, &r);
        goto done;
    }
    if (strcmp(status, "succeeded") == 0) {
        /* The customer finished paying before the cancel came: Stripe took
         * the money, and its answer carries the intent. Recorded now, as
         * payment_intent.succeeded would be; a tenant without a webhook
         * endpoint has nothing else to tell Billow. The invoice is settled
         * already, so it stays as it is, with a payment to refund. */
        bool applied = false;
        out = payments_apply_intent(
            job, json_object_get(json_object_get(r.body, "error"), "payment_intent"), &applied);
        if (out != HANDLER_OK)
            goto done;
    } else if (strcmp(status, "canceled") == 0) {
        const char *params[2] = {invoice, intent};
        out = handler_util_exec(job,
                                "UPDATE payment_attempts SET status = 'failed',"
                                " failure_code = 'payment_intent_canceled', updated_at = now() "
                                "WHERE invoice_id = $1 AND stripe_payment_intent = $2"
                                " AND status IN ('requires_action', 'processing')",
                                2, params, PGRES_COMMAND_OK, NULL);
        if (out != HANDLER_OK)
            goto done;
    }
    job->result = json_pack("{s:s,s:s,s:s,s:s}", "object", "payment_intent_cancel", "invoice",
                            invoice, "intent", intent, "status", status);

done:
    free(key);
    stripe_form_free(form);
    stripe_response_dispose(&r);
    return out;
}

const worker_handler_t kind_charger_handlers[] = {
    {"payment.charge", payment_charge, false, payment_charge_batch},
    {"payment.create", payment_create, false, payment_create_batch},
    {"payment.refund", payment_refund, false, NULL},
    {"payment.setup_intent", payment_setup_intent, false, NULL},
    {"payment.cancel_intent", payment_cancel_intent, false, NULL},
    {NULL, NULL, false, NULL},
};

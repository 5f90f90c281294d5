/* kind_webhook: the `webhook` worker kind — Stripe's events, applied once
 * and in any order (see kind_webhook.h).
 *
 * The api verified the signature and enqueued the event as a stripe.event
 * job whose id is derived from the event id, so a redelivery is the same
 * job; stripe_events' key (tenant, event id) makes it once more in the
 * database. Stripe does not promise order, so each event is first held
 * against the newest state seen of its object (stripe_objects): it is
 * applied only when it is newer (a later `created`, or at the same second
 * a status further along), and an older view of an object already seen
 * is kept as "stale" and changes nothing that can go back: only what ever
 * adds (a dispute's existence, a charge's refunded total) is taken from it
 * (see stripe_event). Any order of the same events therefore ends in the
 * same state.
 */
#include "kind_webhook.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handler_util.h"
#include "ids.h"
#include "kind_invoice.h"
#include "payments.h"
#include "timeutil.h"

/* How far along each status of an object is: an event with a later status
 * at the same second moves the object forward, never back. Unknown
 * statuses rank 0. */
typedef struct {
    const char *object; /* Stripe object type. */
    const char *status; /* Its status. */
    int rank;
} status_rank_t;

static const status_rank_t ranks[] = {
    {"payment_intent", "requires_payment_method", 1},
    {"payment_intent", "requires_confirmation", 2},
    {"payment_intent", "requires_action", 3},
    {"payment_intent", "processing", 4},
    {"payment_intent", "requires_capture", 5},
    {"payment_intent", "canceled", 6},
    {"payment_intent", "succeeded", 7},
    {"setup_intent", "requires_payment_method", 1},
    {"setup_intent", "requires_confirmation", 2},
    {"setup_intent", "requires_action", 3},
    {"setup_intent", "processing", 4},
    {"setup_intent", "canceled", 5},
    {"setup_intent", "succeeded", 6},
    {"charge", "pending", 1},
    {"charge", "failed", 2},
    {"charge", "succeeded", 3},
    {"invoice", "draft", 1},
    {"invoice", "open", 2},
    {"invoice", "uncollectible", 3},
    {"invoice", "void", 4},
    {"invoice", "paid", 5},
    {"subscription", "incomplete", 1},
    {"subscription", "trialing", 2},
    {"subscription", "active", 3},
    {"subscription", "past_due", 4},
    {"subscription", "paused", 5},
    {"subscription", "unpaid", 5},
    {"subscription", "incomplete_expired", 6},
    {"subscription", "canceled", 7},
    /* A refund can fail after it succeeded (the card cannot take the money
     * back), never the other way round. */
    {"refund", "pending", 1},
    {"refund", "requires_action", 1},
    {"refund", "succeeded", 2},
    {"refund", "failed", 3},
    {"refund", "canceled", 3},
    {"dispute", "warning_needs_response", 1},
    {"dispute", "needs_response", 2},
    {"dispute", "warning_under_review", 3},
    {"dispute", "under_review", 3},
    {"dispute", "charge_refunded", 4},
    {"dispute", "warning_closed", 5},
    {"dispute", "won", 5},
    {"dispute", "lost", 5},
};

/* The rank of obj's status; a charge also moves forward as more of it is
 * refunded or once it is disputed. */
static int64_t rank_of(const json_t *obj)
{
    const char *type = json_string_value(json_object_get(obj, "object"));
    const char *status = json_string_value(json_object_get(obj, "status"));
    int64_t rank = 0;
    for (size_t i = 0; type && status && i < sizeof ranks / sizeof ranks[0]; i++)
        if (strcmp(ranks[i].object, type) == 0 && strcmp(ranks[i].status, status) == 0)
            rank = ranks[i].rank;
    if (type && strcmp(type, "charge") == 0) {
        const json_t *refunded = json_object_get(obj, "amount_refunded");
        rank =
            rank * 1000000000000LL + (json_is_integer(refunded) ? json_integer_value(refunded) : 0);
        if (json_is_true(json_object_get(obj, "disputed")))
            rank += 1;
    }
    return rank;
}

static const char EVENT_SQL[] =
    "INSERT INTO stripe_events (tenant_id, id, type, object_id, created, outcome, payload) "
    "VALUES (current_setting('app.tenant_id'), $1, $2, $3, to_timestamp($4::bigint), $5, "
    "$6::jsonb) "
    "ON CONFLICT (tenant_id, id) DO NOTHING RETURNING id";

/* Newest state wins: inserted, or replaced by a later event (or the same
 * second, further along). No row back: the event is stale. */
static const char OBJECT_SQL[] =
    "INSERT INTO stripe_objects AS o (tenant_id, id, object, status, rank, event_created,"
    " event_id, data) "
    "VALUES (current_setting('app.tenant_id'), $1, $2, $3, $4::bigint, to_timestamp($5::bigint),"
    " $6, $7::jsonb) "
    "ON CONFLICT (tenant_id, id) DO UPDATE SET status = excluded.status, rank = excluded.rank,"
    " event_created = excluded.event_created, event_id = excluded.event_id, data = excluded.data,"
    " updated_at = now() "
    "WHERE (excluded.event_created, excluded.rank, excluded.event_id)"
    " > (o.event_created, o.rank, o.event_id) "
    "RETURNING id";

/* Whether the event's object moved forward (and is now stored as newest). */
static handler_outcome_t advance_object(worker_job_t *job, const char *event_id, int64_t created,
                                        const json_t *obj, bool *moved)
{
    const char *id = json_string_value(json_object_get(obj, "id"));
    const char *type = json_string_value(json_object_get(obj, "object"));
    char rank[32], created_s[24];
    *moved = false;
    if (!id || !type)
        return HANDLER_OK;
    snprintf(rank, sizeof rank, "%" PRId64, rank_of(obj));
    snprintf(created_s, sizeof created_s, "%" PRId64, created);
    char *data = json_dumps(obj, JSON_COMPACT);
    const char *params[7] = {id,   type,      json_string_value(json_object_get(obj, "status")),
                             rank, created_s, event_id,
                             data};
    PGresult *res = NULL;
    handler_outcome_t out = handler_util_exec(job, OBJECT_SQL, 7, params, PGRES_TUPLES_OK, &res);
    *moved = out == HANDLER_OK && PQntuples(res) == 1;
    PQclear(res);
    free(data);
    return out;
}

/* Runs one statement of an event's effect (sql with n params): *applied
 * when it answers a row (it changed something of Billow's). */
static handler_outcome_t run_effect(worker_job_t *job, const char *sql, int n,
                                    const char *const *params, bool *applied)
{
    PGresult *res = NULL;
    handler_outcome_t out = handler_util_exec(job, sql, n, params, PGRES_TUPLES_OK, &res);
    if (out == HANDLER_OK)
        *applied = PQntuples(res) > 0;
    PQclear(res);
    return out;
}

/* The Billow id (into out, "" when none) that sql ($1: a Stripe id) links
 * to a Stripe object. */
static handler_outcome_t linked_id(worker_job_t *job, const char *sql, const char *stripe_id,
                                   char out[IDS_MAX])
{
    const char *params[1] = {stripe_id};
    PGresult *res = NULL;
    handler_outcome_t rc = handler_util_exec(job, sql, 1, params, PGRES_TUPLES_OK, &res);
    out[0] = '\0';
    if (rc == HANDLER_OK && PQntuples(res) == 1)
        snprintf(out, IDS_MAX, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return rc;
}

/* setup_intent.succeeded: the customer's new default payment method, and
 * with it an immediate retry of what waits on one. */
static handler_outcome_t apply_setup(worker_job_t *job, const json_t *si, bool *applied)
{
    const char *pm = json_string_value(json_object_get(si, "payment_method"));
    const char *billow =
        json_string_value(json_object_get(json_object_get(si, "metadata"), "billow_customer"));
    const char *stripe_customer = json_string_value(json_object_get(si, "customer"));
    *applied = false;
    if (!pm || (!billow && !stripe_customer))
        return HANDLER_OK;
    const char *params[3] = {pm, billow, stripe_customer};
    return run_effect(
        job,
        "WITH c AS ("
        "  UPDATE customers SET default_payment_method = $1, updated_at = now()"
        "  WHERE (id = $2 OR ($2 IS NULL AND stripe_customer_id = $3)) AND status <> 'closed'"
        "  RETURNING id"
        ") SELECT customer_payment_method_changed(c.id) FROM c",
        3, params, applied);
}

/* charge.refunded (and every other charge.* of a charge): Stripe's total
 * refunded of the charge (refunds made in Stripe's dashboard count too).
 * A total, not an increment, and kept as the most Stripe said: a refund
 * the charger also records is never counted twice, and a stale report of
 * a total that still counted a refund which failed since does not count
 * it again (payments_sync_refunded). */
static handler_outcome_t apply_refund(worker_job_t *job, const json_t *charge, bool *applied)
{
    const char *id = json_string_value(json_object_get(charge, "id"));
    const char *pi = json_string_value(json_object_get(charge, "payment_intent"));
    const char *currency = json_string_value(json_object_get(charge, "currency"));
    int64_t refunded = 0;
    *applied = false;
    /* Stripe's total in Billow's minor units (isk is two-decimal to
     * Stripe); one Billow cannot represent changes nothing. */
    if (!id || !currency ||
        !payments_from_stripe(json_object_get(charge, "amount_refunded"), currency, &refunded))
        return HANDLER_OK;
    const char *params[2] = {id, pi};
    PGresult *res = NULL;
    handler_outcome_t out = handler_util_exec(
        job,
        "UPDATE payments SET stripe_charge = coalesce(stripe_charge, $1) "
        "WHERE id = (SELECT id FROM payments WHERE stripe_charge = $1 OR stripe_payment_intent = $2"
        " ORDER BY id LIMIT 1 FOR UPDATE) RETURNING id",
        2, params, PGRES_TUPLES_OK, &res);
    if (out == HANDLER_OK && PQntuples(res) == 1) {
        char pay[IDS_MAX];
        snprintf(pay, sizeof pay, "%s", PQgetvalue(res, 0, 0));
        out = payments_sync_refunded(job, pay, refunded, applied);
    }
    PQclear(res);
    return out;
}

/* refund.created / refund.updated / refund.failed, and charge.refund.updated
 * (whose object is the refund, not the charge): the refund recorded by its
 * Stripe id (once, whether the charger's answer or this came first), with
 * the Billow id its metadata names when the charger made it, its status
 * moved forward; one that failed or was canceled is no longer counted in
 * its payment's and invoice's refunded amounts. */
static handler_outcome_t apply_refund_object(worker_job_t *job, const json_t *re, bool *applied)
{
    json_t *obj = NULL;
    handler_outcome_t out = payments_record_refund(job, NULL, re, NULL, &obj);
    *applied = obj != NULL;
    json_decref(obj);
    return out;
}

/* charge.dispute.*: the dispute recorded, its payment marked; with newest
 * (the event moved the dispute forward), its status is the event's too. */
static handler_outcome_t apply_dispute(worker_job_t *job, const json_t *d, bool newest,
                                       bool *applied)
{
    const char *id = json_string_value(json_object_get(d, "id"));
    const char *charge = json_string_value(json_object_get(d, "charge"));
    const char *currency = json_string_value(json_object_get(d, "currency"));
    int64_t amount = 0;
    char amount_s[24];
    *applied = false;
    /* Stripe's amount in Billow's minor units (isk is two-decimal to Stripe). */
    if (!id || !charge || !currency ||
        !payments_from_stripe(json_object_get(d, "amount"), currency, &amount))
        return HANDLER_OK;
    snprintf(amount_s, sizeof amount_s, "%" PRId64, amount);
    const char *params[7] = {id,
                             charge,
                             amount_s,
                             currency,
                             json_string_value(json_object_get(d, "reason")),
                             json_string_value(json_object_get(d, "status")),
                             newest ? "t" : "f"};
    return run_effect(
        job,
        "WITH pay AS ("
        "  UPDATE payments SET disputed = true, updated_at = now() WHERE stripe_charge = $2"
        "  RETURNING id"
        "), d AS ("
        "  INSERT INTO disputes (tenant_id, stripe_dispute, payment_id, stripe_charge, amount,"
        "   currency, reason, status)"
        "  VALUES (current_setting('app.tenant_id'), $1, (SELECT id FROM pay LIMIT 1), $2,"
        "   $3::bigint, coalesce($4, ''), $5, coalesce($6, 'needs_response'))"
        "  ON CONFLICT (tenant_id, stripe_dispute) DO UPDATE SET status ="
        "   CASE WHEN $7::boolean THEN excluded.status ELSE disputes.status END"
        "  RETURNING payment_id"
        ") SELECT 1 FROM d WHERE payment_id IS NOT NULL",
        7, params, applied);
}

/* invoice.paid of a Stripe invoice linked to a Billow one: paid. */
static handler_outcome_t apply_invoice_paid(worker_job_t *job, const json_t *inv, bool *applied)
{
    const char *id = json_string_value(json_object_get(inv, "id"));
    *applied = false;
    if (!id)
        return HANDLER_OK;
    char billow[IDS_MAX];
    handler_outcome_t out =
        linked_id(job, "SELECT id FROM invoices WHERE stripe_invoice_id = $1", id, billow);
    if (out == HANDLER_OK && billow[0])
        out = kind_invoice_settle(job, billow, INVSTATE_EV_PAY, true, applied);
    return out;
}

/* customer.subscription.deleted of a Stripe subscription linked to a
 * Billow one: the Billow subscription is canceled too (by the invoice
 * kind, as staff's cancel is). */
static handler_outcome_t apply_subscription_deleted(worker_job_t *job, const json_t *sub,
                                                    const char *event_id, bool *applied)
{
    const char *id = json_string_value(json_object_get(sub, "id"));
    *applied = false;
    if (!id)
        return HANDLER_OK;
    char billow[IDS_MAX];
    handler_outcome_t out = linked_id(job,
                                      "SELECT id FROM subscriptions WHERE stripe_subscription_id = "
                                      "$1 AND status <> 'canceled'",
                                      id, billow);
    if (out == HANDLER_OK && billow[0]) {
        char key[160], job_id[IDS_MAX];
        snprintf(key, sizeof key, "subscription.cancel|stripe|%s", event_id);
        ids_derive("job", (uint64_t)timeutil_now_ms(), key, job_id);
        if (runtime_followup_id(job, "subscription.cancel", json_pack("{s:s}", "id", billow),
                                job_id) != 0)
            out = HANDLER_RETRY;
        *applied = true;
    }
    return out;
}

/* stripe.event {event}: recorded once, applied if it moves its object. */
static handler_outcome_t stripe_event(worker_job_t *job)
{
    const json_t *ev = json_object_get(job->env->payload, "event");
    const char *id = json_string_value(json_object_get(ev, "id"));
    const char *type = json_string_value(json_object_get(ev, "type"));
    const json_t *created = json_object_get(ev, "created");
    const json_t *obj = json_object_get(json_object_get(ev, "data"), "object");
    const char *outcome = "recorded";
    bool moved = false, applied = false;
    handler_outcome_t out = HANDLER_OK;
    if (!id || !type || !json_is_integer(created) || !json_is_object(obj))
        return handler_util_bad_payload(job, "event needs id, type, created and data.object");
    int64_t at = (int64_t)json_integer_value(created);

    if ((out = advance_object(job, id, at, obj, &moved)) != HANDLER_OK)
        return out;
    /* Staleness is per object, across all of its event types, while most
     * effects belong to one type: a charge.dispute.funds_withdrawn of the
     * same second can make the dispute's charge.dispute.created stale, and a
     * later charge.updated the charge's charge.refunded. So what only ever
     * adds is taken from every event of its object, stale or not: that a
     * dispute exists (its status only from an event that moved it), and a
     * charge's refunded total (kept as the greatest seen). */
    const char *object = json_string_value(json_object_get(obj, "object"));
    bool refund = object != NULL && strcmp(object, "refund") == 0;
    bool dispute = strncmp(type, "charge.dispute.", strlen("charge.dispute.")) == 0;
    bool charge = !dispute && !refund && strncmp(type, "charge.", strlen("charge.")) == 0;
    if (dispute) {
        out = apply_dispute(job, obj, moved, &applied);
        if (!moved)
            outcome = "stale";
    } else if (charge) {
        out = apply_refund(job, obj, &applied);
        if (!moved)
            outcome = "stale";
    } else if (!moved) {
        outcome = "stale";
    } else if (strcmp(type, "payment_intent.succeeded") == 0 ||
               strcmp(type, "payment_intent.payment_failed") == 0 ||
               strcmp(type, "payment_intent.requires_action") == 0 ||
               strcmp(type, "payment_intent.processing") == 0) {
        out = payments_apply_intent(job, obj, &applied);
    } else if (strcmp(type, "setup_intent.succeeded") == 0) {
        out = apply_setup(job, obj, &applied);
    } else if (refund) {
        /* refund.created, .updated, .failed and charge.refund.updated:
         * each carries the refund, and only the newest view of it moves
         * its status (a late refund.created after refund.failed is stale). */
        out = apply_refund_object(job, obj, &applied);
    } else if (strcmp(type, "invoice.paid") == 0) {
        out = apply_invoice_paid(job, obj, &applied);
    } else if (strcmp(type, "customer.subscription.deleted") == 0) {
        out = apply_subscription_deleted(job, obj, id, &applied);
    }
    /* invoice.payment_failed and customer.subscription.updated (and every
     * other type) are kept as the newest state of their object, which is
     * all Billow needs of them: Billow's own invoices are dunned by Billow. */
    if (out != HANDLER_OK)
        return out;
    if (applied)
        outcome = "applied";

    char created_s[24];
    snprintf(created_s, sizeof created_s, "%" PRId64, at);
    char *payload = json_dumps(ev, JSON_COMPACT);
    const char *params[6] = {id,        type,    json_string_value(json_object_get(obj, "id")),
                             created_s, outcome, payload};
    PGresult *res = NULL;
    out = handler_util_exec(job, EVENT_SQL, 6, params, PGRES_TUPLES_OK, &res);
    free(payload);
    bool duplicate = out == HANDLER_OK && PQntuples(res) == 0;
    PQclear(res);
    if (out != HANDLER_OK)
        return out;
    job->result = json_pack("{s:s,s:s,s:s,s:s}", "object", "stripe_event_result", "event", id,
                            "type", type, "outcome", duplicate ? "duplicate" : outcome);
    return out;
}

const worker_handler_t kind_webhook_handlers[] = {
    {"stripe.event", stripe_event, false, NULL},
    {NULL, NULL, false, NULL},
};

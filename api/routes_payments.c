/* routes_payments: money moving through the tenant's Stripe account.
 *
 * One-off payments (POST /v1/payments: an invoice made for the amount and
 * charged at once), refunds of payments, the attempts made to collect an
 * invoice, and setup intents, through which a customer gives Stripe a card
 * for later charges. Reads come from Postgres as the tenant (another
 * tenant's payment is simply absent: 404). Writes are validated here by
 * payments_validate.c and become payment.* jobs for the charger, which
 * talks to Stripe; card data never reaches Billow.
 *
 * Design: a route whose path names an object (a payment to refund, a
 * customer to collect a card from, an invoice whose attempts to list)
 * first confirms it exists for the tenant, so a wrong id is a 404 at once
 * and never a job. The body is validated before that look-up, so a bad
 * request costs no query; only a refund's amount waits for it, since the
 * payment's currency says which amounts Stripe can refund. The ids of what a job will create (the
 * one-off payment's invoice, a refund) are drawn here, so the answer can name them and a retried
 * job makes the same objects.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "ids.h"
#include "mem.h"
#include "payments_validate.h"
#include "reads.h"
#include "routes.h"
#include "submit.h"

/* What a route does once the object its path names is known to exist. */
typedef enum {
    NEXT_REFUND_CREATE, /* Submit payment.refund with payload. */
    NEXT_REFUND_LIST,   /* Answer a page of the payment's refunds. */
    NEXT_ATTEMPT_LIST,  /* Answer a page of the invoice's payment attempts. */
    NEXT_SETUP_INTENT,  /* Submit payment.setup_intent with payload. */
} next_t;

/* A request held while its path's object is looked up (ar->state). */
typedef struct {
    next_t next;         /* What follows. */
    const char *noun;    /* The object's noun for the 404 ("payment"). */
    json_t *payload;     /* Submissions: the job's payload (owned), else NULL. */
    int limit;           /* Lists: the page size asked for. */
    char after[IDS_MAX]; /* Lists: starting_after, or "". */
} pending_t;

static void pending_free(pending_t *p)
{
    if (p->payload)
        json_decref(p->payload);
    free(p);
}

/* Answers 404 resource_missing for the path's id. */
static void respond_missing(api_req_t *ar, const char *noun)
{
    respond_error(ar, BILLOW_ENOT_FOUND, "id", "No such %s: '%s'.", noun, ar->params[0]);
}

/* True when the path's {id} has prefix; otherwise answers 404 (a segment
 * that cannot be such an id names nothing, as an unknown id does). */
static bool id_ok_or_respond(api_req_t *ar, const char *prefix, const char *noun)
{
    if (ids_valid(prefix, ar->params[0]))
        return true;
    respond_missing(ar, noun);
    return false;
}

/* The list pages that follow a look-up. The url is the path asked for (it
 * matched the route, so it holds a valid id and nothing to escape), which
 * lives until the answer, as reads_list needs. */
static void list_refunds(api_req_t *ar, const pending_t *p)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", p->limit + 1);
    const char *params[3] = {ar->params[0], p->after, lim};
    reads_list(ar, ar->http->path, p->limit,
               "SELECT refund_object(r)::text FROM refunds r"
               " WHERE r.payment_id = $1 AND ($2 = '' OR r.id < $2)"
               " ORDER BY r.id DESC LIMIT $3::int",
               3, params);
}

/* Attempts read oldest first, in the order they were made: a page after
 * starting_after holds the attempts numbered after that one's. */
static void list_attempts(api_req_t *ar, const pending_t *p)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", p->limit + 1);
    const char *params[3] = {ar->params[0], p->after, lim};
    reads_list(ar, ar->http->path, p->limit,
               "SELECT payment_attempt_object(a)::text FROM payment_attempts a"
               " WHERE a.invoice_id = $1 AND ($2 = '' OR a.attempt > (SELECT b.attempt"
               " FROM payment_attempts b WHERE b.invoice_id = $1 AND b.id = $2))"
               " ORDER BY a.attempt LIMIT $3::int",
               3, params);
}

/* Submits the job of p (which gives up its payload). */
static void submit_pending(api_req_t *ar, pending_t *p)
{
    submit_t s = {.tenant_id = ar->auth.tenant_id, .created_status = 201};
    char id[IDS_MAX];
    s.payload = p->payload;
    p->payload = NULL;
    if (p->next == NEXT_REFUND_CREATE) {
        ids_generate("refund", id);
        json_object_set_new(s.payload, "payment", json_string(ar->params[0]));
        s.type = "payment.refund";
        s.object_id = id;
    } else {
        json_object_set_new(s.payload, "customer", json_string(ar->params[0]));
        s.type = "payment.setup_intent";
    }
    submit_job_or_respond(ar, &s);
}

/* Whether the refund's amount (when it names one) is one Stripe takes in
 * the payment's currency; otherwise answers 400 before any job. */
static bool refund_amount_ok_or_respond(api_req_t *ar, const pending_t *p, const char *currency)
{
    validate_error_t e;
    const json_t *amount = json_object_get(p->payload, "amount");
    if (amount == NULL || payments_validate_stripe_amount(
                              "amount", currency, (int64_t)json_integer_value(amount), &e) == 0)
        return true;
    respond_invalid(ar, &e);
    return false;
}

static void on_exists(void *data, int err, const PGresult *res)
{
    api_req_t *ar = data;
    pending_t *p = ar->state;
    ar->state = NULL;
    if (err) {
        pending_free(p);
        reads_failed(ar, err, res);
        return;
    }
    if (PQntuples(res) == 0) {
        respond_missing(ar, p->noun);
        pending_free(p);
        return;
    }
    switch (p->next) {
    case NEXT_REFUND_LIST:
        list_refunds(ar, p);
        break;
    case NEXT_ATTEMPT_LIST:
        list_attempts(ar, p);
        break;
    case NEXT_REFUND_CREATE:
        if (refund_amount_ok_or_respond(ar, p, PQgetvalue(res, 0, 0)))
            submit_pending(ar, p);
        break;
    case NEXT_SETUP_INTENT:
        submit_pending(ar, p);
        break;
    }
    pending_free(p);
}

/* Runs exists (SQL returning a row when $1, the path's id, exists for the
 * tenant; a refund's gives the payment's currency first) and then p's next
 * step; takes ownership of p and answers. */
static void when_exists(api_req_t *ar, pending_t *p, const char *exists)
{
    const char *params[1] = {ar->params[0]};
    ar->state = p;
    if (pg_pool_query(ar->app->pg, ar->auth.tenant_id, exists, 1, params, on_exists, ar) != 0) {
        ar->state = NULL;
        pending_free(p);
        respond_error(ar, BILLOW_EUNAVAILABLE, NULL, "The database is unavailable; retry later.");
    }
}

void routes_payments_create(api_req_t *ar)
{
    validate_error_t e;
    json_t *payload = NULL;
    if (payments_validate_payment(ar->body, &payload, &e) != 0) {
        respond_invalid(ar, &e);
        return;
    }
    char invoice[IDS_MAX];
    ids_generate("in", invoice);
    submit_t s = {.type = "payment.create",
                  .tenant_id = ar->auth.tenant_id,
                  .payload = payload,
                  .object_id = invoice,
                  .created_status = 201};
    submit_job_or_respond(ar, &s);
}

void routes_payments_get(api_req_t *ar)
{
    if (!id_ok_or_respond(ar, "pay", "payment"))
        return;
    const char *params[1] = {ar->params[0]};
    reads_object(ar, "payment", "SELECT payment_object(p)::text FROM payments p WHERE p.id = $1", 1,
                 params);
}

void routes_payments_list(api_req_t *ar)
{
    static const char *const allowed[] = {"limit", "starting_after", "customer", "invoice", NULL};
    char after[IDS_MAX], customer[IDS_MAX], invoice[IDS_MAX], lim[16];
    int limit;
    if (reads_page_params(ar, allowed, "pay", &limit, after) != 0 ||
        reads_id_filter(ar, "customer", "cus", customer) != 0 ||
        reads_id_filter(ar, "invoice", "in", invoice) != 0)
        return;
    snprintf(lim, sizeof lim, "%d", limit + 1);
    const char *params[4] = {after, customer, invoice, lim};
    reads_list(ar, "/v1/payments", limit,
               "SELECT payment_object(p)::text FROM payments p"
               " WHERE ($1 = '' OR p.id < $1) AND ($2 = '' OR p.customer_id = $2)"
               " AND ($3 = '' OR p.invoice_id = $3)"
               " ORDER BY p.id DESC LIMIT $4::int",
               4, params);
}

void routes_payments_refunds_create(api_req_t *ar)
{
    validate_error_t e;
    json_t *payload = NULL;
    if (!id_ok_or_respond(ar, "pay", "payment"))
        return;
    if (payments_validate_refund(ar->body, &payload, &e) != 0) {
        respond_invalid(ar, &e);
        return;
    }
    pending_t *p = mem_calloc(1, sizeof(*p));
    p->next = NEXT_REFUND_CREATE;
    p->noun = "payment";
    p->payload = payload;
    /* The currency decides which amounts Stripe can refund. */
    when_exists(ar, p, "SELECT currency FROM payments WHERE id = $1");
}

/* Starts a list of the path object's children: page parameters (cursor
 * ids with cursor_prefix), then the look-up of the path's object. */
static void list_children(api_req_t *ar, next_t next, const char *prefix, const char *noun,
                          const char *cursor_prefix, const char *exists)
{
    static const char *const allowed[] = {"limit", "starting_after", NULL};
    if (!id_ok_or_respond(ar, prefix, noun))
        return;
    pending_t *p = mem_calloc(1, sizeof(*p));
    p->next = next;
    p->noun = noun;
    if (reads_page_params(ar, allowed, cursor_prefix, &p->limit, p->after) != 0) {
        pending_free(p);
        return;
    }
    when_exists(ar, p, exists);
}

void routes_payments_refunds_list(api_req_t *ar)
{
    list_children(ar, NEXT_REFUND_LIST, "pay", "payment", "refund",
                  "SELECT 1 FROM payments WHERE id = $1");
}

void routes_invoices_payment_attempts(api_req_t *ar)
{
    list_children(ar, NEXT_ATTEMPT_LIST, "in", "invoice", "payatt",
                  "SELECT 1 FROM invoices WHERE id = $1");
}

void routes_customers_setup_intents_create(api_req_t *ar)
{
    validate_error_t e;
    json_t *payload = NULL;
    if (!id_ok_or_respond(ar, "cus", "customer"))
        return;
    if (payments_validate_setup_intent(ar->body, &payload, &e) != 0) {
        respond_invalid(ar, &e);
        return;
    }
    pending_t *p = mem_calloc(1, sizeof(*p));
    p->next = NEXT_SETUP_INTENT;
    p->noun = "customer";
    p->payload = payload;
    when_exists(ar, p, "SELECT 1 FROM customers WHERE id = $1");
}

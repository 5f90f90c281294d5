/* routes_customers: a tenant's customers.
 *
 * Reads come straight from Postgres as the tenant (row-level security makes
 * another tenant's customer simply absent: 404). Creations and updates are
 * validated here, field by field, and become customer.create and
 * customer.update jobs; the worker writes the row.
 *
 * Design: the job carries the customer normalised (currency lower-case, an
 * address with all six of its members, an unlinked stripe_customer as
 * null), so the worker only writes it. The
 * rules that depend on stored rows, a closed customer staying closed, a
 * customer with subscriptions keeping its currency and not closing while
 * one is live, and a test clock that must exist, are the worker's: it
 * judges them under the customer's row lock.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "body.h"
#include "ids.h"
#include "mem.h"
#include "money.h"
#include "payments_validate.h"
#include "query.h"
#include "reads.h"
#include "routes.h"
#include "submit.h"
#include "validate.h"

/* Longest member of an address (a street line, a city): more than any
 * postal system uses, short enough for an invoice's address block. */
#define CUSTOMERS_ADDRESS_TEXT_MAX 200
/* Longest tax id as given (VAT, GST, EIN with country prefix and spaces);
 * every real scheme is far shorter. */
#define CUSTOMERS_TAX_ID_MAX 64
/* Longest payment method id after "pm_" (Stripe's ids are far shorter;
 * this bounds what a stored reference to one can cost). */
#define CUSTOMERS_PAYMENT_METHOD_MAX 250

static const char *const create_keys[] = {"email",      "name",
                                          "phone",      "metadata",
                                          "address",    "currency",
                                          "tax_id",     "default_payment_method",
                                          "test_clock", "stripe_customer",
                                          NULL};
static const char *const update_keys[] = {"email",
                                          "name",
                                          "phone",
                                          "metadata",
                                          "status",
                                          "address",
                                          "currency",
                                          "tax_id",
                                          "default_payment_method",
                                          "test_clock",
                                          "stripe_customer",
                                          NULL};
static const char *const address_keys[] = {"line1",       "line2",   "city", "state",
                                           "postal_code", "country", NULL};

/* ISO 3166-1 alpha-2: two upper-case letters. */
static bool country_valid(const char *s)
{
    return strlen(s) == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z';
}

/* ^pm_[A-Za-z0-9_]{1,250}$: a Stripe PaymentMethod id. */
static bool payment_method_valid(const char *s)
{
    size_t len = strlen(s);
    if (strncmp(s, "pm_", 3) != 0 || len < 4 || len > 3 + CUSTOMERS_PAYMENT_METHOD_MAX)
        return false;
    for (size_t i = 3; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

/* Reads the address object a into *out (caller frees; set only on
 * success) with every member present, null when not given. */
static int check_address(const json_t *a, json_t **out, validate_error_t *e)
{
    if (!json_is_object(a))
        return validate_fail(e, BILLOW_EPARAM_INVALID, "address",
                             "address must be an object with line1, line2, city, state, "
                             "postal_code and country%s.",
                             json_is_null(a) ? " (null only clears it on an update)" : "");
    if (validate_known_keys(a, address_keys, e) != 0) {
        char param[sizeof e->param + 16];
        snprintf(param, sizeof param, "address.%.*s", (int)sizeof e->param - 1, e->param);
        return validate_fail(e, BILLOW_EPARAM_UNKNOWN, param, "Received unknown parameter: %s.",
                             param);
    }
    json_t *norm = json_object();
    for (size_t i = 0; address_keys[i] != NULL; i++) {
        const char *key = address_keys[i];
        const json_t *v = json_object_get(a, key);
        char param[32];
        snprintf(param, sizeof param, "address.%s", key);
        if (v == NULL || json_is_null(v)) {
            json_object_set_new(norm, key, json_null());
            continue;
        }
        int rc = 0;
        if (!json_is_string(v))
            rc = validate_fail(e, BILLOW_EPARAM_INVALID, param, "%s must be a string or null.",
                               param);
        else if (strcmp(key, "country") == 0 && !country_valid(json_string_value(v)))
            rc = validate_fail(e, BILLOW_EPARAM_INVALID, param,
                               "%s must be an ISO 3166-1 alpha-2 code: two upper-case letters "
                               "such as \"GB\".",
                               param);
        else if (strcmp(key, "country") != 0)
            rc = validate_text(param, json_string_value(v), CUSTOMERS_ADDRESS_TEXT_MAX, e);
        if (rc != 0) {
            json_decref(norm);
            return rc;
        }
        json_object_set_new(norm, key, json_string(json_string_value(v)));
    }
    *out = norm;
    return 0;
}

/* Checks one of the billing fields that are strings of their own format
 * (currency, tax_id, default_payment_method) and writes its normalised
 * value into payload. */
static int check_billing_string(const char *key, const json_t *v, json_t *payload,
                                validate_error_t *e)
{
    const char *s = json_string_value(v);
    if (strcmp(key, "currency") == 0) {
        const money_currency_t *known;
        int rc = body_currency_value(v, key, true, &known, e);
        if (rc == 0)
            json_object_set_new(payload, key, json_string(known->code));
        return rc;
    }
    if (s == NULL)
        return validate_fail(e, BILLOW_EPARAM_INVALID, key, "%s must be a string%s.", key,
                             json_is_null(v) ? " (null only clears it on an update)" : " or null");
    if (strcmp(key, "tax_id") == 0)
        return validate_text(key, s, CUSTOMERS_TAX_ID_MAX, e);
    if (!payment_method_valid(s))
        return validate_fail(e, BILLOW_EPARAM_INVALID, key,
                             "default_payment_method must be a payment method id: \"pm_\" then 1 "
                             "to %d letters, digits or \"_\".",
                             CUSTOMERS_PAYMENT_METHOD_MAX);
    return 0;
}

/* Validates the customer fields present in ar->body for a creation or (update) an
 * update, where null clears a field, and builds the job's payload into
 * *payload (caller frees; set only on success). Answers and returns -1 on
 * the first problem. */
static int check_fields_or_respond(api_req_t *ar, bool update, json_t **payload)
{
    validate_error_t e;
    json_t *body = ar->body;
    json_t *out = json_deep_copy(body);
    if (validate_known_keys(body, update ? update_keys : create_keys, &e) != 0)
        goto fail;
    static const char *const strings[] = {"email", "name", "phone"};
    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
        const char *k = strings[i];
        json_t *v = json_object_get(body, k);
        if (v == NULL || (json_is_null(v) && update))
            continue;
        if (!json_is_string(v)) {
            validate_fail(&e, BILLOW_EPARAM_INVALID, k, "%s must be a string%s.", k,
                          update ? " or null" : "");
            goto fail;
        }
        const char *s = json_string_value(v);
        int rc = strcmp(k, "email") == 0   ? validate_email(k, s, &e)
                 : strcmp(k, "phone") == 0 ? validate_phone(k, s, &e)
                                           : validate_text(k, s, VALIDATE_NAME_MAX, &e);
        if (rc)
            goto fail;
    }
    json_t *md = json_object_get(body, "metadata");
    if (md && validate_metadata("metadata", md, &e) != 0)
        goto fail;
    json_t *st = json_object_get(body, "status");
    const char *status = json_string_value(st);
    if (st &&
        (status == NULL || (strcmp(status, "active") != 0 && strcmp(status, "suspended") != 0 &&
                            strcmp(status, "closed") != 0))) {
        validate_fail(&e, BILLOW_EPARAM_INVALID, "status",
                      "status must be \"active\", \"suspended\" or \"closed\".");
        goto fail;
    }
    json_t *address = json_object_get(body, "address");
    if (address && !(update && json_is_null(address))) {
        json_t *norm = NULL;
        if (check_address(address, &norm, &e) != 0)
            goto fail;
        json_object_set_new(out, "address", norm);
    }
    /* A customer's currency can change but never be unset (its invoices
     * are in it), so only tax_id and default_payment_method clear. */
    static const char *const billing[] = {"currency", "tax_id", "default_payment_method"};
    for (size_t i = 0; i < sizeof(billing) / sizeof(billing[0]); i++) {
        json_t *v = json_object_get(body, billing[i]);
        if (v == NULL || (update && json_is_null(v) && strcmp(billing[i], "currency") != 0))
            continue;
        if (check_billing_string(billing[i], v, out, &e) != 0)
            goto fail;
    }
    json_t *stripe = json_object_get(body, "stripe_customer");
    const char *stripe_id = json_string_value(stripe);
    if (stripe && update && (json_is_null(stripe) || (stripe_id && stripe_id[0] == '\0'))) {
        /* Unlinking: the worker stores null either way. */
        json_object_set_new(out, "stripe_customer", json_null());
    } else if (stripe && (stripe_id == NULL || !payments_validate_stripe_customer(stripe_id))) {
        validate_fail(&e, BILLOW_EPARAM_INVALID, "stripe_customer",
                      "stripe_customer must be a Stripe customer id: \"cus_\" then 1 to %d "
                      "letters or digits%s.",
                      PAYMENTS_STRIPE_CUSTOMER_MAX, update ? " (null or \"\" unlinks it)" : "");
        goto fail;
    }
    json_t *clock = json_object_get(body, "test_clock");
    if (clock && update) {
        validate_fail(&e, BILLOW_EPARAM_INVALID, "test_clock",
                      "A customer's test clock cannot change; create a new customer on the "
                      "clock instead.");
        goto fail;
    }
    if (clock && ar->auth.livemode) {
        validate_fail(&e, BILLOW_ETEST_MODE_ONLY, "test_clock",
                      "Test clocks are available to tenants in test mode only.");
        goto fail;
    }
    if (clock && (!json_is_string(clock) || !ids_valid("clock", json_string_value(clock)))) {
        validate_fail(&e, BILLOW_EPARAM_INVALID, "test_clock",
                      "test_clock must be a test clock id (clock_…).");
        goto fail;
    }
    *payload = out;
    return 0;
fail:
    json_decref(out);
    respond_invalid(ar, &e);
    return -1;
}

void routes_customers_create(api_req_t *ar)
{
    json_t *payload = NULL;
    if (check_fields_or_respond(ar, false, &payload) != 0)
        return;
    char id[IDS_MAX];
    ids_generate("cus", id);
    submit_t s = {.type = "customer.create",
                  .tenant_id = ar->auth.tenant_id,
                  .payload = payload,
                  .object_id = id,
                  .created_status = 201};
    submit_job_or_respond(ar, &s);
}

void routes_customers_get(api_req_t *ar)
{
    if (!ids_valid("cus", ar->params[0])) {
        respond_error(ar, BILLOW_ENOT_FOUND, "id", "No such customer: '%s'.", ar->params[0]);
        return;
    }
    const char *params[1] = {ar->params[0]};
    reads_object(ar, "customer", "SELECT customer_object(c)::text FROM customers c WHERE c.id = $1",
                 1, params);
}

/* True when the read found the customer; otherwise answers (error or 404). */
static int found_or_respond(api_req_t *ar, int err, const PGresult *res)
{
    if (err) {
        reads_failed(ar, err, res);
        return 0;
    }
    if (PQntuples(res) == 0) {
        respond_error(ar, BILLOW_ENOT_FOUND, "id", "No such customer: '%s'.", ar->params[0]);
        return 0;
    }
    return 1;
}

static void on_exists(void *data, int err, const PGresult *res)
{
    api_req_t *ar = data;
    json_t *payload = ar->state;
    ar->state = NULL;
    if (!found_or_respond(ar, err, res)) {
        json_decref(payload);
        return;
    }
    submit_t s = {.type = "customer.update",
                  .tenant_id = ar->auth.tenant_id,
                  .payload = payload,
                  .object_id = ar->params[0],
                  .created_status = 200};
    submit_job_or_respond(ar, &s);
}

void routes_customers_update(api_req_t *ar)
{
    json_t *payload = NULL;
    if (!ids_valid("cus", ar->params[0])) {
        respond_error(ar, BILLOW_ENOT_FOUND, "id", "No such customer: '%s'.", ar->params[0]);
        return;
    }
    if (check_fields_or_respond(ar, true, &payload) != 0)
        return;
    if (json_object_size(ar->body) == 0) {
        json_decref(payload);
        respond_error(ar, BILLOW_EPARAM_MISSING, NULL,
                      "Send at least one of email, name, phone, metadata, status, address, "
                      "currency, tax_id, default_payment_method or stripe_customer.");
        return;
    }
    ar->state = payload;
    const char *params[1] = {ar->params[0]};
    if (pg_pool_query(ar->app->pg, ar->auth.tenant_id, "SELECT 1 FROM customers WHERE id = $1", 1,
                      params, on_exists, ar) != 0) {
        json_decref(payload);
        respond_error(ar, BILLOW_EUNAVAILABLE, NULL, "The database is unavailable; retry later.");
    }
}

/* A page of a customer's balance transactions, held while the customer's
 * existence is checked (an absent customer is a 404, not an empty list). */
typedef struct {
    int limit;           /* Page size asked for. */
    char after[IDS_MAX]; /* starting_after, or "". */
} ledger_page_t;

static void on_ledger_customer(void *data, int err, const PGresult *res)
{
    api_req_t *ar = data;
    ledger_page_t *page = ar->state;
    ar->state = NULL;
    if (found_or_respond(ar, err, res)) {
        char lim[16];
        snprintf(lim, sizeof(lim), "%d", page->limit + 1);
        const char *params[3] = {ar->params[0], page->after, lim};
        /* The list's url is the path asked for (it matched the route, so
         * it holds a valid id and nothing to escape); it lives until the
         * answer, as reads_list needs. */
        reads_list(ar, ar->http->path, page->limit,
                   "SELECT customer_balance_transaction_object(t)::text"
                   " FROM customer_balance_transactions t"
                   " WHERE t.customer_id = $1 AND ($2 = '' OR t.id < $2)"
                   " ORDER BY t.id DESC LIMIT $3::int",
                   3, params);
    }
    free(page);
}

void routes_customers_balance_transactions(api_req_t *ar)
{
    static const char *const allowed[] = {"limit", "starting_after", NULL};
    if (!ids_valid("cus", ar->params[0])) {
        respond_error(ar, BILLOW_ENOT_FOUND, "id", "No such customer: '%s'.", ar->params[0]);
        return;
    }
    ledger_page_t *page = mem_calloc(1, sizeof(*page));
    if (reads_page_params(ar, allowed, "cbtxn", &page->limit, page->after) != 0) {
        free(page);
        return;
    }
    ar->state = page;
    const char *params[1] = {ar->params[0]};
    if (pg_pool_query(ar->app->pg, ar->auth.tenant_id, "SELECT 1 FROM customers WHERE id = $1", 1,
                      params, on_ledger_customer, ar) != 0) {
        free(page);
        respond_error(ar, BILLOW_EUNAVAILABLE, NULL, "The database is unavailable; retry later.");
    }
}

void routes_customers_list(api_req_t *ar)
{
    static const char *const allowed[] = {"limit", "starting_after", "email", NULL};
    char after[IDS_MAX], email[VALIDATE_EMAIL_MAX + 1];
    int limit;
    if (reads_page_params(ar, allowed, "cus", &limit, after) != 0)
        return;
    int rc = query_get(ar->http->query, "email", email, sizeof(email));
    if (rc < 0) {
        respond_error(ar, BILLOW_EPARAM_INVALID, "email", "email is too long or badly encoded.");
        return;
    }
    if (rc == 0)
        email[0] = '\0';
    char lim[16];
    snprintf(lim, sizeof(lim), "%d", limit + 1);
    const char *params[3] = {after, email, lim};
    reads_list(ar, "/v1/customers", limit,
               "SELECT customer_object(c)::text FROM customers c"
               " WHERE ($1 = '' OR c.id < $1) AND ($2 = '' OR lower(c.email) = lower($2))"
               " ORDER BY c.id DESC LIMIT $3::int",
               3, params);
}

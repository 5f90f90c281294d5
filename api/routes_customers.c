/* routes_customers: a tenant's customers.
 *
 * Reads come straight from Postgres as the tenant (row-level security makes
 * another tenant's customer simply absent: 404). Creations and updates are
 * validated here, field by field, and become customer.create and
 * customer.update jobs; the worker writes the row.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "ids.h"
#include "log.h"
#include "mem.h"
#include "query.h"
#include "routes.h"
#include "submit.h"
#include "validate.h"

/* Page size bounds of the list (as Stripe's). */
#define CUSTOMERS_LIST_DEFAULT 10
#define CUSTOMERS_LIST_MAX     100

static const char *const create_keys[] = {"email", "name", "phone", "metadata", NULL};
static const char *const update_keys[] = {"email", "name", "phone", "metadata", "status", NULL};

/* Validates the customer fields present in body; null is allowed where
 * allow_null (updates clear a field with null). Answers and returns -1 on
 * the first problem. */
static int check_fields_or_respond(api_req_t *ar, const char *const *allowed, int allow_null)
{
    validate_error_t e;
    json_t *body = ar->body;
    if (validate_known_keys(body, allowed, &e) != 0)
        goto fail;
    static const struct {
        const char *name;
    } strings[] = {{"email"}, {"name"}, {"phone"}};
    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
        const char *k = strings[i].name;
        json_t *v = json_object_get(body, k);
        if (v == NULL || (json_is_null(v) && allow_null))
            continue;
        if (!json_is_string(v)) {
            validate_fail(&e, BILLOW_EPARAM_INVALID, k, "%s must be a string%s.", k,
                          allow_null ? " or null" : "");
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
    if (st && (!json_is_string(st) || (strcmp(json_string_value(st), "active") != 0 &&
                                       strcmp(json_string_value(st), "suspended") != 0))) {
        validate_fail(&e, BILLOW_EPARAM_INVALID, "status",
                      "status must be \"active\" or \"suspended\".");
        goto fail;
    }
    return 0;
fail:
    respond_error(ar, e.code, e.param[0] ? e.param : NULL, "%s", e.message);
    return -1;
}

void routes_customers_create(api_req_t *ar)
{
    if (check_fields_or_respond(ar, create_keys, 0) != 0)
        return;
    char id[IDS_MAX];
    ids_generate("cus", id);
    submit_t s = {.type = "customer.create",
                  .tenant_id = ar->auth.tenant_id,
                  .payload = json_incref(ar->body),
                  .object_id = id,
                  .created_status = 201};
    submit_job_or_respond(ar, &s);
}

/* Answers a failed read: 503 when Postgres is unreachable, else 500. */
static void read_failed(api_req_t *ar, int err, const PGresult *res)
{
    if (err == BILLOW_EUNAVAILABLE) {
        respond_error(ar, BILLOW_EUNAVAILABLE, NULL, "The database is unavailable; retry later.");
        return;
    }
    log_write(LOG_ERROR, "read_failed", "{s:s,s:s}", "request_id", ar->http->request_id, "error",
              res ? PQresultErrorMessage(res) : "no result");
    respond_error(ar, BILLOW_EINTERNAL, NULL, NULL);
}

/* True when the read found the customer; otherwise answers (error or 404). */
static int found_or_respond(api_req_t *ar, int err, const PGresult *res)
{
    if (err) {
        read_failed(ar, err, res);
        return 0;
    }
    if (PQntuples(res) == 0) {
        respond_error(ar, BILLOW_ENOT_FOUND, "id", "No such customer: '%s'.", ar->params[0]);
        return 0;
    }
    return 1;
}

static void on_customer(void *data, int err, const PGresult *res)
{
    api_req_t *ar = data;
    if (!found_or_respond(ar, err, res))
        return;
    respond_raw_json(ar, 200, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
}

void routes_customers_get(api_req_t *ar)
{
    if (!ids_valid("cus", ar->params[0])) {
        respond_error(ar, BILLOW_ENOT_FOUND, "id", "No such customer: '%s'.", ar->params[0]);
        return;
    }
    const char *params[1] = {ar->params[0]};
    if (pg_pool_query(ar->app->pg, ar->auth.tenant_id,
                      "SELECT customer_object(c)::text FROM customers c WHERE c.id = $1", 1, params,
                      on_customer, ar) != 0)
        respond_error(ar, BILLOW_EUNAVAILABLE, NULL, "The database is unavailable; retry later.");
}

static void on_exists(void *data, int err, const PGresult *res)
{
    api_req_t *ar = data;
    if (!found_or_respond(ar, err, res))
        return;
    submit_t s = {.type = "customer.update",
                  .tenant_id = ar->auth.tenant_id,
                  .payload = json_incref(ar->body),
                  .object_id = ar->params[0],
                  .created_status = 200};
    submit_job_or_respond(ar, &s);
}

void routes_customers_update(api_req_t *ar)
{
    if (!ids_valid("cus", ar->params[0])) {
        respond_error(ar, BILLOW_ENOT_FOUND, "id", "No such customer: '%s'.", ar->params[0]);
        return;
    }
    if (check_fields_or_respond(ar, update_keys, 1) != 0)
        return;
    if (json_object_size(ar->body) == 0) {
        respond_error(ar, BILLOW_EPARAM_MISSING, NULL,
                      "Send at least one of email, name, phone, metadata or status.");
        return;
    }
    const char *params[1] = {ar->params[0]};
    if (pg_pool_query(ar->app->pg, ar->auth.tenant_id, "SELECT 1 FROM customers WHERE id = $1", 1,
                      params, on_exists, ar) != 0)
        respond_error(ar, BILLOW_EUNAVAILABLE, NULL, "The database is unavailable; retry later.");
}

typedef struct {
    api_req_t *ar; /* The request. */
    int limit;     /* Page size asked for. */
} list_t;

static void on_list(void *data, int err, const PGresult *res)
{
    list_t *l = data;
    api_req_t *ar = l->ar;
    int limit = l->limit;
    free(l);
    if (err) {
        read_failed(ar, err, res);
        return;
    }
    int n = PQntuples(res);
    int has_more = n > limit;
    if (has_more)
        n = limit;
    size_t cap = 128;
    for (int i = 0; i < n; i++)
        cap += (size_t)PQgetlength(res, i, 0) + 1;
    char *out = mem_alloc(cap);
    size_t len =
        (size_t)snprintf(out, cap, "{\"object\":\"list\",\"url\":\"/v1/customers\",\"data\":[");
    for (int i = 0; i < n; i++) {
        if (i)
            out[len++] = ',';
        size_t vl = (size_t)PQgetlength(res, i, 0);
        memcpy(out + len, PQgetvalue(res, i, 0), vl);
        len += vl;
    }
    len +=
        (size_t)snprintf(out + len, cap - len, "],\"has_more\":%s}", has_more ? "true" : "false");
    respond_raw_json(ar, 200, out, len);
    free(out);
}

void routes_customers_list(api_req_t *ar)
{
    static const char *const allowed[] = {"limit", "starting_after", "email", NULL};
    char unknown[64], after[IDS_MAX], email[VALIDATE_EMAIL_MAX + 1];
    if (query_unknown(ar->http->query, allowed, unknown, sizeof(unknown))) {
        respond_error(ar, BILLOW_EPARAM_UNKNOWN, unknown, "Unknown query parameter '%s'.", unknown);
        return;
    }
    int limit;
    if (query_get_limit(ar->http->query, CUSTOMERS_LIST_DEFAULT, CUSTOMERS_LIST_MAX, &limit) != 0) {
        respond_error(ar, BILLOW_EPARAM_INVALID, "limit", "limit must be an integer from 1 to %d.",
                      CUSTOMERS_LIST_MAX);
        return;
    }
    int rc = query_get(ar->http->query, "starting_after", after, sizeof(after));
    if (rc < 0 || (rc == 1 && !ids_valid("cus", after))) {
        respond_error(ar, BILLOW_EPARAM_INVALID, "starting_after",
                      "starting_after must be a customer id (cus_…).");
        return;
    }
    if (rc == 0)
        after[0] = '\0';
    rc = query_get(ar->http->query, "email", email, sizeof(email));
    if (rc < 0) {
        respond_error(ar, BILLOW_EPARAM_INVALID, "email", "email is too long or badly encoded.");
        return;
    }
    if (rc == 0)
        email[0] = '\0';
    char lim[16];
    snprintf(lim, sizeof(lim), "%d", limit + 1);
    const char *params[3] = {after, email, lim};
    list_t *l = mem_alloc(sizeof(*l));
    l->ar = ar;
    l->limit = limit;
    if (pg_pool_query(ar->app->pg, ar->auth.tenant_id,
                      "SELECT customer_object(c)::text FROM customers c"
                      " WHERE ($1 = '' OR c.id < $1) AND ($2 = '' OR lower(c.email) = lower($2))"
                      " ORDER BY c.id DESC LIMIT $3::int",
                      3, params, on_list, l) != 0) {
        free(l);
        respond_error(ar, BILLOW_EUNAVAILABLE, NULL, "The database is unavailable; retry later.");
    }
}

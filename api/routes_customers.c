/* routes_customers: a tenant's customers.
 *
 * Reads come straight from Postgres as the tenant (row-level security makes
 * another tenant's customer simply absent: 404). Creations and updates are
 * validated here, field by field, and become customer.create and
 * customer.update jobs; the worker writes the row.
 */
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "ids.h"
#include "query.h"
#include "reads.h"
#include "routes.h"
#include "submit.h"
#include "validate.h"

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
    respond_invalid(ar, &e);
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

/* kind_domain: the handlers of the `domain` worker kind (see kind_domain.h).
 *
 * The api has validated every payload before enqueueing it, so a payload
 * that does not read here is a bug or a version skew, not a client error:
 * it is a permanent fault ("invalid_payload"), not a rejection. Rejections
 * are what only the database can know: a slug already taken, a customer
 * that does not exist or is closed, a product archived since its price was
 * asked for.
 *
 * Design: each handler is one statement (tenant.create two: the tenant and
 * its key, then its owner user through kind_access). The result object comes
 * from the statement's RETURNING through the schema's *_object() functions,
 * so what a job publishes and what GET returns later cannot drift apart.
 * An update names only the columns its payload names (update_t builds the
 * SET list), and a rule that depends on other rows (a customer with live
 * subscriptions cannot close) is judged in the same statement, under the
 * row's lock, which answers the reason for a refusal.
 */
#include "kind_domain.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handler_util.h"
#include "kind_access.h"
#include "mem.h"
#include "timeutil.h"

/* Asks for today's (UTC) customer counts to be refreshed. */
static handler_outcome_t refresh_metrics(worker_job_t *job)
{
    char now[TIMEUTIL_RFC3339_MAX];
    timeutil_format_rfc3339(timeutil_now_ms(), now);
    now[10] = '\0'; /* "YYYY-MM-DD" */
    if (runtime_followup(job, "metrics.refresh", json_pack("{s:s}", "day", now)) != 0)
        return HANDLER_RETRY;
    return HANDLER_OK;
}

static const char TENANT_CREATE_SQL[] =
    "WITH t AS ("
    "  INSERT INTO tenants (id, name, slug, livemode) VALUES ($1, $2, $3, $4::boolean)"
    "  RETURNING id, tenant_object(tenants) AS obj"
    "), k AS ("
    "  INSERT INTO api_keys (tenant_id, id, secret_hash, prefix, role, created_by)"
    "  SELECT t.id, $5, $6, $7, 'owner', nullif($8, '') FROM t"
    "  RETURNING api_key_object(api_keys) AS obj"
    ") "
    "SELECT jsonb_build_object('tenant', t.obj, 'api_key', k.obj)::text FROM t, k";

/* tenant.create: the tenant, its owner key and its owner user (see
 * kind_access_user_insert: active with a password, or invited). The
 * envelope's tenant is the new tenant, so row-level security admits
 * exactly these rows. */
static handler_outcome_t tenant_create(worker_job_t *job)
{
    const json_t *p = job->env->payload;
    const json_t *key = json_object_get(p, "api_key");
    const json_t *owner_spec = json_object_get(p, "owner");
    const json_t *livemode = json_object_get(p, "livemode");
    const char *id = handler_util_req_string(p, "id"), *name = handler_util_req_string(p, "name");
    const char *slug = handler_util_req_string(p, "slug");
    const char *key_id = handler_util_req_string(key, "id");
    const char *hash = handler_util_req_string(key, "secret_hash");
    const char *prefix = handler_util_req_string(key, "prefix");
    json_t *owner = NULL;
    PGresult *res = NULL;
    handler_outcome_t out;

    if (!id || !name || !slug || !json_is_boolean(livemode) || !key_id || !hash || !prefix ||
        !json_is_object(owner_spec)) {
        out = handler_util_bad_payload(job,
                                       "id, name, slug, livemode, api_key and owner are required");
        goto done;
    }
    if (strcmp(id, job->env->tenant_id) != 0) {
        out = handler_util_bad_payload(job, "the tenant id differs from the envelope's");
        goto done;
    }
    const char *params[] = {id,     name, slug,   json_is_true(livemode) ? "true" : "false",
                            key_id, hash, prefix, job->env->actor};
    out = handler_util_exec(job, TENANT_CREATE_SQL, 8, params, PGRES_TUPLES_OK, &res);
    if (out != HANDLER_OK) {
        if (handler_util_unique_violation(res, "tenants_slug_key"))
            out = runtime_reject(job, 409, "slug_taken", "slug",
                                 "A tenant with the slug '%s' already exists.", slug);
        goto done;
    }
    out = handler_util_take_result(job, res);
    if (out != HANDLER_OK)
        goto done;
    /* The user's notification names the tenant, so it comes second. */
    out = kind_access_user_insert(job, owner_spec, "owner", &owner);
    if (out == HANDLER_OK)
        json_object_set_new(job->result, "owner", owner);

done:
    PQclear(res);
    return out;
}

/* Most parameters an update statement takes: the id, the fixed ones and
 * one per field a payload may name. */
#define UPDATE_PARAMS_MAX 16
/* Room for an integer as decimal text, sign and terminator included. */
#define INT_TEXT_MAX 24

/* An UPDATE's SET list and its parameters, built one payload field at a
 * time, so a field the payload does not name is left as it is. */
typedef struct {
    char *set;                             /* ", col = $n" clauses, after updated_at. */
    const char *params[UPDATE_PARAMS_MAX]; /* $1..$n ($1 the id); NULL is SQL null. */
    char *owned[UPDATE_PARAMS_MAX];        /* Texts made here (JSON), freed by update_dispose. */
    int n;                                 /* Parameters used. */
} update_t;

static void update_init(update_t *u, const char *id)
{
    memset(u, 0, sizeof(*u));
    u->set = mem_strdup("");
    u->params[0] = id;
    u->n = 1;
}

static void update_dispose(update_t *u)
{
    free(u->set);
    for (int i = 0; i < u->n; i++)
        free(u->owned[i]);
}

/* Appends ", <clause>" to the SET list. */
static void update_clause(update_t *u, const char *clause)
{
    char *next = mem_printf("%s, %s", u->set, clause);
    free(u->set);
    u->set = next;
}

/* Adds value (NULL: SQL null; owned: freed with u) as the next parameter
 * and returns its number. */
static int update_param(update_t *u, const char *value, char *owned)
{
    /* The handlers' field lists are fixed and fit; more is a bug in this
     * file, not input, so it stops here rather than write past the arrays. */
    if (u->n >= UPDATE_PARAMS_MAX)
        abort();
    u->owned[u->n] = owned;
    u->params[u->n] = value;
    return ++u->n;
}

/* Adds "<column> = $n<cast>" with value as parameter n. */
static void update_set(update_t *u, const char *column, const char *value, char *owned,
                       const char *cast)
{
    int n = update_param(u, value, owned);
    char *clause = mem_printf("%s = $%d%s", column, n, cast);
    update_clause(u, clause);
    free(clause);
}

/* Adds the optional text member key of p as "<key> = $n" (null clears it;
 * not nullable: null is refused). Returns false when the member does not
 * read. */
static bool update_text(update_t *u, const json_t *p, const char *key, bool nullable)
{
    const json_t *v = json_object_get(p, key);
    if (v == NULL)
        return true;
    if (!json_is_string(v) && !(nullable && json_is_null(v)))
        return false;
    update_set(u, key, json_string_value(v), NULL, "");
    return true;
}

/* Adds the optional boolean member key of p as "<key> = $n::boolean". */
static bool update_boolean(update_t *u, const json_t *p, const char *key)
{
    const json_t *v = json_object_get(p, key);
    if (v == NULL)
        return true;
    if (!json_is_boolean(v))
        return false;
    update_set(u, key, json_is_true(v) ? "true" : "false", NULL, "::boolean");
    return true;
}

/* Adds the optional JSON object member key of p as "<key> = $n::jsonb";
 * null sets `null_sql` instead ("NULL", or "'{}'::jsonb" for a column that
 * is never null). */
static bool update_object(update_t *u, const json_t *p, const char *key, const char *null_sql)
{
    const json_t *v = json_object_get(p, key);
    if (v == NULL)
        return true;
    if (json_is_null(v)) {
        char *clause = mem_printf("%s = %s", key, null_sql);
        update_clause(u, clause);
        free(clause);
        return true;
    }
    if (!json_is_object(v))
        return false;
    char *text = json_dumps(v, JSON_COMPACT);
    update_set(u, key, text, text, "::jsonb");
    return true;
}

/* Adds the metadata change of payload p on the row aliased `alias`: an
 * object is merged as Stripe does (a key set to "" is deleted, any other
 * value is set, keys not named are kept); null or "" empties it. */
static bool update_metadata(update_t *u, const json_t *p, const char *alias)
{
    const json_t *m = json_object_get(p, "metadata");
    if (m == NULL)
        return true;
    if (json_is_null(m) || (json_is_string(m) && json_string_length(m) == 0)) {
        update_clause(u, "metadata = '{}'::jsonb");
        return true;
    }
    if (!json_is_object(m))
        return false;
    char *text = json_dumps(m, JSON_COMPACT);
    int n = update_param(u, text, text);
    char *clause = mem_printf("metadata = metadata_merge(%s.metadata, $%d::jsonb)", alias, n);
    update_clause(u, clause);
    free(clause);
    return true;
}

/* The optional object member key of p as compact JSON text in *text
 * (caller frees; NULL when absent or null). False when it is another type. */
static bool opt_object_text(const json_t *p, const char *key, char **text)
{
    const json_t *v = json_object_get(p, key);
    *text = json_is_object(v) || json_is_array(v) ? json_dumps(v, JSON_COMPACT) : NULL;
    return v == NULL || json_is_null(v) || *text != NULL;
}

/* The optional integer member key of p as decimal text in buf, *text NULL
 * when absent or null. False when it is another type. */
static bool opt_int_text(const json_t *p, const char *key, char buf[INT_TEXT_MAX],
                         const char **text)
{
    const json_t *v = json_object_get(p, key);
    *text = NULL;
    if (v == NULL || json_is_null(v))
        return true;
    if (!json_is_integer(v))
        return false;
    snprintf(buf, INT_TEXT_MAX, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    *text = buf;
    return true;
}

/* The optional boolean member key of p as "true"/"false" in *text (NULL
 * when absent). False when it is another type. */
static bool opt_bool_text(const json_t *p, const char *key, const char **text)
{
    const json_t *v = json_object_get(p, key);
    *text = json_is_boolean(v) ? (json_is_true(v) ? "true" : "false") : NULL;
    return v == NULL || json_is_boolean(v);
}

/* Runs the update built in u (head + u's SET list + tail, a statement that
 * answers rows) with handler_util_exec: the outcome is returned, the result
 * left in *res for the caller to clear. */
static handler_outcome_t update_exec(worker_job_t *job, const update_t *u, const char *head,
                                     const char *tail, PGresult **res)
{
    char *sql = mem_printf("%s%s%s", head, u->set, tail);
    handler_outcome_t out = handler_util_exec(job, sql, u->n, u->params, PGRES_TUPLES_OK, res);
    free(sql);
    return out;
}

/* Runs the update of one catalog row (head + u's SET list + tail, which
 * returns the object) and takes the object as the job's result; a row
 * that is not there rejects the job with 404, naming it as `noun`. */
static handler_outcome_t update_object_row(worker_job_t *job, const update_t *u, const char *head,
                                           const char *tail, const char *noun)
{
    PGresult *res = NULL;
    handler_outcome_t out = update_exec(job, u, head, tail, &res);
    if (out == HANDLER_OK && PQntuples(res) == 0)
        out = runtime_reject(job, 404, "resource_missing", "id", "No such %s: '%s'.", noun,
                             u->params[0]);
    else if (out == HANDLER_OK)
        out = handler_util_take_result(job, res);
    PQclear(res);
    return out;
}

/* The text fields of a customer, in payload order: the original three and
 * the billing ones. */
static const char *const customer_text_fields[] = {"email", "name", "phone", "tax_id",
                                                   "default_payment_method"};
#define CUSTOMER_TEXT_FIELDS (sizeof customer_text_fields / sizeof customer_text_fields[0])

/* The clock, when one is named, must be one of the tenant's: otherwise no
 * row is inserted and the job is refused. */
static const char CUSTOMER_CREATE_SQL[] =
    "INSERT INTO customers (tenant_id, id, email, name, phone, tax_id, default_payment_method, "
    "metadata, address, currency, test_clock_id, stripe_customer_id) "
    "SELECT current_setting('app.tenant_id'), $1, $2, $3, $4, $5, $6, "
    "COALESCE($7::jsonb, '{}'::jsonb), $8::jsonb, $9, $10, $11 "
    "WHERE $10::text IS NULL OR EXISTS (SELECT 1 FROM test_clocks WHERE id = $10) "
    "RETURNING customer_object(customers)::text";

/* A Stripe customer links to one Billow customer of a tenant. */
static handler_outcome_t stripe_customer_taken(worker_job_t *job, const char *stripe_id)
{
    return runtime_reject(job, 409, "stripe_customer_taken", "stripe_customer",
                          "Stripe customer '%s' is linked to another customer already.",
                          stripe_id ? stripe_id : "");
}

/* customer.create: one customer; absent fields stay null (metadata {}). */
static handler_outcome_t customer_create(worker_job_t *job)
{
    const json_t *p = job->env->payload;
    const char *params[11] = {handler_util_req_string(p, "id")};
    char *metadata_text = NULL, *address_text = NULL;
    PGresult *res = NULL;
    handler_outcome_t out;

    if (params[0] == NULL) {
        out = handler_util_bad_payload(job, "id is required");
        goto done;
    }
    for (size_t i = 0; i < CUSTOMER_TEXT_FIELDS; i++) {
        if (!handler_util_opt_string(p, customer_text_fields[i], &params[1 + i])) {
            out = handler_util_bad_payload(
                job, "email, name, phone, tax_id and default_payment_method must be strings");
            goto done;
        }
    }
    if (!opt_object_text(p, "metadata", &metadata_text) ||
        !opt_object_text(p, "address", &address_text) ||
        !handler_util_opt_string(p, "currency", &params[8]) ||
        !handler_util_opt_string(p, "test_clock", &params[9]) ||
        !handler_util_opt_string(p, "stripe_customer", &params[10])) {
        out = handler_util_bad_payload(job, "metadata and address must be objects, currency, "
                                            "test_clock and stripe_customer strings");
        goto done;
    }
    params[6] = metadata_text;
    params[7] = address_text;
    out = handler_util_exec(job, CUSTOMER_CREATE_SQL, 11, params, PGRES_TUPLES_OK, &res);
    if (out != HANDLER_OK) {
        if (handler_util_unique_violation(res, "customers_stripe"))
            out = stripe_customer_taken(job, params[10]);
        goto done;
    }
    if (PQntuples(res) == 0) {
        out = runtime_reject(job, 404, "resource_missing", "test_clock",
                             "No such test clock: '%s'.", params[9]);
        goto done;
    }
    out = handler_util_take_result(job, res);
    if (out == HANDLER_OK)
        out = refresh_metrics(job);

done:
    PQclear(res);
    free(metadata_text);
    free(address_text);
    return out;
}

/* The customer is read and locked first, with the one reason (if any) the
 * change is refused; the update applies only when there is none. $2 is the
 * new status and $3 the new currency (NULL when unchanged). Every row
 * answers: the new object (null when refused), whether the status moved,
 * and the refusal. No row: no such customer. */
static const char CUSTOMER_UPDATE_HEAD[] =
    "WITH old AS ("
    "  SELECT o.tenant_id, o.id, o.status,"
    "         CASE WHEN o.status = 'closed' THEN 'customer_closed'"
    "              WHEN $2::text = 'closed' AND EXISTS (SELECT 1 FROM subscriptions s"
    "                WHERE s.tenant_id = o.tenant_id AND s.customer_id = o.id"
    "                  AND s.status <> 'canceled') THEN 'customer_has_subscriptions'"
    "              WHEN $3::text IS DISTINCT FROM o.currency AND $3::text IS NOT NULL"
    "                AND EXISTS (SELECT 1 FROM subscriptions s WHERE s.tenant_id = o.tenant_id"
    "                  AND s.customer_id = o.id) THEN 'currency_locked'"
    "         END AS refusal"
    "    FROM customers o WHERE o.id = $1 FOR UPDATE"
    "), upd AS ("
    "  UPDATE customers AS c SET updated_at = now()";
static const char CUSTOMER_UPDATE_TAIL[] =
    "    FROM old WHERE c.tenant_id = old.tenant_id AND c.id = old.id AND old.refusal IS NULL"
    "  RETURNING customer_object(c)::text AS obj, c.status IS DISTINCT FROM old.status AS moved"
    ") SELECT upd.obj, upd.moved, old.refusal FROM old LEFT JOIN upd ON true";

/* Records the rejection the update statement's refusal names. */
static handler_outcome_t customer_refusal(worker_job_t *job, const char *refusal, const char *id)
{
    if (strcmp(refusal, "customer_closed") == 0)
        return runtime_reject(job, 409, refusal, NULL,
                              "Customer '%s' is closed; a closed customer cannot change.", id);
    if (strcmp(refusal, "customer_has_subscriptions") == 0)
        return runtime_reject(job, 409, refusal, "status",
                              "Customer '%s' has subscriptions that are not canceled; cancel "
                              "them before closing the customer.",
                              id);
    return runtime_reject(job, 409, "currency_locked", "currency",
                          "Customer '%s' has subscriptions, so its currency cannot change.", id);
}

/* customer.update: sets only the fields the payload names. The old row is
 * read under its lock, so a status change is seen exactly once and the
 * rules that depend on subscriptions are judged against what is stored. */
static handler_outcome_t customer_update(worker_job_t *job)
{
    const json_t *p = job->env->payload;
    const char *id = handler_util_req_string(p, "id");
    const char *status = NULL, *currency = NULL;
    update_t u;
    PGresult *res = NULL;
    handler_outcome_t out;

    update_init(&u, id);
    if (id == NULL || !handler_util_opt_string(p, "status", &status) ||
        !handler_util_opt_string(p, "currency", &currency)) {
        out = handler_util_bad_payload(job, "id is required; status and currency are strings");
        goto done;
    }
    update_param(&u, status, NULL);
    update_param(&u, currency, NULL);
    if (status)
        update_clause(&u, "status = $2");
    if (currency)
        update_clause(&u, "currency = $3");
    for (size_t i = 0; i < CUSTOMER_TEXT_FIELDS; i++) {
        if (!update_text(&u, p, customer_text_fields[i], true)) {
            out = handler_util_bad_payload(job, "email, name, phone, tax_id and "
                                                "default_payment_method must be strings or null");
            goto done;
        }
    }
    const json_t *stripe = json_object_get(p, "stripe_customer");
    if (!update_object(&u, p, "address", "NULL") || !update_metadata(&u, p, "c") ||
        (stripe && !json_is_string(stripe) && !json_is_null(stripe))) {
        out = handler_util_bad_payload(job, "address must be an object or null, metadata an "
                                            "object, \"\" or null, stripe_customer a string or "
                                            "null");
        goto done;
    }
    if (stripe)
        update_set(&u, "stripe_customer_id", json_string_value(stripe), NULL, "");
    out = update_exec(job, &u, CUSTOMER_UPDATE_HEAD, CUSTOMER_UPDATE_TAIL, &res);
    if (out != HANDLER_OK) {
        if (handler_util_unique_violation(res, "customers_stripe"))
            out = stripe_customer_taken(job, json_string_value(stripe));
        goto done;
    }
    if (PQntuples(res) == 0) {
        out = runtime_reject(job, 404, "resource_missing", "id", "No such customer: '%s'.", id);
        goto done;
    }
    if (!PQgetisnull(res, 0, 2)) {
        out = customer_refusal(job, PQgetvalue(res, 0, 2), id);
        goto done;
    }
    out = handler_util_take_result(job, res);
    if (out == HANDLER_OK && strcmp(PQgetvalue(res, 0, 1), "t") == 0)
        out = refresh_metrics(job);
    /* A new default payment method: what waits on one is tried at once. */
    if (out == HANDLER_OK && json_is_string(json_object_get(p, "default_payment_method"))) {
        const char *params[1] = {id};
        out = handler_util_exec(job, "SELECT customer_payment_method_changed($1)", 1, params,
                                PGRES_TUPLES_OK, &res);
    }

done:
    PQclear(res);
    update_dispose(&u);
    return out;
}

static const char PRODUCT_CREATE_SQL[] =
    "INSERT INTO products (tenant_id, id, name, description, features, metadata, active) "
    "VALUES (current_setting('app.tenant_id'), $1, $2, $3, COALESCE($4::jsonb, '{}'::jsonb), "
    "COALESCE($5::jsonb, '{}'::jsonb), COALESCE($6::boolean, true)) "
    "RETURNING product_object(products)::text";

/* product.create: one product; features and metadata default to {}, active
 * to true. */
static handler_outcome_t product_create(worker_job_t *job)
{
    const json_t *p = job->env->payload;
    const char *params[6] = {handler_util_req_string(p, "id"), handler_util_req_string(p, "name")};
    char *features_text = NULL, *metadata_text = NULL;
    PGresult *res = NULL;
    handler_outcome_t out;

    if (params[0] == NULL || params[1] == NULL ||
        !handler_util_opt_string(p, "description", &params[2]) ||
        !opt_object_text(p, "features", &features_text) ||
        !opt_object_text(p, "metadata", &metadata_text) ||
        !opt_bool_text(p, "active", &params[5])) {
        out = handler_util_bad_payload(job, "id and name are required; description is a string, "
                                            "features and metadata objects, active a boolean");
        goto done;
    }
    params[3] = features_text;
    params[4] = metadata_text;
    out = handler_util_exec(job, PRODUCT_CREATE_SQL, 6, params, PGRES_TUPLES_OK, &res);
    if (out != HANDLER_OK)
        goto done;
    out = handler_util_take_result(job, res);

done:
    PQclear(res);
    free(features_text);
    free(metadata_text);
    return out;
}

/* product.update: name, description (null clears), features (replaced
 * whole; null empties), metadata (merged) and active (false archives). */
static handler_outcome_t product_update(worker_job_t *job)
{
    const json_t *p = job->env->payload;
    const char *id = handler_util_req_string(p, "id");
    update_t u;
    handler_outcome_t out;

    update_init(&u, id);
    if (id == NULL || !update_text(&u, p, "name", false) ||
        !update_text(&u, p, "description", true) ||
        !update_object(&u, p, "features", "'{}'::jsonb") || !update_metadata(&u, p, "p") ||
        !update_boolean(&u, p, "active")) {
        out = handler_util_bad_payload(job, "id is required; name is a string, description a "
                                            "string or null, features and metadata objects or "
                                            "null, active a boolean");
        goto done;
    }
    out = update_object_row(job, &u, "UPDATE products AS p SET updated_at = now()",
                            " WHERE p.id = $1 RETURNING product_object(p)::text", "product");

done:
    update_dispose(&u);
    return out;
}

/* The product is locked (FOR SHARE) so it cannot be archived while its
 * new price commits. One row always: the price (null when not inserted)
 * and whether the product is active (null when there is no such product
 * in this tenant). */
static const char PRICE_CREATE_SQL[] =
    "WITH prod AS (SELECT id, active FROM products WHERE id = $2 FOR SHARE), "
    "ins AS ("
    "  INSERT INTO prices (tenant_id, id, product_id, currency, billing_scheme, unit_amount,"
    "                      tiers_mode, tiers, interval, interval_count, trial_period_days,"
    "                      nickname, metadata, active)"
    "  SELECT current_setting('app.tenant_id'), $1, prod.id, $3, $4, $5::bigint, $6, $7::jsonb,"
    "         $8, $9::integer, $10::integer, $11, COALESCE($12::jsonb, '{}'::jsonb),"
    "         COALESCE($13::boolean, true)"
    "    FROM prod WHERE prod.active"
    "  RETURNING price_object(prices)::text AS obj"
    ") SELECT (SELECT obj FROM ins), (SELECT active FROM prod)";

/* price.create: the normalised price the api built (routes_catalog.c), for
 * an active product of the tenant. */
static handler_outcome_t price_create(worker_job_t *job)
{
    const json_t *p = job->env->payload;
    const json_t *recurring = json_object_get(p, "recurring");
    const char *params[13] = {
        handler_util_req_string(p, "id"),
        handler_util_req_string(p, "product"),
        handler_util_req_string(p, "currency"),
        handler_util_req_string(p, "billing_scheme"),
        NULL,
        NULL,
        NULL,
        handler_util_req_string(recurring, "interval"),
    };
    char unit_amount[INT_TEXT_MAX], count[INT_TEXT_MAX], trial[INT_TEXT_MAX];
    char *tiers_text = NULL, *metadata_text = NULL;
    PGresult *res = NULL;
    handler_outcome_t out;

    if (params[0] == NULL || params[1] == NULL || params[2] == NULL || params[3] == NULL ||
        params[7] == NULL || !opt_int_text(p, "unit_amount", unit_amount, &params[4]) ||
        !handler_util_opt_string(p, "tiers_mode", &params[5]) ||
        !opt_object_text(p, "tiers", &tiers_text) ||
        !opt_int_text(recurring, "interval_count", count, &params[8]) || params[8] == NULL ||
        !opt_int_text(recurring, "trial_period_days", trial, &params[9]) ||
        !handler_util_opt_string(p, "nickname", &params[10]) ||
        !opt_object_text(p, "metadata", &metadata_text) ||
        !opt_bool_text(p, "active", &params[12])) {
        out = handler_util_bad_payload(job, "id, product, currency, billing_scheme and "
                                            "recurring {interval, interval_count} are required");
        goto done;
    }
    params[6] = tiers_text;
    params[11] = metadata_text;
    out = handler_util_exec(job, PRICE_CREATE_SQL, 13, params, PGRES_TUPLES_OK, &res);
    if (out != HANDLER_OK)
        goto done;
    if (PQgetisnull(res, 0, 1)) {
        out = runtime_reject(job, 404, "resource_missing", "product", "No such product: '%s'.",
                             params[1]);
        goto done;
    }
    if (PQgetisnull(res, 0, 0)) {
        out = runtime_reject(job, 409, "product_archived", "product",
                             "Product '%s' is archived; restore it (active: true) before adding "
                             "prices to it.",
                             params[1]);
        goto done;
    }
    out = handler_util_take_result(job, res);

done:
    PQclear(res);
    free(tiers_text);
    free(metadata_text);
    return out;
}

/* price.update: nickname (null clears), metadata (merged) and active; the
 * api refuses every other field, and the prices_immutable trigger would
 * too. */
static handler_outcome_t price_update(worker_job_t *job)
{
    const json_t *p = job->env->payload;
    const char *id = handler_util_req_string(p, "id");
    update_t u;
    handler_outcome_t out;

    update_init(&u, id);
    if (id == NULL || !update_text(&u, p, "nickname", true) || !update_metadata(&u, p, "p") ||
        !update_boolean(&u, p, "active")) {
        out = handler_util_bad_payload(job, "id is required; nickname is a string or null, "
                                            "metadata an object, active a boolean");
        goto done;
    }
    out = update_object_row(job, &u, "UPDATE prices AS p SET updated_at = now()",
                            " WHERE p.id = $1 RETURNING price_object(p)::text", "price");

done:
    update_dispose(&u);
    return out;
}

/* system.noop: nothing, successfully (the drain benchmark measures the
 * runtime's own cost with it). */
static handler_outcome_t system_noop(worker_job_t *job)
{
    job->result = json_object();
    return HANDLER_OK;
}

const worker_handler_t kind_domain_handlers[] = {
    {"tenant.create", tenant_create, false, NULL},
    {"customer.create", customer_create, false, NULL},
    {"customer.update", customer_update, false, NULL},
    {"product.create", product_create, false, NULL},
    {"product.update", product_update, false, NULL},
    {"price.create", price_create, false, NULL},
    {"price.update", price_update, false, NULL},
    {"system.noop", system_noop, true, NULL},
    {NULL, NULL, false, NULL},
};

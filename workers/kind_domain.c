/* kind_domain: the handlers of the `domain` worker kind (see kind_domain.h).
 *
 * The api has validated every payload before enqueueing it, so a payload
 * that does not read here is a bug or a version skew, not a client error:
 * it is a permanent fault ("invalid_payload"), not a rejection. Rejections
 * are what only the database can know: a slug already taken, a customer
 * that does not exist.
 *
 * Design: each handler is one statement (tenant.create two: the tenant and
 * its key, then its owner user through kind_access). The result object comes
 * from the statement's RETURNING through the schema's *_object() functions,
 * so what a job publishes and what GET returns later cannot drift apart.
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

/* Optional customer fields that are plain text columns, in payload order. */
static const char *const customer_text_fields[] = {"email", "name", "phone"};
#define CUSTOMER_TEXT_FIELDS (sizeof customer_text_fields / sizeof customer_text_fields[0])

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
    res = PQexecParams(job->db, TENANT_CREATE_SQL, 8, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        if (handler_util_unique_violation(res, "tenants_slug_key"))
            out = runtime_reject(job, 409, "slug_taken", "slug",
                                 "A tenant with the slug '%s' already exists.", slug);
        else
            out = runtime_db_fault(job, res);
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

static const char CUSTOMER_CREATE_SQL[] =
    "INSERT INTO customers (tenant_id, id, email, name, phone, metadata) "
    "VALUES (current_setting('app.tenant_id'), $1, $2, $3, $4, COALESCE($5::jsonb, '{}'::jsonb)) "
    "RETURNING customer_object(customers)::text";

/* customer.create: one customer; absent fields stay null (metadata {}). */
static handler_outcome_t customer_create(worker_job_t *job)
{
    const json_t *p = job->env->payload;
    const json_t *metadata = json_object_get(p, "metadata");
    const char *params[5] = {handler_util_req_string(p, "id")};
    char *metadata_text = NULL;
    PGresult *res = NULL;
    handler_outcome_t out;

    if (params[0] == NULL) {
        out = handler_util_bad_payload(job, "id is required");
        goto done;
    }
    for (size_t i = 0; i < CUSTOMER_TEXT_FIELDS; i++) {
        if (!handler_util_opt_string(p, customer_text_fields[i], &params[1 + i])) {
            out = handler_util_bad_payload(job, "email, name and phone must be strings");
            goto done;
        }
    }
    if (json_is_object(metadata)) {
        metadata_text = json_dumps(metadata, JSON_COMPACT);
        params[4] = metadata_text;
    } else if (metadata != NULL && !json_is_null(metadata)) {
        out = handler_util_bad_payload(job, "metadata must be an object");
        goto done;
    }
    res = PQexecParams(job->db, CUSTOMER_CREATE_SQL, 5, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        out = runtime_db_fault(job, res);
        goto done;
    }
    out = handler_util_take_result(job, res);
    if (out == HANDLER_OK)
        out = refresh_metrics(job);

done:
    PQclear(res);
    free(metadata_text);
    return out;
}

/* Appends ", <clause>" to *sql. */
static void add_clause(char **sql, const char *clause)
{
    char *next = mem_printf("%s, %s", *sql, clause);
    free(*sql);
    *sql = next;
}

/* customer.update: sets only the fields the payload names. The old status
 * is read under the row lock, so a status change is seen exactly once. */
static handler_outcome_t customer_update(worker_job_t *job)
{
    const json_t *p = job->env->payload;
    const json_t *metadata = json_object_get(p, "metadata");
    const json_t *status = json_object_get(p, "status");
    const char *id = handler_util_req_string(p, "id");
    const char *params[6] = {id};
    int n = 1;
    char *sql = mem_strdup("UPDATE customers AS c SET updated_at = now()");
    char *metadata_text = NULL, *clause = NULL;
    PGresult *res = NULL;
    handler_outcome_t out;

    if (id == NULL) {
        out = handler_util_bad_payload(job, "id is required");
        goto done;
    }
    for (size_t i = 0; i < CUSTOMER_TEXT_FIELDS; i++) {
        const char *field = customer_text_fields[i];
        if (json_object_get(p, field) == NULL)
            continue;
        if (!handler_util_opt_string(p, field, &params[n])) {
            out = handler_util_bad_payload(job, "email, name and phone must be strings or null");
            goto done;
        }
        n++;
        clause = mem_printf("%s = $%d", field, n);
        add_clause(&sql, clause);
        free(clause);
        clause = NULL;
    }
    if (json_is_object(metadata)) {
        metadata_text = json_dumps(metadata, JSON_COMPACT);
        params[n++] = metadata_text;
        /* Merged as Stripe does: a key set to "" is deleted, any other
         * value is set, keys not named are kept. */
        clause =
            mem_printf("metadata = (c.metadata || (SELECT coalesce(jsonb_object_agg(key, value), "
                       "'{}'::jsonb) FROM jsonb_each($%d::jsonb) WHERE value <> '\"\"'::jsonb)) - "
                       "ARRAY(SELECT key FROM jsonb_each($%d::jsonb) WHERE value = '\"\"'::jsonb)",
                       n, n);
        add_clause(&sql, clause);
    } else if (json_is_null(metadata) ||
               (json_is_string(metadata) && json_string_length(metadata) == 0)) {
        add_clause(&sql, "metadata = '{}'::jsonb");
    } else if (metadata != NULL) {
        out = handler_util_bad_payload(job, "metadata must be an object, \"\" or null");
        goto done;
    }
    if (json_is_string(status)) {
        params[n++] = json_string_value(status);
        free(clause);
        clause = mem_printf("status = $%d", n);
        add_clause(&sql, clause);
    } else if (status != NULL) {
        out = handler_util_bad_payload(job, "status must be a string");
        goto done;
    }
    char *full = mem_printf("%s FROM (SELECT tenant_id, id, status FROM customers WHERE id = $1 "
                            "FOR UPDATE) AS old WHERE c.tenant_id = old.tenant_id AND "
                            "c.id = old.id RETURNING customer_object(c)::text, "
                            "c.status IS DISTINCT FROM old.status",
                            sql);
    free(sql);
    sql = full;

    res = PQexecParams(job->db, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        out = runtime_db_fault(job, res);
        goto done;
    }
    if (PQntuples(res) == 0) {
        out = runtime_reject(job, 404, "resource_missing", "id", "No such customer: '%s'.", id);
        goto done;
    }
    out = handler_util_take_result(job, res);
    if (out == HANDLER_OK && strcmp(PQgetvalue(res, 0, 1), "t") == 0)
        out = refresh_metrics(job);

done:
    PQclear(res);
    free(clause);
    free(metadata_text);
    free(sql);
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
    {"tenant.create", tenant_create, false},
    {"customer.create", customer_create, false},
    {"customer.update", customer_update, false},
    {"system.noop", system_noop, .unaudited = true},
    {NULL, NULL, false},
};

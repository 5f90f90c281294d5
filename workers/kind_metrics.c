/* kind_metrics: the handlers of the `metrics` worker kind (see
 * kind_metrics.h).
 *
 * Design: the count and the upsert are one statement, so two refreshes of
 * the same day in flight at once serialise on the row and the later one
 * writes the later count.
 */
#include "kind_metrics.h"

#include <stdbool.h>
#include <string.h>

#include "handler_util.h"

static const char METRICS_REFRESH_SQL[] =
    "INSERT INTO metrics_daily (tenant_id, day, customers_total, customers_active) "
    "SELECT current_setting('app.tenant_id'), $1::date, count(*), "
    "       count(*) FILTER (WHERE status = 'active') FROM customers "
    "ON CONFLICT (tenant_id, day) DO UPDATE SET customers_total = EXCLUDED.customers_total, "
    "  customers_active = EXCLUDED.customers_active, updated_at = now() "
    "RETURNING jsonb_build_object('day', to_char(day, 'YYYY-MM-DD'), "
    "  'customers_total', customers_total, 'customers_active', customers_active)::text";

/* Length of "YYYY-MM-DD". */
#define DAY_LEN 10

/* True when s has the shape YYYY-MM-DD (Postgres checks the calendar). */
static bool day_shaped(const char *s)
{
    if (s == NULL || strlen(s) != DAY_LEN)
        return false;
    for (int i = 0; i < DAY_LEN; i++) {
        bool dash = i == 4 || i == 7;
        if (dash ? s[i] != '-' : (s[i] < '0' || s[i] > '9'))
            return false;
    }
    return true;
}

/* metrics.refresh: recounts the tenant's customers into the day's row. */
static handler_outcome_t metrics_refresh(worker_job_t *job)
{
    const char *day = json_string_value(json_object_get(job->env->payload, "day"));
    PGresult *res = NULL;
    handler_outcome_t out;

    if (!day_shaped(day)) {
        out = runtime_fault(job, HANDLER_PERMANENT, "invalid_payload",
                            "The metrics.refresh payload needs a day as YYYY-MM-DD.");
        goto done;
    }
    const char *params[] = {day};
    out = handler_util_exec(job, METRICS_REFRESH_SQL, 1, params, PGRES_TUPLES_OK, &res);
    if (out == HANDLER_OK && PQntuples(res) != 1)
        out = runtime_db_fault(job, res);
    if (out != HANDLER_OK)
        goto done;
    json_t *result = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    if (!json_is_object(result)) {
        json_decref(result);
        out = runtime_fault(job, HANDLER_PERMANENT, "internal_error",
                            "The database returned unreadable counts.");
        goto done;
    }
    job->result = result;
    out = HANDLER_OK;

done:
    PQclear(res);
    return out;
}

const worker_handler_t kind_metrics_handlers[] = {
    {"metrics.refresh", metrics_refresh, true, NULL},
    {NULL, NULL, false, NULL},
};

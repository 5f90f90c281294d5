/* handler_util: small helpers the worker kinds share (see handler_util.h). */
#include "handler_util.h"

#include <string.h>

/* SQLSTATE of unique_violation. */
#define SQLSTATE_UNIQUE_VIOLATION "23505"

bool handler_util_opt_string(const json_t *obj, const char *key, const char **out)
{
    const json_t *v = json_object_get(obj, key);
    *out = json_is_string(v) ? json_string_value(v) : NULL;
    return v == NULL || json_is_null(v) || json_is_string(v);
}

const char *handler_util_req_string(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_string(v) && json_string_length(v) > 0 ? json_string_value(v) : NULL;
}

handler_outcome_t handler_util_bad_payload(worker_job_t *job, const char *what)
{
    return runtime_fault(job, HANDLER_PERMANENT, "invalid_payload",
                         "The %s payload is not readable: %s.", job->env->type, what);
}

handler_outcome_t handler_util_exec(worker_job_t *job, const char *sql, int n,
                                    const char *const *params, ExecStatusType want, PGresult **res)
{
    PGresult *r = PQexecParams(job->db, sql, n, NULL, params, NULL, NULL, 0);
    handler_outcome_t out = PQresultStatus(r) == want ? HANDLER_OK : runtime_db_fault(job, r);
    if (res != NULL) {
        PQclear(*res);
        *res = r;
    } else {
        PQclear(r);
    }
    return out;
}

handler_outcome_t handler_util_take_result(worker_job_t *job, const PGresult *res)
{
    json_t *result = NULL;
    if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
        result = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    if (!json_is_object(result)) {
        json_decref(result);
        return runtime_fault(job, HANDLER_PERMANENT, "internal_error",
                             "The database returned an unreadable object.");
    }
    json_decref(job->result);
    job->result = result;
    return HANDLER_OK;
}

bool handler_util_unique_violation(const PGresult *res, const char *constraint)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *name = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
    return state != NULL && strcmp(state, SQLSTATE_UNIQUE_VIOLATION) == 0 && name != NULL &&
           strcmp(name, constraint) == 0;
}

/* handler_util: small helpers every worker kind's handlers share.
 *
 * Reading a payload the api has already validated (so a member that does
 * not read is a fault, not a client error), running a statement with its
 * failure recorded as the job's fault, taking a statement's one JSON value
 * as the job's result, and recognising the unique violations that are a
 * client's conflict rather than a bug.
 */
#ifndef BILLOW_HANDLER_UTIL_H
#define BILLOW_HANDLER_UTIL_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>

#include "runtime.h"

/* Reads the optional string member key of obj into *out (NULL when absent
 * or null). Returns false when it is present with another type; *out is
 * then NULL. */
bool handler_util_opt_string(const json_t *obj, const char *key, const char **out);

/* The required, non-empty string member key of obj (obj may be NULL), or
 * NULL. The string belongs to obj. */
const char *handler_util_req_string(const json_t *obj, const char *key);

/* Records that the job's payload does not read (`what` says how) as a
 * permanent "invalid_payload" fault and returns HANDLER_PERMANENT. */
handler_outcome_t handler_util_bad_payload(worker_job_t *job, const char *what);

/* Runs sql with n text parameters (params may be NULL when n is 0) on
 * job->db. Returns HANDLER_OK when the statement ends with `want`
 * (PGRES_TUPLES_OK or PGRES_COMMAND_OK); otherwise records the failure
 * with runtime_db_fault and returns its outcome. With res NULL the result
 * is cleared here. Otherwise *res holds the result whatever its status (a
 * failure can still be read, as by handler_util_unique_violation) and the
 * caller clears it; the result *res held before, if any, is cleared once
 * the statement has run (params may point into it), so one variable can
 * carry a handler's statements in turn. */
handler_outcome_t handler_util_exec(worker_job_t *job, const char *sql, int n,
                                    const char *const *params, ExecStatusType want, PGresult **res)
    __attribute__((warn_unused_result));

/* Takes the JSON object text in row 0, column 0 of res as job->result
 * (replacing any earlier one). Returns HANDLER_OK, or HANDLER_PERMANENT
 * (an "internal_error" fault) when res has no row or the text is not an
 * object. */
handler_outcome_t handler_util_take_result(worker_job_t *job, const PGresult *res);

/* True when res failed on a unique violation (23505) of `constraint` (for a
 * unique index, the index's name). */
bool handler_util_unique_violation(const PGresult *res, const char *constraint);

#endif

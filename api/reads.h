/* reads: answering a request from one read query as the caller's tenant.
 *
 * Every read route ends the same way: run one statement on the read pool
 * with app.tenant_id set to the caller's tenant (row-level security hides
 * every other tenant's rows), then answer with the JSON the statement built
 * (an SQL *_object() function), a list page, a 404 or a 503. These helpers
 * are that ending, so the routes only validate and choose the statement.
 */
#ifndef BILLOW_READS_H
#define BILLOW_READS_H

#include <libpq-fe.h>

#include "respond.h"
#include "timeutil.h"

/* Default and largest page size of a list (as Stripe's). */
#define READS_LIST_DEFAULT 10
#define READS_LIST_MAX     100

/* Runs sql (whose first column is a JSON object) as ar's tenant and answers
 * 200 with row 0, or 404 resource_missing with param "id" and the message
 * "No such <what>: '<ar->params[0]>'." when no row comes back. */
void reads_object(api_req_t *ar, const char *what, const char *sql, int nparams,
                  const char *const *params);

/* Runs sql as ar's tenant; it must return at most limit + 1 rows whose
 * first column is a JSON object, newest first. Answers 200 with
 * {"object":"list","url":url,"data":[…],"has_more":…} (url must outlive
 * the query: a string literal). */
void reads_list(api_req_t *ar, const char *url, int limit, const char *sql, int nparams,
                const char *const *params);

/* Reads limit (READS_LIST_DEFAULT, 1..READS_LIST_MAX) and starting_after (an
 * id with prefix, or "" when absent) from the query, after refusing any
 * parameter not in allowed (NULL-terminated; must include "limit" and
 * "starting_after"). Returns 0, or answers the 400 and returns -1. */
int reads_page_params(api_req_t *ar, const char *const *allowed, const char *prefix, int *limit,
                      char after[IDS_MAX]);

/* Reads the optional query filter `name` as an id with prefix ("cus") into
 * out ("" when absent). Returns 0, or answers 400 naming it and returns -1. */
int reads_id_filter(api_req_t *ar, const char *name, const char *prefix, char out[IDS_MAX]);

/* Reads the optional query filter `name` as an RFC 3339 time into out, in
 * canonical form ("" when absent). Returns 0, or answers 400 and returns -1. */
int reads_time_filter(api_req_t *ar, const char *name, char out[TIMEUTIL_RFC3339_MAX]);

/* Answers a failed read: 503 when Postgres is unreachable, else 500 (logged). */
void reads_failed(api_req_t *ar, int err, const PGresult *res);

#endif

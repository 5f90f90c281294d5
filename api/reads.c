/* reads: the common ending of every read route (see reads.h).
 *
 * A read is one statement on the read pool, run as the caller's tenant, whose
 * first column is JSON text already shaped by an SQL *_object() function. The
 * api never re-encodes it: an object is answered byte for byte, and a list
 * page is the rows spliced into the list envelope.
 *
 * Design: the statement fetches limit + 1 rows so that has_more is known
 * without a second count query; the extra row is dropped from the page.
 */
#include "reads.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "log.h"
#include "mem.h"
#include "query.h"

/* Room for the list envelope around the rows:
 * {"object":"list","url":<url>,"data":[ … ],"has_more":false}, the url
 * excepted (added separately). */
#define READS_ENVELOPE_BYTES 64
/* Longest query parameter name echoed back in a parameter_unknown error. */
#define READS_PARAM_NAME_MAX 64

typedef struct {
    api_req_t *ar;   /* The request; answered once, in the callback. */
    char *what;      /* reads_object: the noun of the 404 message (owned). */
    const char *url; /* reads_list: the list's url (a literal). */
    int limit;       /* reads_list: the page size asked for. */
} read_t;

static void read_free(read_t *r)
{
    free(r->what);
    free(r);
}

/* Answers the failure to queue a read at all. */
static void queue_failed(api_req_t *ar)
{
    respond_error(ar, BILLOW_EUNAVAILABLE, NULL, "The database is unavailable; retry later.");
}

void reads_failed(api_req_t *ar, int err, const PGresult *res)
{
    if (err == BILLOW_EUNAVAILABLE) {
        respond_error(ar, BILLOW_EUNAVAILABLE, NULL, "The database is unavailable; retry later.");
        return;
    }
    log_write(LOG_ERROR, "read_failed", "{s:s,s:s}", "request_id", ar->http->request_id, "error",
              res ? PQresultErrorMessage(res) : "no result");
    respond_error(ar, BILLOW_EINTERNAL, NULL, NULL);
}

static void on_object(void *data, int err, const PGresult *res)
{
    read_t *r = data;
    api_req_t *ar = r->ar;
    if (err) {
        read_free(r);
        reads_failed(ar, err, res);
        return;
    }
    /* A NULL object can only come from an outer join that found nothing:
     * for the client that is the same absence as no row. */
    if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0)) {
        respond_error(ar, BILLOW_ENOT_FOUND, "id", "No such %s: '%s'.", r->what, ar->params[0]);
        read_free(r);
        return;
    }
    read_free(r);
    respond_raw_json(ar, 200, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
}

void reads_object(api_req_t *ar, const char *what, const char *sql, int nparams,
                  const char *const *params)
{
    read_t *r = mem_calloc(1, sizeof(*r));
    r->ar = ar;
    r->what = mem_strdup(what);
    if (pg_pool_query(ar->app->pg, ar->auth.tenant_id, sql, nparams, params, on_object, r) != 0) {
        read_free(r);
        queue_failed(ar);
    }
}

static void on_list(void *data, int err, const PGresult *res)
{
    read_t *r = data;
    api_req_t *ar = r->ar;
    const char *url = r->url;
    int limit = r->limit;
    read_free(r);
    if (err) {
        reads_failed(ar, err, res);
        return;
    }
    int n = PQntuples(res);
    int has_more = n > limit;
    if (has_more)
        n = limit;
    size_t cap = READS_ENVELOPE_BYTES + strlen(url);
    for (int i = 0; i < n; i++)
        cap += (size_t)PQgetlength(res, i, 0) + 1;
    char *out = mem_alloc(cap);
    size_t len = (size_t)snprintf(out, cap, "{\"object\":\"list\",\"url\":\"%s\",\"data\":[", url);
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

void reads_list(api_req_t *ar, const char *url, int limit, const char *sql, int nparams,
                const char *const *params)
{
    read_t *r = mem_calloc(1, sizeof(*r));
    r->ar = ar;
    r->url = url;
    r->limit = limit;
    if (pg_pool_query(ar->app->pg, ar->auth.tenant_id, sql, nparams, params, on_list, r) != 0) {
        read_free(r);
        queue_failed(ar);
    }
}

/* The noun for ids of prefix in messages ("a customer id"), so a bad cursor
 * is explained in the words of the list it was sent to. */
static const char *id_noun(const char *prefix)
{
    static const struct {
        const char *prefix;
        const char *noun;
    } nouns[] = {
        {"cus", "a customer"},     {"usr", "a user"},    {"key", "an API key"},
        {"aud", "an audit event"}, {"ses", "a session"}, {"job", "a job"},
        {"prod", "a product"},     {"price", "a price"}, {"cbtxn", "a balance transaction"},
        {"sub", "a subscription"}, {"in", "an invoice"}, {"clock", "a test clock"},
    };
    for (size_t i = 0; i < sizeof(nouns) / sizeof(nouns[0]); i++)
        if (strcmp(nouns[i].prefix, prefix) == 0)
            return nouns[i].noun;
    return "an";
}

int reads_page_params(api_req_t *ar, const char *const *allowed, const char *prefix, int *limit,
                      char after[IDS_MAX])
{
    const char *query = ar->http->query;
    char unknown[READS_PARAM_NAME_MAX];
    if (query_unknown(query, allowed, unknown, sizeof(unknown))) {
        respond_error(ar, BILLOW_EPARAM_UNKNOWN, unknown, "Unknown query parameter '%s'.", unknown);
        return -1;
    }
    if (query_get_limit(query, READS_LIST_DEFAULT, READS_LIST_MAX, limit) != 0) {
        respond_error(ar, BILLOW_EPARAM_INVALID, "limit", "limit must be an integer from 1 to %d.",
                      READS_LIST_MAX);
        return -1;
    }
    int rc = query_get(query, "starting_after", after, IDS_MAX);
    if (rc < 0 || (rc == 1 && !ids_valid(prefix, after))) {
        respond_error(ar, BILLOW_EPARAM_INVALID, "starting_after",
                      "starting_after must be %s id (%s_…).", id_noun(prefix), prefix);
        return -1;
    }
    if (rc == 0)
        after[0] = '\0';
    return 0;
}

int reads_id_filter(api_req_t *ar, const char *name, const char *prefix, char out[IDS_MAX])
{
    int rc = query_get(ar->http->query, name, out, IDS_MAX);
    if (rc < 0 || (rc > 0 && !ids_valid(prefix, out))) {
        respond_error(ar, BILLOW_EPARAM_INVALID, name, "%s must be %s id (%s_…).", name,
                      id_noun(prefix), prefix);
        return -1;
    }
    if (rc == 0)
        out[0] = '\0';
    return 0;
}

int reads_time_filter(api_req_t *ar, const char *name, char out[TIMEUTIL_RFC3339_MAX])
{
    char text[TIMEUTIL_RFC3339_MAX * 2];
    int64_t ms;
    int rc = query_get(ar->http->query, name, text, sizeof(text));
    if (rc == 0) {
        out[0] = '\0';
        return 0;
    }
    if (rc < 0 || timeutil_parse_rfc3339(text, &ms) != 0) {
        respond_error(ar, BILLOW_EPARAM_INVALID, name,
                      "%s must be an RFC 3339 time such as 2026-01-31T12:00:00Z.", name);
        return -1;
    }
    timeutil_format_rfc3339(ms, out);
    return 0;
}

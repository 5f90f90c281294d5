/* routes_audit: reading a tenant's audit trail.
 *
 * Audit events are written only by row triggers in Postgres, inside the
 * transaction of the job that made the change; the api only reads them, as
 * the tenant, newest first (aud_ ids sort by time), filtered by who acted,
 * on what, which job type, and when.
 *
 * Design: every filter is validated here, so the statement only ever sees
 * well-formed values; times are parsed and re-written in one canonical
 * RFC 3339 form, so Postgres never judges a client's time text itself.
 */
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "ids.h"
#include "query.h"
#include "reads.h"
#include "routes.h"
#include "timeutil.h"

/* Longest action filter: a job type ("customer.update") is far shorter;
 * anything longer cannot match and is refused rather than sent to Postgres. */
#define AUDIT_ACTION_MAX 64
/* Longest id prefix looked for in a target filter ("cus" in "cus_…"). */
#define AUDIT_PREFIX_MAX 16

/* True when id is "<prefix>_" and a valid id body, whatever the prefix
 * (a target may be any object: a customer, a user, a key…). */
static bool is_any_id(const char *id)
{
    const char *us = strchr(id, '_');
    if (us == NULL || us == id || us - id > AUDIT_PREFIX_MAX)
        return false;
    char prefix[AUDIT_PREFIX_MAX + 1];
    memcpy(prefix, id, (size_t)(us - id));
    prefix[us - id] = '\0';
    for (const char *p = prefix; *p; p++)
        if (*p < 'a' || *p > 'z')
            return false;
    return ids_valid(prefix, id);
}

/* True when actor names someone who can act: a user, an API key, the
 * platform operator or the system itself. */
static bool is_actor(const char *actor)
{
    return strcmp(actor, "platform") == 0 || strcmp(actor, "system") == 0 ||
           ids_valid("usr", actor) || ids_valid("key", actor);
}

/* True when action looks like a job type: [a-z_.], not empty. */
static bool is_action(const char *action)
{
    if (action[0] == '\0')
        return false;
    for (const char *p = action; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || *p == '_' || *p == '.'))
            return false;
    return true;
}

void routes_audit_list(api_req_t *ar)
{
    static const char *const allowed[] = {"limit",  "starting_after", "actor",       "target",
                                          "action", "created_gte",    "created_lte", NULL};
    const char *query = ar->http->query;
    char after[IDS_MAX], actor[IDS_MAX], target[IDS_MAX], action[AUDIT_ACTION_MAX + 1];
    char gte[TIMEUTIL_RFC3339_MAX], lte[TIMEUTIL_RFC3339_MAX];
    int limit;
    if (reads_page_params(ar, allowed, "aud", &limit, after) != 0)
        return;
    int rc = query_get(query, "actor", actor, sizeof(actor));
    if (rc < 0 || (rc == 1 && !is_actor(actor))) {
        respond_error(ar, BILLOW_EPARAM_INVALID, "actor",
                      "actor must be a user id (usr_…), an API key id (key_…), \"platform\" or "
                      "\"system\".");
        return;
    }
    if (rc == 0)
        actor[0] = '\0';
    rc = query_get(query, "target", target, sizeof(target));
    if (rc < 0 || (rc == 1 && !is_any_id(target))) {
        respond_error(ar, BILLOW_EPARAM_INVALID, "target",
                      "target must be an object id, such as cus_… or usr_….");
        return;
    }
    if (rc == 0)
        target[0] = '\0';
    rc = query_get(query, "action", action, sizeof(action));
    if (rc < 0 || (rc == 1 && !is_action(action))) {
        respond_error(ar, BILLOW_EPARAM_INVALID, "action",
                      "action must be a job type such as customer.update.");
        return;
    }
    if (rc == 0)
        action[0] = '\0';
    if (reads_time_filter(ar, "created_gte", gte) != 0 ||
        reads_time_filter(ar, "created_lte", lte) != 0)
        return;

    char lim[16];
    snprintf(lim, sizeof(lim), "%d", limit + 1);
    const char *params[7] = {after, actor, target, action, gte, lte, lim};
    /* NULLIF: an absent time must not reach the cast, which would refuse "".
     * Times are compared to the second, the API's resolution: an event
     * shown as 01:47:00Z is "at or before 01:47:00Z" even if it happened
     * at 01:47:00.4. */
    reads_list(ar, "/v1/audit-events", limit,
               "SELECT audit_event_object(e)::text FROM audit_events e"
               " WHERE ($1 = '' OR e.id < $1) AND ($2 = '' OR e.actor = $2)"
               " AND ($3 = '' OR e.target_id = $3) AND ($4 = '' OR e.action = $4)"
               " AND ($5 = '' OR e.created_at >= date_trunc('second', NULLIF($5, '')::timestamptz))"
               " AND ($6 = '' OR e.created_at < date_trunc('second', NULLIF($6, '')::timestamptz)"
               " + interval '1 second')"
               " ORDER BY e.id DESC LIMIT $7::int",
               7, params);
}

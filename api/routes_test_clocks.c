/* routes_test_clocks: test clocks, for tenants in test mode.
 *
 * A test clock is a frozen "now" for the customers created on it.
 * Advancing it makes the renewal scheduler do, through the same workers
 * and code, everything that would have happened to those customers'
 * subscriptions by the new time. A live tenant gets 403 test_mode_only on
 * every route here.
 */
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "body.h"
#include "ids.h"
#include "reads.h"
#include "routes.h"
#include "submit.h"

/* Longest test clock name. */
#define CLOCK_NAME_MAX 256

/* True for a tenant in test mode; otherwise answers 403. */
static bool test_mode_or_respond(api_req_t *ar)
{
    if (!ar->auth.livemode)
        return true;
    respond_error(ar, BILLOW_ETEST_MODE_ONLY, NULL,
                  "Test clocks are available to tenants in test mode only.");
    return false;
}

static bool id_ok_or_respond(api_req_t *ar)
{
    if (ids_valid("clock", ar->params[0]))
        return true;
    respond_error(ar, BILLOW_ENOT_FOUND, "id", "No such test clock: '%s'.", ar->params[0]);
    return false;
}

/* Reads the required frozen_time of the body into canon. */
static int frozen_time(api_req_t *ar, char canon[TIMEUTIL_RFC3339_MAX], validate_error_t *e)
{
    int64_t ms;
    bool present = false;
    if (body_time(ar->body, "frozen_time", "frozen_time", &ms, canon, &present, e) != 0)
        return e->code;
    if (!present)
        return validate_fail(e, BILLOW_EPARAM_MISSING, "frozen_time", "frozen_time is required.");
    return 0;
}

void routes_test_clocks_create(api_req_t *ar)
{
    static const char *const keys[] = {"frozen_time", "name", NULL};
    validate_error_t e;
    char canon[TIMEUTIL_RFC3339_MAX];
    const char *name = NULL;
    if (!test_mode_or_respond(ar))
        return;
    if (validate_known_keys(ar->body, keys, &e) != 0 || frozen_time(ar, canon, &e) != 0 ||
        validate_string_member(ar->body, "name", false, CLOCK_NAME_MAX, &name, &e) != 0 ||
        (name && validate_text("name", name, CLOCK_NAME_MAX, &e) != 0)) {
        respond_invalid(ar, &e);
        return;
    }
    char id[IDS_MAX];
    ids_generate("clock", id);
    json_t *payload = json_pack("{s:s}", "frozen_time", canon);
    if (name)
        json_object_set_new(payload, "name", json_string(name));
    submit_t s = {.type = "test_clock.create",
                  .tenant_id = ar->auth.tenant_id,
                  .payload = payload,
                  .object_id = id,
                  .created_status = 201};
    submit_job_or_respond(ar, &s);
}

void routes_test_clocks_advance(api_req_t *ar)
{
    static const char *const keys[] = {"frozen_time", NULL};
    validate_error_t e;
    char canon[TIMEUTIL_RFC3339_MAX];
    if (!test_mode_or_respond(ar) || !id_ok_or_respond(ar))
        return;
    if (validate_known_keys(ar->body, keys, &e) != 0 || frozen_time(ar, canon, &e) != 0) {
        respond_invalid(ar, &e);
        return;
    }
    submit_t s = {.type = "test_clock.advance",
                  .tenant_id = ar->auth.tenant_id,
                  .payload = json_pack("{s:s}", "frozen_time", canon),
                  .object_id = ar->params[0],
                  .created_status = 200};
    submit_job_or_respond(ar, &s);
}

void routes_test_clocks_get(api_req_t *ar)
{
    if (!test_mode_or_respond(ar) || !id_ok_or_respond(ar))
        return;
    const char *params[1] = {ar->params[0]};
    reads_object(ar, "test clock",
                 "SELECT test_clock_object(c)::text FROM test_clocks c WHERE c.id = $1", 1, params);
}

void routes_test_clocks_list(api_req_t *ar)
{
    static const char *const allowed[] = {"limit", "starting_after", NULL};
    char after[IDS_MAX];
    int limit;
    if (!test_mode_or_respond(ar) || reads_page_params(ar, allowed, "clock", &limit, after) != 0)
        return;
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit + 1);
    const char *params[2] = {after, lim};
    reads_list(ar, "/v1/test_clocks", limit,
               "SELECT test_clock_object(c)::text FROM test_clocks c"
               " WHERE ($1 = '' OR c.id < $1) ORDER BY c.id DESC LIMIT $2::int",
               2, params);
}

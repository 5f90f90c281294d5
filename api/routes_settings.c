/* routes_settings: a tenant's security settings.
 *
 * Today one setting: require_totp, whether every staff user must sign in
 * with a one-time code (a user without one is held to enrolling). It is a
 * column of the tenant, read as the tenant and changed by a
 * tenant.settings_update job.
 *
 * Design: the job's result is the security_settings object itself, the
 * same the GET reads, so a `Prefer: wait` answer (and an idempotent replay
 * of one) is that result as is.
 */
#include <stdio.h>

#include "app.h"
#include "query.h"
#include "reads.h"
#include "routes.h"
#include "submit.h"
#include "validate.h"

/* Longest query parameter name echoed back in a parameter_unknown error. */
#define SETTINGS_PARAM_NAME_MAX 64

void routes_settings_security_get(api_req_t *ar)
{
    static const char *const none[] = {NULL};
    char unknown[SETTINGS_PARAM_NAME_MAX];
    if (query_unknown(ar->http->query, none, unknown, sizeof(unknown))) {
        respond_error(ar, BILLOW_EPARAM_UNKNOWN, unknown, "Unknown query parameter '%s'.", unknown);
        return;
    }
    const char *params[1] = {ar->auth.tenant_id};
    reads_object(ar, "tenant",
                 "SELECT json_build_object('object', 'security_settings',"
                 " 'require_totp', t.require_totp)::text FROM tenants t WHERE t.id = $1",
                 1, params);
}

void routes_settings_security_update(api_req_t *ar)
{
    static const char *const allowed[] = {"require_totp", NULL};
    validate_error_t e;
    if (validate_known_keys(ar->body, allowed, &e) != 0) {
        respond_invalid(ar, &e);
        return;
    }
    json_t *v = json_object_get(ar->body, "require_totp");
    if (v == NULL) {
        respond_error(ar, BILLOW_EPARAM_MISSING, "require_totp", "require_totp is required.");
        return;
    }
    if (!json_is_boolean(v)) {
        respond_error(ar, BILLOW_EPARAM_INVALID, "require_totp",
                      "require_totp must be true or false.");
        return;
    }
    submit_t s = {.type = "tenant.settings_update",
                  .tenant_id = ar->auth.tenant_id,
                  .payload = json_pack("{s:b}", "require_totp", json_is_true(v)),
                  .created_status = 200};
    submit_job_or_respond(ar, &s);
}

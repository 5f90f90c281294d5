/* routes_settings: a tenant's security, billing, Stripe and dunning settings.
 *
 * Security: require_totp, whether every staff user must sign in
 * with a one-time code (a user without one is held to enrolling). It is a
 * column of the tenant, read as the tenant and changed by a
 * tenant.settings_update job. Billing: invoice_prefix, what the tenant's
 * invoice numbers start with (tenant.settings_billing). Stripe: the
 * tenant's own Stripe account, its secret key and webhook signing secrets
 * (tenant.settings_stripe). Dunning: what happens after a failed automatic
 * charge, retries and the end (tenant.settings_dunning).
 *
 * Design: the job's result is the settings object itself, the same the
 * GET reads, so a `Prefer: wait` answer (and an idempotent replay of one)
 * is that result as is. Stripe secrets are sealed here, before the job is
 * made: a job, its status, a log line and the database only ever hold
 * sealed text and hints ("sk_test_…4242"), and the GET shows hints alone.
 */
#include <stdio.h>

#include "app.h"
#include "payments_validate.h"
#include "query.h"
#include "reads.h"
#include "routes.h"
#include "submit.h"
#include "validate.h"

/* Longest query parameter name echoed back in a parameter_unknown error. */
#define SETTINGS_PARAM_NAME_MAX 64

/* Answers a settings read: sql, as the tenant, builds the object from the
 * tenant's row ($1 is the tenant id). No query parameter is allowed. */
static void settings_read(api_req_t *ar, const char *sql)
{
    static const char *const none[] = {NULL};
    char unknown[SETTINGS_PARAM_NAME_MAX];
    if (query_unknown(ar->http->query, none, unknown, sizeof(unknown))) {
        respond_error(ar, BILLOW_EPARAM_UNKNOWN, unknown, "Unknown query parameter '%s'.", unknown);
        return;
    }
    const char *params[1] = {ar->auth.tenant_id};
    reads_object(ar, "tenant", sql, 1, params);
}

void routes_settings_security_get(api_req_t *ar)
{
    settings_read(ar, "SELECT json_build_object('object', 'security_settings',"
                      " 'require_totp', t.require_totp)::text FROM tenants t WHERE t.id = $1");
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

/* Longest invoice number prefix: the number still fits a PDF's header. */
#define INVOICE_PREFIX_MAX 12

void routes_settings_billing_get(api_req_t *ar)
{
    settings_read(ar, "SELECT billing_settings_object(t)::text FROM tenants t WHERE t.id = $1");
}

void routes_settings_billing_update(api_req_t *ar)
{
    static const char *const allowed[] = {"invoice_prefix", NULL};
    validate_error_t e;
    const char *prefix = NULL;
    if (validate_known_keys(ar->body, allowed, &e) != 0 ||
        validate_string_member(ar->body, "invoice_prefix", true, INVOICE_PREFIX_MAX, &prefix, &e) !=
            0) {
        respond_invalid(ar, &e);
        return;
    }
    for (const char *c = prefix; *c; c++) {
        if (!((*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9'))) {
            respond_error(ar, BILLOW_EPARAM_INVALID, "invoice_prefix",
                          "invoice_prefix must be 1 to %d upper-case letters or digits.",
                          INVOICE_PREFIX_MAX);
            return;
        }
    }
    submit_t s = {.type = "tenant.settings_billing",
                  .tenant_id = ar->auth.tenant_id,
                  .payload = json_pack("{s:s}", "invoice_prefix", prefix),
                  .created_status = 200};
    submit_job_or_respond(ar, &s);
}

void routes_settings_stripe_get(api_req_t *ar)
{
    settings_read(ar, "SELECT stripe_settings_object($1)::text");
}

void routes_settings_stripe_update(api_req_t *ar)
{
    validate_error_t e;
    json_t *payload = NULL;
    if (payments_validate_stripe_settings(ar->body, ar->auth.livemode, &ar->app->seal_key, &payload,
                                          &e) != 0) {
        respond_invalid(ar, &e);
        return;
    }
    submit_t s = {.type = "tenant.settings_stripe",
                  .tenant_id = ar->auth.tenant_id,
                  .payload = payload,
                  .created_status = 200};
    submit_job_or_respond(ar, &s);
}

void routes_settings_dunning_get(api_req_t *ar)
{
    settings_read(ar, "SELECT dunning_settings_object(t)::text FROM tenants t WHERE t.id = $1");
}

void routes_settings_dunning_update(api_req_t *ar)
{
    validate_error_t e;
    json_t *payload = NULL;
    if (payments_validate_dunning(ar->body, &payload, &e) != 0) {
        respond_invalid(ar, &e);
        return;
    }
    submit_t s = {.type = "tenant.settings_dunning",
                  .tenant_id = ar->auth.tenant_id,
                  .payload = payload,
                  .created_status = 200};
    submit_job_or_respond(ar, &s);
}

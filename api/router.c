/* router: the route table and the way every request goes through it.
 *
 * The anatomy of a request: http_conn reads and limits it, router_dispatch()
 * matches it here, auth.c says who is asking, this file checks the media
 * type and parses the JSON body, and the route's function in routes_*.c
 * validates the parameters and either reads (pg_async) or submits a job
 * (submit.c). The route table below is the one place where a route exists.
 * Webhooks (/webhooks/…) skip the body checks: their handler verifies the
 * sender's signature over the raw bytes before it parses anything.
 */
#include "router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "mem.h"
#include "netaddr.h"
#include "permissions.h"
#include "routes.h"
#include "validate.h"

static const route_t routes[] = {
    {HTTP_GET, "/healthz", ROUTE_PUBLIC, "", routes_healthz},
    {HTTP_GET, "/readyz", ROUTE_PUBLIC, "", routes_readyz},
    {HTTP_GET, "/metrics", ROUTE_PLATFORM, "metrics:scrape", routes_metrics},
    {HTTP_GET, "/openapi.json", ROUTE_PUBLIC, "", routes_openapi},
    {HTTP_GET, "/docs", ROUTE_PUBLIC, "", routes_docs},
    {HTTP_POST, "/v1/tenants", ROUTE_PLATFORM, "tenants:write", routes_tenants_create},
    {HTTP_POST, "/v1/auth/login", ROUTE_PUBLIC, "", routes_auth_login},
    {HTTP_POST, "/v1/auth/logout", ROUTE_USER, "account:self", routes_auth_logout},
    {HTTP_GET, "/v1/auth/session", ROUTE_USER, "account:self", routes_auth_session_get},
    {HTTP_GET, "/v1/auth/sessions", ROUTE_USER, "account:self", routes_auth_sessions_list},
    {HTTP_DELETE, "/v1/auth/sessions/{id}", ROUTE_USER, "account:self",
     routes_auth_sessions_delete},
    {HTTP_POST, "/v1/auth/password", ROUTE_USER, "account:self", routes_auth_password_change},
    {HTTP_POST, "/v1/auth/password_reset", ROUTE_PUBLIC, "", routes_auth_password_reset},
    {HTTP_POST, "/v1/auth/password_reset/confirm", ROUTE_PUBLIC, "",
     routes_auth_password_reset_confirm},
    {HTTP_POST, "/v1/auth/invitations/accept", ROUTE_PUBLIC, "", routes_auth_invitation_accept},
    {HTTP_POST, "/v1/auth/totp", ROUTE_USER, "account:self", routes_auth_totp_enroll},
    {HTTP_POST, "/v1/auth/totp/confirm", ROUTE_USER, "account:self", routes_auth_totp_confirm},
    {HTTP_POST, "/v1/auth/totp/disable", ROUTE_USER, "account:self", routes_auth_totp_disable},
    {HTTP_GET, "/v1/users", ROUTE_TENANT, "users:read", routes_users_list},
    {HTTP_POST, "/v1/users", ROUTE_TENANT, "users:write", routes_users_create},
    {HTTP_GET, "/v1/users/{id}", ROUTE_TENANT, "users:read", routes_users_get},
    {HTTP_POST, "/v1/users/{id}", ROUTE_TENANT, "users:write", routes_users_update},
    {HTTP_GET, "/v1/api_keys", ROUTE_TENANT, "api_keys:read", routes_api_keys_list},
    {HTTP_POST, "/v1/api_keys", ROUTE_TENANT, "api_keys:write", routes_api_keys_create},
    {HTTP_POST, "/v1/api_keys/{id}/rotate", ROUTE_TENANT, "api_keys:write", routes_api_keys_rotate},
    {HTTP_POST, "/v1/api_keys/{id}/revoke", ROUTE_TENANT, "api_keys:write", routes_api_keys_revoke},
    {HTTP_GET, "/v1/audit-events", ROUTE_TENANT, "audit:read", routes_audit_list},
    {HTTP_GET, "/v1/settings/security", ROUTE_TENANT, "settings:read",
     routes_settings_security_get},
    {HTTP_POST, "/v1/settings/security", ROUTE_TENANT, "settings:write",
     routes_settings_security_update},
    {HTTP_GET, "/v1/settings/billing", ROUTE_TENANT, "billing_settings:read",
     routes_settings_billing_get},
    {HTTP_POST, "/v1/settings/billing", ROUTE_TENANT, "billing_settings:write",
     routes_settings_billing_update},
    {HTTP_GET, "/v1/settings/stripe", ROUTE_TENANT, "stripe_settings:read",
     routes_settings_stripe_get},
    {HTTP_POST, "/v1/settings/stripe", ROUTE_TENANT, "stripe_settings:write",
     routes_settings_stripe_update},
    {HTTP_GET, "/v1/settings/dunning", ROUTE_TENANT, "billing_settings:read",
     routes_settings_dunning_get},
    {HTTP_POST, "/v1/settings/dunning", ROUTE_TENANT, "billing_settings:write",
     routes_settings_dunning_update},
    {HTTP_POST, "/v1/customers", ROUTE_TENANT, "customers:write", routes_customers_create},
    {HTTP_GET, "/v1/customers", ROUTE_TENANT, "customers:read", routes_customers_list},
    {HTTP_GET, "/v1/customers/{id}", ROUTE_TENANT, "customers:read", routes_customers_get},
    {HTTP_POST, "/v1/customers/{id}", ROUTE_TENANT, "customers:write", routes_customers_update},
    {HTTP_GET, "/v1/customers/{id}/balance_transactions", ROUTE_TENANT, "customers:read",
     routes_customers_balance_transactions},
    {HTTP_POST, "/v1/customers/{id}/setup_intents", ROUTE_TENANT, "payments:write",
     routes_customers_setup_intents_create},
    {HTTP_POST, "/v1/products", ROUTE_TENANT, "catalog:write", routes_products_create},
    {HTTP_GET, "/v1/products", ROUTE_TENANT, "catalog:read", routes_products_list},
    {HTTP_GET, "/v1/products/{id}", ROUTE_TENANT, "catalog:read", routes_products_get},
    {HTTP_POST, "/v1/products/{id}", ROUTE_TENANT, "catalog:write", routes_products_update},
    {HTTP_POST, "/v1/prices", ROUTE_TENANT, "catalog:write", routes_prices_create},
    {HTTP_GET, "/v1/prices", ROUTE_TENANT, "catalog:read", routes_prices_list},
    {HTTP_GET, "/v1/prices/{id}", ROUTE_TENANT, "catalog:read", routes_prices_get},
    {HTTP_POST, "/v1/prices/{id}", ROUTE_TENANT, "catalog:write", routes_prices_update},
    {HTTP_POST, "/v1/subscriptions", ROUTE_TENANT, "subscriptions:write",
     routes_subscriptions_create},
    {HTTP_GET, "/v1/subscriptions", ROUTE_TENANT, "subscriptions:read", routes_subscriptions_list},
    {HTTP_GET, "/v1/subscriptions/{id}", ROUTE_TENANT, "subscriptions:read",
     routes_subscriptions_get},
    {HTTP_POST, "/v1/subscriptions/{id}", ROUTE_TENANT, "subscriptions:write",
     routes_subscriptions_update},
    {HTTP_POST, "/v1/subscriptions/{id}/cancel", ROUTE_TENANT, "subscriptions:write",
     routes_subscriptions_cancel},
    {HTTP_POST, "/v1/subscriptions/{id}/pause", ROUTE_TENANT, "subscriptions:write",
     routes_subscriptions_pause},
    {HTTP_POST, "/v1/subscriptions/{id}/resume", ROUTE_TENANT, "subscriptions:write",
     routes_subscriptions_resume},
    {HTTP_GET, "/v1/invoices", ROUTE_TENANT, "invoices:read", routes_invoices_list},
    {HTTP_GET, "/v1/invoices/{id}", ROUTE_TENANT, "invoices:read", routes_invoices_get},
    {HTTP_POST, "/v1/invoices/{id}/void", ROUTE_TENANT, "invoices:write", routes_invoices_void},
    {HTTP_POST, "/v1/invoices/{id}/mark_uncollectible", ROUTE_TENANT, "invoices:write",
     routes_invoices_mark_uncollectible},
    {HTTP_POST, "/v1/invoices/{id}/pay", ROUTE_TENANT, "invoices:write", routes_invoices_pay},
    {HTTP_GET, "/v1/invoices/{id}/payment_attempts", ROUTE_TENANT, "payments:read",
     routes_invoices_payment_attempts},
    {HTTP_POST, "/v1/payments", ROUTE_TENANT, "payments:write", routes_payments_create},
    {HTTP_GET, "/v1/payments", ROUTE_TENANT, "payments:read", routes_payments_list},
    {HTTP_GET, "/v1/payments/{id}", ROUTE_TENANT, "payments:read", routes_payments_get},
    {HTTP_POST, "/v1/payments/{id}/refunds", ROUTE_TENANT, "payments:write",
     routes_payments_refunds_create},
    {HTTP_GET, "/v1/payments/{id}/refunds", ROUTE_TENANT, "payments:read",
     routes_payments_refunds_list},
    {HTTP_POST, "/v1/test_clocks", ROUTE_TENANT, "test_clocks:write", routes_test_clocks_create},
    {HTTP_GET, "/v1/test_clocks", ROUTE_TENANT, "test_clocks:read", routes_test_clocks_list},
    {HTTP_GET, "/v1/test_clocks/{id}", ROUTE_TENANT, "test_clocks:read", routes_test_clocks_get},
    {HTTP_POST, "/v1/test_clocks/{id}/advance", ROUTE_TENANT, "test_clocks:write",
     routes_test_clocks_advance},
    {HTTP_GET, "/v1/jobs", ROUTE_OPS, "jobs:read", routes_jobs_list},
    {HTTP_POST, "/v1/jobs/replay", ROUTE_OPS, "jobs:replay", routes_jobs_replay_many},
    {HTTP_GET, "/v1/jobs/{id}", ROUTE_OPS, "jobs:read", routes_jobs_get},
    {HTTP_POST, "/v1/jobs/{id}/replay", ROUTE_OPS, "jobs:replay", routes_jobs_replay},
    {HTTP_POST, "/webhooks/stripe/{tenant}", ROUTE_PUBLIC, "", routes_webhooks_stripe},
};

#define NROUTES (sizeof(routes) / sizeof(routes[0]))

const route_t *router_routes(size_t *count)
{
    *count = NROUTES;
    return routes;
}

int router_index(const route_t *route)
{
    return route ? (int)(route - routes) : -1;
}

/* Matches path against pattern, capturing {x} segments into params. */
static int match(const char *pattern, const char *path, char params[][ROUTE_PARAM_MAX])
{
    int np = 0;
    while (*pattern && *path) {
        if (*pattern == '{') {
            const char *pend = strchr(pattern, '}');
            const char *send = strchr(path, '/');
            size_t n = send ? (size_t)(send - path) : strlen(path);
            if (n == 0 || n >= ROUTE_PARAM_MAX || np == ROUTE_MAX_PARAMS)
                return 0;
            if (params) {
                memcpy(params[np], path, n);
                params[np][n] = '\0';
            }
            np++;
            pattern = pend + 1;
            path += n;
            continue;
        }
        if (*pattern != *path)
            return 0;
        pattern++;
        path++;
    }
    return *pattern == '\0' && *path == '\0';
}

const route_t *router_match(enum http_method method, const char *path,
                            char params[][ROUTE_PARAM_MAX], int *path_known)
{
    *path_known = 0;
    for (size_t i = 0; i < NROUTES; i++) {
        if (!match(routes[i].pattern, path, NULL))
            continue;
        if (routes[i].method == method) {
            match(routes[i].pattern, path, params);
            return &routes[i];
        }
        *path_known = 1;
    }
    return NULL;
}

int router_check(char *err, size_t err_len)
{
    for (size_t i = 0; i < NROUTES; i++) {
        if (routes[i].auth != ROUTE_PUBLIC && routes[i].permission[0] == '\0') {
            snprintf(err, err_len, "route %s %s declares no permission",
                     http_method_str(routes[i].method), routes[i].pattern);
            return BILLOW_EINTERNAL;
        }
        /* A tenant credential's role is checked against the matrix, so the
         * permission must be in it; the platform's routes are the
         * operator's alone and name theirs for the docs only. */
        if (routes[i].auth != ROUTE_PUBLIC && routes[i].auth != ROUTE_PLATFORM &&
            !permissions_known(routes[i].permission)) {
            snprintf(err, err_len, "route %s %s needs permission %s, which no role table has",
                     http_method_str(routes[i].method), routes[i].pattern, routes[i].permission);
            return BILLOW_EINTERNAL;
        }
        for (size_t j = 0; j < i; j++) {
            if (routes[i].method == routes[j].method &&
                strcmp(routes[i].pattern, routes[j].pattern) == 0) {
                snprintf(err, err_len, "route %s %s is registered twice",
                         http_method_str(routes[i].method), routes[i].pattern);
                return BILLOW_EINTERNAL;
            }
        }
    }
    return 0;
}

/* The methods a path accepts, for the Allow header of a 405. */
static void allowed_methods(const char *path, char *out, size_t len)
{
    out[0] = '\0';
    for (size_t i = 0; i < NROUTES; i++) {
        if (!match(routes[i].pattern, path, NULL))
            continue;
        const char *m = http_method_str(routes[i].method);
        if (strstr(out, m))
            continue;
        size_t used = strlen(out);
        snprintf(out + used, len - used, "%s%s", used ? ", " : "", m);
    }
}

/* True when Content-Type names JSON (parameters such as charset allowed). */
static int is_json_media(const char *ct)
{
    if (ct == NULL)
        return 0;
    while (*ct == ' ')
        ct++;
    size_t n = strlen("application/json");
    return strncasecmp(ct, "application/json", n) == 0 &&
           (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* True for a route whose body is another service's signed bytes (see
 * router.h): the handler reads ar->http->body itself. */
static bool takes_raw_body(const route_t *route)
{
    return strncmp(route->pattern, ROUTER_RAW_BODY_PREFIX, strlen(ROUTER_RAW_BODY_PREFIX)) == 0;
}

/* Body checks, after authentication: media type, then JSON syntax. */
static void parse_body_and_run(api_req_t *ar)
{
    http_req_t *req = ar->http;
    if (req->method == HTTP_POST && !takes_raw_body(ar->route)) {
        if (req->body_len == 0) {
            ar->body = json_object();
        } else {
            if (!is_json_media(http_req_header(req, "Content-Type"))) {
                respond_error(ar, BILLOW_EUNSUPPORTED_MEDIA, NULL,
                              "Send the request body as application/json (got %s).",
                              http_req_header(req, "Content-Type") ? "another Content-Type"
                                                                   : "no Content-Type");
                return;
            }
            json_error_t jerr;
            ar->body = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
            if (ar->body == NULL) {
                /* The parser quotes the text near the error ("near '…'"),
                 * which may be a password: say where, and what, only. */
                char *near = strstr(jerr.text, " near '");
                if (near)
                    *near = '\0';
                respond_error(ar, BILLOW_EINVALID_JSON, NULL,
                              "Invalid JSON at line %d column %d (position %d): %s.", jerr.line,
                              jerr.column, jerr.position, jerr.text);
                return;
            }
            if (!json_is_object(ar->body)) {
                respond_error(ar, BILLOW_EINVALID_JSON, NULL,
                              "The request body must be a JSON object.");
                return;
            }
        }
    }
    ar->route->fn(ar);
}

/* The role check of a tenant credential: the route's permission, and a
 * tenant's demand for two-factor sign-in. Answers and returns -1 when the
 * caller may not go on. */
static int permitted_or_respond(api_req_t *ar)
{
    const route_t *route = ar->route;
    const auth_t *a = &ar->auth;
    if (!permissions_allows(a->role, route->permission)) {
        respond_error(ar, BILLOW_EFORBIDDEN, NULL,
                      "The role '%s' does not have the permission '%s' that %s %s needs.", a->role,
                      route->permission, http_method_str(route->method), route->pattern);
        return -1;
    }
    if (strcmp(route->permission, "account:self") != 0 && router_unenrolled_refused(ar))
        return -1;
    return 0;
}

bool router_unenrolled_refused(api_req_t *ar)
{
    if (ar->auth.kind != AUTH_SESSION || !ar->auth.must_enroll_totp)
        return false;
    respond_error(ar, BILLOW_ETOTP_ENROLLMENT_REQUIRED, NULL,
                  "This tenant requires two-factor sign-in: enrol an authenticator with POST "
                  "/v1/auth/totp and /v1/auth/totp/confirm first.");
    return true;
}

static void on_auth(void *data, int err)
{
    api_req_t *ar = data;
    if (err) {
        respond_error(ar, err, NULL, NULL);
        return;
    }
    bool platform = ar->auth.kind == AUTH_PLATFORM;
    switch (ar->route->auth) {
    case ROUTE_TENANT:
        if (platform) {
            respond_error(ar, BILLOW_EFORBIDDEN, NULL,
                          "The platform token cannot act for a tenant; use one of the tenant's "
                          "API keys or a staff session.");
            return;
        }
        break;
    case ROUTE_USER:
        if (ar->auth.kind != AUTH_SESSION) {
            respond_error(ar, BILLOW_EFORBIDDEN, NULL,
                          "%s %s needs a signed-in staff user (a session token from POST "
                          "/v1/auth/login); API keys and the platform token have no account.",
                          http_method_str(ar->route->method), ar->route->pattern);
            return;
        }
        break;
    case ROUTE_PLATFORM:
        if (!platform) {
            respond_error(ar, BILLOW_EFORBIDDEN, NULL,
                          "Only the platform operator token may call this route.");
            return;
        }
        break;
    case ROUTE_OPS:
    case ROUTE_PUBLIC:
        break;
    }
    if (!platform && ar->route->auth != ROUTE_PUBLIC && permitted_or_respond(ar) != 0)
        return;
    parse_body_and_run(ar);
}

void router_print_json(FILE *out)
{
    static const char *const auth_names[] = {
        [ROUTE_PUBLIC] = "public",     [ROUTE_TENANT] = "tenant", [ROUTE_USER] = "user",
        [ROUTE_PLATFORM] = "platform", [ROUTE_OPS] = "ops",
    };
    json_t *list = json_array();
    for (size_t i = 0; i < NROUTES; i++)
        json_array_append_new(list, json_pack("{s:s,s:s,s:s,s:s}", "method",
                                              http_method_str(routes[i].method), "path",
                                              routes[i].pattern, "auth", auth_names[routes[i].auth],
                                              "permission", routes[i].permission));
    json_dumpf(list, out, JSON_INDENT(2));
    fputc('\n', out);
    json_decref(list);
}

/* Behind trusted proxies the client is named by X-Forwarded-For, every line
 * of it in order (netaddr.h); req->client_addr is that address from here
 * on: the limits, sessions, jobs and the access log all read it. */
static void resolve_client(const app_t *app, http_req_t *req)
{
    if (app->cfg->proxies.n == 0)
        return;
    const char *xff[HTTP_MAX_HEADERS];
    size_t n = 0;
    for (size_t i = 0; i < req->nheaders; i++)
        if (strcasecmp(req->headers[i].name, "X-Forwarded-For") == 0)
            xff[n++] = req->headers[i].value;
    char peer[NETADDR_TEXT_MAX];
    snprintf(peer, sizeof peer, "%s", req->client_addr);
    netaddr_client(&app->cfg->proxies, peer, xff, n, req->client_addr);
}

void router_dispatch(http_req_t *req, void *ctx)
{
    app_t *app = ctx;
    resolve_client(app, req);
    api_req_t *ar = mem_calloc(1, sizeof(*ar));
    ar->app = app;
    ar->http = req;
    int known = 0;
    ar->route = router_match(req->method, req->path, ar->params, &known);
    req->user = (void *)ar->route;
    if (ar->route == NULL) {
        if (known) {
            char allow[64];
            allowed_methods(req->path, allow, sizeof(allow));
            respond_header(ar, "Allow", allow);
            respond_error(ar, BILLOW_EMETHOD_NOT_ALLOWED, NULL,
                          "%s is not allowed on %s; allowed: %s.", http_method_str(req->method),
                          req->path, allow);
        } else {
            respond_error(ar, BILLOW_EROUTE_NOT_FOUND, NULL, "No route for %s %s.",
                          http_method_str(req->method), req->path);
        }
        return;
    }
    if (ar->route->auth == ROUTE_PUBLIC) {
        parse_body_and_run(ar);
        return;
    }
    int rc = auth_start(app, req, &ar->auth, on_auth, ar);
    if (rc)
        respond_error(ar, rc, NULL, NULL);
}

void router_log(const http_req_t *req, int status, size_t body_len, uint64_t dur_ns, void *ctx)
{
    app_t *app = ctx;
    const route_t *route = req->user;
    const char *method = req->path && req->path[0] ? http_method_str(req->method) : "";
    metrics_observe_request(app->metrics, router_index(route), method, status, dur_ns);
    const char *raw = req->path ? req->path : "";
    char *path = validate_utf8_repair(raw); /* The parser passes any byte through. */
    log_write(LOG_INFO, "http_request", "{s:s,s:s,s:s,s:s,s:i,s:I,s:I,s:s}", "request_id",
              req->request_id, "method", method, "path", path ? path : raw, "route",
              route ? route->pattern : "unmatched", "status", status, "bytes", (json_int_t)body_len,
              "duration_us", (json_int_t)(dur_ns / 1000), "client", req->client_addr);
    free(path);
}

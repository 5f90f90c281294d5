/* router: the table of routes and the path of every request through it.
 *
 * router_dispatch() is the http_conn handler: it matches method and path
 * against the table, authenticates as the route demands, checks the media
 * type and parses the JSON body, and only then calls the route's function
 * with a ready api_req_t. Each route states, where it is registered, who
 * may call it (auth) and the permission it needs, so a route cannot be
 * added without deciding both; the permission is checked against the
 * caller's role (permissions.h) before the body is even parsed.
 *
 * Routes under ROUTER_RAW_BODY_PREFIX are called by other services (Stripe)
 * that sign the exact bytes they send: the router neither checks their
 * media type nor parses their body (ar->body stays NULL), and the handler
 * reads ar->http->body itself, verifying the signature first. The general
 * body limit (MAX_BODY_BYTES, 413) still applies to them.
 */
#ifndef BILLOW_ROUTER_H
#define BILLOW_ROUTER_H

#include <http_parser.h>
#include <stdio.h>

#include "app.h"
#include "respond.h"

/* Who may call a route. */
typedef enum {
    ROUTE_PUBLIC,   /* Anyone: health, metrics, docs, sign-in, signed webhooks. */
    ROUTE_TENANT,   /* A tenant's secret key or a staff session, holding the permission. */
    ROUTE_USER,     /* A staff session only (one's own account), holding the permission. */
    ROUTE_PLATFORM, /* The platform operator only. */
    ROUTE_OPS,      /* The platform operator (all tenants) or a tenant credential (its own). */
} route_auth_t;

/* Where the routes called by other services begin: public, authenticated
 * by their own signature, body handed over raw. */
#define ROUTER_RAW_BODY_PREFIX "/webhooks/"

typedef void (*route_fn)(api_req_t *ar);

struct route_s {
    enum http_method method; /* HTTP method. */
    const char *pattern;     /* "/v1/customers/{id}": {x} captures one segment. */
    route_auth_t auth;       /* Who may call it. */
    const char *permission;  /* "customers:write"; "" for public routes. */
    route_fn fn;             /* The handler. */
};

/* The table and its length. */
const route_t *router_routes(size_t *count);
/* The index of a route in the table (for metrics). */
int router_index(const route_t *route);
/* Matches method and path; fills params. Returns the route, or NULL with
 * *path_known set when the path exists under other methods. */
const route_t *router_match(enum http_method method, const char *path,
                            char params[][ROUTE_PARAM_MAX], int *path_known);
/* Checks the table at start-up: every route has a permission (or is public)
 * and no two routes collide. Returns 0 or BILLOW_EINTERNAL with a message. */
int router_check(char *err, size_t err_len) BILLOW_MUSTCHECK;
/* Prints the table as JSON ([{"method","path","auth","permission"}]) for
 * the route × role test, which must notice a route it does not know. */
void router_print_json(FILE *out);
/* The http_conn handler (ctx is the app_t). */
void router_dispatch(http_req_t *req, void *ctx);
/* When the caller is a staff user whom the tenant's two-factor rule allows
 * only their own account (not yet enrolled), answers 403
 * totp_enrollment_required and returns true; else returns false. For the
 * account:self routes that also act on other users. */
bool router_unenrolled_refused(api_req_t *ar);
/* The http_conn log hook: access log line and metrics. */
void router_log(const http_req_t *req, int status, size_t body_len, uint64_t dur_ns, void *ctx);

#endif

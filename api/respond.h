/* respond: the request context of a routed request and its JSON answers.
 *
 * An api_req_t lives from routing to its one answer. respond_json() and
 * respond_error() answer it and free it (and the http_req_t under it), so a
 * handler's last act is always one respond_* call.
 */
#ifndef BILLOW_RESPOND_H
#define BILLOW_RESPOND_H

#include <jansson.h>

#include "app.h"
#include "auth.h"
#include "http_conn.h"
#include "validate.h"

/* Path parameters a route may capture ("/v1/jobs/{id}/replay"). */
#define ROUTE_MAX_PARAMS 2
/* Longest captured path segment; longer ones cannot be ids and fail to match. */
#define ROUTE_PARAM_MAX 128
/* Extra response headers a handler may add. */
#define RESPOND_MAX_HEADERS 6

typedef struct route_s route_t;

typedef struct {
    app_t *app;                                     /* The process. */
    http_req_t *http;                               /* The request; freed by the answer. */
    const route_t *route;                           /* The matched route. */
    char params[ROUTE_MAX_PARAMS][ROUTE_PARAM_MAX]; /* Captured path segments. */
    auth_t auth;                                    /* Who is asking. */
    json_t *body;                                   /* Parsed JSON body (object) or NULL. */
    http_header_t headers[RESPOND_MAX_HEADERS];     /* Extra headers of the answer. */
    size_t nheaders;                                /* Entries used. */
    void *state;                                    /* Handler's own state across callbacks. */
} api_req_t;

/* Adds a response header (both strings copied). */
void respond_header(api_req_t *ar, const char *name, const char *value);
/* Answers with obj (stolen) as JSON and frees ar. */
void respond_json(api_req_t *ar, int status, json_t *obj);
/* Answers with JSON text already encoded (copied) and frees ar. */
void respond_raw_json(api_req_t *ar, int status, const char *json, size_t len);
/* Answers with the error of a BILLOW_E* code, its param (may be NULL) and a
 * printf message (NULL: the code's default), and frees ar. */
void respond_error(api_req_t *ar, int err, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Answers with a validation error (its code, param and message). */
void respond_invalid(api_req_t *ar, const validate_error_t *e);
/* Answers with an error of an explicit status, type and code (for errors
 * that come from a job), and frees ar. */
void respond_error_custom(api_req_t *ar, int status, const char *type, const char *code,
                          const char *param, const char *message);
/* Frees ar without answering (only for the router when http already answered). */
void api_req_free(api_req_t *ar);

#endif

/* respond: JSON answers for routed requests (see respond.h).
 *
 * Every answer goes through here so that errors always have the documented
 * shape and every api_req_t is freed exactly once, with its request.
 */
#include "respond.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "validate.h"

void api_req_free(api_req_t *ar)
{
    for (size_t i = 0; i < ar->nheaders; i++) {
        free(ar->headers[i].name);
        free(ar->headers[i].value);
    }
    if (ar->body)
        json_decref(ar->body);
    free(ar);
}

void respond_header(api_req_t *ar, const char *name, const char *value)
{
    if (ar->nheaders == RESPOND_MAX_HEADERS)
        abort(); /* A handler bug, never input: the table is sized for every route. */
    ar->headers[ar->nheaders].name = mem_strdup(name);
    ar->headers[ar->nheaders].value = mem_strdup(value);
    ar->nheaders++;
}

void respond_raw_json(api_req_t *ar, int status, const char *json, size_t len)
{
    http_respond(ar->http, status, ar->headers, ar->nheaders, "application/json", json, len);
    api_req_free(ar);
}

void respond_json(api_req_t *ar, int status, json_t *obj)
{
    char *text = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (text == NULL)
        abort(); /* jansson fails only on allocation failure. */
    respond_raw_json(ar, status, text, strlen(text));
    free(text);
}

void respond_error_custom(api_req_t *ar, int status, const char *type, const char *code,
                          const char *param, const char *message)
{
    /* Messages and params quote client bytes (a path, a query name) that
     * may not be UTF-8, which a JSON string must be. */
    char *text = validate_utf8_repair(message);
    char *name = param ? validate_utf8_repair(param) : NULL;
    json_t *err = json_pack("{s:{s:s,s:s,s:s,s:o,s:s}}", "error", "type", type, "code", code,
                            "message", text ? text : message, "param",
                            param ? json_string(name ? name : param) : json_null(), "request_id",
                            ar->http->request_id);
    free(text);
    free(name);
    respond_json(ar, status, err);
}

void respond_error(api_req_t *ar, int err, const char *param, const char *fmt, ...)
{
    char message[512];
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(message, sizeof(message), fmt, ap);
        va_end(ap);
    } else {
        snprintf(message, sizeof(message), "%s", err_message(err));
    }
    respond_error_custom(ar, err_http_status(err), err_type(err), err_code(err), param, message);
}

void respond_invalid(api_req_t *ar, const validate_error_t *e)
{
    respond_error(ar, e->code, e->param[0] ? e->param : NULL, "%s", e->message);
}

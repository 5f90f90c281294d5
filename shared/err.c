/* err: the names, HTTP statuses, types and messages of Billow's error codes.
 *
 * Design: one row per code, generated from BILLOW_ERRNO_MAP in err.h, so a
 * code cannot be added without its status and message. Codes count up from
 * BILLOW_ERR_FIRST_ + 1, which makes the row index a subtraction.
 */
#include "err.h"

#include <stddef.h>

typedef struct {
    const char *code;    /* API name, the `code` of an error response. */
    int status;          /* HTTP status. */
    const char *type;    /* Error type, as in Stripe's API. */
    const char *message; /* Default human message. */
} err_row_t;

static const err_row_t rows[] = {
#define XX(name, code, status, type, msg) {code, status, type, msg},
    BILLOW_ERRNO_MAP(XX)
#undef XX
};

/* Anything that is not one of ours (a libuv code, a stray errno) is reported
 * as an internal error rather than leaking its text to a client. */
static const err_row_t unknown = {"internal_error", 500, "api_error",
                                  "An internal error occurred."};

static const err_row_t *row_of(int err)
{
    if (err <= BILLOW_ERR_FIRST_ || err >= BILLOW_ERR_LAST_)
        return &unknown;
    return &rows[err - BILLOW_ERR_FIRST_ - 1];
}

const char *err_code(int err)
{
    return row_of(err)->code;
}

int err_http_status(int err)
{
    return row_of(err)->status;
}

const char *err_type(int err)
{
    return row_of(err)->type;
}

const char *err_message(int err)
{
    return row_of(err)->message;
}

/* err: Billow's error codes, one table for all of them.
 *
 * Functions that can fail return int: 0 on success, a negative BILLOW_E*
 * code otherwise. BILLOW_ERRNO_MAP gives each code its stable API name (the
 * `code` of an error response), its HTTP status, its error `type` (as in
 * Stripe's API) and a default message, the way libuv's UV_ERRNO_MAP does.
 */
#ifndef BILLOW_ERR_H
#define BILLOW_ERR_H

#define BILLOW_MUSTCHECK __attribute__((warn_unused_result))

/* XX(NAME, code, http status, type, default message) */
#define BILLOW_ERRNO_MAP(XX)                                                                       \
    XX(INVALID_JSON, "invalid_json", 400, "invalid_request_error",                                 \
       "The request body is not valid JSON.")                                                      \
    XX(PARAM_INVALID, "parameter_invalid", 400, "invalid_request_error",                           \
       "A parameter has an invalid value.")                                                        \
    XX(PARAM_MISSING, "parameter_missing", 400, "invalid_request_error",                           \
       "A required parameter is missing.")                                                         \
    XX(PARAM_UNKNOWN, "parameter_unknown", 400, "invalid_request_error",                           \
       "The request has a parameter Billow does not know.")                                        \
    XX(MALFORMED, "malformed_request", 400, "invalid_request_error",                               \
       "The request is not well-formed HTTP.")                                                     \
    XX(UNAUTHENTICATED, "unauthenticated", 401, "authentication_error",                            \
       "No valid credentials were given. Send Authorization: Bearer <key>.")                       \
    XX(INVALID_CREDENTIALS, "invalid_credentials", 401, "authentication_error",                    \
       "The tenant, email or password is not correct.")                                            \
    XX(TOTP_REQUIRED, "totp_required", 401, "authentication_error",                                \
       "This account needs a one-time code from its authenticator app.")                           \
    XX(TOTP_INVALID, "totp_invalid", 401, "authentication_error",                                  \
       "The one-time code is wrong, expired or already used.")                                     \
    XX(FORBIDDEN, "forbidden", 403, "permission_error",                                            \
       "These credentials may not perform this request.")                                          \
    XX(TOTP_ENROLLMENT_REQUIRED, "totp_enrollment_required", 403, "permission_error",              \
       "This tenant requires two-factor sign-in; enrol an authenticator first.")                   \
    XX(TEST_MODE_ONLY, "test_mode_only", 403, "permission_error",                                  \
       "Test clocks are available to tenants in test mode only.")                                  \
    XX(NOT_FOUND, "resource_missing", 404, "invalid_request_error", "No such object.")             \
    XX(ROUTE_NOT_FOUND, "route_not_found", 404, "invalid_request_error",                           \
       "No route matches this method and path.")                                                   \
    XX(METHOD_NOT_ALLOWED, "method_not_allowed", 405, "invalid_request_error",                     \
       "This path does not accept this method.")                                                   \
    XX(TIMEOUT, "request_timeout", 408, "invalid_request_error",                                   \
       "The request was not received in time.")                                                    \
    XX(TOTP_ENABLED, "totp_enabled", 409, "invalid_request_error",                                 \
       "Two-factor sign-in is already on.")                                                        \
    XX(TOTP_NOT_ENROLLED, "totp_not_enrolled", 409, "invalid_request_error",                       \
       "There is no two-factor enrolment to confirm; start one first.")                            \
    XX(IDEMPOTENCY_REUSED, "idempotency_key_reused", 409, "idempotency_error",                     \
       "This Idempotency-Key was already used with a different request.")                          \
    XX(CONFLICT, "conflict", 409, "invalid_request_error",                                         \
       "The request conflicts with the current state.")                                            \
    XX(PASSWORD_TOO_SHORT, "password_too_short", 400, "invalid_request_error",                     \
       "The password is too short.")                                                               \
    XX(PASSWORD_TOO_COMMON, "password_too_common", 400, "invalid_request_error",                   \
       "The password is on the list of common passwords.")                                         \
    XX(TOKEN_INVALID, "token_invalid", 400, "invalid_request_error",                               \
       "The token is unknown, used or expired.")                                                   \
    XX(AMOUNT_TOO_LARGE, "amount_too_large", 400, "invalid_request_error",                         \
       "An amount is larger than Billow can represent.")                                           \
    XX(SIGNATURE_MISSING, "signature_missing", 400, "invalid_request_error",                       \
       "The Stripe-Signature header is missing.")                                                  \
    XX(SIGNATURE_MALFORMED, "signature_malformed", 400, "invalid_request_error",                   \
       "The Stripe-Signature header has no valid t or no v1 signature.")                           \
    XX(SIGNATURE_MISMATCH, "signature_mismatch", 400, "invalid_request_error",                     \
       "No signature matches the body under any of the tenant's webhook secrets.")                 \
    XX(SIGNATURE_EXPIRED, "signature_expired", 400, "invalid_request_error",                       \
       "The signature is older than the tolerance allows.")                                        \
    XX(STRIPE_NOT_CONFIGURED, "stripe_not_configured", 400, "invalid_request_error",               \
       "The tenant has not connected a Stripe account (POST /v1/settings/stripe).")                \
    XX(STRIPE_KEY_MODE, "stripe_key_mode", 400, "invalid_request_error",                           \
       "The Stripe key's mode (test or live) is not the tenant's.")                                \
    XX(STRIPE_CURRENCY, "stripe_currency_unsupported", 400, "invalid_request_error",               \
       "Stripe does not take payments in this currency.")                                          \
    XX(STRIPE_AMOUNT, "stripe_amount_unsupported", 400, "invalid_request_error",                   \
       "Stripe cannot take this amount in this currency: amounts in a three-decimal currency "     \
       "must end in 0.")                                                                           \
    XX(EVENT_INVALID, "event_invalid", 400, "invalid_request_error",                               \
       "The event has no valid id or type.")                                                       \
    XX(BODY_TOO_LARGE, "body_too_large", 413, "invalid_request_error",                             \
       "The request body is larger than allowed.")                                                 \
    XX(UNSUPPORTED_MEDIA, "unsupported_media_type", 415, "invalid_request_error",                  \
       "Send request bodies as application/json.")                                                 \
    XX(HEADERS_TOO_LARGE, "headers_too_large", 431, "invalid_request_error",                       \
       "The request headers are larger than allowed.")                                             \
    XX(TOO_MANY_ATTEMPTS, "too_many_attempts", 429, "rate_limit_error",                            \
       "Too many failed attempts; wait before trying again.")                                      \
    XX(UNAVAILABLE, "service_unavailable", 503, "api_error",                                       \
       "A backing service is unavailable; retry later.")                                           \
    XX(INTERNAL, "internal_error", 500, "api_error", "An internal error occurred.")

typedef enum {
    BILLOW_OK = 0,
    BILLOW_ERR_FIRST_ = -1000,
#define XX(name, code, status, type, msg) BILLOW_E##name,
    BILLOW_ERRNO_MAP(XX)
#undef XX
        BILLOW_ERR_LAST_
} billow_err_t;

/* The API name of err ("parameter_invalid"); "internal_error" for unknown codes. */
const char *err_code(int err);
/* The HTTP status of err; 500 for unknown codes. */
int err_http_status(int err);
/* The error type of err ("invalid_request_error"). */
const char *err_type(int err);
/* The default human message of err. */
const char *err_message(int err);

#endif

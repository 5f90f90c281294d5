/* validate: field validators shared by the front and the workers.
 *
 * Each validator returns 0 when the value is acceptable, or a BILLOW_E* code
 * and fills a validate_error_t naming the parameter and the problem in a
 * sentence a client developer can act on.
 */
#ifndef BILLOW_VALIDATE_H
#define BILLOW_VALIDATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "err.h"

/* Longest email address (RFC 5321 path limit). */
#define VALIDATE_EMAIL_MAX 254
/* Longest customer name: long enough for any real name, short enough for a PDF line. */
#define VALIDATE_NAME_MAX 256
/* Metadata limits, as Stripe's: at most 50 keys, keys up to 40 characters,
 * values up to 500 characters, so metadata cannot be used as bulk storage. */
#define VALIDATE_METADATA_MAX_KEYS  50
#define VALIDATE_METADATA_KEY_MAX   40
#define VALIDATE_METADATA_VALUE_MAX 500
/* Longest tenant slug. */
#define VALIDATE_SLUG_MAX 40

typedef struct {
    int code;          /* BILLOW_E* code. */
    char param[64];    /* The offending parameter ("email", "metadata[plan]"). */
    char message[256]; /* What is wrong, in a sentence. */
} validate_error_t;

/* Fills err (code, param, printf message) and returns code. */
int validate_fail(validate_error_t *err, int code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* An address with one "@", a non-empty local part, a dotted domain, no spaces
 * or control characters, at most VALIDATE_EMAIL_MAX bytes. */
int validate_email(const char *param, const char *s, validate_error_t *err);
/* E.164: "+" then 8 to 15 digits, the first not 0. */
int validate_phone(const char *param, const char *s, validate_error_t *err);
/* Valid UTF-8 without control characters, 1..max bytes after trimming nothing. */
int validate_text(const char *param, const char *s, size_t max, validate_error_t *err);
/* A slug: 3..VALIDATE_SLUG_MAX of [a-z0-9-], starting with a letter, not ending in "-". */
int validate_slug(const char *param, const char *s, validate_error_t *err);
/* A metadata object: string keys and string values within the limits above. */
int validate_metadata(const char *param, const json_t *obj, validate_error_t *err);
/* Reads the string member key of obj into *out (NULL when absent: an
 * error when required). Refuses another type, an empty string and more
 * than max bytes, naming key. Returns 0 or the validation error. */
int validate_string_member(const json_t *obj, const char *key, bool required, size_t max,
                           const char **out, validate_error_t *err);
/* Refuses any key of obj not in the NULL-terminated list `allowed`. */
int validate_known_keys(const json_t *obj, const char *const *allowed, validate_error_t *err);
/* True when s is valid UTF-8 without C0 control characters or DEL. */
bool validate_utf8_printable(const char *s, size_t len);
/* NULL when s is valid UTF-8; else s made valid in a new string (caller
 * frees): a byte that starts no valid character becomes U+FFFD, and a
 * character cut short at the end (as a truncating snprintf leaves one) is
 * dropped. For client bytes that an answer or a log line quotes (a path, a
 * query parameter's name): JSON strings must be valid UTF-8, and the HTTP
 * parser passes any byte through. */
char *validate_utf8_repair(const char *s);

#endif

/* body: typed readers of request-body members, for the billing routes.
 *
 * Each reads one optional member of a JSON object and, when it is present
 * with the wrong type or out of range, fills a validate_error_t naming the
 * member (param, as the client should see it) and the rule. They keep the
 * routes' validation one line per field, and the errors uniform.
 */
#ifndef BILLOW_BODY_H
#define BILLOW_BODY_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "ids.h"
#include "money.h"
#include "timeutil.h"
#include "validate.h"

/* Reads member key of obj as an integer in [min, max] into *out; absent
 * (or null when allow_null) leaves *out untouched and sets *present false.
 * Returns 0 or the validation error. present may be NULL. */
int body_int(const json_t *obj, const char *key, const char *param, int64_t min, int64_t max,
             int64_t *out, bool *present, validate_error_t *e);

/* Reads member key as a boolean; absent leaves *out untouched. */
int body_bool(const json_t *obj, const char *key, const char *param, bool *out,
              validate_error_t *e);

/* Reads member key as one of the NULL-terminated words; *out is the word
 * (borrowed from obj) or NULL when absent. */
int body_enum(const json_t *obj, const char *key, const char *param, const char *const *words,
              const char **out, validate_error_t *e);

/* Reads member key as an id with prefix ("cus"); required or not. *out
 * borrowed from obj, NULL when absent. */
int body_id(const json_t *obj, const char *key, const char *param, const char *prefix,
            bool required, const char **out, validate_error_t *e);

/* Reads member key as a currency Billow supports (an ISO 4217 code, any
 * case); *out is its entry in the currency table, NULL when absent (which
 * is refused when required). */
int body_currency(const json_t *obj, const char *key, bool required, const money_currency_t **out,
                  validate_error_t *e);

/* The same for a value v already read (NULL: absent) named param. */
int body_currency_value(const json_t *v, const char *param, bool required,
                        const money_currency_t **out, validate_error_t *e);

/* Reads member key as an RFC 3339 time into *ms and writes its canonical
 * form (UTC, seconds, "Z") into canon; absent leaves both untouched and
 * sets *present false. */
int body_time(const json_t *obj, const char *key, const char *param, int64_t *ms,
              char canon[TIMEUTIL_RFC3339_MAX], bool *present, validate_error_t *e);

#endif

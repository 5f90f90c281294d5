/* body: typed readers of request-body members (see body.h). */
#include "body.h"

#include <inttypes.h>
#include <string.h>

int body_int(const json_t *obj, const char *key, const char *param, int64_t min, int64_t max,
             int64_t *out, bool *present, validate_error_t *e)
{
    const json_t *v = json_object_get(obj, key);
    if (present)
        *present = v != NULL;
    if (v == NULL)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return validate_fail(e, BILLOW_EPARAM_INVALID, param,
                             "%s must be an integer from %" PRId64 " to %" PRId64 ".", param, min,
                             max);
    *out = json_integer_value(v);
    return 0;
}

int body_bool(const json_t *obj, const char *key, const char *param, bool *out, validate_error_t *e)
{
    const json_t *v = json_object_get(obj, key);
    if (v == NULL)
        return 0;
    if (!json_is_boolean(v))
        return validate_fail(e, BILLOW_EPARAM_INVALID, param, "%s must be true or false.", param);
    *out = json_is_true(v);
    return 0;
}

int body_enum(const json_t *obj, const char *key, const char *param, const char *const *words,
              const char **out, validate_error_t *e)
{
    const json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (v == NULL)
        return 0;
    for (size_t i = 0; json_is_string(v) && words[i]; i++)
        if (strcmp(json_string_value(v), words[i]) == 0) {
            *out = words[i];
            return 0;
        }
    char list[256] = "";
    for (size_t i = 0; words[i]; i++) {
        strncat(list, i ? ", \"" : "\"", sizeof list - strlen(list) - 1);
        strncat(list, words[i], sizeof list - strlen(list) - 1);
        strncat(list, "\"", sizeof list - strlen(list) - 1);
    }
    return validate_fail(e, BILLOW_EPARAM_INVALID, param, "%s must be one of %s.", param, list);
}

int body_id(const json_t *obj, const char *key, const char *param, const char *prefix,
            bool required, const char **out, validate_error_t *e)
{
    const json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (v == NULL) {
        if (required)
            return validate_fail(e, BILLOW_EPARAM_MISSING, param, "%s is required.", param);
        return 0;
    }
    if (!json_is_string(v) || !ids_valid(prefix, json_string_value(v)))
        return validate_fail(e, BILLOW_EPARAM_INVALID, param, "%s must be a %s_… id.", param,
                             prefix);
    *out = json_string_value(v);
    return 0;
}

int body_currency_value(const json_t *v, const char *param, bool required,
                        const money_currency_t **out, validate_error_t *e)
{
    *out = NULL;
    if (v == NULL) {
        if (required)
            return validate_fail(e, BILLOW_EPARAM_MISSING, param,
                                 "%s is required: a three-letter ISO 4217 code such as \"usd\".",
                                 param);
        return 0;
    }
    *out = json_is_string(v) ? money_currency_find(json_string_value(v)) : NULL;
    if (*out == NULL)
        return validate_fail(e, BILLOW_EPARAM_INVALID, param,
                             "%s must be a three-letter ISO 4217 code Billow supports, such as "
                             "\"usd\".",
                             param);
    return 0;
}

int body_currency(const json_t *obj, const char *key, bool required, const money_currency_t **out,
                  validate_error_t *e)
{
    return body_currency_value(json_object_get(obj, key), key, required, out, e);
}

int body_time(const json_t *obj, const char *key, const char *param, int64_t *ms,
              char canon[TIMEUTIL_RFC3339_MAX], bool *present, validate_error_t *e)
{
    const json_t *v = json_object_get(obj, key);
    if (present)
        *present = v != NULL;
    if (v == NULL)
        return 0;
    int64_t t;
    if (!json_is_string(v) || timeutil_parse_rfc3339(json_string_value(v), &t) != 0 || t < 0)
        return validate_fail(e, BILLOW_EPARAM_INVALID, param,
                             "%s must be an RFC 3339 time such as \"2027-01-31T00:00:00Z\".",
                             param);
    *ms = t - t % 1000;
    timeutil_format_rfc3339_s(*ms, canon);
    return 0;
}

/* body_test: the typed readers of request-body members. */
#include <criterion/criterion.h>
#include <string.h>

#include "body.h"

static json_t *obj(const char *text)
{
    json_t *j = json_loads(text, 0, NULL);
    cr_assert_not_null(j, "bad test JSON: %s", text);
    return j;
}

Test(body, int_reads_in_range_and_names_the_param_otherwise)
{
    json_t *o = obj("{\"q\": 7, \"big\": 11, \"s\": \"7\"}");
    validate_error_t e;
    int64_t v = -1;
    bool present = false;
    cr_assert_eq(body_int(o, "q", "items[0].quantity", 0, 10, &v, &present, &e), 0);
    cr_assert_eq(v, 7);
    cr_assert(present);
    cr_assert_eq(body_int(o, "big", "big", 0, 10, &v, &present, &e), BILLOW_EPARAM_INVALID);
    cr_assert_str_eq(e.param, "big");
    cr_assert_str_eq(e.message, "big must be an integer from 0 to 10.");
    cr_assert_eq(v, 7, "untouched on refusal");
    cr_assert_eq(body_int(o, "s", "s", 0, 10, &v, NULL, &e), BILLOW_EPARAM_INVALID);
    cr_assert_eq(body_int(o, "absent", "absent", 0, 10, &v, &present, &e), 0);
    cr_assert_not(present);
    json_decref(o);
}

Test(body, bool_and_enum_refuse_other_types_and_words)
{
    json_t *o = obj("{\"b\": true, \"n\": 1, \"w\": \"none\", \"x\": \"sometimes\"}");
    static const char *const words[] = {"create_prorations", "none", NULL};
    validate_error_t e;
    bool b = false;
    const char *w = NULL;
    cr_assert_eq(body_bool(o, "b", "b", &b, &e), 0);
    cr_assert(b);
    cr_assert_eq(body_bool(o, "n", "n", &b, &e), BILLOW_EPARAM_INVALID);
    cr_assert_str_eq(e.message, "n must be true or false.");
    cr_assert_eq(body_enum(o, "w", "w", words, &w, &e), 0);
    cr_assert_str_eq(w, "none");
    cr_assert_eq(body_enum(o, "x", "x", words, &w, &e), BILLOW_EPARAM_INVALID);
    cr_assert_null(w);
    cr_assert_str_eq(e.message, "x must be one of \"create_prorations\", \"none\".");
    cr_assert_eq(body_enum(o, "absent", "absent", words, &w, &e), 0);
    cr_assert_null(w);
    json_decref(o);
}

Test(body, id_checks_the_prefix_and_says_when_one_is_required)
{
    json_t *o = obj(
        "{\"c\": \"cus_01ARYZ6S410000000000000000\", \"p\": \"prod_01ARYZ6S410000000000000000\"}");
    validate_error_t e;
    const char *id = NULL;
    cr_assert_eq(body_id(o, "c", "customer", "cus", true, &id, &e), 0);
    cr_assert_str_eq(id, "cus_01ARYZ6S410000000000000000");
    cr_assert_eq(body_id(o, "p", "customer", "cus", true, &id, &e), BILLOW_EPARAM_INVALID);
    cr_assert_str_eq(e.message, "customer must be a cus_… id.");
    cr_assert_eq(body_id(o, "absent", "customer", "cus", true, &id, &e), BILLOW_EPARAM_MISSING);
    cr_assert_str_eq(e.param, "customer");
    cr_assert_eq(body_id(o, "absent", "customer", "cus", false, &id, &e), 0);
    cr_assert_null(id);
    json_decref(o);
}

Test(body, currency_is_one_billow_supports_in_any_case)
{
    json_t *o = obj("{\"c\": \"EUR\", \"jpy\": \"jpy\", \"x\": \"xyz\", \"n\": 978}");
    validate_error_t e;
    const money_currency_t *c = NULL;
    cr_assert_eq(body_currency(o, "c", true, &c, &e), 0);
    cr_assert_str_eq(c->code, "eur");
    cr_assert_eq(body_currency(o, "jpy", false, &c, &e), 0);
    cr_assert_eq(c->exponent, 0);
    cr_assert_eq(body_currency(o, "x", false, &c, &e), BILLOW_EPARAM_INVALID);
    cr_assert_null(c);
    cr_assert_str_eq(e.param, "x");
    cr_assert_str_eq(e.message,
                     "x must be a three-letter ISO 4217 code Billow supports, such as \"usd\".");
    cr_assert_eq(body_currency(o, "n", false, &c, &e), BILLOW_EPARAM_INVALID,
                 "a number is no code");
    cr_assert_eq(body_currency(o, "absent", false, &c, &e), 0);
    cr_assert_null(c);
    cr_assert_eq(body_currency(o, "absent", true, &c, &e), BILLOW_EPARAM_MISSING);
    cr_assert_str_eq(e.message,
                     "absent is required: a three-letter ISO 4217 code such as \"usd\".");
    json_decref(o);
}

Test(body, time_is_kept_to_the_second_in_utc)
{
    json_t *o = obj("{\"t\": \"2027-01-31T10:00:00.999+02:00\", \"bad\": \"31/01/2027\"}");
    validate_error_t e;
    int64_t ms = 0;
    char canon[TIMEUTIL_RFC3339_MAX];
    bool present = false;
    cr_assert_eq(body_time(o, "t", "t", &ms, canon, &present, &e), 0);
    cr_assert(present);
    cr_assert_eq(ms % 1000, 0, "fractions are dropped");
    cr_assert_str_eq(canon, "2027-01-31T08:00:00Z");
    cr_assert_eq(body_time(o, "bad", "billing_cycle_anchor", &ms, canon, NULL, &e),
                 BILLOW_EPARAM_INVALID);
    cr_assert_str_eq(e.param, "billing_cycle_anchor");
    json_decref(o);
}

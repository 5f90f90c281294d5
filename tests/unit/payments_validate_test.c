/* payments_validate_test: what the payment routes accept, what they refuse
 * (code and param), and the payloads their jobs carry. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "payments_validate.h"

/* Parses JSON text the test wrote; a typo in a test is a failed test. */
static json_t *J(const char *text)
{
    json_error_t err;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &err);
    cr_assert_not_null(v, "bad test JSON: %s (%s)", text, err.text);
    return v;
}

static seal_key_t test_key(void)
{
    seal_key_t k;
    cr_assert_eq(seal_key_parse("000102030405060708090a0b0c0d0e0f"
                                "101112131415161718191a1b1c1d1e1f",
                                &k),
                 0);
    return k;
}

/* Runs fn's validator on body text, expecting refusal with code and param. */
#define EXPECT_REFUSED(call_with_body, text, want_code, want_param)                                \
    do {                                                                                           \
        validate_error_t e_;                                                                       \
        json_t *body_ = J(text);                                                                   \
        json_t *out_ = NULL;                                                                       \
        int rc_ = call_with_body(body_, &out_, &e_);                                               \
        cr_assert_eq(rc_, want_code, "%s: rc %d (%s)", text, rc_, e_.message);                     \
        cr_assert_eq(e_.code, want_code, "%s", text);                                              \
        cr_assert_str_eq(e_.param, want_param, "%s: param", text);                                 \
        cr_assert_null(out_, "%s: no payload on refusal", text);                                   \
        cr_assert_gt(strlen(e_.message), 0);                                                       \
        json_decref(body_);                                                                        \
    } while (0)

#define CUS "cus_01M8AG0J9GM9S346Q3D25VT4F5"

Test(payments_validate, payment_is_normalised_with_every_field)
{
    validate_error_t e;
    json_t *out = NULL;
    json_t *body = J("{\"customer\":\"" CUS "\",\"amount\":2500,\"currency\":\"EUR\","
                     "\"description\":\"Setup fee\",\"metadata\":{\"order\":\"42\"}}");
    cr_assert_eq(payments_validate_payment(body, &out, &e), 0, "%s", e.message);
    json_t *want = J("{\"customer\":\"" CUS "\",\"amount\":2500,\"currency\":\"eur\","
                     "\"description\":\"Setup fee\",\"metadata\":{\"order\":\"42\"}}");
    cr_assert(json_equal(out, want));
    json_decref(want);
    json_decref(out);
    json_decref(body);
}

Test(payments_validate, payment_without_optional_fields_has_null_description_and_empty_metadata)
{
    validate_error_t e;
    json_t *out = NULL;
    json_t *body = J("{\"customer\":\"" CUS "\",\"amount\":1,\"currency\":\"jpy\"}");
    cr_assert_eq(payments_validate_payment(body, &out, &e), 0, "%s", e.message);
    cr_assert(json_is_null(json_object_get(out, "description")));
    cr_assert(json_is_object(json_object_get(out, "metadata")));
    cr_assert_eq(json_object_size(json_object_get(out, "metadata")), 0);
    cr_assert_eq(json_object_size(out), 5);
    json_decref(out);
    json_decref(body);
}

Test(payments_validate, payment_names_the_missing_member)
{
    EXPECT_REFUSED(payments_validate_payment, "{\"amount\":100,\"currency\":\"usd\"}",
                   BILLOW_EPARAM_MISSING, "customer");
    EXPECT_REFUSED(payments_validate_payment, "{\"customer\":\"" CUS "\",\"currency\":\"usd\"}",
                   BILLOW_EPARAM_MISSING, "amount");
    EXPECT_REFUSED(payments_validate_payment, "{\"customer\":\"" CUS "\",\"amount\":100}",
                   BILLOW_EPARAM_MISSING, "currency");
}

Test(payments_validate, payment_amount_must_be_a_positive_integer_in_range)
{
    static const char *const bad[] = {"0", "-1", "1000000000000001", "1.5", "\"100\"", "null"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "{\"customer\":\"" CUS "\",\"amount\":%s,\"currency\":\"usd\"}",
                 bad[i]);
        EXPECT_REFUSED(payments_validate_payment, text, BILLOW_EPARAM_INVALID, "amount");
    }
    validate_error_t e;
    json_t *out = NULL;
    json_t *body = J("{\"customer\":\"" CUS "\",\"amount\":1000000000000000,\"currency\":\"usd\"}");
    cr_assert_eq(payments_validate_payment(body, &out, &e), 0, "the largest amount is accepted");
    json_decref(out);
    json_decref(body);
}

Test(payments_validate, payment_in_a_three_decimal_currency_must_end_in_zero)
{
    static const char *const bad[] = {"kwd", "BHD", "jod", "omr", "tnd"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[256];
        snprintf(text, sizeof text,
                 "{\"customer\":\"" CUS "\",\"amount\":5125,\"currency\":\"%s\"}", bad[i]);
        EXPECT_REFUSED(payments_validate_payment, text, BILLOW_ESTRIPE_AMOUNT, "amount");
    }
    validate_error_t e;
    json_t *out = NULL;
    json_t *body = J("{\"customer\":\"" CUS "\",\"amount\":5120,\"currency\":\"kwd\"}");
    cr_assert_eq(payments_validate_payment(body, &out, &e), 0, "5120 fils is taken as it is");
    cr_assert_eq(json_integer_value(json_object_get(out, "amount")), 5120);
    json_decref(out);
    json_decref(body);
    body = J("{\"customer\":\"" CUS "\",\"amount\":5125,\"currency\":\"usd\"}");
    cr_assert_eq(payments_validate_payment(body, &out, &e), 0, "any amount in cents goes");
    json_decref(out);
    json_decref(body);
    EXPECT_REFUSED(payments_validate_payment,
                   "{\"customer\":\"" CUS "\",\"amount\":5000,\"currency\":\"iqd\"}",
                   BILLOW_ESTRIPE_CURRENCY, "currency");
}

Test(payments_validate, stripe_amount_names_the_rule_and_the_amounts_either_side)
{
    validate_error_t e;
    cr_assert_eq(payments_validate_stripe_amount("amount", "kwd", 1005, &e), BILLOW_ESTRIPE_AMOUNT);
    cr_assert_str_eq(e.param, "amount");
    cr_assert(strstr(e.message, "whole tens") != NULL, "%s", e.message);
    cr_assert(strstr(e.message, "send 1000 or 1010") != NULL, "%s", e.message);
    cr_assert_eq(payments_validate_stripe_amount("amount", "kwd", 7, &e), BILLOW_ESTRIPE_AMOUNT);
    cr_assert(strstr(e.message, "the least it takes is 10") != NULL, "%s", e.message);
    cr_assert_eq(payments_validate_stripe_amount("amount", "kwd", 1000, &e), 0);
    cr_assert_eq(payments_validate_stripe_amount("amount", "isk", 1005, &e), 0);
}

Test(payments_validate, payment_refuses_bad_members_naming_them)
{
    EXPECT_REFUSED(payments_validate_payment,
                   "{\"customer\":\"" CUS "\",\"amount\":1,\"currency\":\"usd\",\"capture\":true}",
                   BILLOW_EPARAM_UNKNOWN, "capture");
    EXPECT_REFUSED(payments_validate_payment,
                   "{\"customer\":\"cus_nope\",\"amount\":1,\"currency\":\"usd\"}",
                   BILLOW_EPARAM_INVALID, "customer");
    EXPECT_REFUSED(payments_validate_payment,
                   "{\"customer\":\"" CUS "\",\"amount\":1,\"currency\":\"xyz\"}",
                   BILLOW_EPARAM_INVALID, "currency");
    EXPECT_REFUSED(payments_validate_payment,
                   "{\"customer\":\"" CUS "\",\"amount\":1,\"currency\":\"usd\","
                   "\"description\":\"\"}",
                   BILLOW_EPARAM_INVALID, "description");
    EXPECT_REFUSED(payments_validate_payment,
                   "{\"customer\":\"" CUS "\",\"amount\":1,\"currency\":\"usd\","
                   "\"description\":\"line\\u0007bell\"}",
                   BILLOW_EPARAM_INVALID, "description");
    EXPECT_REFUSED(payments_validate_payment,
                   "{\"customer\":\"" CUS "\",\"amount\":1,\"currency\":\"usd\","
                   "\"metadata\":{\"k\":1}}",
                   BILLOW_EPARAM_INVALID, "metadata[k]");
}

Test(payments_validate, payment_description_may_be_500_bytes_and_no_more)
{
    char desc[PAYMENTS_DESCRIPTION_MAX + 2];
    char text[1024];
    memset(desc, 'd', sizeof desc - 1);
    desc[sizeof desc - 1] = '\0';
    snprintf(text, sizeof text,
             "{\"customer\":\"" CUS "\",\"amount\":1,\"currency\":\"usd\",\"description\":\"%s\"}",
             desc);
    EXPECT_REFUSED(payments_validate_payment, text, BILLOW_EPARAM_INVALID, "description");
    desc[PAYMENTS_DESCRIPTION_MAX] = '\0';
    snprintf(text, sizeof text,
             "{\"customer\":\"" CUS "\",\"amount\":1,\"currency\":\"usd\",\"description\":\"%s\"}",
             desc);
    validate_error_t e;
    json_t *out = NULL;
    json_t *body = J(text);
    cr_assert_eq(payments_validate_payment(body, &out, &e), 0, "%s", e.message);
    json_decref(out);
    json_decref(body);
}

Test(payments_validate, refund_payload_carries_only_what_was_given)
{
    validate_error_t e;
    json_t *out = NULL;
    json_t *body = J("{}");
    cr_assert_eq(payments_validate_refund(body, &out, &e), 0);
    json_t *want = J("{\"metadata\":{}}");
    cr_assert(json_equal(out, want), "a full refund names no amount");
    json_decref(want);
    json_decref(out);
    json_decref(body);

    body = J("{\"amount\":300,\"reason\":\"duplicate\",\"metadata\":{\"ticket\":\"T-9\"}}");
    cr_assert_eq(payments_validate_refund(body, &out, &e), 0);
    want = J("{\"amount\":300,\"reason\":\"duplicate\",\"metadata\":{\"ticket\":\"T-9\"}}");
    cr_assert(json_equal(out, want));
    json_decref(want);
    json_decref(out);
    json_decref(body);
}

Test(payments_validate, refund_refuses_bad_amount_reason_and_members)
{
    EXPECT_REFUSED(payments_validate_refund, "{\"amount\":0}", BILLOW_EPARAM_INVALID, "amount");
    EXPECT_REFUSED(payments_validate_refund, "{\"amount\":-5}", BILLOW_EPARAM_INVALID, "amount");
    EXPECT_REFUSED(payments_validate_refund, "{\"reason\":\"changed_mind\"}", BILLOW_EPARAM_INVALID,
                   "reason");
    EXPECT_REFUSED(payments_validate_refund, "{\"reason\":1}", BILLOW_EPARAM_INVALID, "reason");
    EXPECT_REFUSED(payments_validate_refund, "{\"payment\":\"pay_x\"}", BILLOW_EPARAM_UNKNOWN,
                   "payment");
}

Test(payments_validate, setup_intent_takes_metadata_only)
{
    validate_error_t e;
    json_t *out = NULL;
    json_t *body = J("{\"metadata\":{\"source\":\"portal\"}}");
    cr_assert_eq(payments_validate_setup_intent(body, &out, &e), 0);
    json_t *want = J("{\"metadata\":{\"source\":\"portal\"}}");
    cr_assert(json_equal(out, want));
    json_decref(want);
    json_decref(out);
    json_decref(body);
    EXPECT_REFUSED(payments_validate_setup_intent, "{\"usage\":\"on_session\"}",
                   BILLOW_EPARAM_UNKNOWN, "usage");
}

static int secret_key(const char *text, bool *live)
{
    validate_error_t e;
    json_t *v = J(text);
    int rc = payments_validate_secret_key(v, live, &e);
    if (rc != 0)
        cr_assert_str_eq(e.param, "secret_key");
    json_decref(v);
    return rc;
}

Test(payments_validate, secret_keys_are_known_by_prefix_and_mode)
{
    bool live = true;
    cr_assert_eq(secret_key("\"sk_test_51Habcdef4242\"", &live), 0);
    cr_assert_not(live);
    cr_assert_eq(secret_key("\"sk_live_51Habcdef4242\"", &live), 0);
    cr_assert(live);
    cr_assert_eq(secret_key("\"rk_test_51Habcdef4242\"", &live), 0);
    cr_assert_not(live);
    cr_assert_eq(secret_key("\"rk_live_51Habcdef4242\"", &live), 0);
    cr_assert(live);
}

Test(payments_validate, secret_keys_of_other_kinds_or_shapes_are_refused)
{
    bool live;
    cr_assert_eq(secret_key("\"pk_test_51Habcdef4242\"", &live), BILLOW_EPARAM_INVALID);
    cr_assert_eq(secret_key("\"whsec_51Habcdef4242\"", &live), BILLOW_EPARAM_INVALID);
    cr_assert_eq(secret_key("\"sk_test_51H abcdef\"", &live), BILLOW_EPARAM_INVALID);
    cr_assert_eq(secret_key("\"sk_test_\\n4242\"", &live), BILLOW_EPARAM_INVALID);
    cr_assert_eq(secret_key("\"sk_test_1\"", &live), BILLOW_EPARAM_INVALID, "9 characters");
    cr_assert_eq(secret_key("\"sk_test_12\"", &live), 0, "10 characters");
    cr_assert_eq(secret_key("42", &live), BILLOW_EPARAM_INVALID);
    cr_assert_eq(secret_key("null", &live), BILLOW_EPARAM_INVALID);
    char text[PAYMENTS_SECRET_MAX + 8] = "\"sk_test_";
    size_t n = strlen(text);
    memset(text + n, 'a', PAYMENTS_SECRET_MAX + 1 - (n - 1));
    strcpy(text + PAYMENTS_SECRET_MAX + 2, "\"");
    cr_assert_eq(secret_key(text, &live), BILLOW_EPARAM_INVALID, "256 characters");
    strcpy(text + PAYMENTS_SECRET_MAX + 1, "\"");
    cr_assert_eq(secret_key(text, &live), 0, "255 characters");
}

Test(payments_validate, webhook_secrets_need_the_whsec_prefix)
{
    validate_error_t e;
    json_t *ok = J("\"whsec_abcdefghij\"");
    json_t *bad = J("\"sk_test_abcdefghij\"");
    cr_assert_eq(payments_validate_webhook_secret("webhook_secrets[0]", ok, &e), 0);
    cr_assert_eq(payments_validate_webhook_secret("webhook_secrets[1]", bad, &e),
                 BILLOW_EPARAM_INVALID);
    cr_assert_str_eq(e.param, "webhook_secrets[1]");
    json_decref(ok);
    json_decref(bad);
}

Test(payments_validate, hint_is_the_head_an_ellipsis_and_the_tail)
{
    char hint[PAYMENTS_HINT_MAX];
    payments_validate_hint("sk_test_51HxYzAbCdEf4242", hint);
    cr_assert_str_eq(hint, "sk_test_…4242");
    payments_validate_hint("whsec_0123456789abcdef", hint);
    cr_assert_str_eq(hint, "whsec_01…cdef");
    payments_validate_hint("short", hint);
    cr_assert_str_eq(hint, "short…", "too short a secret shows no tail");
}

/* Opens sealed (the text in v) with context under the test key. */
static char *open_sealed(const json_t *v, const char *context)
{
    seal_key_t k = test_key();
    char *plain = NULL;
    size_t len = 0;
    if (seal_decrypt(&k, context, json_string_value(v), &plain, &len) != 0)
        return NULL;
    return plain;
}

Test(payments_validate, stripe_settings_seal_every_secret_and_keep_none_in_clear)
{
    validate_error_t e;
    seal_key_t k = test_key();
    json_t *out = NULL;
    json_t *body =
        J("{\"secret_key\":\"sk_test_51HxYzAbCdEf4242\","
          "\"webhook_secrets\":[\"whsec_newnewnewnew1111\",\"whsec_oldoldoldold2222\"]}");
    cr_assert_eq(payments_validate_stripe_settings(body, false, &k, &out, &e), 0, "%s", e.message);
    char *text = json_dumps(out, JSON_COMPACT);
    cr_assert_null(strstr(text, "sk_test_51HxYzAbCdEf4242"), "the key is not in clear: %s", text);
    cr_assert_null(strstr(text, "whsec_newnewnewnew1111"));
    cr_assert_null(strstr(text, "whsec_oldoldoldold2222"));
    free(text);

    json_t *sk = json_object_get(out, "secret_key");
    cr_assert_str_eq(json_string_value(json_object_get(sk, "hint")), "sk_test_…4242");
    cr_assert(json_is_false(json_object_get(sk, "livemode")));
    char *plain = open_sealed(json_object_get(sk, "sealed"), PAYMENTS_SEAL_SECRET_KEY);
    cr_assert_str_eq(plain, "sk_test_51HxYzAbCdEf4242");
    free(plain);
    cr_assert_null(open_sealed(json_object_get(sk, "sealed"), PAYMENTS_SEAL_WEBHOOK_SECRET),
                   "a sealed key does not open as a webhook secret");

    json_t *ws = json_object_get(out, "webhook_secrets");
    cr_assert_eq(json_array_size(ws), 2);
    static const char *const want[] = {"whsec_newnewnewnew1111", "whsec_oldoldoldold2222"};
    static const char *const hints[] = {"whsec_ne…1111", "whsec_ol…2222"};
    for (size_t i = 0; i < 2; i++) {
        json_t *w = json_array_get(ws, i);
        cr_assert_eq(json_object_size(w), 2, "sealed and hint only");
        cr_assert_str_eq(json_string_value(json_object_get(w, "hint")), hints[i]);
        plain = open_sealed(json_object_get(w, "sealed"), PAYMENTS_SEAL_WEBHOOK_SECRET);
        cr_assert_str_eq(plain, want[i], "kept in the order given");
        free(plain);
    }
    json_decref(out);
    json_decref(body);
}

Test(payments_validate, stripe_settings_may_change_one_part_alone)
{
    validate_error_t e;
    seal_key_t k = test_key();
    json_t *out = NULL;
    json_t *body = J("{\"webhook_secrets\":[\"whsec_abcdefghij\"]}");
    cr_assert_eq(payments_validate_stripe_settings(body, true, &k, &out, &e), 0);
    cr_assert_null(json_object_get(out, "secret_key"));
    cr_assert_eq(json_array_size(json_object_get(out, "webhook_secrets")), 1);
    json_decref(out);
    json_decref(body);

    body = J("{\"secret_key\":\"sk_live_abcdefghij\"}");
    cr_assert_eq(payments_validate_stripe_settings(body, true, &k, &out, &e), 0);
    cr_assert_null(json_object_get(out, "webhook_secrets"));
    cr_assert(json_is_true(json_object_get(json_object_get(out, "secret_key"), "livemode")));
    json_decref(out);
    json_decref(body);
}

/* payments_validate_stripe_settings for a test-mode tenant, in the
 * (body, out, e) shape of EXPECT_REFUSED. */
static int settings_test_tenant(const json_t *body, json_t **out, validate_error_t *e)
{
    seal_key_t k = test_key();
    return payments_validate_stripe_settings(body, false, &k, out, e);
}

static int settings_live_tenant(const json_t *body, json_t **out, validate_error_t *e)
{
    seal_key_t k = test_key();
    return payments_validate_stripe_settings(body, true, &k, out, e);
}

Test(payments_validate, stripe_settings_refuse_a_key_of_the_other_mode)
{
    EXPECT_REFUSED(settings_test_tenant, "{\"secret_key\":\"sk_live_abcdefghij\"}",
                   BILLOW_ESTRIPE_KEY_MODE, "secret_key");
    EXPECT_REFUSED(settings_test_tenant, "{\"secret_key\":\"rk_live_abcdefghij\"}",
                   BILLOW_ESTRIPE_KEY_MODE, "secret_key");
    EXPECT_REFUSED(settings_live_tenant, "{\"secret_key\":\"sk_test_abcdefghij\"}",
                   BILLOW_ESTRIPE_KEY_MODE, "secret_key");
}

Test(payments_validate, stripe_settings_refuse_bad_bodies_naming_the_member)
{
    EXPECT_REFUSED(settings_test_tenant, "{}", BILLOW_EPARAM_MISSING, "");
    EXPECT_REFUSED(settings_test_tenant, "{\"publishable_key\":\"pk_test_x\"}",
                   BILLOW_EPARAM_UNKNOWN, "publishable_key");
    EXPECT_REFUSED(settings_test_tenant, "{\"webhook_secrets\":[]}", BILLOW_EPARAM_INVALID,
                   "webhook_secrets");
    EXPECT_REFUSED(settings_test_tenant, "{\"webhook_secrets\":\"whsec_abcdefghij\"}",
                   BILLOW_EPARAM_INVALID, "webhook_secrets");
    EXPECT_REFUSED(settings_test_tenant,
                   "{\"webhook_secrets\":[\"whsec_aaaaaaaaaa\",\"whsec_bbbbbbbbbb\","
                   "\"whsec_cccccccccc\",\"whsec_dddddddddd\"]}",
                   BILLOW_EPARAM_INVALID, "webhook_secrets");
    EXPECT_REFUSED(settings_test_tenant,
                   "{\"webhook_secrets\":[\"whsec_aaaaaaaaaa\",\"whsec_bbbbbbbbbb\",\"nope\"]}",
                   BILLOW_EPARAM_INVALID, "webhook_secrets[2]");
    EXPECT_REFUSED(settings_test_tenant,
                   "{\"webhook_secrets\":[\"whsec_aaaaaaaaaa\",\"whsec_aaaaaaaaaa\"]}",
                   BILLOW_EPARAM_INVALID, "webhook_secrets[1]");
    EXPECT_REFUSED(settings_test_tenant, "{\"secret_key\":null}", BILLOW_EPARAM_INVALID,
                   "secret_key");
}

Test(payments_validate, dunning_policy_passes_through_as_given)
{
    validate_error_t e;
    json_t *out = NULL;
    json_t *body = J("{\"retry_days\":[1,2,4,8,16,32,45,60],\"end_action\":\"mark_unpaid\","
                     "\"notify\":{\"payment_failed\":false}}");
    cr_assert_eq(payments_validate_dunning(body, &out, &e), 0, "%s", e.message);
    cr_assert(json_equal(out, body));
    json_decref(out);
    json_decref(body);

    body = J("{\"retry_days\":[]}");
    cr_assert_eq(payments_validate_dunning(body, &out, &e), 0, "no retries is a policy");
    cr_assert(json_equal(out, body));
    json_decref(out);
    json_decref(body);
}

Test(payments_validate, dunning_policy_refuses_what_dunning_c_refuses)
{
    EXPECT_REFUSED(payments_validate_dunning, "{}", BILLOW_EPARAM_MISSING, "");
    EXPECT_REFUSED(payments_validate_dunning, "{\"retry_days\":[3,3]}", BILLOW_EPARAM_INVALID,
                   "retry_days");
    EXPECT_REFUSED(payments_validate_dunning, "{\"retry_days\":[5,3]}", BILLOW_EPARAM_INVALID,
                   "retry_days");
    EXPECT_REFUSED(payments_validate_dunning, "{\"retry_days\":[0]}", BILLOW_EPARAM_INVALID,
                   "retry_days");
    EXPECT_REFUSED(payments_validate_dunning, "{\"retry_days\":[61]}", BILLOW_EPARAM_INVALID,
                   "retry_days");
    EXPECT_REFUSED(payments_validate_dunning, "{\"retry_days\":[1,2,3,4,5,6,7,8,9]}",
                   BILLOW_EPARAM_INVALID, "retry_days");
    EXPECT_REFUSED(payments_validate_dunning, "{\"end_action\":\"delete\"}", BILLOW_EPARAM_INVALID,
                   "end_action");
    EXPECT_REFUSED(payments_validate_dunning, "{\"notify\":[]}", BILLOW_EPARAM_INVALID, "notify");
}

Test(payments_validate, dunning_notify_members_must_be_booleans)
{
    validate_error_t e;
    json_t *out = NULL;
    json_t *body = J("{\"notify\":{\"payment_failed\":1}}");
    cr_assert_eq(payments_validate_dunning(body, &out, &e), BILLOW_EPARAM_INVALID);
    cr_assert_eq(strncmp(e.param, "notify", 6), 0, "param %s names notify", e.param);
    cr_assert_null(out);
    json_decref(body);
}

Test(payments_validate, dunning_policy_names_unknown_members_exactly)
{
    EXPECT_REFUSED(payments_validate_dunning, "{\"notify\":{\"sms\":true}}", BILLOW_EPARAM_UNKNOWN,
                   "notify.sms");
    EXPECT_REFUSED(payments_validate_dunning, "{\"object\":\"dunning_settings\"}",
                   BILLOW_EPARAM_UNKNOWN, "object");
    EXPECT_REFUSED(payments_validate_dunning, "{\"grace_days\":3}", BILLOW_EPARAM_UNKNOWN,
                   "grace_days");
}

Test(payments_validate, stripe_customer_ids)
{
    cr_assert(payments_validate_stripe_customer("cus_NffrFeUfNV2Hib"));
    cr_assert(payments_validate_stripe_customer("cus_1"));
    cr_assert_not(payments_validate_stripe_customer("cus_"));
    cr_assert_not(payments_validate_stripe_customer(""));
    cr_assert_not(payments_validate_stripe_customer("cus_with_underscore"));
    cr_assert_not(payments_validate_stripe_customer("cus_a b"));
    cr_assert_not(payments_validate_stripe_customer("acct_123"));
    char id[4 + PAYMENTS_STRIPE_CUSTOMER_MAX + 2] = "cus_";
    memset(id + 4, 'x', PAYMENTS_STRIPE_CUSTOMER_MAX);
    id[4 + PAYMENTS_STRIPE_CUSTOMER_MAX] = '\0';
    cr_assert(payments_validate_stripe_customer(id));
    id[4 + PAYMENTS_STRIPE_CUSTOMER_MAX] = 'x';
    id[4 + PAYMENTS_STRIPE_CUSTOMER_MAX + 1] = '\0';
    cr_assert_not(payments_validate_stripe_customer(id));
}

static const char EVENT[] = "{\"id\":\"evt_1NG8Du2eZvKYlo2CUI79vXWy\",\"object\":\"event\","
                            "\"created\":1785000000,\"type\":\"payment_intent.succeeded\","
                            "\"data\":{\"object\":{\"id\":\"pi_1\"}}}";

Test(payments_validate, event_is_parsed_whole)
{
    validate_error_t e;
    json_t *ev = NULL;
    cr_assert_eq(payments_validate_event(EVENT, strlen(EVENT), &ev, &e), 0, "%s", e.message);
    cr_assert_str_eq(json_string_value(json_object_get(ev, "type")), "payment_intent.succeeded");
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(json_object_get(ev, "data"), "object"), "id")),
                     "pi_1");
    json_decref(ev);
}

/* payments_validate_event on text, expecting refusal with code and param. */
static void event_refused(const char *text, size_t len, int code, const char *param)
{
    validate_error_t e;
    json_t *ev = NULL;
    cr_assert_eq(payments_validate_event(text, len, &ev, &e), code, "%.*s", (int)len, text);
    cr_assert_str_eq(e.param, param, "%.*s", (int)len, text);
    cr_assert_null(ev);
}

Test(payments_validate, event_that_is_not_a_json_object_is_invalid_json)
{
    event_refused("", 0, BILLOW_EINVALID_JSON, "");
    event_refused("{\"id\":", 6, BILLOW_EINVALID_JSON, "");
    event_refused("[1,2]", 5, BILLOW_EINVALID_JSON, "");
    static const char dup[] = "{\"id\":\"evt_1\",\"id\":\"evt_2\",\"type\":\"x\"}";
    event_refused("id=evt_1&type=x", 15, BILLOW_EINVALID_JSON, "");
    event_refused(dup, strlen(dup), BILLOW_EINVALID_JSON, "");
    static const char with_nul[] = "{\"id\":\"evt_1\",\"type\":\"a\"}\0junk";
    event_refused(with_nul, sizeof with_nul - 1, BILLOW_EINVALID_JSON, "");
}

Test(payments_validate, event_without_a_good_id_or_type_is_event_invalid)
{
    static const struct {
        const char *text;
        const char *param;
    } cases[] = {
        {"{\"type\":\"charge.succeeded\"}", "id"},
        {"{\"id\":42,\"type\":\"charge.succeeded\"}", "id"},
        {"{\"id\":\"ch_1\",\"type\":\"charge.succeeded\"}", "id"},
        {"{\"id\":\"evt_\",\"type\":\"charge.succeeded\"}", "id"},
        {"{\"id\":\"evt_1-2\",\"type\":\"charge.succeeded\"}", "id"},
        {"{\"id\":\"evt_1\"}", "type"},
        {"{\"id\":\"evt_1\",\"type\":\"\"}", "type"},
        {"{\"id\":\"evt_1\",\"type\":\"charge succeeded\"}", "type"},
        {"{\"id\":\"evt_1\",\"type\":"
         "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
         "type"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        event_refused(cases[i].text, strlen(cases[i].text), BILLOW_EEVENT_INVALID, cases[i].param);
}

Test(payments_validate, event_without_a_time_or_an_object_is_event_invalid)
{
    static const struct {
        const char *text;
        const char *param;
    } cases[] = {
        {"{\"id\":\"evt_1\",\"type\":\"x\",\"data\":{\"object\":{}}}", "created"},
        {"{\"id\":\"evt_1\",\"type\":\"x\",\"created\":\"1785000000\",\"data\":{\"object\":{}}}",
         "created"},
        {"{\"id\":\"evt_1\",\"type\":\"x\",\"created\":-1,\"data\":{\"object\":{}}}", "created"},
        {"{\"id\":\"evt_1\",\"type\":\"x\",\"created\":99999999999999,\"data\":{\"object\":{}}}",
         "created"},
        {"{\"id\":\"evt_1\",\"type\":\"x\",\"created\":1785000000}", "data.object"},
        {"{\"id\":\"evt_1\",\"type\":\"x\",\"created\":1785000000,\"data\":{}}", "data.object"},
        {"{\"id\":\"evt_1\",\"type\":\"x\",\"created\":1785000000,\"data\":{\"object\":[]}}",
         "data.object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        event_refused(cases[i].text, strlen(cases[i].text), BILLOW_EEVENT_INVALID, cases[i].param);
}

Test(payments_validate, event_job_id_is_the_same_for_every_delivery_of_one_event)
{
    validate_error_t e;
    json_t *a = NULL, *b = NULL;
    static const char other_event[] =
        "{\"id\":\"evt_2\",\"created\":1785000000,\"type\":\"x\",\"data\":{\"object\":{}}}";
    /* A redelivery: same event, other whitespace and member order. */
    static const char again[] = "{ \"type\": \"payment_intent.succeeded\", \"created\": 1785000000,"
                                " \"data\": {\"object\": {\"id\": \"pi_1\"}},"
                                " \"id\": \"evt_1NG8Du2eZvKYlo2CUI79vXWy\" }";
    cr_assert_eq(payments_validate_event(EVENT, strlen(EVENT), &a, &e), 0);
    cr_assert_eq(payments_validate_event(again, strlen(again), &b, &e), 0);
    char id1[IDS_MAX], id2[IDS_MAX], id3[IDS_MAX], id4[IDS_MAX];
    payments_validate_event_job_id("ten_01M8AG19QGSS6YS3C4DWA7N360", a, id1);
    payments_validate_event_job_id("ten_01M8AG19QGSS6YS3C4DWA7N360", b, id2);
    cr_assert(ids_valid("job", id1), "%s", id1);
    cr_assert_str_eq(id1, id2);
    payments_validate_event_job_id("ten_01M8AG19QGSS6YS3C4DWA7N361", a, id3);
    cr_assert_str_neq(id1, id3, "another tenant's delivery of the same event is its own job");
    json_decref(b);
    cr_assert_eq(payments_validate_event(other_event, strlen(other_event), &b, &e), 0);
    payments_validate_event_job_id("ten_01M8AG19QGSS6YS3C4DWA7N360", b, id4);
    cr_assert_str_neq(id1, id4, "another event is another job");
    json_decref(a);
    json_decref(b);
}

Test(payments_validate, event_job_id_orders_by_the_event_time)
{
    json_t *early = J("{\"id\":\"evt_9\",\"created\":1700000000,\"type\":\"x\"}");
    json_t *late = J("{\"id\":\"evt_1\",\"created\":1800000000,\"type\":\"x\"}");
    json_t *odd = J("{\"id\":\"evt_1\",\"created\":-5,\"type\":\"x\"}");
    char a[IDS_MAX], b[IDS_MAX], c[IDS_MAX];
    payments_validate_event_job_id("ten_01M8AG19QGSS6YS3C4DWA7N360", early, a);
    payments_validate_event_job_id("ten_01M8AG19QGSS6YS3C4DWA7N360", late, b);
    payments_validate_event_job_id("ten_01M8AG19QGSS6YS3C4DWA7N360", odd, c);
    cr_assert_lt(strcmp(a, b), 0, "%s before %s", a, b);
    cr_assert(ids_valid("job", c), "a nonsense created still gives a valid id: %s", c);
    json_decref(early);
    json_decref(late);
    json_decref(odd);
}

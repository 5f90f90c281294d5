/* stripe_sig: verification of the Stripe-Signature header of webhooks. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "stripe_sig.h"

#define SECRET       "whsec_billow_test"
#define OTHER_SECRET "whsec_someone_else"
#define BODY         "{\"id\":\"evt_1\",\"object\":\"event\"}"
#define T            1700000000
/* Room for a header with a t and one v1. */
#define HEADER_ROOM 128

/* HMAC-SHA256 under SECRET of "1700000000." BODY, made once with
 *   printf '%s' '1700000000.{"id":"evt_1","object":"event"}' \
 *     | openssl dgst -sha256 -hmac 'whsec_billow_test'
 * so the module is checked against an implementation it does not share. */
#define KNOWN_V1 "b645f6c9223ce91d10ea5dc967ecbc4f8fc1b604283e62fc2755470e66147866"

static const char *const one_secret[] = {SECRET};

static stripe_sig_result_t verify_at(const char *header, const char *body, int64_t now)
{
    return stripe_sig_verify(header, body, strlen(body), one_secret, 1, now,
                             STRIPE_SIG_TOLERANCE_S);
}

static stripe_sig_result_t verify(const char *header)
{
    return verify_at(header, BODY, T);
}

/* The v1 hex of BODY at T under secret, as stripe_sig_sign writes it. */
static void v1_of(const char *secret, char hex[65])
{
    char header[HEADER_ROOM];
    cr_assert_eq(stripe_sig_sign(secret, T, BODY, strlen(BODY), header, sizeof header), 0);
    const char *v1 = strstr(header, ",v1=");
    cr_assert_not_null(v1);
    cr_assert_eq(strlen(v1 + 4), 64);
    memcpy(hex, v1 + 4, 65);
}

Test(stripe_sig, known_vector_made_with_openssl_verifies)
{
    cr_assert_eq(verify("t=1700000000,v1=" KNOWN_V1), STRIPE_SIG_OK);
}

Test(stripe_sig, sign_writes_the_known_vector)
{
    char header[HEADER_ROOM];
    cr_assert_eq(stripe_sig_sign(SECRET, T, BODY, strlen(BODY), header, sizeof header), 0);
    cr_assert_str_eq(header, "t=1700000000,v1=" KNOWN_V1);
}

Test(stripe_sig, sign_then_verify_round_trips_for_any_body)
{
    const char *bodies[] = {"", "x", "{\"a\":\"\xc3\xa9\"}", "line\nbreak,with=comma"};
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        char header[HEADER_ROOM];
        cr_assert_eq(
            stripe_sig_sign(SECRET, T + 5, bodies[i], strlen(bodies[i]), header, sizeof header), 0);
        cr_assert_eq(verify_at(header, bodies[i], T + 5), STRIPE_SIG_OK, "body %zu", i);
    }
}

Test(stripe_sig, body_with_embedded_nul_is_signed_whole)
{
    static const char body[] = {'a', '\0', 'b'};
    char header[HEADER_ROOM];
    cr_assert_eq(stripe_sig_sign(SECRET, T, body, sizeof body, header, sizeof header), 0);
    cr_assert_eq(stripe_sig_verify(header, body, sizeof body, one_secret, 1, T, 300),
                 STRIPE_SIG_OK);
    cr_assert_eq(stripe_sig_verify(header, body, 1, one_secret, 1, T, 300), STRIPE_SIG_MISMATCH);
}

Test(stripe_sig, tampered_body_is_a_mismatch)
{
    cr_assert_eq(
        verify_at("t=1700000000,v1=" KNOWN_V1, "{\"id\":\"evt_2\",\"object\":\"event\"}", T),
        STRIPE_SIG_MISMATCH);
}

Test(stripe_sig, tampered_timestamp_is_a_mismatch)
{
    cr_assert_eq(verify("t=1700000001,v1=" KNOWN_V1), STRIPE_SIG_MISMATCH);
}

Test(stripe_sig, wrong_secret_is_a_mismatch)
{
    const char *secrets[] = {OTHER_SECRET};
    cr_assert_eq(
        stripe_sig_verify("t=1700000000,v1=" KNOWN_V1, BODY, strlen(BODY), secrets, 1, T, 300),
        STRIPE_SIG_MISMATCH);
}

Test(stripe_sig, secret_without_its_whsec_prefix_is_a_mismatch)
{
    const char *secrets[] = {"billow_test"};
    cr_assert_eq(
        stripe_sig_verify("t=1700000000,v1=" KNOWN_V1, BODY, strlen(BODY), secrets, 1, T, 300),
        STRIPE_SIG_MISMATCH);
}

Test(stripe_sig, any_of_two_secrets_may_match_during_rotation)
{
    const char *old_first[] = {OTHER_SECRET, SECRET};
    const char *new_first[] = {SECRET, OTHER_SECRET};
    const char *header = "t=1700000000,v1=" KNOWN_V1;
    cr_assert_eq(stripe_sig_verify(header, BODY, strlen(BODY), old_first, 2, T, 300),
                 STRIPE_SIG_OK);
    cr_assert_eq(stripe_sig_verify(header, BODY, strlen(BODY), new_first, 2, T, 300),
                 STRIPE_SIG_OK);
}

Test(stripe_sig, any_of_two_v1_may_match)
{
    char other[65];
    v1_of(OTHER_SECRET, other);
    char header[256];
    snprintf(header, sizeof header, "t=1700000000,v1=%s,v1=%s", other, KNOWN_V1);
    cr_assert_eq(verify(header), STRIPE_SIG_OK);
    snprintf(header, sizeof header, "t=1700000000,v1=%s,v1=%s", KNOWN_V1, other);
    cr_assert_eq(verify(header), STRIPE_SIG_OK);
}

Test(stripe_sig, only_v1_signatures_past_the_max_are_not_considered)
{
    char header[2048];
    int len = snprintf(header, sizeof header, "t=1700000000");
    for (int i = 0; i < STRIPE_SIG_V1_MAX; i++)
        len += snprintf(header + len, sizeof header - (size_t)len, ",v1=%064d", i);
    snprintf(header + len, sizeof header - (size_t)len, ",v1=" KNOWN_V1);
    cr_assert_eq(verify(header), STRIPE_SIG_MISMATCH);

    /* The last one that is considered still counts. */
    len = snprintf(header, sizeof header, "t=1700000000");
    for (int i = 0; i < STRIPE_SIG_V1_MAX - 1; i++)
        len += snprintf(header + len, sizeof header - (size_t)len, ",v1=%064d", i);
    snprintf(header + len, sizeof header - (size_t)len, ",v1=" KNOWN_V1);
    cr_assert_eq(verify(header), STRIPE_SIG_OK);
}

Test(stripe_sig, v0_and_unknown_schemes_are_ignored)
{
    cr_assert_eq(verify("t=1700000000,v0=" KNOWN_V1), STRIPE_SIG_MALFORMED);
    cr_assert_eq(verify("t=1700000000,v0=abc,v2=def,x,v1=" KNOWN_V1), STRIPE_SIG_OK);
    cr_assert_eq(verify("v0=" KNOWN_V1 ",v1=" KNOWN_V1 ",t=1700000000"), STRIPE_SIG_OK);
}

Test(stripe_sig, missing_t_is_malformed)
{
    cr_assert_eq(verify("v1=" KNOWN_V1), STRIPE_SIG_MALFORMED);
    cr_assert_eq(verify("T=1700000000,v1=" KNOWN_V1), STRIPE_SIG_MALFORMED);
}

Test(stripe_sig, missing_v1_is_malformed)
{
    cr_assert_eq(verify("t=1700000000"), STRIPE_SIG_MALFORMED);
    cr_assert_eq(verify("t=1700000000,V1=" KNOWN_V1), STRIPE_SIG_MALFORMED);
    cr_assert_eq(verify("t=1700000000,v1" KNOWN_V1), STRIPE_SIG_MALFORMED);
}

Test(stripe_sig, t_that_is_not_all_digits_is_malformed)
{
    const char *bad[] = {
        "t=,v1=" KNOWN_V1,           "t=-1700000000,v1=" KNOWN_V1,  "t=+1700000000,v1=" KNOWN_V1,
        "t=17e8,v1=" KNOWN_V1,       "t= 1700000000,v1=" KNOWN_V1,  "t=1700000000 ,v1=" KNOWN_V1,
        "t=0x6553f100,v1=" KNOWN_V1, "t=1700000000.5,v1=" KNOWN_V1,
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(verify(bad[i]), STRIPE_SIG_MALFORMED, "%s", bad[i]);
}

Test(stripe_sig, t_too_long_to_be_a_time_is_malformed)
{
    cr_assert_eq(verify("t=99999999999999999999,v1=" KNOWN_V1), STRIPE_SIG_MALFORMED);
}

Test(stripe_sig, a_second_t_is_malformed)
{
    cr_assert_eq(verify("t=1700000000,t=1700000000,v1=" KNOWN_V1), STRIPE_SIG_MALFORMED);
}

Test(stripe_sig, t_with_leading_zeros_is_signed_as_its_number)
{
    cr_assert_eq(verify("t=01700000000,v1=" KNOWN_V1), STRIPE_SIG_OK);
}

Test(stripe_sig, signature_exactly_at_the_tolerance_passes)
{
    cr_assert_eq(verify_at("t=1700000000,v1=" KNOWN_V1, BODY, T + 300), STRIPE_SIG_OK);
}

Test(stripe_sig, signature_one_second_past_the_tolerance_is_expired)
{
    cr_assert_eq(verify_at("t=1700000000,v1=" KNOWN_V1, BODY, T + 301), STRIPE_SIG_EXPIRED);
}

Test(stripe_sig, signature_from_the_future_passes)
{
    cr_assert_eq(verify_at("t=1700000000,v1=" KNOWN_V1, BODY, T - 86400), STRIPE_SIG_OK);
}

Test(stripe_sig, old_timestamp_without_a_matching_signature_is_a_mismatch_not_expired)
{
    cr_assert_eq(verify_at("t=1700000000,v1=" KNOWN_V1, "other", T + 3600), STRIPE_SIG_MISMATCH);
}

Test(stripe_sig, upper_case_hex_does_not_match)
{
    char upper[65];
    memcpy(upper, KNOWN_V1, 65);
    for (char *p = upper; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    char header[HEADER_ROOM];
    snprintf(header, sizeof header, "t=1700000000,v1=%s", upper);
    cr_assert_eq(verify(header), STRIPE_SIG_MISMATCH);
}

Test(stripe_sig, truncated_or_extended_v1_does_not_match)
{
    cr_assert_eq(
        verify("t=1700000000,v1=b645f6c9223ce91d10ea5dc967ecbc4f8fc1b604283e62fc2755470e6614786"),
        STRIPE_SIG_MISMATCH);
    cr_assert_eq(verify("t=1700000000,v1=" KNOWN_V1 "0"), STRIPE_SIG_MISMATCH);
    cr_assert_eq(verify("t=1700000000,v1="), STRIPE_SIG_MISMATCH);
}

Test(stripe_sig, null_or_empty_header_is_missing)
{
    cr_assert_eq(verify(NULL), STRIPE_SIG_MISSING);
    cr_assert_eq(verify(""), STRIPE_SIG_MISSING);
}

Test(stripe_sig, header_over_the_max_is_malformed)
{
    char header[STRIPE_SIG_HEADER_MAX + 2];
    int len = snprintf(header, sizeof header, "t=1700000000,v1=" KNOWN_V1 ",");
    memset(header + len, 'x', sizeof header - 1 - (size_t)len);
    header[sizeof header - 1] = '\0';
    cr_assert_eq(strlen(header), STRIPE_SIG_HEADER_MAX + 1);
    cr_assert_eq(verify(header), STRIPE_SIG_MALFORMED);

    /* At exactly the max it is read (and the x's ignored). */
    header[STRIPE_SIG_HEADER_MAX] = '\0';
    cr_assert_eq(verify(header), STRIPE_SIG_OK);
}

Test(stripe_sig, no_secrets_or_empty_secrets_match_nothing)
{
    const char *header = "t=1700000000,v1=" KNOWN_V1;
    cr_assert_eq(stripe_sig_verify(header, BODY, strlen(BODY), NULL, 0, T, 300),
                 STRIPE_SIG_MISMATCH);
    const char *unset[] = {NULL, ""};
    cr_assert_eq(stripe_sig_verify(header, BODY, strlen(BODY), unset, 2, T, 300),
                 STRIPE_SIG_MISMATCH);

    /* A signature under the empty key is not accepted for an empty secret. */
    char empty_key_header[HEADER_ROOM];
    cr_assert_eq(
        stripe_sig_sign("", T, BODY, strlen(BODY), empty_key_header, sizeof empty_key_header), 0);
    cr_assert_eq(stripe_sig_verify(empty_key_header, BODY, strlen(BODY), unset, 2, T, 300),
                 STRIPE_SIG_MISMATCH);
}

Test(stripe_sig, sign_refuses_a_buffer_too_small)
{
    char header[HEADER_ROOM];
    size_t need = strlen("t=1700000000,v1=" KNOWN_V1) + 1;
    cr_assert_eq(stripe_sig_sign(SECRET, T, BODY, strlen(BODY), header, need - 1),
                 BILLOW_EPARAM_INVALID);
    cr_assert_str_eq(header, "");
    cr_assert_eq(stripe_sig_sign(SECRET, T, BODY, strlen(BODY), header, need), 0);
    cr_assert_str_eq(header, "t=1700000000,v1=" KNOWN_V1);
}

Test(stripe_sig, codes_and_messages_name_each_failure)
{
    cr_assert_null(stripe_sig_code(STRIPE_SIG_OK));
    cr_assert_str_eq(stripe_sig_code(STRIPE_SIG_MISSING), "signature_missing");
    cr_assert_str_eq(stripe_sig_code(STRIPE_SIG_MALFORMED), "signature_malformed");
    cr_assert_str_eq(stripe_sig_code(STRIPE_SIG_MISMATCH), "signature_mismatch");
    cr_assert_str_eq(stripe_sig_code(STRIPE_SIG_EXPIRED), "signature_expired");
    stripe_sig_result_t failures[] = {STRIPE_SIG_MISSING, STRIPE_SIG_MALFORMED, STRIPE_SIG_MISMATCH,
                                      STRIPE_SIG_EXPIRED};
    for (size_t i = 0; i < sizeof failures / sizeof failures[0]; i++) {
        const char *m = stripe_sig_message(failures[i]);
        cr_assert_not_null(m);
        cr_assert_gt(strlen(m), 10);
        for (size_t j = 0; j < i; j++)
            cr_assert_str_neq(m, stripe_sig_message(failures[j]));
    }
}

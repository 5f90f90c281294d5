/* totp_test: the RFC 4226 and RFC 6238 vectors, base32 per RFC 4648, the
 * verification window and replay rule, the otpauth URI, recovery codes. */
#include <criterion/criterion.h>
#include <string.h>

#include "totp.h"

/* The key of the recovery-code hashes in these tests (32 bytes). */
static const unsigned char recovery_key[32] = {'b', 'i', 'l', 'l', 'o', 'w', 't', 'e', 's', 't'};

/* RFC 6238 Appendix B seeds: ASCII "1234567890" repeated to each digest's size. */
static const char seed20[] = "12345678901234567890";
static const char seed32[] = "12345678901234567890123456789012";
static const char seed64[] = "1234567890123456789012345678901234567890123456789012345678901234";
/* seed20 in base32, as a user would type it into an app. */
static const char seed20_b32[] = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

/* Steps of two RFC 6238 times, and their 6-digit SHA-1 codes (the last six
 * digits of the 8-digit values in Appendix B). */
#define T1      1111111109 /* step 37037036 */
#define T1_STEP 37037036u
#define T1_CODE "081804"
#define T2_STEP 37037037u /* 1111111111 */
#define T2_CODE "050471"

static void expect_totp(const char *seed, const char *digest, int64_t t, const char *want)
{
    char out[9];
    cr_assert_eq(totp_hotp((const unsigned char *)seed, strlen(seed), digest, totp_step(t), 8, out),
                 0);
    cr_assert_str_eq(out, want, "%s at %lld", digest, (long long)t);
}

Test(totp, rfc6238_appendix_b_vectors)
{
    expect_totp(seed20, "SHA1", 59, "94287082");
    expect_totp(seed32, "SHA256", 59, "46119246");
    expect_totp(seed64, "SHA512", 59, "90693936");
    expect_totp(seed20, "SHA1", 1111111109, "07081804");
    expect_totp(seed32, "SHA256", 1111111109, "68084774");
    expect_totp(seed64, "SHA512", 1111111109, "25091201");
    expect_totp(seed20, "SHA1", 1111111111, "14050471");
    expect_totp(seed32, "SHA256", 1111111111, "67062674");
    expect_totp(seed64, "SHA512", 1111111111, "99943326");
    expect_totp(seed20, "SHA1", 1234567890, "89005924");
    expect_totp(seed32, "SHA256", 1234567890, "91819424");
    expect_totp(seed64, "SHA512", 1234567890, "93441116");
    expect_totp(seed20, "SHA1", 2000000000, "69279037");
    expect_totp(seed32, "SHA256", 2000000000, "90698825");
    expect_totp(seed64, "SHA512", 2000000000, "38618901");
    expect_totp(seed20, "SHA1", 20000000000, "65353130");
    expect_totp(seed32, "SHA256", 20000000000, "77737706");
    expect_totp(seed64, "SHA512", 20000000000, "47863826");
}

Test(totp, rfc4226_appendix_d_hotp_values)
{
    static const char *want[] = {"755224", "287082", "359152", "969429", "338314",
                                 "254676", "287922", "162583", "399871", "520489"};
    for (uint64_t c = 0; c < 10; c++) {
        char out[9];
        cr_assert_eq(totp_hotp((const unsigned char *)seed20, 20, "SHA1", c, 6, out), 0);
        cr_assert_str_eq(out, want[c], "counter %llu", (unsigned long long)c);
    }
}

Test(totp, hotp_refuses_unknown_digest_and_digit_counts)
{
    char out[9];
    const unsigned char *key = (const unsigned char *)seed20;
    cr_assert_eq(totp_hotp(key, 20, "MD5", 0, 6, out), BILLOW_EPARAM_INVALID);
    cr_assert_eq(totp_hotp(key, 20, "sha1", 0, 6, out), BILLOW_EPARAM_INVALID);
    cr_assert_eq(totp_hotp(key, 20, NULL, 0, 6, out), BILLOW_EPARAM_INVALID);
    cr_assert_eq(totp_hotp(key, 20, "SHA1", 0, 5, out), BILLOW_EPARAM_INVALID);
    cr_assert_eq(totp_hotp(key, 20, "SHA1", 0, 9, out), BILLOW_EPARAM_INVALID);
    cr_assert_eq(totp_hotp(key, 20, "SHA1", 0, 7, out), 0);
    cr_assert_eq(strlen(out), 7);
}

Test(totp, step_is_thirty_second_periods_since_the_epoch)
{
    cr_assert_eq(totp_step(0), 0);
    cr_assert_eq(totp_step(29), 0);
    cr_assert_eq(totp_step(30), 1);
    cr_assert_eq(totp_step(59), 1);
    cr_assert_eq(totp_step(T1), T1_STEP);
    cr_assert_eq(totp_step(-5), 0);
}

Test(totp, base32_matches_rfc4648_vectors)
{
    static const struct {
        const char *in;
        const char *out;
    } v[] = {
        {"", ""},
        {"f", "MY"},
        {"fo", "MZXQ"},
        {"foo", "MZXW6"},
        {"foob", "MZXW6YQ"},
        {"fooba", "MZXW6YTB"},
        {"foobar", "MZXW6YTBOI"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char enc[32];
        unsigned char dec[16];
        totp_base32_encode((const unsigned char *)v[i].in, strlen(v[i].in), enc, sizeof enc);
        cr_assert_str_eq(enc, v[i].out);
        int n = totp_base32_decode(v[i].out, dec, sizeof dec);
        cr_assert_eq(n, (int)strlen(v[i].in), "%s", v[i].out);
        cr_assert_eq(memcmp(dec, v[i].in, (size_t)n), 0);
    }
    char enc[40];
    totp_base32_encode((const unsigned char *)seed20, 20, enc, sizeof enc);
    cr_assert_str_eq(enc, seed20_b32);
}

Test(totp, base32_decode_ignores_case_padding_and_spaces)
{
    unsigned char dec[16];
    cr_assert_eq(totp_base32_decode("MZXW6YTBOI======", dec, sizeof dec), 6);
    cr_assert_eq(memcmp(dec, "foobar", 6), 0);
    cr_assert_eq(totp_base32_decode("mzxw 6ytb oi", dec, sizeof dec), 6);
    cr_assert_eq(memcmp(dec, "foobar", 6), 0);
    cr_assert_eq(totp_base32_decode("MY======", dec, sizeof dec), 1);
    cr_assert_eq(dec[0], 'f');
}

Test(totp, base32_decode_refuses_what_is_not_base32)
{
    unsigned char dec[16];
    cr_assert_eq(totp_base32_decode("MZXW1", dec, sizeof dec), BILLOW_EPARAM_INVALID);
    cr_assert_eq(totp_base32_decode("MZXW0", dec, sizeof dec), BILLOW_EPARAM_INVALID);
    cr_assert_eq(totp_base32_decode("MZ-XW", dec, sizeof dec), BILLOW_EPARAM_INVALID);
    /* 1, 3 and 6 characters past a block complete no byte. */
    cr_assert_eq(totp_base32_decode("M", dec, sizeof dec), BILLOW_EPARAM_INVALID);
    cr_assert_eq(totp_base32_decode("MZX", dec, sizeof dec), BILLOW_EPARAM_INVALID);
    cr_assert_eq(totp_base32_decode("MZXW6Y", dec, sizeof dec), BILLOW_EPARAM_INVALID);
    cr_assert_eq(totp_base32_decode("MY==MY", dec, sizeof dec), BILLOW_EPARAM_INVALID);
    cr_assert_eq(totp_base32_decode(NULL, dec, sizeof dec), BILLOW_EPARAM_INVALID);
    /* Too long for the output. */
    cr_assert_eq(totp_base32_decode("MZXW6YTBOI", dec, 5), BILLOW_EPARAM_INVALID);
}

Test(totp, base32_round_trips_every_length)
{
    for (size_t n = 0; n <= 41; n++) {
        unsigned char in[41];
        unsigned char dec[41];
        char enc[72];
        crypto_random_bytes(in, n);
        totp_base32_encode(in, n, enc, sizeof enc);
        cr_assert_eq(strlen(enc), (8 * n + 4) / 5);
        cr_assert_eq(totp_base32_decode(enc, dec, sizeof dec), (int)n, "%s", enc);
        cr_assert_eq(memcmp(in, dec, n), 0);
    }
}

Test(totp, base32_encode_stops_at_the_buffer)
{
    char enc[5];
    memset(enc, 'x', sizeof enc);
    totp_base32_encode((const unsigned char *)"foobar", 6, enc, sizeof enc);
    cr_assert_str_eq(enc, "MZXW");
}

Test(totp, new_secret_is_32_base32_characters_of_20_bytes)
{
    char a[TOTP_SECRET_B32_LEN + 1];
    char b[TOTP_SECRET_B32_LEN + 1];
    unsigned char dec[TOTP_SECRET_BYTES + 8];
    totp_new_secret(a);
    totp_new_secret(b);
    cr_assert_eq(strlen(a), TOTP_SECRET_B32_LEN);
    cr_assert_eq(totp_base32_decode(a, dec, sizeof dec), TOTP_SECRET_BYTES);
    cr_assert_str_neq(a, b);
}

Test(totp, verify_accepts_the_current_step_and_one_either_side)
{
    uint64_t step = 0;
    cr_assert_eq(totp_verify(seed20_b32, T1, T1_CODE, 0, &step), 0);
    cr_assert_eq(step, T1_STEP);
    /* Half a minute later the previous step's code still works. */
    cr_assert_eq(totp_verify(seed20_b32, T1 + 30, T1_CODE, 0, &step), 0);
    cr_assert_eq(step, T1_STEP);
    /* A phone clock 30 seconds fast: the next step's code works now. */
    cr_assert_eq(totp_verify(seed20_b32, T1, T2_CODE, 0, &step), 0);
    cr_assert_eq(step, T2_STEP);
    /* Lower-case secrets with spaces, as users copy them, are the same key. */
    cr_assert_eq(totp_verify("gezd gnbv gy3t qojq gezd gnbv gy3t qojq", T1, T1_CODE, 0, &step), 0);
}

Test(totp, verify_refuses_codes_two_steps_away)
{
    uint64_t step = 77;
    cr_assert_eq(totp_verify(seed20_b32, T1 + 60, T1_CODE, 0, &step), BILLOW_ETOTP_INVALID);
    cr_assert_eq(totp_verify(seed20_b32, T1 - 30, T2_CODE, 0, &step), BILLOW_ETOTP_INVALID);
    cr_assert_eq(step, 77, "matched_step is written only on success");
}

Test(totp, verify_refuses_a_step_already_used)
{
    uint64_t step = 0;
    cr_assert_eq(totp_verify(seed20_b32, T1, T1_CODE, T1_STEP - 1, &step), 0);
    cr_assert_eq(step, T1_STEP);
    /* Replaying the same code with the step now recorded fails... */
    cr_assert_eq(totp_verify(seed20_b32, T1, T1_CODE, T1_STEP, &step), BILLOW_ETOTP_INVALID);
    /* ...as does an older code within the window. */
    cr_assert_eq(totp_verify(seed20_b32, T1 + 30, T1_CODE, T2_STEP, &step), BILLOW_ETOTP_INVALID);
    /* The next step's code is still good after the current one was used. */
    cr_assert_eq(totp_verify(seed20_b32, T1, T2_CODE, T1_STEP, &step), 0);
    cr_assert_eq(step, T2_STEP);
}

Test(totp, verify_records_the_later_step_when_two_steps_share_a_code)
{
    /* Under seed20, steps 37079356 and 37079357 both give 186519 (found by
     * search). Recording the earlier would leave the code usable once more. */
    uint64_t step = 0;
    cr_assert_eq(totp_verify(seed20_b32, 37079356LL * 30, "186519", 0, &step), 0);
    cr_assert_eq(step, 37079357u);
    cr_assert_eq(totp_verify(seed20_b32, 37079356LL * 30, "186519", step, &step),
                 BILLOW_ETOTP_INVALID);
}

Test(totp, verify_refuses_wrong_and_malformed_codes)
{
    uint64_t step = 0;
    const char *bad[] = {
        "081805", "08180", "0818040", "08180a", " 81804", "081804 ", "", "-81804", "+81804",
        /* "０８１８０４" in full-width digits. */
        "\xef\xbc\x90\xef\xbc\x98\xef\xbc\x91\xef\xbc\x98\xef\xbc\x90\xef\xbc\x94"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(totp_verify(seed20_b32, T1, bad[i], 0, &step), BILLOW_ETOTP_INVALID, "%s",
                     bad[i]);
    cr_assert_eq(totp_verify(seed20_b32, T1, NULL, 0, &step), BILLOW_ETOTP_INVALID);
}

Test(totp, verify_refuses_a_secret_that_is_not_base32)
{
    uint64_t step = 0;
    cr_assert_eq(totp_verify("not base32!", T1, T1_CODE, 0, &step), BILLOW_EPARAM_INVALID);
    cr_assert_eq(totp_verify(NULL, T1, T1_CODE, 0, &step), BILLOW_EPARAM_INVALID);
    /* Base32 but 5 bytes, far below a real key. */
    cr_assert_eq(totp_verify("MZXW6YTB", T1, T1_CODE, 0, &step), BILLOW_EPARAM_INVALID);
}

Test(totp, uri_percent_encodes_issuer_and_account)
{
    char uri[256];
    cr_assert_eq(totp_uri("Billow Inc", "ada+ops@example.com", seed20_b32, uri, sizeof uri), 0);
    cr_assert_str_eq(uri, "otpauth://totp/Billow%20Inc:ada%2Bops%40example.com"
                          "?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Billow%20Inc"
                          "&algorithm=SHA1&digits=6&period=30");
    cr_assert_eq(totp_uri("A:B&c=d", "j\xc3\xbcrgen", seed20_b32, uri, sizeof uri), 0);
    cr_assert_str_eq(uri, "otpauth://totp/A%3AB%26c%3Dd:j%C3%BCrgen"
                          "?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=A%3AB%26c%3Dd"
                          "&algorithm=SHA1&digits=6&period=30");
}

Test(totp, uri_too_long_for_the_buffer_is_refused)
{
    char uri[256];
    size_t full = 0;
    cr_assert_eq(totp_uri("Billow", "ada@example.com", seed20_b32, uri, sizeof uri), 0);
    full = strlen(uri);
    cr_assert_eq(totp_uri("Billow", "ada@example.com", seed20_b32, uri, full + 1), 0);
    cr_assert_eq(totp_uri("Billow", "ada@example.com", seed20_b32, uri, full),
                 BILLOW_EPARAM_INVALID);
    cr_assert_eq(totp_uri("Billow", "ada@example.com", seed20_b32, uri, 20), BILLOW_EPARAM_INVALID);
    cr_assert_eq(totp_uri(NULL, "ada@example.com", seed20_b32, uri, sizeof uri),
                 BILLOW_EPARAM_INVALID);
}

Test(totp, recovery_codes_are_ten_unambiguous_characters_with_a_dash)
{
    static const char alphabet[] = "23456789abcdefghjkmnpqrstuvwxyz";
    char seen[TOTP_RECOVERY_CODES][TOTP_RECOVERY_CODE_LEN + 1];
    for (int k = 0; k < TOTP_RECOVERY_CODES; k++) {
        char *code = seen[k];
        char hash[CRYPTO_SHA256_HEX];
        totp_recovery_code(code);
        cr_assert_eq(strlen(code), TOTP_RECOVERY_CODE_LEN);
        cr_assert_eq(code[5], '-', "%s", code);
        for (int i = 0; i < TOTP_RECOVERY_CODE_LEN; i++)
            if (i != 5)
                cr_assert_neq(strchr(alphabet, code[i]), NULL, "%s", code);
        cr_assert_eq(totp_recovery_hash(recovery_key, sizeof recovery_key, code, hash), 0);
        for (int j = 0; j < k; j++)
            cr_assert_str_neq(seen[j], code);
    }
}

Test(totp, recovery_hash_ignores_case_spaces_and_dashes)
{
    char a[CRYPTO_SHA256_HEX];
    char b[CRYPTO_SHA256_HEX];
    char c[CRYPTO_SHA256_HEX];
    char want[CRYPTO_SHA256_HEX];
    cr_assert_eq(totp_recovery_hash(recovery_key, sizeof recovery_key, "ABCDE-FGHJK", a), 0);
    cr_assert_eq(totp_recovery_hash(recovery_key, sizeof recovery_key, "abcdefghjk", b), 0);
    cr_assert_eq(totp_recovery_hash(recovery_key, sizeof recovery_key, " abcde fghjk ", c), 0);
    crypto_hmac_sha256_hex(recovery_key, sizeof recovery_key, "abcdefghjk", 10, want);
    cr_assert_str_eq(a, want);
    cr_assert_str_eq(b, want);
    cr_assert_str_eq(c, want);
    cr_assert_eq(totp_recovery_hash(recovery_key, sizeof recovery_key, "abcde-fghjm", a), 0);
    cr_assert_str_neq(a, want);
    /* Keyed: another key, another hash. */
    static const unsigned char other[32] = {1};
    cr_assert_eq(totp_recovery_hash(other, sizeof other, "abcdefghjk", a), 0);
    cr_assert_str_neq(a, want);
}

Test(totp, recovery_hash_refuses_what_cannot_be_a_code)
{
    char h[CRYPTO_SHA256_HEX];
    const char *bad[] = {
        "abcde-fghj", "abcde-fghjkm", "abcde-fghj0", "abcde-fghjl", "abcde-fghji", "abcde_fghjk",
        "",           "-----",        NULL};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(totp_recovery_hash(recovery_key, sizeof recovery_key, bad[i], h),
                     BILLOW_EPARAM_INVALID, "case %zu", i);
}

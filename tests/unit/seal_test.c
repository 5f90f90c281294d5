/* seal_test: sealed text opens only with the same key and context, and any
 * change to it, or any malformed text, is refused. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seal.h"

static const char key_hex[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
static const char other_hex[] = "F0E1D2C3B4A5968778695A4B3C2D1E0F00112233445566778899AABBCCDDEEFF";
static const char secret[] = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

static seal_key_t key_of(const char *hex)
{
    seal_key_t k;
    cr_assert_eq(seal_key_parse(hex, &k), 0, "%s", hex);
    return k;
}

static char *seal_str(const seal_key_t *k, const char *context, const char *s)
{
    char *text = seal_encrypt(k, context, s, strlen(s));
    cr_assert_not_null(text);
    return text;
}

/* 0 when text opens to want under k and context; the error otherwise. */
static int open_as(const seal_key_t *k, const char *context, const char *text, const char *want)
{
    char *plain = NULL;
    size_t len = 0;
    int rc = seal_decrypt(k, context, text, &plain, &len);
    if (rc != 0) {
        cr_assert_null(plain, "plain is written only on success");
        return rc;
    }
    cr_assert_eq(len, strlen(want));
    cr_assert_eq(memcmp(plain, want, len), 0);
    cr_assert_eq(plain[len], '\0');
    free(plain);
    return 0;
}

static bool is_b64url(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_'))
            return false;
    return true;
}

Test(seal, sealed_text_opens_with_the_same_key_and_context)
{
    seal_key_t k = key_of(key_hex);
    char *text = seal_str(&k, "totp_secret", secret);
    cr_assert_eq(open_as(&k, "totp_secret", text, secret), 0);
    free(text);
}

Test(seal, sealed_text_has_the_documented_shape)
{
    seal_key_t k = key_of(key_hex);
    char *text = seal_str(&k, "totp_secret", secret);
    /* v1. + 16 characters of nonce + . + base64url of 32 + 16 bytes (64). */
    cr_assert_eq(strncmp(text, "v1.", 3), 0, "%s", text);
    cr_assert_eq(text[3 + 16], '.', "%s", text);
    cr_assert(is_b64url(text + 3, 16));
    cr_assert_eq(strlen(text + 20), 64, "%s", text);
    cr_assert(is_b64url(text + 20, 64), "%s", text);
    free(text);
}

Test(seal, empty_and_binary_and_largest_plaintexts_round_trip)
{
    seal_key_t k = key_of(key_hex);
    char *text = seal_encrypt(&k, "ctx", "", 0);
    cr_assert_not_null(text);
    cr_assert_eq(open_as(&k, "ctx", text, ""), 0);
    free(text);

    static unsigned char big[SEAL_PLAIN_MAX];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (unsigned char)(i * 7);
    text = seal_encrypt(&k, "ctx", big, sizeof big);
    cr_assert_not_null(text);
    char *plain = NULL;
    size_t len = 0;
    cr_assert_eq(seal_decrypt(&k, "ctx", text, &plain, &len), 0);
    cr_assert_eq(len, sizeof big);
    cr_assert_eq(memcmp(plain, big, len), 0);
    free(plain);
    free(text);
}

Test(seal, plaintext_over_the_limit_is_refused)
{
    seal_key_t k = key_of(key_hex);
    static unsigned char big[SEAL_PLAIN_MAX + 1];
    cr_assert_null(seal_encrypt(&k, "ctx", big, sizeof big));
}

Test(seal, wrong_context_fails)
{
    seal_key_t k = key_of(key_hex);
    char *text = seal_str(&k, "totp_secret", secret);
    cr_assert_eq(open_as(&k, "reset_token", text, secret), BILLOW_EPARAM_INVALID);
    cr_assert_eq(open_as(&k, "totp_secre", text, secret), BILLOW_EPARAM_INVALID);
    cr_assert_eq(open_as(&k, "", text, secret), BILLOW_EPARAM_INVALID);
    free(text);
}

Test(seal, wrong_key_fails)
{
    seal_key_t k = key_of(key_hex);
    seal_key_t other = key_of(other_hex);
    char *text = seal_str(&k, "totp_secret", secret);
    cr_assert_eq(open_as(&other, "totp_secret", text, secret), BILLOW_EPARAM_INVALID);
    free(text);
}

Test(seal, any_changed_character_fails)
{
    seal_key_t k = key_of(key_hex);
    char *text = seal_str(&k, "totp_secret", secret);
    size_t n = strlen(text);
    /* Every position after "v1.": nonce, ciphertext and tag alike. */
    for (size_t i = 3; i < n; i++) {
        if (text[i] == '.')
            continue;
        char was = text[i];
        text[i] = was == 'A' ? 'B' : 'A';
        cr_assert_eq(open_as(&k, "totp_secret", text, secret), BILLOW_EPARAM_INVALID,
                     "position %zu", i);
        text[i] = was;
    }
    cr_assert_eq(open_as(&k, "totp_secret", text, secret), 0);
    free(text);
}

Test(seal, malformed_text_fails)
{
    seal_key_t k = key_of(key_hex);
    char *good = seal_str(&k, "ctx", "hello");
    const char *body = strchr(good + 3, '.') + 1;
    char buf[512];
    const char *bad[] = {
        "",
        "v1",
        "v1.",
        "v1..",
        "v1.AAAAAAAAAAAAAAAA",
        "v1.AAAAAAAAAAAAAAAA.",
        "v1.AAAAAAAAAAAAAAAA.AAAA",
        "hello",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(open_as(&k, "ctx", bad[i], "hello"), BILLOW_EPARAM_INVALID, "%s", bad[i]);

    /* Another version, with an otherwise good text. */
    snprintf(buf, sizeof buf, "v2.%s", good + 3);
    cr_assert_eq(open_as(&k, "ctx", buf, "hello"), BILLOW_EPARAM_INVALID);
    /* Standard base64 characters or padding instead of base64url. */
    snprintf(buf, sizeof buf, "%s=", good);
    cr_assert_eq(open_as(&k, "ctx", buf, "hello"), BILLOW_EPARAM_INVALID);
    snprintf(buf, sizeof buf, "%.*s+%s", (int)(body - good), good, body + 1);
    cr_assert_eq(open_as(&k, "ctx", buf, "hello"), BILLOW_EPARAM_INVALID);
    /* A nonce one character short or long. */
    snprintf(buf, sizeof buf, "v1.%.15s.%s", good + 3, body);
    cr_assert_eq(open_as(&k, "ctx", buf, "hello"), BILLOW_EPARAM_INVALID);
    snprintf(buf, sizeof buf, "v1.%.16sA.%s", good + 3, body);
    cr_assert_eq(open_as(&k, "ctx", buf, "hello"), BILLOW_EPARAM_INVALID);
    /* The body cut short, or extended. */
    snprintf(buf, sizeof buf, "%.*s", (int)strlen(good) - 1, good);
    cr_assert_eq(open_as(&k, "ctx", buf, "hello"), BILLOW_EPARAM_INVALID);
    snprintf(buf, sizeof buf, "%sAAAA", good);
    cr_assert_eq(open_as(&k, "ctx", buf, "hello"), BILLOW_EPARAM_INVALID);
    /* A third part. */
    snprintf(buf, sizeof buf, "%s.AAAA", good);
    cr_assert_eq(open_as(&k, "ctx", buf, "hello"), BILLOW_EPARAM_INVALID);

    char *plain = NULL;
    size_t len = 0;
    cr_assert_eq(seal_decrypt(&k, "ctx", NULL, &plain, &len), BILLOW_EPARAM_INVALID);
    cr_assert_eq(open_as(&k, "ctx", good, "hello"), 0);
    free(good);
}

Test(seal, second_spelling_of_the_same_bytes_is_refused)
{
    /* 4 + 16 bytes take 27 characters, whose last carries 2 unused bits:
     * setting one keeps the bytes (and the tag) but is not the text sealed. */
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    seal_key_t k = key_of(key_hex);
    char *text = seal_str(&k, "ctx", "hell");
    size_t n = strlen(text);
    cr_assert_eq(strlen(strchr(text + 3, '.') + 1), 27);
    size_t v = (size_t)(strchr(alphabet, text[n - 1]) - alphabet);
    cr_assert_eq(v & 3, 0, "the unused bits of a canonical text are zero");
    text[n - 1] = alphabet[v | 1];
    cr_assert_eq(open_as(&k, "ctx", text, "hell"), BILLOW_EPARAM_INVALID);
    text[n - 1] = alphabet[v];
    cr_assert_eq(open_as(&k, "ctx", text, "hell"), 0);
    free(text);
}

Test(seal, text_longer_than_any_seal_is_refused)
{
    seal_key_t k = key_of(key_hex);
    size_t n = 20 + 4 * SEAL_PLAIN_MAX;
    char *text = malloc(n + 1);
    cr_assert_not_null(text);
    memcpy(text, "v1.AAAAAAAAAAAAAAAA.", 20);
    memset(text + 20, 'A', n - 20);
    text[n] = '\0';
    cr_assert_eq(open_as(&k, "ctx", text, ""), BILLOW_EPARAM_INVALID);
    free(text);
}

Test(seal, two_seals_of_the_same_text_differ)
{
    seal_key_t k = key_of(key_hex);
    char *a = seal_str(&k, "totp_secret", secret);
    char *b = seal_str(&k, "totp_secret", secret);
    cr_assert_str_neq(a, b);
    /* The nonces differ, not only the ciphertexts. */
    cr_assert_neq(strncmp(a, b, 19), 0);
    cr_assert_eq(open_as(&k, "totp_secret", a, secret), 0);
    cr_assert_eq(open_as(&k, "totp_secret", b, secret), 0);
    free(a);
    free(b);
}

Test(seal, key_parse_reads_64_hex_digits_of_either_case)
{
    seal_key_t k;
    cr_assert_eq(seal_key_parse(key_hex, &k), 0);
    for (int i = 0; i < SEAL_KEY_BYTES; i++)
        cr_assert_eq(k.key[i], i);
    cr_assert_eq(seal_key_parse(other_hex, &k), 0);
    cr_assert_eq(k.key[0], 0xf0);
    cr_assert_eq(k.key[31], 0xff);
}

Test(seal, key_parse_refuses_wrong_lengths_and_non_hex)
{
    seal_key_t k;
    char buf[80];
    memcpy(buf, key_hex, 63);
    buf[63] = '\0';
    cr_assert_eq(seal_key_parse(buf, &k), BILLOW_EPARAM_INVALID);
    snprintf(buf, sizeof buf, "%s0", key_hex);
    cr_assert_eq(seal_key_parse(buf, &k), BILLOW_EPARAM_INVALID);
    snprintf(buf, sizeof buf, "%s", key_hex);
    buf[10] = 'g';
    cr_assert_eq(seal_key_parse(buf, &k), BILLOW_EPARAM_INVALID);
    buf[10] = ' ';
    cr_assert_eq(seal_key_parse(buf, &k), BILLOW_EPARAM_INVALID);
    cr_assert_eq(seal_key_parse("", &k), BILLOW_EPARAM_INVALID);
    cr_assert_eq(seal_key_parse(NULL, &k), BILLOW_EPARAM_INVALID);
}

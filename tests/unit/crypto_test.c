/* crypto_test: known-answer vectors, constant-time equality, random tokens. */
#include <criterion/criterion.h>
#include <string.h>

#include "crypto.h"

static void to_hex(const unsigned char *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * n] = '\0';
}

Test(crypto, sha256_of_abc_matches_fips_180_2)
{
    char out[CRYPTO_SHA256_HEX];
    crypto_sha256_hex("abc", 3, out);
    cr_assert_str_eq(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

Test(crypto, sha256_of_nothing_is_the_empty_digest)
{
    char out[CRYPTO_SHA256_HEX];
    crypto_sha256_hex("", 0, out);
    cr_assert_str_eq(out, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

Test(crypto, hmac_sha256_matches_rfc4231_case_1)
{
    unsigned char key[20];
    unsigned char mac[32];
    char hex[65];
    memset(key, 0x0b, sizeof key);
    crypto_hmac_sha256(key, sizeof key, "Hi There", 8, mac);
    to_hex(mac, sizeof mac, hex);
    cr_assert_str_eq(hex, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
}

Test(crypto, hmac_sha256_matches_rfc4231_case_2)
{
    const char *msg = "what do ya want for nothing?";
    unsigned char mac[32];
    char hex[65];
    crypto_hmac_sha256("Jefe", 4, msg, strlen(msg), mac);
    to_hex(mac, sizeof mac, hex);
    cr_assert_str_eq(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

Test(crypto, equal_compares_every_byte)
{
    const char a[] = "whsec_0123456789abcdef";
    const char b[] = "whsec_0123456789abcdef";
    const char c[] = "whsec_0123456789abcdeg";
    cr_assert(crypto_equal(a, b, sizeof a));
    cr_assert_not(crypto_equal(a, c, sizeof a));
    cr_assert(crypto_equal(a, c, 0));
}

Test(crypto, random_bytes_differ_between_calls)
{
    unsigned char a[32], b[32];
    crypto_random_bytes(a, sizeof a);
    crypto_random_bytes(b, sizeof b);
    /* Two equal 256-bit draws would mean the RNG is broken, not bad luck. */
    cr_assert_neq(memcmp(a, b, sizeof a), 0);
}

Test(crypto, random_token_has_the_length_and_alphabet_asked_for)
{
    char token[41];
    memset(token, '#', sizeof token);
    crypto_random_token(token, 40);
    cr_assert_eq(strlen(token), 40);
    for (size_t i = 0; i < 40; i++) {
        char c = token[i];
        cr_assert((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'),
                  "character %zu is %c", i, c);
    }
    char empty[1] = {'#'};
    crypto_random_token(empty, 0);
    cr_assert_eq(empty[0], '\0');
}

Test(crypto, random_token_characters_are_equally_likely)
{
    /* 620,000 characters: each of the 62 is expected 10,000 times with a
     * standard deviation near 100. A byte % 62 mapping would give the first
     * eight characters about 12,100 each; the bounds sit six deviations out,
     * far below that bias and far above chance. */
    enum { PER_CHAR = 10000, ALPHABET = 62, CHUNK = 10000 };
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    static char buf[CHUNK + 1];
    long counts[256] = {0};
    for (int round = 0; round < PER_CHAR * ALPHABET / CHUNK; round++) {
        crypto_random_token(buf, CHUNK);
        for (int i = 0; i < CHUNK; i++)
            counts[(unsigned char)buf[i]]++;
    }
    for (int i = 0; i < ALPHABET; i++) {
        long n = counts[(unsigned char)alphabet[i]];
        cr_assert(n > PER_CHAR - 600 && n < PER_CHAR + 600, "%c drawn %ld times", alphabet[i], n);
    }
}

Test(crypto, hmac_hex_matches_rfc_4231_case_2)
{
    char out[CRYPTO_SHA256_HEX];
    crypto_hmac_sha256_hex("Jefe", 4, "what do ya want for nothing?", 28, out);
    cr_assert_str_eq(out, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

Test(crypto, derived_keys_differ_by_label_and_are_stable)
{
    unsigned char master[32], a[32], b[32], again[32];
    for (int i = 0; i < 32; i++)
        master[i] = (unsigned char)i;
    crypto_derive_key(master, "billow idempotency", a);
    crypto_derive_key(master, "billow recovery codes", b);
    crypto_derive_key(master, "billow idempotency", again);
    cr_assert_neq(memcmp(a, b, 32), 0);
    cr_assert_eq(memcmp(a, again, 32), 0);
    unsigned char expect[32];
    crypto_hmac_sha256(master, 32, "billow idempotency", 18, expect);
    cr_assert_eq(memcmp(a, expect, 32), 0);
}

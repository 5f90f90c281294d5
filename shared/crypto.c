/* crypto: the few primitives Billow needs, all from OpenSSL.
 *
 * Design: every function here either succeeds or aborts. The only failures
 * OpenSSL can report for these calls are an unseeded RNG or an allocation
 * failure inside the library; carrying on without randomness would mint
 * guessable keys, so stopping is the safe answer.
 */
#include "crypto.h"

#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Token characters: 62 of them, so tokens need no escaping anywhere. */
static const char token_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
#define TOKEN_ALPHABET_LEN 62
/* The largest multiple of 62 that fits a byte is 248: bytes at or above it are
 * thrown away, so every character is exactly equally likely (a plain
 * byte % 62 would favour the first 8 characters). */
#define TOKEN_BYTE_LIMIT (256 - 256 % TOKEN_ALPHABET_LEN)
/* Random bytes drawn per refill; about 3% are rejected, so one refill
 * usually covers 60 characters. */
#define TOKEN_POOL 64

static void crypto_fail(const char *what)
{
    fprintf(stderr, "billow: OpenSSL %s failed\n", what);
    abort();
}

/* Small draws (ids, tokens) come from a per-thread pool refilled
 * CRYPTO_POOL_BYTES at a time: a call to RAND_bytes costs about as much for
 * 10 bytes as for 512, and the front draws for three ids per request.
 * Bytes are wiped as they are handed out. Billow's processes never fork, so
 * no two processes can share a pool. */
#define CRYPTO_POOL_BYTES    512
#define CRYPTO_POOL_MAX_DRAW 64

static _Thread_local unsigned char rand_pool[CRYPTO_POOL_BYTES];
static _Thread_local size_t rand_pool_left;

static void rand_direct(unsigned char *p, size_t n)
{
    /* RAND_bytes takes an int length; hand it large buffers in pieces. */
    while (n > 0) {
        int chunk = n > (1u << 30) ? (1 << 30) : (int)n;
        if (RAND_bytes(p, chunk) != 1)
            crypto_fail("RAND_bytes");
        p += chunk;
        n -= (size_t)chunk;
    }
}

void crypto_random_bytes(void *buf, size_t n)
{
    if (n > CRYPTO_POOL_MAX_DRAW) {
        rand_direct(buf, n);
        return;
    }
    if (rand_pool_left < n) {
        rand_direct(rand_pool, sizeof(rand_pool));
        rand_pool_left = sizeof(rand_pool);
    }
    unsigned char *src = rand_pool + sizeof(rand_pool) - rand_pool_left;
    memcpy(buf, src, n);
    OPENSSL_cleanse(src, n);
    rand_pool_left -= n;
}

void crypto_random_token(char *out, size_t n)
{
    unsigned char pool[TOKEN_POOL];
    size_t used = sizeof pool;
    size_t i = 0;
    while (i < n) {
        if (used == sizeof pool) {
            crypto_random_bytes(pool, sizeof pool);
            used = 0;
        }
        unsigned char b = pool[used++];
        if (b < TOKEN_BYTE_LIMIT)
            out[i++] = token_alphabet[b % TOKEN_ALPHABET_LEN];
    }
    out[n] = '\0';
    OPENSSL_cleanse(pool, sizeof pool);
}

void crypto_sha256_hex(const void *data, size_t len, char out[CRYPTO_SHA256_HEX])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (EVP_Digest(data, len, md, &md_len, EVP_sha256(), NULL) != 1 || md_len != 32)
        crypto_fail("EVP_Digest");
    crypto_hex(md, md_len, out);
}

void crypto_hex(const unsigned char *bytes, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * n] = '\0';
}

void crypto_hmac_sha256(const void *key, size_t key_len, const void *msg, size_t msg_len,
                        unsigned char out[32])
{
    /* HMAC() treats a NULL key specially; an empty key is a valid key. */
    static const unsigned char empty = 0;
    unsigned int out_len = 0;
    if (key == NULL || key_len == 0) {
        key = &empty;
        key_len = 0;
    }
    if (msg == NULL)
        msg = &empty;
    if (key_len > (size_t)INT_MAX)
        crypto_fail("HMAC key length");
    if (HMAC(EVP_sha256(), key, (int)key_len, msg, msg_len, out, &out_len) == NULL || out_len != 32)
        crypto_fail("HMAC");
}

void crypto_hmac_sha256_hex(const void *key, size_t key_len, const void *msg, size_t msg_len,
                            char out[CRYPTO_SHA256_HEX])
{
    unsigned char mac[32];
    crypto_hmac_sha256(key, key_len, msg, msg_len, mac);
    crypto_hex(mac, sizeof mac, out);
}

void crypto_derive_key(const unsigned char master[32], const char *label, unsigned char out[32])
{
    crypto_hmac_sha256(master, 32, label, strlen(label), out);
}

bool crypto_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

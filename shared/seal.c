/* seal: authenticated encryption of small secrets at rest (AES-256-GCM).
 *
 * Each seal draws a fresh 96-bit nonce (GCM's native size), encrypts with
 * the context string as associated data and appends the 128-bit tag:
 *
 *     v1.<base64url nonce>.<base64url ciphertext || tag>
 *
 * Design: opening checks everything before trusting anything: the version,
 * the exact nonce length, the size bounds, canonical base64url, and only
 * then the tag, which covers the ciphertext and the context. All refusals
 * look the same to the caller (BILLOW_EPARAM_INVALID), so a caller cannot
 * turn the difference between "bad tag" and "bad shape" into an oracle.
 * Random nonces are safe here: the GCM limit of about 2^32 messages per key
 * with random nonces is far beyond the secrets one tenant base will seal.
 */
#include "seal.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "mem.h"

#define SEAL_NONCE_BYTES 12
#define SEAL_TAG_BYTES   16
#define SEAL_PREFIX      "v1."
#define SEAL_PREFIX_LEN  3
/* Unpadded base64 length of n bytes. */
#define B64_LEN(n) (((n)*4 + 2) / 3)
/* Padded base64 length of n bytes, the size EVP_EncodeBlock writes. */
#define B64_PADDED_LEN(n) ((((n) + 2) / 3) * 4)
/* Longest body (ciphertext and tag) of an acceptable seal. */
#define SEAL_BODY_MAX (SEAL_PLAIN_MAX + SEAL_TAG_BYTES)
/* Longest sealed text opened; anything longer is refused before any
 * decoding, so a huge column value costs no more than a strlen bound. */
#define SEAL_TEXT_MAX (SEAL_PREFIX_LEN + B64_LEN(SEAL_NONCE_BYTES) + 1 + B64_LEN(SEAL_BODY_MAX))

static void openssl_fail(const char *what)
{
    /* These calls fail only when OpenSSL cannot allocate or its AES
     * implementation is missing: the same "cannot go on" as out of memory. */
    fprintf(stderr, "billow: OpenSSL %s failed in seal\n", what);
    abort();
}

/* base64url without padding of n bytes into out (size B64_PADDED_LEN(n) + 1). */
static void b64url_encode(const unsigned char *in, size_t n, char *out)
{
    int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);
    while (len > 0 && out[len - 1] == '=')
        len--;
    out[len] = '\0';
    for (int i = 0; i < len; i++) {
        if (out[i] == '+')
            out[i] = '-';
        else if (out[i] == '/')
            out[i] = '_';
    }
}

/* Decodes in_len characters of unpadded base64url into out (size at least
 * 3 * (in_len / 4 + 1)). Returns the byte count, or -1 for characters
 * outside the alphabet, an impossible length, or a non-canonical last
 * character. */
static long b64url_decode(const char *in, size_t in_len, unsigned char *out)
{
    long rc = -1;
    char *std = NULL;
    char *again = NULL;
    size_t pad = (4 - in_len % 4) % 4;
    /* One character past a multiple of four carries 6 bits: no byte. */
    if (pad == 3)
        goto fail;
    std = mem_alloc(in_len + pad + 1);
    for (size_t i = 0; i < in_len; i++) {
        char c = in[i];
        if (c == '-')
            c = '+';
        else if (c == '_')
            c = '/';
        else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
            goto fail;
        std[i] = c;
    }
    memset(std + in_len, '=', pad);
    std[in_len + pad] = '\0';
    int n = EVP_DecodeBlock(out, (const unsigned char *)std, (int)(in_len + pad));
    if (n < 0 || (size_t)n < pad)
        goto fail;
    size_t bytes = (size_t)n - pad;
    /* Re-encoding must give back the input: otherwise stray low bits in the
     * last character made a second spelling of the same bytes. */
    again = mem_alloc(B64_PADDED_LEN(bytes) + 1);
    b64url_encode(out, bytes, again);
    if (strlen(again) != in_len || memcmp(again, in, in_len) != 0)
        goto fail;
    rc = (long)bytes;
fail:
    free(again);
    free(std);
    return rc;
}

int seal_key_parse(const char *hex, seal_key_t *key)
{
    seal_key_t k;
    int rc = BILLOW_EPARAM_INVALID;
    if (hex == NULL || strnlen(hex, 2 * SEAL_KEY_BYTES + 1) != 2 * SEAL_KEY_BYTES)
        goto fail;
    for (size_t i = 0; i < 2 * SEAL_KEY_BYTES; i++) {
        char c = hex[i];
        int v;
        if (c >= '0' && c <= '9')
            v = c - '0';
        else if (c >= 'a' && c <= 'f')
            v = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v = c - 'A' + 10;
        else
            goto fail;
        if (i % 2 == 0)
            k.key[i / 2] = (unsigned char)(v << 4);
        else
            k.key[i / 2] |= (unsigned char)v;
    }
    *key = k;
    rc = 0;
fail:
    OPENSSL_cleanse(&k, sizeof k);
    return rc;
}

char *seal_encrypt(const seal_key_t *key, const char *context, const void *plain, size_t len)
{
    static const unsigned char empty = 0;
    unsigned char nonce[SEAL_NONCE_BYTES];
    unsigned char *body = NULL;
    char *text = NULL;
    EVP_CIPHER_CTX *ctx = NULL;
    int outl = 0;
    int finl = 0;

    if (len > SEAL_PLAIN_MAX)
        return NULL;
    if (context == NULL)
        context = "";
    if (plain == NULL)
        plain = &empty;
    crypto_random_bytes(nonce, sizeof nonce);
    body = mem_alloc(len + SEAL_TAG_BYTES);
    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL)
        openssl_fail("EVP_CIPHER_CTX_new");
    if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, SEAL_NONCE_BYTES, NULL) != 1 ||
        EVP_EncryptInit_ex(ctx, NULL, NULL, key->key, nonce) != 1)
        openssl_fail("AES-GCM init");
    if (EVP_EncryptUpdate(ctx, NULL, &outl, (const unsigned char *)context, (int)strlen(context)) !=
            1 ||
        EVP_EncryptUpdate(ctx, body, &outl, plain, (int)len) != 1 ||
        EVP_EncryptFinal_ex(ctx, body + outl, &finl) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, SEAL_TAG_BYTES, body + len) != 1)
        openssl_fail("AES-GCM encrypt");

    size_t body_len = len + SEAL_TAG_BYTES;
    text = mem_alloc(SEAL_PREFIX_LEN + B64_PADDED_LEN(SEAL_NONCE_BYTES) + 1 +
                     B64_PADDED_LEN(body_len) + 1);
    memcpy(text, SEAL_PREFIX, SEAL_PREFIX_LEN);
    char *p = text + SEAL_PREFIX_LEN;
    b64url_encode(nonce, sizeof nonce, p);
    p += strlen(p);
    *p++ = '.';
    b64url_encode(body, body_len, p);

    EVP_CIPHER_CTX_free(ctx);
    free(body);
    return text;
}

int seal_decrypt(const seal_key_t *key, const char *context, const char *sealed, char **plain,
                 size_t *len)
{
    int rc = BILLOW_EPARAM_INVALID;
    unsigned char nonce[3 * (B64_LEN(SEAL_NONCE_BYTES) / 4 + 1)];
    unsigned char *body = NULL;
    unsigned char *out = NULL;
    EVP_CIPHER_CTX *ctx = NULL;
    size_t plain_len = 0;
    int outl = 0;
    int finl = 0;

    if (sealed == NULL || plain == NULL || len == NULL)
        goto fail;
    if (context == NULL)
        context = "";
    size_t text_len = strnlen(sealed, SEAL_TEXT_MAX + 1);
    if (text_len > SEAL_TEXT_MAX || strncmp(sealed, SEAL_PREFIX, SEAL_PREFIX_LEN) != 0)
        goto fail;
    const char *nonce_b64 = sealed + SEAL_PREFIX_LEN;
    const char *dot = memchr(nonce_b64, '.', text_len - SEAL_PREFIX_LEN);
    if (dot == NULL || (size_t)(dot - nonce_b64) != B64_LEN(SEAL_NONCE_BYTES) ||
        b64url_decode(nonce_b64, B64_LEN(SEAL_NONCE_BYTES), nonce) != SEAL_NONCE_BYTES)
        goto fail;
    const char *body_b64 = dot + 1;
    size_t body_b64_len = text_len - (size_t)(body_b64 - sealed);
    body = mem_alloc(3 * (body_b64_len / 4 + 1));
    long body_len = b64url_decode(body_b64, body_b64_len, body);
    if (body_len < SEAL_TAG_BYTES || body_len > SEAL_BODY_MAX)
        goto fail;
    plain_len = (size_t)body_len - SEAL_TAG_BYTES;

    out = mem_alloc(plain_len + 1);
    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL)
        openssl_fail("EVP_CIPHER_CTX_new");
    if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, SEAL_NONCE_BYTES, NULL) != 1 ||
        EVP_DecryptInit_ex(ctx, NULL, NULL, key->key, nonce) != 1)
        openssl_fail("AES-GCM init");
    if (EVP_DecryptUpdate(ctx, NULL, &outl, (const unsigned char *)context, (int)strlen(context)) !=
            1 ||
        EVP_DecryptUpdate(ctx, out, &outl, body, (int)plain_len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, SEAL_TAG_BYTES, body + plain_len) != 1)
        openssl_fail("AES-GCM decrypt");
    /* The tag is checked here: a wrong key, context or any flipped bit. */
    if (EVP_DecryptFinal_ex(ctx, out + outl, &finl) != 1)
        goto fail;
    out[plain_len] = '\0';
    *plain = (char *)out;
    *len = plain_len;
    out = NULL;
    rc = 0;
fail:
    if (out != NULL) {
        OPENSSL_cleanse(out, plain_len + 1);
        free(out);
    }
    EVP_CIPHER_CTX_free(ctx);
    free(body);
    return rc;
}

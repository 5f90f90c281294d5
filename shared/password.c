/* password: staff passwords — the policy, and scrypt hashes.
 *
 * The policy follows NIST SP 800-63B rather than composition rules: a
 * length floor counted in characters, a byte ceiling, and a refusal of the
 * passwords attackers try first (common_passwords.c), without demanding
 * digits or symbols that push people towards "Password1!".
 *
 * Design: an encoded hash carries its own parameters, so a hash written at
 * ln=15 still verifies after the configured cost is raised. Parsing is
 * strict (exact lengths, canonical base64, bounded parameters) because the
 * parameters decide how much memory a verification takes: a hash string
 * that reached the database by some other bug must not be able to make one
 * sign-in allocate gigabytes.
 */
#include "password.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "crypto.h"

/* The list of common passwords, lower-case (common_passwords.c). */
extern const char *const password_common_list[];
extern const size_t password_common_count;

/* Bounds on scrypt's parameters, for hashes written and hashes read. Memory
 * is about 128 * r * 2^ln bytes: the bounds cap it at 2 GiB (ln=20, r=16),
 * so a crafted "$scrypt$ln=40,..." cannot ask for a terabyte, and the floor
 * refuses trivially cheap hashes. The api's configuration narrows what it
 * writes further (ln 14..20, r 8, p 1). */
#define PASSWORD_LOG_N_MIN 10
#define PASSWORD_LOG_N_MAX 20
#define PASSWORD_R_MIN     1
#define PASSWORD_R_MAX     8
/* Parallelism multiplies CPU time per hash; the api hashes on a few pool
 * threads, so more than 4 would only let one hash starve the others. */
#define PASSWORD_P_MIN 1
#define PASSWORD_P_MAX 4
/* scrypt's memory ceiling handed to OpenSSL (its default, about 1 GiB, is
 * just too low for r=8 at ln=20): exactly what the largest parameters in
 * bounds need, B (128*r*p) plus V, X and T (128*r*(N+2)). The bounds above
 * are what limit memory; this only stops OpenSSL refusing legal ones. */
#define PASSWORD_SCRYPT_MAXMEM                                                                     \
    ((uint64_t)128 * PASSWORD_R_MAX * (((uint64_t)1 << PASSWORD_LOG_N_MAX) + 2 + PASSWORD_P_MAX))

#define PREFIX "$scrypt$"
/* Longest base64 field this module decodes, padded, with its NUL. */
#define B64_FIELD_MAX (((PASSWORD_HASH_BYTES + 2) / 3) * 4 + 1)

static bool params_in_bounds(const password_params_t *p)
{
    if (p->log_n < PASSWORD_LOG_N_MIN || p->log_n > PASSWORD_LOG_N_MAX || p->r < PASSWORD_R_MIN ||
        p->r > PASSWORD_R_MAX || p->p < PASSWORD_P_MIN || p->p > PASSWORD_P_MAX)
        return false;
    /* RFC 7914 requires N < 2^(16*r); OpenSSL refuses otherwise (only r=1
     * with ln >= 16 falls foul of it within the bounds). */
    return p->log_n < 16 * p->r;
}

/* Standard base64 of n bytes without padding into out (size >= 4*ceil(n/3)+1). */
static void b64_encode(const unsigned char *in, size_t n, char *out)
{
    int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);
    while (len > 0 && out[len - 1] == '=')
        len--;
    out[len] = '\0';
}

static bool is_b64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/* Decodes exactly in_len unpadded base64 characters into exactly want bytes.
 * Refuses other alphabets, wrong lengths and non-canonical text (stray bits
 * in the last character), so each hash has one spelling. */
static bool b64_decode_exact(const char *in, size_t in_len, unsigned char *out, size_t want)
{
    char padded[B64_FIELD_MAX];
    unsigned char raw[B64_FIELD_MAX];
    char again[B64_FIELD_MAX];
    bool ok = false;

    size_t pad = (4 - in_len % 4) % 4;
    if (in_len != (want * 4 + 2) / 3 || in_len + pad >= sizeof padded)
        return false;
    for (size_t i = 0; i < in_len; i++)
        if (!is_b64_char(in[i]))
            return false;
    memcpy(padded, in, in_len);
    memset(padded + in_len, '=', pad);
    padded[in_len + pad] = '\0';
    /* EVP_DecodeBlock counts the zero bytes standing for padding; drop them. */
    int n = EVP_DecodeBlock(raw, (const unsigned char *)padded, (int)(in_len + pad));
    if (n < 0 || (size_t)n != want + pad)
        goto fail;
    b64_encode(raw, want, again);
    if (strncmp(again, in, in_len) != 0 || again[in_len] != '\0')
        goto fail;
    memcpy(out, raw, want);
    ok = true;
fail:
    OPENSSL_cleanse(raw, sizeof raw);
    return ok;
}

/* Reads 1 to 3 decimal digits at *s, advancing it. Leading zeros are
 * refused so each parameter has one spelling. */
static bool read_small_int(const char **s, int *out)
{
    const char *p = *s;
    int v = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 3) {
        v = v * 10 + (*p - '0');
        p++;
        digits++;
    }
    if (digits == 0 || (digits > 1 && **s == '0') || (*p >= '0' && *p <= '9'))
        return false;
    *s = p;
    *out = v;
    return true;
}

static bool expect(const char **s, const char *lit)
{
    size_t n = strlen(lit);
    if (strncmp(*s, lit, n) != 0)
        return false;
    *s += n;
    return true;
}

/* Splits encoded into its parameters, salt and hash. */
static int parse(const char *encoded, password_params_t *params,
                 unsigned char salt[PASSWORD_SALT_BYTES], unsigned char hash[PASSWORD_HASH_BYTES])
{
    if (encoded == NULL || strnlen(encoded, PASSWORD_ENCODED_MAX) >= PASSWORD_ENCODED_MAX)
        return BILLOW_EPARAM_INVALID;
    const char *s = encoded;
    password_params_t p;
    if (!expect(&s, PREFIX "ln=") || !read_small_int(&s, &p.log_n) || !expect(&s, ",r=") ||
        !read_small_int(&s, &p.r) || !expect(&s, ",p=") || !read_small_int(&s, &p.p) ||
        !expect(&s, "$"))
        return BILLOW_EPARAM_INVALID;
    if (!params_in_bounds(&p))
        return BILLOW_EPARAM_INVALID;
    const char *dollar = strchr(s, '$');
    if (dollar == NULL || !b64_decode_exact(s, (size_t)(dollar - s), salt, PASSWORD_SALT_BYTES))
        return BILLOW_EPARAM_INVALID;
    s = dollar + 1;
    if (!b64_decode_exact(s, strlen(s), hash, PASSWORD_HASH_BYTES))
        return BILLOW_EPARAM_INVALID;
    *params = p;
    return 0;
}

/* scrypt of pw under salt and params into out. */
static int derive(const char *pw, const password_params_t *params,
                  const unsigned char salt[PASSWORD_SALT_BYTES],
                  unsigned char out[PASSWORD_HASH_BYTES])
{
    int rc = BILLOW_EINTERNAL;
    EVP_KDF *kdf = NULL;
    EVP_KDF_CTX *ctx = NULL;
    uint64_t n = (uint64_t)1 << params->log_n;
    uint32_t r = (uint32_t)params->r;
    uint32_t p = (uint32_t)params->p;
    uint64_t maxmem = PASSWORD_SCRYPT_MAXMEM;

    kdf = EVP_KDF_fetch(NULL, "SCRYPT", NULL);
    if (kdf == NULL)
        goto fail;
    ctx = EVP_KDF_CTX_new(kdf);
    if (ctx == NULL)
        goto fail;
    OSSL_PARAM ossl[] = {
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, (void *)pw, strlen(pw)),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, PASSWORD_SALT_BYTES),
        OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n),
        OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r),
        OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p),
        OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem),
        OSSL_PARAM_construct_end(),
    };
    if (EVP_KDF_derive(ctx, out, PASSWORD_HASH_BYTES, ossl) != 1)
        goto fail;
    rc = 0;
fail:
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
    return rc;
}

/* ASCII case-insensitive equality: the list is ASCII, and folding only
 * ASCII keeps the answer independent of the locale. */
static bool equal_fold(const char *a, const char *b)
{
    for (;; a++, b++) {
        char ca = (*a >= 'A' && *a <= 'Z') ? (char)(*a - 'A' + 'a') : *a;
        char cb = (*b >= 'A' && *b <= 'Z') ? (char)(*b - 'A' + 'a') : *b;
        if (ca != cb)
            return false;
        if (ca == '\0')
            return true;
    }
}

static bool is_common(const char *pw)
{
    for (size_t i = 0; i < password_common_count; i++)
        if (equal_fold(pw, password_common_list[i]))
            return true;
    return false;
}

/* Code points in valid UTF-8: every byte but continuation bytes starts one. */
static size_t count_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80)
            n++;
    return n;
}

/* True when valid UTF-8 s is its first character over and over. */
static bool one_char_repeated(const char *s, size_t len)
{
    size_t first = 1;
    while (first < len && ((unsigned char)s[first] & 0xc0) == 0x80)
        first++;
    if (len % first != 0)
        return false;
    for (size_t i = first; i < len; i += first)
        if (memcmp(s + i, s, first) != 0)
            return false;
    return true;
}

int password_check_policy(const char *param, const char *pw, validate_error_t *err)
{
    if (pw == NULL)
        return validate_fail(err, BILLOW_EPARAM_MISSING, param, "%s is required.", param);
    size_t len = strnlen(pw, PASSWORD_MAX_BYTES + 1);
    if (len > PASSWORD_MAX_BYTES)
        return validate_fail(err, BILLOW_EPARAM_INVALID, param, "%s must be at most %d bytes long.",
                             param, PASSWORD_MAX_BYTES);
    if (!validate_utf8_printable(pw, len))
        return validate_fail(err, BILLOW_EPARAM_INVALID, param,
                             "%s must be valid UTF-8 without control characters.", param);
    if (count_chars(pw, len) < PASSWORD_MIN_CHARS)
        return validate_fail(err, BILLOW_EPASSWORD_TOO_SHORT, param,
                             "%s must be at least %d characters long.", param, PASSWORD_MIN_CHARS);
    if (one_char_repeated(pw, len) || is_common(pw))
        return validate_fail(err, BILLOW_EPASSWORD_TOO_COMMON, param,
                             "%s is too easy to guess: it is one of the first passwords an "
                             "attacker would try. A few unrelated words make a strong one.",
                             param);
    return 0;
}

int password_hash(const char *pw, const password_params_t *params, char out[PASSWORD_ENCODED_MAX])
{
    int rc = BILLOW_EPARAM_INVALID;
    unsigned char salt[PASSWORD_SALT_BYTES];
    unsigned char hash[PASSWORD_HASH_BYTES];
    char salt_b64[B64_FIELD_MAX];
    char hash_b64[B64_FIELD_MAX];

    if (pw == NULL || params == NULL || !params_in_bounds(params))
        goto fail;
    crypto_random_bytes(salt, sizeof salt);
    rc = derive(pw, params, salt, hash);
    if (rc != 0)
        goto fail;
    b64_encode(salt, sizeof salt, salt_b64);
    b64_encode(hash, sizeof hash, hash_b64);
    int n = snprintf(out, PASSWORD_ENCODED_MAX, PREFIX "ln=%d,r=%d,p=%d$%s$%s", params->log_n,
                     params->r, params->p, salt_b64, hash_b64);
    /* Cannot happen within the bounds (the longest is under 100 bytes), but
     * a truncated hash would lock the user out, so say so rather than store it. */
    if (n < 0 || n >= PASSWORD_ENCODED_MAX) {
        rc = BILLOW_EINTERNAL;
        goto fail;
    }
    rc = 0;
fail:
    OPENSSL_cleanse(hash, sizeof hash);
    OPENSSL_cleanse(hash_b64, sizeof hash_b64);
    return rc;
}

int password_verify(const char *encoded, const char *pw, bool *ok)
{
    password_params_t params;
    unsigned char salt[PASSWORD_SALT_BYTES];
    unsigned char want[PASSWORD_HASH_BYTES];
    unsigned char got[PASSWORD_HASH_BYTES];
    int rc = parse(encoded, &params, salt, want);
    if (rc != 0)
        goto fail;
    if (pw == NULL) {
        rc = BILLOW_EPARAM_INVALID;
        goto fail;
    }
    rc = derive(pw, &params, salt, got);
    if (rc != 0)
        goto fail;
    *ok = CRYPTO_memcmp(got, want, sizeof want) == 0;
fail:
    OPENSSL_cleanse(got, sizeof got);
    OPENSSL_cleanse(want, sizeof want);
    return rc;
}

int password_parse_params(const char *encoded, password_params_t *out)
{
    unsigned char salt[PASSWORD_SALT_BYTES];
    unsigned char hash[PASSWORD_HASH_BYTES];
    password_params_t params;
    int rc = parse(encoded, &params, salt, hash);
    if (rc == 0)
        *out = params;
    return rc;
}

/* totp: time-based one-time passwords (RFC 6238) and recovery codes.
 *
 * A TOTP code is HOTP (RFC 4226) of the number of 30-second steps since the
 * epoch: HMAC of the step as 8 big-endian bytes, "dynamically truncated" to
 * 31 bits, taken modulo 10^digits. totp_verify returns the step it matched
 * so the caller can store it; passing that back as last_step is what makes
 * each code single-use.
 *
 * Recovery codes are ten characters from a 31-letter alphabet without the
 * look-alikes 0/o, 1/l/i (about 49 bits each), stored only as SHA-256 hex of
 * their normalised form, so "ABCDE-FGHJK" typed from a printout matches.
 */
#include "totp.h"

#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* RFC 4226 requires a shared secret of at least 128 bits; anything shorter
 * handed to totp_verify is not one of Billow's (which are 160 bits). */
#define TOTP_SECRET_MIN_BYTES 16
/* Longest secret totp_verify decodes: 512 bits, the size RFC 6238 pairs
 * with SHA-512; a longer "secret" is corrupt data, not a key. */
#define TOTP_SECRET_MAX_BYTES 64
/* Digits a HOTP value may have: RFC 4226 allows 6 to 8 (at most 31 bits). */
#define HOTP_DIGITS_MIN 6
#define HOTP_DIGITS_MAX 8

/* RFC 4648 base32 alphabet. */
static const char b32_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/* Recovery-code characters: digits and lower-case letters without 0, 1, i,
 * l and o, which read alike on paper. */
static const char recovery_alphabet[] = "23456789abcdefghjkmnpqrstuvwxyz";
#define RECOVERY_ALPHABET_LEN 31
/* Characters in a recovery code, without its dash. */
#define RECOVERY_CHARS 10
/* Bytes at or above the largest multiple of 31 under 256 are redrawn, so
 * every character is equally likely. */
#define RECOVERY_BYTE_LIMIT (256 - 256 % RECOVERY_ALPHABET_LEN)

static const EVP_MD *digest_by_name(const char *name)
{
    if (name == NULL)
        return NULL;
    if (strcmp(name, "SHA1") == 0)
        return EVP_sha1();
    if (strcmp(name, "SHA256") == 0)
        return EVP_sha256();
    if (strcmp(name, "SHA512") == 0)
        return EVP_sha512();
    return NULL;
}

int totp_hotp(const unsigned char *key, size_t key_len, const char *digest, uint64_t counter,
              int digits, char out[9])
{
    static const uint32_t powers[] = {1000000, 10000000, 100000000};
    /* HMAC() treats a NULL key as "reuse the last one"; pass a real pointer. */
    static const unsigned char empty = 0;
    const EVP_MD *md = digest_by_name(digest);
    unsigned char msg[8];
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    int rc = BILLOW_EPARAM_INVALID;

    if (md == NULL || digits < HOTP_DIGITS_MIN || digits > HOTP_DIGITS_MAX ||
        key_len > (size_t)INT_MAX)
        goto fail;
    if (key == NULL)
        key = &empty;
    for (int i = 7; i >= 0; i--) {
        msg[i] = (unsigned char)(counter & 0xff);
        counter >>= 8;
    }
    if (HMAC(md, key, (int)key_len, msg, sizeof msg, mac, &mac_len) == NULL || mac_len < 20) {
        rc = BILLOW_EINTERNAL;
        goto fail;
    }
    unsigned off = mac[mac_len - 1] & 0x0f;
    uint32_t bin = ((uint32_t)(mac[off] & 0x7f) << 24) | ((uint32_t)mac[off + 1] << 16) |
                   ((uint32_t)mac[off + 2] << 8) | (uint32_t)mac[off + 3];
    uint32_t value = bin % powers[digits - HOTP_DIGITS_MIN];
    for (int i = digits - 1; i >= 0; i--) {
        out[i] = (char)('0' + value % 10);
        value /= 10;
    }
    out[digits] = '\0';
    rc = 0;
fail:
    OPENSSL_cleanse(mac, sizeof mac);
    return rc;
}

uint64_t totp_step(int64_t unix_s)
{
    /* Before 1970 there are no steps; treating it as step 0 keeps the
     * arithmetic unsigned and such a clock is wrong anyway. */
    if (unix_s < 0)
        return 0;
    return (uint64_t)unix_s / TOTP_PERIOD_S;
}

void totp_base32_encode(const unsigned char *in, size_t n, char *out, size_t out_len)
{
    size_t o = 0;
    uint32_t buf = 0;
    int bits = 0;
    if (out_len == 0)
        return;
    for (size_t i = 0; i < n && o + 1 < out_len; i++) {
        buf = (buf << 8) | in[i];
        bits += 8;
        while (bits >= 5 && o + 1 < out_len) {
            out[o++] = b32_alphabet[(buf >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    if (bits > 0 && o + 1 < out_len)
        out[o++] = b32_alphabet[(buf << (5 - bits)) & 31];
    out[o] = '\0';
}

static int b32_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a';
    if (c >= '2' && c <= '7')
        return c - '2' + 26;
    return -1;
}

int totp_base32_decode(const char *in, unsigned char *out, size_t out_len)
{
    uint32_t buf = 0;
    int bits = 0;
    size_t n = 0;
    bool padding = false;
    if (in == NULL)
        return BILLOW_EPARAM_INVALID;
    for (const char *p = in; *p != '\0'; p++) {
        if (*p == ' ')
            continue;
        if (*p == '=') {
            padding = true;
            continue;
        }
        int v = b32_value(*p);
        /* Padding ends the text: data after it is not base32. */
        if (v < 0 || padding)
            return BILLOW_EPARAM_INVALID;
        buf = (buf << 5) | (uint32_t)v;
        bits += 5;
        if (bits >= 8) {
            if (n >= out_len || n >= (size_t)INT_MAX)
                return BILLOW_EPARAM_INVALID;
            out[n++] = (unsigned char)(buf >> (bits - 8));
            bits -= 8;
        }
    }
    /* 5 or more bits left means a character that completes no byte: the
     * text was cut (1, 3 or 6 characters past a multiple of 8). */
    if (bits >= 5)
        return BILLOW_EPARAM_INVALID;
    return (int)n;
}

void totp_new_secret(char out[TOTP_SECRET_B32_LEN + 1])
{
    unsigned char secret[TOTP_SECRET_BYTES];
    crypto_random_bytes(secret, sizeof secret);
    totp_base32_encode(secret, sizeof secret, out, TOTP_SECRET_B32_LEN + 1);
    OPENSSL_cleanse(secret, sizeof secret);
}

static bool is_code_shape(const char *code)
{
    if (code == NULL)
        return false;
    for (int i = 0; i < TOTP_DIGITS; i++)
        if (code[i] < '0' || code[i] > '9')
            return false;
    return code[TOTP_DIGITS] == '\0';
}

int totp_verify(const char *secret_b32, int64_t now_s, const char *code, uint64_t last_step,
                uint64_t *matched_step)
{
    unsigned char key[TOTP_SECRET_MAX_BYTES];
    char want[9];
    int rc = BILLOW_EPARAM_INVALID;
    int n = totp_base32_decode(secret_b32, key, sizeof key);
    if (n < TOTP_SECRET_MIN_BYTES)
        goto fail;
    rc = BILLOW_ETOTP_INVALID;
    if (!is_code_shape(code))
        goto fail;
    uint64_t now = totp_step(now_s);
    uint64_t first = now >= TOTP_WINDOW ? now - TOTP_WINDOW : 0;
    bool found = false;
    uint64_t found_step = 0;
    /* Every step in the window is tried even after a match, and the latest
     * match wins: should two steps share a code, the later one is recorded,
     * so neither can be used again. */
    for (uint64_t step = first; step <= now + TOTP_WINDOW; step++) {
        if (step <= last_step)
            continue;
        int hrc = totp_hotp(key, (size_t)n, "SHA1", step, TOTP_DIGITS, want);
        if (hrc != 0) {
            rc = hrc;
            goto fail;
        }
        if (crypto_equal(want, code, TOTP_DIGITS)) {
            found = true;
            found_step = step;
        }
    }
    if (!found)
        goto fail;
    *matched_step = found_step;
    rc = 0;
fail:
    OPENSSL_cleanse(key, sizeof key);
    OPENSSL_cleanse(want, sizeof want);
    return rc;
}

/* Writes s percent-encoded (all but RFC 3986 unreserved characters) at
 * out + *pos. Returns false when out_len is too small. */
static bool put_encoded(char *out, size_t out_len, size_t *pos, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        bool plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                     (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~';
        size_t need = plain ? 1 : 3;
        if (*pos + need >= out_len)
            return false;
        if (plain) {
            out[(*pos)++] = (char)*p;
        } else {
            out[(*pos)++] = '%';
            out[(*pos)++] = hex[*p >> 4];
            out[(*pos)++] = hex[*p & 15];
        }
    }
    out[*pos] = '\0';
    return true;
}

/* Writes s as is at out + *pos. Returns false when out_len is too small. */
static bool put_literal(char *out, size_t out_len, size_t *pos, const char *s)
{
    size_t n = strlen(s);
    if (*pos + n >= out_len)
        return false;
    memcpy(out + *pos, s, n + 1);
    *pos += n;
    return true;
}

int totp_uri(const char *issuer, const char *account, const char *secret_b32, char *out,
             size_t out_len)
{
    size_t pos = 0;
    char tail[64];
    if (issuer == NULL || account == NULL || secret_b32 == NULL || out == NULL || out_len == 0)
        return BILLOW_EPARAM_INVALID;
    snprintf(tail, sizeof tail, "&algorithm=SHA1&digits=%d&period=%d", TOTP_DIGITS, TOTP_PERIOD_S);
    /* The issuer appears twice, as the label's prefix and as a parameter:
     * Google's Key Uri Format asks for both, for old and new apps. */
    if (!put_literal(out, out_len, &pos, "otpauth://totp/") ||
        !put_encoded(out, out_len, &pos, issuer) || !put_literal(out, out_len, &pos, ":") ||
        !put_encoded(out, out_len, &pos, account) || !put_literal(out, out_len, &pos, "?secret=") ||
        !put_encoded(out, out_len, &pos, secret_b32) ||
        !put_literal(out, out_len, &pos, "&issuer=") || !put_encoded(out, out_len, &pos, issuer) ||
        !put_literal(out, out_len, &pos, tail)) {
        out[0] = '\0';
        return BILLOW_EPARAM_INVALID;
    }
    return 0;
}

void totp_recovery_code(char out[TOTP_RECOVERY_CODE_LEN + 1])
{
    unsigned char pool[32];
    size_t used = sizeof pool;
    int i = 0;
    while (i < RECOVERY_CHARS) {
        if (used == sizeof pool) {
            crypto_random_bytes(pool, sizeof pool);
            used = 0;
        }
        unsigned char b = pool[used++];
        if (b >= RECOVERY_BYTE_LIMIT)
            continue;
        /* "xxxxx-xxxxx": the dash after the fifth character. */
        int at = i < RECOVERY_CHARS / 2 ? i : i + 1;
        out[at] = recovery_alphabet[b % RECOVERY_ALPHABET_LEN];
        i++;
    }
    out[RECOVERY_CHARS / 2] = '-';
    out[TOTP_RECOVERY_CODE_LEN] = '\0';
    OPENSSL_cleanse(pool, sizeof pool);
}

int totp_recovery_hash(const unsigned char *key, size_t key_len, const char *code,
                       char out[CRYPTO_SHA256_HEX])
{
    char norm[RECOVERY_CHARS];
    size_t n = 0;
    int rc = BILLOW_EPARAM_INVALID;
    if (code == NULL)
        goto fail;
    for (const char *p = code; *p != '\0'; p++) {
        if (*p == ' ' || *p == '-')
            continue;
        char c = (*p >= 'A' && *p <= 'Z') ? (char)(*p - 'A' + 'a') : *p;
        if (strchr(recovery_alphabet, c) == NULL || n == RECOVERY_CHARS)
            goto fail;
        norm[n++] = c;
    }
    if (n != RECOVERY_CHARS)
        goto fail;
    crypto_hmac_sha256_hex(key, key_len, norm, sizeof norm, out);
    rc = 0;
fail:
    OPENSSL_cleanse(norm, sizeof norm);
    return rc;
}

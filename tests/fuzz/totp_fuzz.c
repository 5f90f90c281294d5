/* totp_fuzz: base32, totp_verify, recovery codes and the otpauth URI on
 * arbitrary text.
 *
 * Everything here sees text a staff user typed (a one-time code, a
 * recovery code, the account name shown in the authenticator) or a secret
 * read back from the database. The first input byte picks the sizes of the
 * output buffers, each allocated exactly so AddressSanitizer catches a
 * write past it; the rest is the text. Checked, each against independent
 * code in this file:
 *
 * - totp_base32_decode of the text returns BILLOW_EPARAM_INVALID or a
 *   count within the buffer; it accepts exactly RFC 4648 base32 (any case,
 *   spaces and trailing padding ignored, no cut character), the bytes it
 *   gives encode back to the text, and a buffer too small is refused rather
 *   than filled in part. The text's raw bytes, encoded with
 *   totp_base32_encode, decode back to themselves; a short encode buffer
 *   gets the start of the encoding.
 * - totp_verify with the text's lines as secret, code, now and last_step
 *   (the last two decimal, optional) returns 0, BILLOW_ETOTP_INVALID or
 *   BILLOW_EPARAM_INVALID; a 0 sets a step within now +- TOTP_WINDOW,
 *   after last_step, whose RFC 4226 value is the code, and no later step
 *   in the window has it; a refused code is no step's value. Text that is
 *   not base32 is BILLOW_EPARAM_INVALID, a secret of Billow's size is not.
 * - totp_recovery_hash under a fixed key returns 0 with 64 lower-case hex
 *   digits, the HMAC-SHA256 of the normalised code under that key, exactly
 *   when the text is ten recovery characters after dropping case, spaces
 *   and dashes; otherwise BILLOW_EPARAM_INVALID.
 * - totp_uri with the text as account (and as issuer) returns 0 and the
 *   URI, NUL-terminated within the buffer, exactly when it fits, and
 *   BILLOW_EPARAM_INVALID otherwise.
 */
#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdbool.h>

#include "fuzz.h"
#include "totp.h"

/* Largest decode buffer tried: small enough that short buffers are common. */
#define DECODE_OUT_MAX 48
/* Largest short encode buffer tried. */
#define ENCODE_OUT_MAX 64
/* now when the input gives none: the time the committed seeds' codes were
 * made for (2023-11-14T22:13:20Z). */
#define DEFAULT_NOW 1700000000
/* The issuer and secret the api puts in URIs, for the calls that fuzz the
 * other parts. */
#define ISSUER "Billow"
#define SECRET "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
/* Recovery-code characters, as totp.c's header comment describes them:
 * digits and lower-case letters without 0, 1, i, l and o. */
#define RECOVERY_ALPHABET "23456789abcdefghjkmnpqrstuvwxyz"
#define RECOVERY_CHARS    10
/* The key recovery codes are hashed under (bytes 00 01 .. 1f). */
#define RECOVERY_KEY_BYTES 32

static const char b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/* The value of base32 character c in either case, or -1. */
static int b32_value(char c)
{
    if (c >= 'a' && c <= 'z')
        c = (char)(c - 'a' + 'A');
    const char *p = c != '\0' ? strchr(b32, c) : NULL;
    return p != NULL ? (int)(p - b32) : -1;
}

/* The characters of text without spaces and padding into vals (their
 * values); returns how many, or -1 if the text is not base32 a decoder
 * should accept: another character, data after padding, or a length that
 * leaves a character completing no byte (1, 3 or 6 past a multiple of 8). */
static long b32_reference(const char *text, int *vals)
{
    long n = 0;
    bool padding = false;
    for (const char *p = text; *p != '\0'; p++) {
        if (*p == ' ')
            continue;
        if (*p == '=') {
            padding = true;
            continue;
        }
        int v = b32_value(*p);
        if (v < 0 || padding)
            return -1;
        vals[n++] = v;
    }
    long rest = n % 8;
    return rest == 1 || rest == 3 || rest == 6 ? -1 : n;
}

static void check_base32(const char *text, size_t dec_len)
{
    size_t text_len = strlen(text);
    int *vals = mem_alloc((text_len + 1) * sizeof *vals);
    long chars = b32_reference(text, vals);

    /* Five bits a character: a buffer of text_len bytes always suffices. */
    unsigned char *all = mem_alloc(text_len + 1);
    int n = totp_base32_decode(text, all, text_len + 1);
    FUZZ_CHECK(n >= 0 || n == BILLOW_EPARAM_INVALID, "totp_base32_decode returned %d", n);
    FUZZ_CHECK((n >= 0) == (chars >= 0), "decode answered %d for text that is%s base32: %s", n,
               chars >= 0 ? "" : " not", text);
    if (n >= 0) {
        FUZZ_CHECK(n == chars * 5 / 8, "%ld characters decoded to %d bytes", chars, n);
        char *again = mem_alloc((size_t)chars + 1);
        totp_base32_encode(all, (size_t)n, again, (size_t)chars + 1);
        for (long i = 0; i < chars; i++) {
            /* Bits of the last character past the last byte are not data. */
            int used = i < chars - 1 ? 5 : 8 * n - 5 * (int)(chars - 1);
            int shift = 5 - used;
            FUZZ_CHECK(b32_value(again[i]) >> shift == vals[i] >> shift,
                       "character %ld of \"%s\" decoded to other bits (re-encoded \"%s\")", i, text,
                       again);
        }
        free(again);
    }

    unsigned char *out = mem_alloc(dec_len);
    int rc = totp_base32_decode(text, out, dec_len);
    if (n >= 0 && (size_t)n <= dec_len) {
        FUZZ_CHECK(rc == n, "decode into %zu bytes returned %d, not %d", dec_len, rc, n);
        FUZZ_CHECK(n == 0 || memcmp(out, all, (size_t)n) == 0, "decode depends on the buffer size");
    } else {
        FUZZ_CHECK(rc == BILLOW_EPARAM_INVALID, "decode into %zu bytes returned %d (needs %d)",
                   dec_len, rc, n);
    }
    free(out);
    free(all);
    free(vals);
}

/* encode then decode of the raw bytes, and encode into a short buffer. */
static void check_round_trip(const uint8_t *data, size_t size, size_t enc_len)
{
    size_t full = (8 * size + 4) / 5;
    char *text = mem_alloc(full + 1);
    totp_base32_encode(data, size, text, full + 1);
    FUZZ_CHECK(strlen(text) == full, "%zu bytes encoded to %zu characters, not %zu", size,
               strlen(text), full);
    unsigned char *back = mem_alloc(size);
    int n = totp_base32_decode(text, back, size);
    FUZZ_CHECK(n >= 0 && (size_t)n == size, "decode(encode(%zu bytes)) returned %d", size, n);
    FUZZ_CHECK(size == 0 || memcmp(back, data, size) == 0, "decode(encode(x)) differs from x");
    free(back);

    char *part = mem_alloc(enc_len);
    totp_base32_encode(data, size, part, enc_len);
    size_t want = full < enc_len - 1 ? full : enc_len - 1;
    FUZZ_CHECK(strlen(part) == want && memcmp(part, text, want) == 0,
               "encode into %zu bytes gave \"%s\", not the start of \"%s\"", enc_len, part, text);
    free(part);
    free(text);
}

/* RFC 4226 HOTP-SHA1, 6 digits, of counter under key. */
static void hotp_reference(const unsigned char *key, size_t key_len, uint64_t counter,
                           char out[TOTP_DIGITS + 1])
{
    unsigned char msg[8];
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    for (int i = 0; i < 8; i++)
        msg[i] = (unsigned char)(counter >> (56 - 8 * i));
    FUZZ_CHECK(HMAC(EVP_sha1(), key, (int)key_len, msg, sizeof msg, mac, &mac_len) != NULL &&
                   mac_len == 20,
               "HMAC-SHA1 failed");
    unsigned off = mac[19] & 0x0f;
    uint32_t bin = ((uint32_t)(mac[off] & 0x7f) << 24) | ((uint32_t)mac[off + 1] << 16) |
                   ((uint32_t)mac[off + 2] << 8) | mac[off + 3];
    snprintf(out, TOTP_DIGITS + 1, "%06" PRIu32, bin % 1000000);
}

static bool is_code(const char *code)
{
    for (int i = 0; i < TOTP_DIGITS; i++)
        if (code[i] < '0' || code[i] > '9')
            return false;
    return code[TOTP_DIGITS] == '\0';
}

/* Cuts the line at *rest off it and returns it, or NULL when none is left. */
static char *next_line(char **rest)
{
    char *line = *rest;
    if (line == NULL)
        return NULL;
    char *nl = strchr(line, '\n');
    if (nl != NULL)
        *nl++ = '\0';
    *rest = nl;
    return line;
}

static void check_verify(char *text)
{
    char *rest = text;
    const char *secret = next_line(&rest);
    const char *code = next_line(&rest);
    const char *now_text = next_line(&rest);
    const char *last_text = next_line(&rest);
    if (code == NULL)
        code = "";
    int64_t now = now_text != NULL ? strtoll(now_text, NULL, 10) : DEFAULT_NOW;
    uint64_t last = last_text != NULL ? strtoull(last_text, NULL, 10) : 0;

    size_t secret_len = strlen(secret);
    unsigned char *key = mem_alloc(secret_len + 1);
    int key_len = totp_base32_decode(secret, key, secret_len + 1);

    uint64_t matched = UINT64_MAX;
    int rc = totp_verify(secret, now, code, last, &matched);
    FUZZ_CHECK(rc == 0 || rc == BILLOW_ETOTP_INVALID || rc == BILLOW_EPARAM_INVALID,
               "totp_verify returned %d", rc);
    if (key_len < 0)
        FUZZ_CHECK(rc == BILLOW_EPARAM_INVALID, "a secret that is not base32 gave %d", rc);
    if (key_len == TOTP_SECRET_BYTES)
        FUZZ_CHECK(rc != BILLOW_EPARAM_INVALID, "a secret of %d bytes was refused",
                   TOTP_SECRET_BYTES);
    if (rc == BILLOW_EPARAM_INVALID) {
        free(key);
        return;
    }

    uint64_t step = now < 0 ? 0 : (uint64_t)now / TOTP_PERIOD_S;
    uint64_t first = step >= TOTP_WINDOW ? step - TOTP_WINDOW : 0;
    if (rc == 0) {
        FUZZ_CHECK(is_code(code), "a code that is not %d digits matched: \"%s\"", TOTP_DIGITS,
                   code);
        FUZZ_CHECK(matched >= first && matched <= step + TOTP_WINDOW,
                   "matched step %" PRIu64 " is outside %" PRIu64 " +- %d", matched, step,
                   TOTP_WINDOW);
        FUZZ_CHECK(matched > last, "matched step %" PRIu64 " is not after the last %" PRIu64,
                   matched, last);
    }
    /* A code matches exactly the steps whose value it is; the latest wins. */
    if (is_code(code)) {
        for (uint64_t s = first; s <= step + TOTP_WINDOW; s++) {
            char want[TOTP_DIGITS + 1];
            hotp_reference(key, (size_t)key_len, s, want);
            bool same = strcmp(want, code) == 0;
            if (rc == 0 && s == matched)
                FUZZ_CHECK(same, "step %" PRIu64 " matched, but its code is %s, not %s", s, want,
                           code);
            if (s > last && (rc != 0 || s > matched))
                FUZZ_CHECK(!same, "code %s of step %" PRIu64 " was %s", code, s,
                           rc != 0 ? "refused" : "passed over for an earlier step");
        }
    }
    free(key);
}

static void check_recovery(const char *text)
{
    unsigned char key[RECOVERY_KEY_BYTES];
    for (size_t i = 0; i < sizeof key; i++)
        key[i] = (unsigned char)i;
    char norm[RECOVERY_CHARS];
    size_t n = 0;
    bool valid = true;
    for (const char *p = text; *p != '\0' && valid; p++) {
        if (*p == ' ' || *p == '-')
            continue;
        char c = (*p >= 'A' && *p <= 'Z') ? (char)(*p - 'A' + 'a') : *p;
        valid = strchr(RECOVERY_ALPHABET, c) != NULL && n < RECOVERY_CHARS;
        if (valid)
            norm[n++] = c;
    }
    valid = valid && n == RECOVERY_CHARS;

    char *out = mem_alloc(CRYPTO_SHA256_HEX);
    int rc = totp_recovery_hash(key, sizeof key, text, out);
    FUZZ_CHECK(rc == 0 || rc == BILLOW_EPARAM_INVALID, "totp_recovery_hash returned %d", rc);
    FUZZ_CHECK((rc == 0) == valid, "totp_recovery_hash answered %d for \"%s\"", rc, text);
    if (rc == 0) {
        unsigned char md[32];
        unsigned int md_len = 0;
        char want[CRYPTO_SHA256_HEX];
        FUZZ_CHECK(HMAC(EVP_sha256(), key, sizeof key, (const unsigned char *)norm, sizeof norm, md,
                        &md_len) != NULL &&
                       md_len == sizeof md,
                   "HMAC-SHA256 failed");
        for (size_t i = 0; i < sizeof md; i++)
            snprintf(want + 2 * i, 3, "%02x", md[i]);
        FUZZ_CHECK(out[CRYPTO_SHA256_HEX - 1] == '\0' && strcmp(out, want) == 0,
                   "recovery hash of \"%s\" is %.64s, not %s", text, out, want);
    }
    free(out);
}

/* s percent-encoded as RFC 3986 wants outside the unreserved characters. */
static char *percent_encode(const char *s)
{
    char *out = mem_alloc(3 * strlen(s) + 1);
    char *o = out;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~", *p) != NULL)
            *o++ = (char)*p;
        else
            o += sprintf(o, "%%%02X", *p);
    }
    *o = '\0';
    return out;
}

static void check_uri(const char *issuer, const char *account, size_t out_len)
{
    char *iss = percent_encode(issuer);
    char *acc = percent_encode(account);
    char *want =
        mem_printf("otpauth://totp/%s:%s?secret=%s&issuer=%s&algorithm=SHA1&digits=%d&period=%d",
                   iss, acc, SECRET, iss, TOTP_DIGITS, TOTP_PERIOD_S);
    char *out = mem_alloc(out_len);
    int rc = totp_uri(issuer, account, SECRET, out, out_len);
    FUZZ_CHECK(rc == 0 || rc == BILLOW_EPARAM_INVALID, "totp_uri returned %d", rc);
    bool fits = strlen(want) < out_len;
    FUZZ_CHECK((rc == 0) == fits, "totp_uri returned %d for %zu characters into %zu bytes", rc,
               strlen(want), out_len);
    if (rc == 0)
        FUZZ_CHECK(memchr(out, '\0', out_len) != NULL && strcmp(out, want) == 0,
                   "totp_uri wrote \"%.*s\", not \"%s\"", (int)out_len, out, want);
    free(out);
    free(want);
    free(acc);
    free(iss);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t dec_len = data[0] % (DECODE_OUT_MAX + 1);
    size_t enc_len = 1 + data[0] % ENCODE_OUT_MAX;
    size_t uri_len = 1 + 2 * (size_t)data[0];
    char *text = fuzz_cstring(data + 1, size - 1);

    check_base32(text, dec_len);
    check_round_trip(data + 1, size - 1, enc_len);
    check_recovery(text);
    check_uri(ISSUER, text, uri_len);
    check_uri(text, "ops@example.com", uri_len);
    /* Last: it cuts the text into lines. */
    check_verify(text);
    free(text);
    return 0;
}

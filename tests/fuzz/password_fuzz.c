/* password_fuzz: password_parse_params, password_verify and
 * password_check_policy on arbitrary text.
 *
 * An encoded hash is read back from the database at every sign-in, and its
 * parameters decide how much memory and time the verification takes, so
 * the parser is the guard against a crafted row that asks scrypt for
 * gigabytes. The policy sees whatever a staff user types.
 *
 * The input is split at its first newline: the text before it is the
 * encoded hash, the text after it the password (an input without a newline
 * is used as both). Checked: password_parse_params returns 0 or
 * BILLOW_EPARAM_INVALID, and on 0 the parameters are within the bounds
 * password.c enforces (copied below) and spelled canonically at the start
 * of the text, followed by a salt and a hash of exactly the documented
 * sizes; password_verify refuses everything parse refuses, with the same
 * code. Only when parse succeeds with log_n <= VERIFY_LOG_N_MAX is scrypt
 * run, so the fuzzer is not slowed down by it: then verify returns 0 and
 * its answer agrees with scrypt computed here through OpenSSL's
 * EVP_PBE_scrypt, and a fresh password_hash with the same parameters
 * parses to them and verifies the password. password_check_policy, on the
 * password, returns one of its documented codes,
 * fills the error with that code, the parameter name and a message, and
 * agrees with the policy's rules checked by independent code.
 */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>

#include "fuzz.h"
#include "password.h"

/* The bounds password.c puts on parameters it reads (its PASSWORD_LOG_N_*,
 * PASSWORD_R_* and PASSWORD_P_*, private to it): they keep a crafted hash
 * from making one verification allocate more than 2 GiB. */
#define LOG_N_MIN 10
#define LOG_N_MAX 20
#define R_MIN     1
#define R_MAX     8
#define P_MIN     1
#define P_MAX     4
/* Largest log_n verified: 2^12 blocks at r = 8 is 4 MiB and a few
 * milliseconds of scrypt, against up to seconds at the bound. */
#define VERIFY_LOG_N_MAX 12
/* Unpadded base64 lengths of the salt and the hash. */
#define SALT_B64_LEN ((PASSWORD_SALT_BYTES * 4 + 2) / 3)
#define HASH_B64_LEN ((PASSWORD_HASH_BYTES * 4 + 2) / 3)
/* scrypt's memory ceiling for the reference computation: enough for
 * VERIFY_LOG_N_MAX at R_MAX and P_MAX. */
#define REFERENCE_MAXMEM ((uint64_t)128 * R_MAX * (((uint64_t)1 << VERIFY_LOG_N_MAX) + 2 + P_MAX))
/* The parameter name handed to the policy, as the api passes it. */
#define PARAM "password"

/* Decodes len unpadded standard base64 characters at in into out, which
 * receives exactly want bytes. Returns false if OpenSSL refuses them. */
static bool b64_decode(const char *in, size_t len, unsigned char *out, size_t want)
{
    char padded[64];
    unsigned char raw[64];
    size_t pad = (4 - len % 4) % 4;
    if (len + pad >= sizeof padded)
        return false;
    memcpy(padded, in, len);
    memset(padded + len, '=', pad);
    int n = EVP_DecodeBlock(raw, (const unsigned char *)padded, (int)(len + pad));
    if (n < 0 || (size_t)n < want)
        return false;
    memcpy(out, raw, want);
    return true;
}

/* The answer password_verify must give for pw against the salt and hash at
 * salt_b64 (the salt, "$", the hash) under params, from OpenSSL's scrypt
 * directly. */
static bool reference_verify(const char *salt_b64, const password_params_t *params, const char *pw)
{
    unsigned char salt[PASSWORD_SALT_BYTES];
    unsigned char want[PASSWORD_HASH_BYTES];
    unsigned char got[PASSWORD_HASH_BYTES];
    const char *hash_b64 = salt_b64 + SALT_B64_LEN + 1;
    FUZZ_CHECK(b64_decode(salt_b64, SALT_B64_LEN, salt, sizeof salt), "salt %s", salt_b64);
    FUZZ_CHECK(b64_decode(hash_b64, HASH_B64_LEN, want, sizeof want), "hash %s", hash_b64);
    FUZZ_CHECK(EVP_PBE_scrypt(pw, strlen(pw), salt, sizeof salt, (uint64_t)1 << params->log_n,
                              (uint64_t)params->r, (uint64_t)params->p, REFERENCE_MAXMEM, got,
                              sizeof got) == 1,
               "EVP_PBE_scrypt failed for ln=%d,r=%d,p=%d", params->log_n, params->r, params->p);
    return CRYPTO_memcmp(got, want, sizeof want) == 0;
}

static bool is_b64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/* True when s is exactly n standard base64 characters and then end, where end
 * is '$' or '\0'. */
static bool b64_field(const char *s, size_t n, char end)
{
    for (size_t i = 0; i < n; i++)
        if (!is_b64_char(s[i]))
            return false;
    return s[n] == end;
}

/* Checks what parse accepted has the documented shape. Returns where its
 * salt begins. */
static const char *check_accepted(const char *encoded, const password_params_t *p)
{
    FUZZ_CHECK(p->log_n >= LOG_N_MIN && p->log_n <= LOG_N_MAX, "log_n %d out of bounds: %s",
               p->log_n, encoded);
    FUZZ_CHECK(p->r >= R_MIN && p->r <= R_MAX, "r %d out of bounds: %s", p->r, encoded);
    FUZZ_CHECK(p->p >= P_MIN && p->p <= P_MAX, "p %d out of bounds: %s", p->p, encoded);
    /* RFC 7914: N < 2^(16 r), or OpenSSL refuses to derive. */
    FUZZ_CHECK(p->log_n < 16 * p->r, "log_n %d not below 16 r (r = %d): %s", p->log_n, p->r,
               encoded);

    char head[64];
    int n = snprintf(head, sizeof head, "$scrypt$ln=%d,r=%d,p=%d$", p->log_n, p->r, p->p);
    FUZZ_CHECK(n > 0 && (size_t)n < sizeof head, "snprintf");
    FUZZ_CHECK(strncmp(encoded, head, (size_t)n) == 0,
               "parsed as ln=%d,r=%d,p=%d, which is not how the text spells them: %s", p->log_n,
               p->r, p->p, encoded);
    const char *salt = encoded + n;
    FUZZ_CHECK(b64_field(salt, SALT_B64_LEN, '$'), "salt is not %d base64 characters: %s",
               SALT_B64_LEN, encoded);
    FUZZ_CHECK(b64_field(salt + SALT_B64_LEN + 1, HASH_B64_LEN, '\0'),
               "hash is not %d base64 characters: %s", HASH_B64_LEN, encoded);
    return salt;
}

/* Checks parse and verify on encoded, running scrypt only when cheap. */
static void check_hash(const char *encoded, const char *pw)
{
    password_params_t params = {-1, -1, -1};
    bool ok = false;
    int rc = password_parse_params(encoded, &params);
    FUZZ_CHECK(rc == 0 || rc == BILLOW_EPARAM_INVALID, "password_parse_params returned %d", rc);
    if (rc != 0) {
        int vrc = password_verify(encoded, pw, &ok);
        FUZZ_CHECK(vrc == rc, "parse refused (%d) what verify answered with %d: %s", rc, vrc,
                   encoded);
        return;
    }
    const char *salt_b64 = check_accepted(encoded, &params);
    if (params.log_n > VERIFY_LOG_N_MAX)
        return;

    bool want = reference_verify(salt_b64, &params, pw);
    ok = !want;
    rc = password_verify(encoded, pw, &ok);
    FUZZ_CHECK(rc == 0, "verify refused (%d) what parse accepted: %s", rc, encoded);
    FUZZ_CHECK(ok == want, "verify says %d, scrypt says %d, for \"%s\" against %s", ok, want, pw,
               encoded);

    /* The same parameters written afresh parse back and verify. */
    char fresh[PASSWORD_ENCODED_MAX];
    password_params_t again = {-1, -1, -1};
    rc = password_hash(pw, &params, fresh);
    FUZZ_CHECK(rc == 0, "password_hash refused (%d) parameters parse accepted: %s", rc, encoded);
    FUZZ_CHECK(password_parse_params(fresh, &again) == 0, "a fresh hash does not parse: %s", fresh);
    FUZZ_CHECK(again.log_n == params.log_n && again.r == params.r && again.p == params.p,
               "a fresh hash has other parameters: %s", fresh);
    ok = false;
    FUZZ_CHECK(password_verify(fresh, pw, &ok) == 0 && ok, "a fresh hash does not verify: %s",
               fresh);
}

/* True when s (valid UTF-8, len bytes) is one character repeated. */
static bool repeated(const char *s, size_t len)
{
    size_t first = 1;
    while (first < len && ((unsigned char)s[first] & 0xc0) == 0x80)
        first++;
    for (size_t i = 0; i < len; i += first)
        if (len - i < first || memcmp(s + i, s, first) != 0)
            return false;
    return true;
}

/* Code points in valid UTF-8 text. */
static size_t utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xc0) != 0x80;
    return n;
}

/* s with ASCII letters in upper (or lower) case. Caller frees. */
static char *ascii_case(const char *s, bool upper)
{
    size_t len = strlen(s);
    char *out = mem_alloc(len + 1);
    for (size_t i = 0; i <= len; i++) {
        char c = s[i];
        if (upper && c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        else if (!upper && c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        out[i] = c;
    }
    return out;
}

/* Runs the policy on pw and checks the code and the error it fills. */
static int policy(const char *pw)
{
    validate_error_t err;
    memset(&err, 'X', sizeof err);
    int rc = password_check_policy(PARAM, pw, &err);
    FUZZ_CHECK(rc == 0 || rc == BILLOW_EPARAM_INVALID || rc == BILLOW_EPASSWORD_TOO_SHORT ||
                   rc == BILLOW_EPASSWORD_TOO_COMMON,
               "password_check_policy returned %d", rc);
    if (rc == 0)
        return rc;
    FUZZ_CHECK(err.code == rc, "policy returned %d but its error says %d", rc, err.code);
    FUZZ_CHECK(memchr(err.param, '\0', sizeof err.param) != NULL, "param not terminated");
    FUZZ_CHECK(strcmp(err.param, PARAM) == 0, "the error names \"%s\", not " PARAM, err.param);
    FUZZ_CHECK(memchr(err.message, '\0', sizeof err.message) != NULL, "message not terminated");
    FUZZ_CHECK(err.message[0] != '\0', "empty message");
    FUZZ_CHECK(validate_utf8_printable(err.message, strlen(err.message)),
               "the message is not printable UTF-8");
    return rc;
}

/* Checks the policy's answer for pw against its documented rules. */
static void check_policy(const char *pw)
{
    int rc = policy(pw);
    size_t len = strlen(pw);
    bool printable = len <= PASSWORD_MAX_BYTES && validate_utf8_printable(pw, len);
    if (!printable) {
        FUZZ_CHECK(rc == BILLOW_EPARAM_INVALID,
                   "policy answered %d for text over %d bytes or "
                   "not printable UTF-8",
                   rc, PASSWORD_MAX_BYTES);
        return;
    }
    FUZZ_CHECK(rc != BILLOW_EPARAM_INVALID, "policy refused printable UTF-8 of %zu bytes", len);
    bool too_short = utf8_chars(pw, len) < PASSWORD_MIN_CHARS;
    FUZZ_CHECK((rc == BILLOW_EPASSWORD_TOO_SHORT) == too_short,
               "policy answered %d for %zu characters", rc, utf8_chars(pw, len));
    if (too_short)
        return;
    if (repeated(pw, len))
        FUZZ_CHECK(rc == BILLOW_EPASSWORD_TOO_COMMON, "one character repeated was accepted");
    if (rc == BILLOW_EPASSWORD_TOO_COMMON) {
        /* The list is compared ignoring ASCII case, and a repeated character
         * stays repeated in either case. */
        char *up = ascii_case(pw, true);
        char *down = ascii_case(pw, false);
        FUZZ_CHECK(policy(up) == rc && policy(down) == rc,
                   "a common password is accepted in another case: %s", pw);
        free(up);
        free(down);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_cstring(data, size);
    char *newline = strchr(text, '\n');
    const char *pw = text;
    if (newline != NULL) {
        *newline = '\0';
        pw = newline + 1;
    }
    check_hash(text, pw);
    check_policy(pw);
    free(text);
    return 0;
}

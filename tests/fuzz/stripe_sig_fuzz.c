/* stripe_sig_fuzz: stripe_sig_verify on arbitrary headers and bodies, and
 * the sign/verify round trip.
 *
 * Anyone on the internet can POST to the webhook endpoint, so the
 * Stripe-Signature header and the body are attacker-chosen. The input is
 * split at its first newline: the text before is the header (a NUL ends it
 * early, as it would for a C caller; no newline means an empty body), the
 * bytes after are the body, passed in place so AddressSanitizer catches a
 * read past its end. Verification runs at a fixed now with two secrets
 * (SECRET, OTHER_SECRET) and must give exactly the result of a second,
 * deliberately plain implementation in this file, which splits with
 * strsep, parses t with strtoll and computes the HMAC with OpenSSL
 * directly: MISSING for an empty header, MALFORMED for one over
 * STRIPE_SIG_HEADER_MAX, without exactly one all-digit t of at most 15
 * digits, or without a v1; MISMATCH unless one of the first
 * STRIPE_SIG_V1_MAX v1 values is the lower-case hex HMAC of
 * "<t>.<body>" under a secret; EXPIRED when t is more than the tolerance
 * before now; else OK. Code and message must agree with the result.
 *
 * The body is also signed at now with each secret: the header verifies,
 * is refused for a body one byte longer or with a flipped byte, and is
 * refused under a third secret. The committed seeds are headers signed
 * with SECRET for t = 1700000000 (and a few near-misses of them), so the
 * fuzzer starts from signatures that match and mutates them.
 */
#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdbool.h>

#include "fuzz.h"
#include "stripe_sig.h"

#define SECRET       "whsec_billow_fuzz"
#define OTHER_SECRET "whsec_billow_fuzz_rotated"
#define THIRD_SECRET "whsec_not_this_tenant"
/* The time verification runs at: the seeds' t plus exactly the tolerance,
 * so a seed at t passes and one at t - 1 has expired. */
#define NOW (1700000000 + STRIPE_SIG_TOLERANCE_S)
/* Most digits of a t the module accepts (decimal_parse's limit). */
#define T_DIGITS_MAX 15
/* Room for a header this harness signs. */
#define SIGNED_HEADER_ROOM 128

static const char *const secrets[] = {SECRET, OTHER_SECRET};
#define SECRET_COUNT (sizeof secrets / sizeof secrets[0])

/* Lower-case hex HMAC-SHA256 of "<t>.<body>" under secret, by OpenSSL. */
static void reference_hmac(const char *secret, long long t, const uint8_t *body, size_t len,
                           char hex[65])
{
    char prefix[32];
    int prefix_len = snprintf(prefix, sizeof prefix, "%lld.", t);
    uint8_t *msg = mem_alloc((size_t)prefix_len + len + 1);
    memcpy(msg, prefix, (size_t)prefix_len);
    if (len > 0)
        memcpy(msg + prefix_len, body, len);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    FUZZ_CHECK(HMAC(EVP_sha256(), secret, (int)strlen(secret), msg, (size_t)prefix_len + len, mac,
                    &mac_len) != NULL,
               "OpenSSL HMAC failed");
    for (unsigned int i = 0; i < mac_len; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    free(msg);
}

/* What stripe_sig_verify should answer, worked out the plain way. */
static stripe_sig_result_t reference_verify(const char *header, const uint8_t *body, size_t len)
{
    if (header[0] == '\0')
        return STRIPE_SIG_MISSING;
    if (strlen(header) > STRIPE_SIG_HEADER_MAX)
        return STRIPE_SIG_MALFORMED;
    char *copy = mem_strdup(header);
    char *rest = copy;
    const char *t_text = NULL;
    int t_count = 0;
    const char *v1[STRIPE_SIG_V1_MAX];
    size_t v1_count = 0;
    bool has_v1 = false;
    for (char *item; (item = strsep(&rest, ",")) != NULL;) {
        char *value = strchr(item, '=');
        if (value == NULL)
            continue;
        *value++ = '\0';
        if (strcmp(item, "t") == 0) {
            t_text = value;
            t_count++;
        } else if (strcmp(item, "v1") == 0) {
            has_v1 = true;
            if (v1_count < STRIPE_SIG_V1_MAX)
                v1[v1_count++] = value;
        }
    }
    stripe_sig_result_t want = STRIPE_SIG_MALFORMED;
    size_t t_len = t_text != NULL ? strlen(t_text) : 0;
    if (t_count != 1 || !has_v1 || t_len == 0 || t_len > T_DIGITS_MAX ||
        strspn(t_text, "0123456789") != t_len)
        goto done;
    long long t = strtoll(t_text, NULL, 10);
    want = STRIPE_SIG_MISMATCH;
    for (size_t s = 0; s < SECRET_COUNT; s++) {
        char expected[65];
        reference_hmac(secrets[s], t, body, len, expected);
        for (size_t i = 0; i < v1_count; i++) {
            if (strcmp(v1[i], expected) == 0)
                want = NOW - t > STRIPE_SIG_TOLERANCE_S ? STRIPE_SIG_EXPIRED : STRIPE_SIG_OK;
        }
    }
done:
    free(copy);
    return want;
}

/* The input's header and body, checked against the reference. */
static void verify_input(const char *header, const uint8_t *body, size_t len)
{
    stripe_sig_result_t got =
        stripe_sig_verify(header, body, len, secrets, SECRET_COUNT, NOW, STRIPE_SIG_TOLERANCE_S);
    stripe_sig_result_t want = reference_verify(header, body, len);
    FUZZ_CHECK(got == want, "stripe_sig_verify gave %d, the reference %d, for header \"%s\"",
               (int)got, (int)want, header);
    const char *code = stripe_sig_code(got);
    FUZZ_CHECK((got == STRIPE_SIG_OK) == (code == NULL), "result %d has code %s", (int)got,
               code != NULL ? code : "NULL");
    FUZZ_CHECK(stripe_sig_message(got) != NULL, "result %d has no message", (int)got);
}

/* The body signed at NOW with each secret verifies, and only for itself. */
static void round_trip(const uint8_t *body, size_t len)
{
    for (size_t s = 0; s < SECRET_COUNT; s++) {
        char header[SIGNED_HEADER_ROOM];
        FUZZ_CHECK(stripe_sig_sign(secrets[s], NOW, body, len, header, sizeof header) == 0,
                   "stripe_sig_sign failed for a body of %zu bytes", len);
        FUZZ_CHECK(stripe_sig_verify(header, body, len, secrets, SECRET_COUNT, NOW,
                                     STRIPE_SIG_TOLERANCE_S) == STRIPE_SIG_OK,
                   "a fresh signature did not verify: %s", header);
        const char *third[] = {THIRD_SECRET};
        FUZZ_CHECK(stripe_sig_verify(header, body, len, third, 1, NOW, STRIPE_SIG_TOLERANCE_S) ==
                       STRIPE_SIG_MISMATCH,
                   "a signature verified under another secret: %s", header);

        uint8_t *changed = mem_alloc(len + 1);
        if (len > 0)
            memcpy(changed, body, len);
        changed[len] = 'x';
        FUZZ_CHECK(stripe_sig_verify(header, changed, len + 1, secrets, SECRET_COUNT, NOW,
                                     STRIPE_SIG_TOLERANCE_S) == STRIPE_SIG_MISMATCH,
                   "a signature verified for a longer body: %s", header);
        if (len > 0) {
            changed[len / 2] ^= 0x01;
            FUZZ_CHECK(stripe_sig_verify(header, changed, len, secrets, SECRET_COUNT, NOW,
                                         STRIPE_SIG_TOLERANCE_S) == STRIPE_SIG_MISMATCH,
                       "a signature verified for a body with a flipped bit: %s", header);
        }
        free(changed);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *newline = memchr(data, '\n', size);
    size_t header_len = newline != NULL ? (size_t)(newline - data) : size;
    const uint8_t *body = newline != NULL ? newline + 1 : data + size;
    size_t body_len = size - (size_t)(body - data);

    char *header = fuzz_cstring(data, header_len);
    verify_input(header, body, body_len);
    round_trip(body, body_len);
    free(header);
    return 0;
}

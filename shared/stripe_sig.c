/* stripe_sig: checking the Stripe-Signature header of a webhook delivery.
 *
 * The header is a list of "scheme=value" items separated by ','. Each item
 * is split on its first '=': "t" is the timestamp, every "v1" a candidate
 * signature, anything else (v0, schemes Stripe may add) is ignored, as
 * Stripe's own libraries do.
 *
 * Design: the header is parsed in place (the v1 values are pointers into
 * it), then the expected signature is computed once per secret and
 * compared with every v1 in constant time, so a forger learns nothing from
 * how long a mismatch took. Age is checked only after a signature matched:
 * an unsigned header must not learn whether its timestamp would have been
 * accepted, and "expired" then means a genuine but replayed delivery.
 */
#include "stripe_sig.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "decimal.h"
#include "err.h"
#include "mem.h"

/* Largest timestamp accepted: 15 digits (decimal_parse's limit) is far past
 * any real clock, and keeps t + tolerance clear of overflow. */
#define T_MAX 999999999999999L
/* Room for the canonical decimal of any accepted t and its '.'. */
#define T_PREFIX_MAX 24
/* A v1 signature is the hex of a SHA-256: 64 digits. */
#define V1_HEX_LEN (CRYPTO_SHA256_HEX - 1)

/* One v1 value: a slice of the header, not NUL-terminated. */
typedef struct {
    const char *at;
    size_t len;
} v1_slice_t;

/* What parse_header found. */
typedef struct {
    bool has_t;                       /* A valid t was seen. */
    long t;                           /* Its value. */
    size_t v1_count;                  /* v1 items kept (at most STRIPE_SIG_V1_MAX). */
    v1_slice_t v1[STRIPE_SIG_V1_MAX]; /* Their values. */
} parsed_header_t;

/* Whether the item [at, at + len) has the scheme name (the text before
 * its first '='), and if so where its value starts. */
static bool item_scheme(const char *at, size_t len, const char *name, const char **value,
                        size_t *value_len)
{
    const char *eq = memchr(at, '=', len);
    if (eq == NULL)
        return false;
    size_t name_len = strlen(name);
    if ((size_t)(eq - at) != name_len || memcmp(at, name, name_len) != 0)
        return false;
    *value = eq + 1;
    *value_len = len - name_len - 1;
    return true;
}

/* Splits header (len bytes) into p. Returns false when it is malformed: a t
 * that is not all digits, a second t (which one Stripe meant would be a
 * guess), no t, or no v1. v1 items past STRIPE_SIG_V1_MAX are not
 * considered: Stripe sends one per active secret, a handful at most. */
static bool parse_header(const char *header, size_t len, parsed_header_t *p)
{
    memset(p, 0, sizeof *p);
    const char *end = header + len;
    bool has_v1 = false;
    for (const char *at = header; at <= end;) {
        const char *comma = memchr(at, ',', (size_t)(end - at));
        const char *item_end = comma != NULL ? comma : end;
        size_t item_len = (size_t)(item_end - at);
        const char *value;
        size_t value_len;
        if (item_scheme(at, item_len, "t", &value, &value_len)) {
            if (p->has_t || decimal_parse(value, value_len, 0, T_MAX, &p->t) != 0)
                return false;
            p->has_t = true;
        } else if (item_scheme(at, item_len, "v1", &value, &value_len)) {
            has_v1 = true;
            if (p->v1_count < STRIPE_SIG_V1_MAX) {
                p->v1[p->v1_count].at = value;
                p->v1[p->v1_count].len = value_len;
                p->v1_count++;
            }
        }
        if (comma == NULL)
            break;
        at = comma + 1;
    }
    return p->has_t && has_v1;
}

/* Whether any v1 in p is the signature of body under secret. Every v1 is
 * compared, in constant time for its length, whatever matched before. */
static bool secret_matches(const parsed_header_t *p, const char *secret, const char *signed_payload,
                           size_t signed_len)
{
    char expected[CRYPTO_SHA256_HEX];
    crypto_hmac_sha256_hex(secret, strlen(secret), signed_payload, signed_len, expected);
    bool matched = false;
    for (size_t i = 0; i < p->v1_count; i++) {
        if (p->v1[i].len == V1_HEX_LEN && crypto_equal(p->v1[i].at, expected, V1_HEX_LEN))
            matched = true;
    }
    return matched;
}

stripe_sig_result_t stripe_sig_verify(const char *header, const void *body, size_t len,
                                      const char *const *secrets, size_t n, int64_t now,
                                      int64_t tolerance_s)
{
    if (header == NULL || header[0] == '\0')
        return STRIPE_SIG_MISSING;
    size_t header_len = strnlen(header, STRIPE_SIG_HEADER_MAX + 1);
    if (header_len > STRIPE_SIG_HEADER_MAX)
        return STRIPE_SIG_MALFORMED;
    parsed_header_t p;
    if (!parse_header(header, header_len, &p))
        return STRIPE_SIG_MALFORMED;
    if (len > SIZE_MAX - T_PREFIX_MAX || (body == NULL && len > 0))
        return STRIPE_SIG_MALFORMED;

    /* Stripe signs "<t>.<body>" with t as the number it is (its libraries
     * parse t and print it back), so a t with leading zeros is signed as
     * its canonical digits. */
    char prefix[T_PREFIX_MAX];
    int prefix_len = snprintf(prefix, sizeof prefix, "%ld.", p.t);
    size_t signed_len = (size_t)prefix_len + len;
    char *signed_payload = mem_alloc(signed_len);
    memcpy(signed_payload, prefix, (size_t)prefix_len);
    if (len > 0)
        memcpy(signed_payload + prefix_len, body, len);

    bool matched = false;
    for (size_t i = 0; i < n && secrets != NULL; i++) {
        /* An unset secret is a configuration hole, not a key: an HMAC under
         * the empty key is one anybody can compute. */
        if (secrets[i] == NULL || secrets[i][0] == '\0')
            continue;
        if (secret_matches(&p, secrets[i], signed_payload, signed_len))
            matched = true;
    }
    free(signed_payload);
    if (!matched)
        return STRIPE_SIG_MISMATCH;

    int64_t tolerance = tolerance_s > 0 ? tolerance_s : 0;
    /* now - t as unsigned when now is later: it cannot overflow then. */
    if (now > (int64_t)p.t && (uint64_t)now - (uint64_t)p.t > (uint64_t)tolerance)
        return STRIPE_SIG_EXPIRED;
    return STRIPE_SIG_OK;
}

/* Code and message of each result, in enum order. */
static const struct {
    const char *code;
    const char *message;
} results[] = {
    [STRIPE_SIG_OK] = {NULL, "The signature is valid."},
    [STRIPE_SIG_MISSING] = {"signature_missing", "The Stripe-Signature header is missing."},
    [STRIPE_SIG_MALFORMED] = {"signature_malformed",
                              "The Stripe-Signature header has no valid t or no v1 signature."},
    [STRIPE_SIG_MISMATCH] = {"signature_mismatch",
                             "No v1 signature matches the payload under any webhook secret."},
    [STRIPE_SIG_EXPIRED] = {"signature_expired",
                            "The signature's timestamp is older than the tolerance allows."},
};

const char *stripe_sig_code(stripe_sig_result_t r)
{
    if ((size_t)r >= sizeof results / sizeof results[0])
        return "signature_malformed";
    return results[r].code;
}

const char *stripe_sig_message(stripe_sig_result_t r)
{
    if ((size_t)r >= sizeof results / sizeof results[0])
        return results[STRIPE_SIG_MALFORMED].message;
    return results[r].message;
}

int stripe_sig_sign(const char *secret, int64_t t, const void *body, size_t len, char *out,
                    size_t n)
{
    int rc = BILLOW_EPARAM_INVALID;
    char *signed_payload = NULL;
    if (out != NULL && n > 0)
        out[0] = '\0';
    if (secret == NULL || out == NULL || t < 0 || (body == NULL && len > 0) ||
        len > SIZE_MAX - T_PREFIX_MAX)
        goto fail;

    char prefix[T_PREFIX_MAX];
    int prefix_len = snprintf(prefix, sizeof prefix, "%" PRId64 ".", t);
    size_t signed_len = (size_t)prefix_len + len;
    signed_payload = mem_alloc(signed_len > 0 ? signed_len : 1);
    memcpy(signed_payload, prefix, (size_t)prefix_len);
    if (len > 0)
        memcpy(signed_payload + prefix_len, body, len);
    char hex[CRYPTO_SHA256_HEX];
    crypto_hmac_sha256_hex(secret, strlen(secret), signed_payload, signed_len, hex);

    int written = snprintf(out, n, "t=%" PRId64 ",v1=%s", t, hex);
    if (written < 0 || (size_t)written >= n) {
        if (n > 0)
            out[0] = '\0';
        goto fail;
    }
    rc = 0;
fail:
    free(signed_payload);
    return rc;
}

/* stripe_sig: checking the Stripe-Signature header of a webhook delivery.
 *
 * Stripe signs each delivery with every webhook secret of the endpoint:
 * "t=<unix seconds>,v1=<hex>[,v1=<hex>...]" where each v1 is the lower-case
 * hex HMAC-SHA256, keyed with the whole secret ("whsec_..."), of
 * "<t>.<raw body>". A delivery is genuine when any v1 matches any of the
 * tenant's secrets (several during a rotation), compared in constant time,
 * and t is not older than the tolerance (a replayed old delivery is
 * refused; a t in the future is accepted, as Stripe's libraries do). v0 and
 * unknown schemes are ignored.
 */
#ifndef BILLOW_STRIPE_SIG_H
#define BILLOW_STRIPE_SIG_H

#include <stddef.h>
#include <stdint.h>

/* How old a signature may be, in seconds (Stripe's default tolerance). */
#define STRIPE_SIG_TOLERANCE_S 300
/* Longest header accepted: Stripe sends a t and a few v1; more is abuse. */
#define STRIPE_SIG_HEADER_MAX 4096
/* Most v1 signatures considered in one header. */
#define STRIPE_SIG_V1_MAX 8

typedef enum {
    STRIPE_SIG_OK = 0,    /* A v1 matches a secret and t is recent enough. */
    STRIPE_SIG_MISSING,   /* No header (NULL or empty). */
    STRIPE_SIG_MALFORMED, /* No t, t not a number, no v1, too long. */
    STRIPE_SIG_MISMATCH,  /* No v1 matches any secret. */
    STRIPE_SIG_EXPIRED,   /* A v1 matches, but t is older than the tolerance. */
} stripe_sig_result_t;

/* Checks header against body (len bytes) with each of n secrets, at now
 * (unix seconds) with tolerance_s. */
stripe_sig_result_t stripe_sig_verify(const char *header, const void *body, size_t len,
                                      const char *const *secrets, size_t n, int64_t now,
                                      int64_t tolerance_s);

/* The error code the api answers for r ("signature_missing",
 * "signature_malformed", "signature_mismatch", "signature_expired"; NULL
 * for STRIPE_SIG_OK) and a sentence saying what was wrong. */
const char *stripe_sig_code(stripe_sig_result_t r);
const char *stripe_sig_message(stripe_sig_result_t r);

/* Writes the header Stripe would send for body signed with secret at t
 * ("t=...,v1=...") into out (size n). For tests and the fake. Returns 0,
 * or BILLOW_EPARAM_INVALID when out is too small. */
int stripe_sig_sign(const char *secret, int64_t t, const void *body, size_t len, char *out,
                    size_t n);

#endif

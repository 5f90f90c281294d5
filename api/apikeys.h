/* apikeys: drawing a tenant's secret API key on the front.
 *
 * A secret key is "sk_test_…" or "sk_live_…" (by the tenant's mode) and 32
 * random characters. It is drawn here, where the request that asked for it
 * is answered, so that only its SHA-256 and a short displayable prefix ever
 * enter a job, a table or a log line; the secret itself is shown once, in
 * that answer (tenant creation, key creation and rotation).
 */
#ifndef BILLOW_APIKEYS_H
#define BILLOW_APIKEYS_H

#include <stdbool.h>

#include "crypto.h"

/* Random characters of a secret: 32 of 62 symbols, about 190 bits, beyond
 * any guessing. */
#define APIKEYS_RANDOM_CHARS 32
/* Characters of the secret kept as its displayable prefix ("sk_test_abcd"). */
#define APIKEYS_PREFIX_CHARS 12
/* Room for "sk_live_", the random part and the NUL. */
#define APIKEYS_SECRET_MAX 64

typedef struct {
    char secret[APIKEYS_SECRET_MAX];       /* The key itself: shown once, never stored. */
    char hash[CRYPTO_SHA256_HEX];          /* Its SHA-256 in hex: what the job stores. */
    char prefix[APIKEYS_PREFIX_CHARS + 1]; /* Its first characters, for telling keys apart. */
} apikeys_drawn_t;

/* Draws a new secret key for a live (livemode) or test tenant into *out. */
void apikeys_draw(bool livemode, apikeys_drawn_t *out);

#endif

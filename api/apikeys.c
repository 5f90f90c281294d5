/* apikeys: drawing a tenant's secret API key (see apikeys.h). */
#include "apikeys.h"

#include <stdio.h>
#include <string.h>

void apikeys_draw(bool livemode, apikeys_drawn_t *out)
{
    char random[APIKEYS_RANDOM_CHARS + 1];
    crypto_random_token(random, APIKEYS_RANDOM_CHARS);
    snprintf(out->secret, sizeof(out->secret), "sk_%s_%s", livemode ? "live" : "test", random);
    explicit_bzero(random, sizeof(random));
    crypto_sha256_hex(out->secret, strlen(out->secret), out->hash);
    memcpy(out->prefix, out->secret, APIKEYS_PREFIX_CHARS);
    out->prefix[APIKEYS_PREFIX_CHARS] = '\0';
}

/* tokens: single-use tokens that reach a person by email (see tokens.h).
 *
 * Design: the token lives only in this function's stack and in its sealed
 * form; the stack copy is wiped before returning, so the plain token never
 * outlives the call on the front. The sealed form is bound to the context
 * "user_token", so it cannot be opened as a TOTP secret or anything else
 * sealed under the same key.
 */
#include "tokens.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "crypto.h"
#include "ids.h"
#include "timeutil.h"

/* The seal context of tokens on their way to an email (the notifier opens
 * them with the same one). */
#define TOKENS_SEAL_CONTEXT "user_token"
/* Room for "<prefix>_", the random part and the NUL; prefixes are three letters. */
#define TOKENS_TEXT_MAX (TOKENS_RANDOM_CHARS + 16)

json_t *tokens_issue(struct app_s *app, const char *prefix, int ttl_s)
{
    char random[TOKENS_RANDOM_CHARS + 1];
    crypto_random_token(random, TOKENS_RANDOM_CHARS);
    char token[TOKENS_TEXT_MAX];
    int n = snprintf(token, sizeof(token), "%s_%s", prefix, random);
    explicit_bzero(random, sizeof(random));
    if (n < 0 || (size_t)n >= sizeof(token))
        abort(); /* A caller bug, never input: prefixes are literals ("bit", "brt"). */

    char hash[CRYPTO_SHA256_HEX];
    crypto_sha256_hex(token, (size_t)n, hash);
    char *sealed = seal_encrypt(&app->seal_key, TOKENS_SEAL_CONTEXT, token, (size_t)n);
    explicit_bzero(token, sizeof(token));
    if (sealed == NULL)
        abort(); /* Only a plaintext over SEAL_PLAIN_MAX fails, and a token is far below it. */

    char id[IDS_MAX];
    ids_generate("utk", id);
    char expires_at[TIMEUTIL_RFC3339_MAX];
    timeutil_format_rfc3339_s(timeutil_now_ms() + (int64_t)ttl_s * 1000, expires_at);

    json_t *out = json_pack("{s:s,s:s,s:s,s:s}", "id", id, "token_hash", hash, "expires_at",
                            expires_at, "sealed_token", sealed);
    free(sealed);
    if (out == NULL)
        abort(); /* jansson fails here only on allocation failure. */
    return out;
}

/* tokens: single-use tokens that reach a person by email.
 *
 * An invitation ("bit_…") or password-reset ("brt_…") token is drawn here,
 * on the front. Only its SHA-256 goes into the job that records it; the
 * token itself travels to the notifier sealed (AES-256-GCM under
 * ENCRYPTION_KEY), since it must end up in an email but never in a
 * readable job, log line or table.
 */
#ifndef BILLOW_TOKENS_H
#define BILLOW_TOKENS_H

#include <jansson.h>

struct app_s;

/* Random characters of a token: 43 of 62 symbols, about 256 bits. */
#define TOKENS_RANDOM_CHARS 43

/* Draws a token with prefix ("bit" or "brt"), valid for ttl_s seconds, and
 * returns the job payload part {"id": "utk_…", "token_hash", "expires_at",
 * "sealed_token"} (new reference). */
json_t *tokens_issue(struct app_s *app, const char *prefix, int ttl_s);

#endif

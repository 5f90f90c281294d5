/* seal: authenticated encryption of small secrets at rest (AES-256-GCM).
 *
 * What Billow must keep but never show — a staff user's TOTP secret, a
 * token on its way to an email — is sealed under ENCRYPTION_KEY with
 * OpenSSL's AES-256-GCM: a fresh 96-bit nonce per seal, the 128-bit tag
 * checked on open. A context string is bound in as associated data, so a
 * value sealed for one purpose cannot be opened as another.
 *
 * Sealed text: "v1.<nonce>.<ciphertext and tag>", both base64url without
 * padding; the version leaves room for a key rotation later.
 */
#ifndef BILLOW_SEAL_H
#define BILLOW_SEAL_H

#include <stddef.h>

#include "err.h"

#define SEAL_KEY_BYTES 32
/* Largest plaintext sealed: these are secrets and tokens, not documents. */
#define SEAL_PLAIN_MAX 4096

typedef struct {
    unsigned char key[SEAL_KEY_BYTES]; /* The AES-256 key. */
} seal_key_t;

/* Reads 64 hex digits into key. Returns 0 or BILLOW_EPARAM_INVALID. */
int seal_key_parse(const char *hex, seal_key_t *key) BILLOW_MUSTCHECK;

/* Seals len bytes of plain (<= SEAL_PLAIN_MAX) bound to context (e.g.
 * "totp_secret"). Returns the sealed text (free()), or NULL when len is too large. */
char *seal_encrypt(const seal_key_t *key, const char *context, const void *plain, size_t len);

/* Opens sealed bound to context into *plain (NUL-terminated, free()) and
 * *len. Returns 0, or BILLOW_EPARAM_INVALID when the text is malformed, the
 * context differs or the tag does not verify (tampered, or another key). */
int seal_decrypt(const seal_key_t *key, const char *context, const char *sealed, char **plain,
                 size_t *len) BILLOW_MUSTCHECK;

#endif

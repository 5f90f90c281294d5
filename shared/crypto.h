/* crypto: the few primitives Billow needs, all from OpenSSL.
 *
 * Secrets (API keys, tokens) are random from RAND_bytes, stored and logged
 * only as SHA-256 hashes, and compared in constant time.
 */
#ifndef BILLOW_CRYPTO_H
#define BILLOW_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>

#define CRYPTO_SHA256_HEX 65 /* 64 hex digits and NUL */

/* Fills buf with n cryptographically random bytes; aborts if the RNG fails. */
void crypto_random_bytes(void *buf, size_t n);
/* Writes n random URL-safe characters (A-Z a-z 0-9) and a NUL into out (size n + 1). */
void crypto_random_token(char *out, size_t n);
/* Lower-case hex SHA-256 of data into out. */
void crypto_sha256_hex(const void *data, size_t len, char out[CRYPTO_SHA256_HEX]);
/* HMAC-SHA256 of msg under key into out (32 bytes). */
void crypto_hmac_sha256(const void *key, size_t key_len, const void *msg, size_t msg_len,
                        unsigned char out[32]);
/* Lower-case hex HMAC-SHA256 of msg under key into out. */
void crypto_hmac_sha256_hex(const void *key, size_t key_len, const void *msg, size_t msg_len,
                            char out[CRYPTO_SHA256_HEX]);
/* A key for one purpose from a master key: HMAC-SHA256(master, label), so
 * one secret in the environment can serve several uses without one use's
 * outputs telling anything about another's. */
void crypto_derive_key(const unsigned char master[32], const char *label, unsigned char out[32]);
/* n bytes as 2n lower-case hex digits and a NUL into out. */
void crypto_hex(const unsigned char *bytes, size_t n, char *out);
/* Constant-time equality of two buffers of length n. */
bool crypto_equal(const void *a, const void *b, size_t n);

#endif

/* password: staff passwords — the policy, and scrypt hashes.
 *
 * Hashes are scrypt through OpenSSL's EVP_KDF, encoded with their
 * parameters and salt so the cost can be raised later without breaking
 * existing hashes:
 *
 *     $scrypt$ln=15,r=8,p=1$<salt>$<hash>
 *
 * salt (16 random bytes) and hash (32 bytes) in standard base64 without
 * padding. These calls are slow on purpose and block: the api runs them on
 * libuv's thread pool (api/pwhash.c), never on its loop thread.
 */
#ifndef BILLOW_PASSWORD_H
#define BILLOW_PASSWORD_H

#include <stdbool.h>

#include "err.h"
#include "validate.h"

/* Shortest password accepted, in characters (code points). */
#define PASSWORD_MIN_CHARS 12
/* Longest password accepted, in bytes: scrypt would take any length, but a
 * megabyte "password" is an attack on the hashing threads, not a secret. */
#define PASSWORD_MAX_BYTES 256
/* Room for an encoded hash and its NUL. */
#define PASSWORD_ENCODED_MAX 160
#define PASSWORD_SALT_BYTES  16
#define PASSWORD_HASH_BYTES  32

/* r and p of new hashes (the cost is raised through log_n). */
#define PASSWORD_SCRYPT_R 8
#define PASSWORD_SCRYPT_P 1

/* scrypt's parameters: N = 2^log_n, block size r, parallelism p. */
typedef struct {
    int log_n;
    int r;
    int p;
} password_params_t;

/* Checks pw against the policy: valid UTF-8 without control characters, at
 * most PASSWORD_MAX_BYTES (BILLOW_EPARAM_INVALID), at least
 * PASSWORD_MIN_CHARS characters (BILLOW_EPASSWORD_TOO_SHORT), not on the
 * list of common passwords compared case-insensitively, nor one character
 * repeated (BILLOW_EPASSWORD_TOO_COMMON). Returns 0 or the code, with err
 * naming param. */
int password_check_policy(const char *param, const char *pw, validate_error_t *err);

/* Hashes pw with params and a fresh random salt into out. Returns 0, or
 * BILLOW_EPARAM_INVALID for parameters outside the accepted bounds, or
 * BILLOW_EINTERNAL when OpenSSL fails. */
int password_hash(const char *pw, const password_params_t *params,
                  char out[PASSWORD_ENCODED_MAX]) BILLOW_MUSTCHECK;

/* Checks pw against encoded, in constant time over the hash. Returns 0 and
 * sets *ok, or BILLOW_EPARAM_INVALID when encoded is not a hash this module
 * wrote (or has parameters beyond the bounds that keep a crafted hash from
 * exhausting memory). */
int password_verify(const char *encoded, const char *pw, bool *ok) BILLOW_MUSTCHECK;

/* Reads the parameters of encoded. Returns 0 or BILLOW_EPARAM_INVALID. */
int password_parse_params(const char *encoded, password_params_t *out) BILLOW_MUSTCHECK;

#endif

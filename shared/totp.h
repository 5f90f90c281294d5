/* totp: time-based one-time passwords (RFC 6238) and recovery codes.
 *
 * HOTP (RFC 4226) with HMAC from OpenSSL, over 30-second steps, 6 digits,
 * the authenticator-app defaults. A code is accepted for the current step
 * and one step either side (clock drift), and only for a step later than
 * the last one used, so a code cannot be replayed. Secrets are 20 random
 * bytes shown to the user in base32 (RFC 4648) and in an otpauth:// URI.
 */
#ifndef BILLOW_TOTP_H
#define BILLOW_TOTP_H

#include <stddef.h>
#include <stdint.h>

#include "crypto.h"
#include "err.h"

#define TOTP_SECRET_BYTES   20
#define TOTP_SECRET_B32_LEN 32 /* base32 of 20 bytes, no padding. */
#define TOTP_DIGITS         6
#define TOTP_PERIOD_S       30
/* Steps accepted either side of now: one covers a phone clock that is off
 * by up to 30 seconds, without widening the guessing window much. */
#define TOTP_WINDOW 1
/* Recovery codes made at enrolment, and their text "xxxxx-xxxxx". */
#define TOTP_RECOVERY_CODES    10
#define TOTP_RECOVERY_CODE_LEN 11

/* HOTP value of counter under key with digest ("SHA1", "SHA256" or
 * "SHA512"), as digits decimal digits (6..8) into out. Returns 0 or
 * BILLOW_EPARAM_INVALID. */
int totp_hotp(const unsigned char *key, size_t key_len, const char *digest, uint64_t counter,
              int digits, char out[9]) BILLOW_MUSTCHECK;

/* The step of a Unix time (seconds) */
uint64_t totp_step(int64_t unix_s);

/* Draws a new secret, base32, into out. */
void totp_new_secret(char out[TOTP_SECRET_B32_LEN + 1]);

/* Checks a 6-digit code against secret_b32 (SHA1) at unix time now_s for
 * steps now-TOTP_WINDOW..now+TOTP_WINDOW that are greater than last_step.
 * Returns 0 and sets *matched_step, or BILLOW_ETOTP_INVALID (wrong, reused
 * or malformed code), or BILLOW_EPARAM_INVALID (secret not base32). */
int totp_verify(const char *secret_b32, int64_t now_s, const char *code, uint64_t last_step,
                uint64_t *matched_step) BILLOW_MUSTCHECK;

/* base32 (RFC 4648 alphabet, no padding) of n bytes into out, which needs
 * (8*n + 4)/5 + 1 bytes; a shorter out gets the first out_len - 1
 * characters and a NUL. */
void totp_base32_encode(const unsigned char *in, size_t n, char *out, size_t out_len);
/* Decodes base32 (case-insensitive, padding and spaces ignored) into out.
 * Returns the byte count or BILLOW_EPARAM_INVALID. */
int totp_base32_decode(const char *in, unsigned char *out, size_t out_len);

/* otpauth://totp/<issuer>:<account>?secret=…&issuer=…&algorithm=SHA1&digits=6&period=30
 * with issuer and account percent-encoded. Returns 0 or BILLOW_EPARAM_INVALID (too long). */
int totp_uri(const char *issuer, const char *account, const char *secret_b32, char *out,
             size_t out_len) BILLOW_MUSTCHECK;

/* A new recovery code "xxxxx-xxxxx" (lower-case letters and digits without
 * look-alikes) into out. */
void totp_recovery_code(char out[TOTP_RECOVERY_CODE_LEN + 1]);
/* The HMAC-SHA256 (hex) under key of a recovery code as typed: case,
 * spaces and the dash ignored. Keyed, because a code has only about 49
 * bits: a plain hash in a job or a table could be reversed by trying them
 * all. Returns 0 or BILLOW_EPARAM_INVALID when it cannot be a code. */
int totp_recovery_hash(const unsigned char *key, size_t key_len, const char *code,
                       char out[CRYPTO_SHA256_HEX]) BILLOW_MUSTCHECK;

#endif

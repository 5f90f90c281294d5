/* pwhash: password hashing and checking off the loop thread.
 *
 * scrypt is slow on purpose (tens of milliseconds and 16+ MiB per hash), so
 * the api never runs it on the loop thread: each hash or check is queued
 * on libuv's thread pool and its callback runs back on the loop. A check
 * against an unknown user still runs scrypt, on a dummy hash made at start,
 * so a wrong password and an unknown email take comparable time.
 */
#ifndef BILLOW_PWHASH_H
#define BILLOW_PWHASH_H

#include <stdbool.h>

#include "err.h"

struct app_s;

/* Called on the loop thread: err 0 and the encoded hash (valid during the
 * call), or an error and NULL. */
typedef void (*pwhash_hash_cb)(void *data, int err, const char *encoded);
/* Called on the loop thread with whether password matched. */
typedef void (*pwhash_verify_cb)(void *data, bool ok);

/* Prepares the dummy hash (blocking; once at start). Returns 0 or an error. */
int pwhash_init(struct app_s *app) BILLOW_MUSTCHECK;
/* Frees what pwhash_init made. */
void pwhash_dispose(struct app_s *app);

/* Hashes password with the configured cost. Returns 0 and calls cb once
 * later, or returns an error and never calls cb. password is copied. */
int pwhash_hash(struct app_s *app, const char *password, pwhash_hash_cb cb,
                void *data) BILLOW_MUSTCHECK;

/* Checks password against encoded; encoded NULL checks against the dummy
 * hash and always reports false. Same contract as pwhash_hash. */
int pwhash_verify(struct app_s *app, const char *encoded, const char *password, pwhash_verify_cb cb,
                  void *data) BILLOW_MUSTCHECK;

#endif

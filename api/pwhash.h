/* pwhash: password hashing and checking off the loop thread.
 *
 * scrypt is slow on purpose (tens of milliseconds and 16+ MiB per hash), so
 * the api never runs it on the loop thread: each hash or check is queued
 * on libuv's thread pool and its callback runs back on the loop. A check
 * against an unknown user still runs scrypt, on a dummy hash made at start,
 * so a wrong password and an unknown email take comparable time.
 *
 * At most PASSWORD_HASH_CONCURRENCY hashes run at once (by default one
 * fewer than the machine's cores, at least one), so a flood of sign-ins
 * leaves a core to the loop and every other request; the rest wait in a
 * FIFO of at most PWHASH_QUEUE_MAX, beyond which a request is refused
 * (503) rather than queued without bound.
 */
#ifndef BILLOW_PWHASH_H
#define BILLOW_PWHASH_H

#include <stdbool.h>

#include "err.h"

/* Password checks and hashes waiting for a turn; more are refused: a
 * sign-in that would wait behind this many (seconds of scrypt) is better
 * told to retry. */
#define PWHASH_QUEUE_MAX 256
/* The message of the 503 a caller answers when the queue is full. */
#define PWHASH_BUSY "Too many passwords are being checked right now; retry in a moment."

struct app_s;

/* Called on the loop thread: err 0 and the encoded hash (valid during the
 * call), or an error and NULL. */
typedef void (*pwhash_hash_cb)(void *data, int err, const char *encoded);
/* Called on the loop thread with whether password matched. */
typedef void (*pwhash_verify_cb)(void *data, bool ok);

/* Prepares the dummy hash (blocking; once at start) and the queue, running
 * at most concurrency hashes at once (0: one fewer than the cores, at least
 * one). Returns 0 or an error. */
int pwhash_init(struct app_s *app, int concurrency) BILLOW_MUSTCHECK;
/* Frees what pwhash_init made. */
void pwhash_dispose(struct app_s *app);

/* Hashes password with the configured cost. Returns 0 and calls cb once
 * later, or returns an error (BILLOW_EUNAVAILABLE: the queue is full) and
 * never calls cb. password is copied. */
int pwhash_hash(struct app_s *app, const char *password, pwhash_hash_cb cb,
                void *data) BILLOW_MUSTCHECK;

/* Checks password against encoded; encoded NULL checks against the dummy
 * hash and always reports false. Same contract as pwhash_hash. */
int pwhash_verify(struct app_s *app, const char *encoded, const char *password, pwhash_verify_cb cb,
                  void *data) BILLOW_MUSTCHECK;

#endif

/* ids: object ids with a type prefix and a time-ordered random part.
 *
 * An id is "<prefix>_" followed by 26 Crockford base32 characters: 48 bits of
 * milliseconds since the Unix epoch, then 80 random bits (the ULID layout).
 * Ids of one prefix sort by creation time, so lists page by id, and the
 * random part makes them unguessable.
 */
#ifndef BILLOW_IDS_H
#define BILLOW_IDS_H

#include <stdbool.h>
#include <stdint.h>

/* Room for any id: a prefix of up to 16 characters, "_", 26 characters, NUL. */
#define IDS_MAX 48
/* Length of the time-ordered part after the prefix and underscore. */
#define IDS_BODY_LEN 26

/* Writes a new id with the given prefix ("cus") and the current time into out. */
void ids_generate(const char *prefix, char out[IDS_MAX]);
/* As ids_generate, with an explicit time and random source (tests). */
void ids_generate_at(const char *prefix, uint64_t unix_ms, const uint8_t random[10],
                     char out[IDS_MAX]);
/* A deterministic id: the time part is unix_ms, the random part the first
 * 80 bits of SHA-256(key). The same (prefix, unix_ms, key) always gives the
 * same id, so a job that stands for a business fact ("renew subscription S
 * for the period ending at T") has one id however often it is asked for,
 * and the queue's enqueue-once and processed_jobs make it run once. */
void ids_derive(const char *prefix, uint64_t unix_ms, const char *key, char out[IDS_MAX]);
/* True when id is "<prefix>_" and 26 valid Crockford base32 characters. */
bool ids_valid(const char *prefix, const char *id);

#endif

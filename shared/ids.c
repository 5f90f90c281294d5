/* ids: object ids with a type prefix and a time-ordered random part.
 *
 * Design: the 26 characters after "<prefix>_" are a ULID: 48 bits of Unix
 * milliseconds (10 characters) then 80 random bits (16 characters) in
 * Crockford's base32, most significant first, so byte order is time order.
 *
 * Ids made by one process within one millisecond must still sort in the
 * order they were made (a list paged by id must not skip a row created a
 * moment later). As in ULID's monotonic mode, such an id reuses the previous
 * id's time and adds to its random part. The step is random (1 to 2^32) rather
 * than 1, so seeing one id does not reveal the next; if the random part would
 * overflow, the time moves one millisecond ahead instead. The same holds when
 * the wall clock steps backwards: ids keep the last time until it catches up.
 * That state is per process by nature, so it lives in one mutex-guarded
 * static rather than a context struct.
 */
#include "ids.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "crypto.h"
#include "timeutil.h"

/* Longest prefix; IDS_MAX leaves room for exactly this much. */
#define IDS_PREFIX_MAX 16
#define RANDOM_BYTES   10
/* Time fits 48 bits until the year 10889. */
#define TIME_MASK ((UINT64_C(1) << 48) - 1)

static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

static pthread_mutex_t last_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t last_ms;                  /* Time part of the last id made. */
static uint8_t last_random[RANDOM_BYTES]; /* Random part of the last id made. */

static void encode_body(uint64_t unix_ms, const uint8_t random[RANDOM_BYTES],
                        char out[IDS_BODY_LEN])
{
    uint64_t t = unix_ms & TIME_MASK;
    /* 10 characters carry 50 bits; the top two are zero for a 48-bit time. */
    for (int i = 9; i >= 0; i--) {
        out[i] = alphabet[t & 31];
        t >>= 5;
    }
    /* 80 random bits are exactly 16 characters: take them 40 bits at a time. */
    for (int half = 0; half < 2; half++) {
        uint64_t v = 0;
        for (int b = 0; b < 5; b++)
            v = (v << 8) | random[half * 5 + b];
        for (int i = 7; i >= 0; i--) {
            out[10 + half * 8 + i] = alphabet[v & 31];
            v >>= 5;
        }
    }
}

void ids_generate_at(const char *prefix, uint64_t unix_ms, const uint8_t random[10],
                     char out[IDS_MAX])
{
    size_t plen = strlen(prefix);
    if (plen == 0 || plen > IDS_PREFIX_MAX) {
        /* Prefixes are constants in Billow's own code; a bad one is a bug. */
        fprintf(stderr, "billow: invalid id prefix \"%.32s\"\n", prefix);
        abort();
    }
    memcpy(out, prefix, plen);
    out[plen] = '_';
    encode_body(unix_ms, random, out + plen + 1);
    out[plen + 1 + IDS_BODY_LEN] = '\0';
}

/* Adds step to the 80-bit big-endian number r; returns true on overflow. */
static bool add_random(uint8_t r[RANDOM_BYTES], uint64_t step)
{
    for (int i = RANDOM_BYTES - 1; i >= 0 && step > 0; i--) {
        uint64_t sum = r[i] + (step & 0xff);
        r[i] = (uint8_t)sum;
        step = (step >> 8) + (sum >> 8);
    }
    return step > 0;
}

void ids_generate(const char *prefix, char out[IDS_MAX])
{
    uint64_t now = (uint64_t)timeutil_now_ms() & TIME_MASK;
    uint8_t fresh[RANDOM_BYTES];
    uint32_t step;
    crypto_random_bytes(fresh, sizeof fresh);
    crypto_random_bytes(&step, sizeof step);

    uint64_t ms;
    uint8_t random[RANDOM_BYTES];
    pthread_mutex_lock(&last_lock);
    if (now > last_ms) {
        last_ms = now;
        memcpy(last_random, fresh, sizeof last_random);
    } else if (add_random(last_random, (uint64_t)step + 1)) {
        last_ms += 1;
        memcpy(last_random, fresh, sizeof last_random);
    }
    ms = last_ms;
    memcpy(random, last_random, sizeof random);
    pthread_mutex_unlock(&last_lock);

    ids_generate_at(prefix, ms, random, out);
}

bool ids_valid(const char *prefix, const char *id)
{
    if (prefix == NULL || id == NULL)
        return false;
    size_t plen = strlen(prefix);
    if (plen == 0 || plen > IDS_PREFIX_MAX || strncmp(id, prefix, plen) != 0 || id[plen] != '_')
        return false;
    const char *body = id + plen + 1;
    /* Only the canonical upper-case alphabet: ids are compared and sorted as
     * strings, so Crockford's lenient spellings ("o", "I", "L") would make
     * two spellings of one id. */
    for (size_t i = 0; i < IDS_BODY_LEN; i++) {
        if (body[i] == '\0' || strchr(alphabet, body[i]) == NULL)
            return false;
    }
    return body[IDS_BODY_LEN] == '\0';
}

void ids_derive(const char *prefix, uint64_t unix_ms, const char *key, char out[IDS_MAX])
{
    unsigned char digest[32];
    SHA256((const unsigned char *)key, strlen(key), digest);
    ids_generate_at(prefix, unix_ms, digest, out);
}

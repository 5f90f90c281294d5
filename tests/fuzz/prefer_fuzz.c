/* prefer_fuzz: the request headers submit parses itself.
 *
 * submit_parse_prefer_wait reads a client's Prefer header; its result is how
 * long the request may hold a connection, so it must lie in [0, max] for any
 * header and any max the configuration allows (the first input byte picks
 * max: 0 to 255, or INT_MAX). submit_check_idempotency_key must accept
 * exactly the documented keys, 1 to SUBMIT_IDEMPOTENCY_KEY_MAX printable
 * ASCII characters, since the key is stored in Redis and echoed in errors.
 */
#include <limits.h>
#include <stdbool.h>

#include "fuzz.h"
#include "submit.h"

/* The documented rule, written independently of submit.c. */
static bool key_ok(const char *key)
{
    size_t n = strlen(key);
    if (n == 0 || n > SUBMIT_IDEMPOTENCY_KEY_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c < '!' || c > '~')
            return false;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    int max = data[0] == 255 ? INT_MAX : data[0];
    char *header = fuzz_cstring(data + 1, size - 1);

    int wait = submit_parse_prefer_wait(header, max);
    FUZZ_CHECK(wait >= 0 && wait <= max, "wait=%d outside [0, %d] for \"%s\"", wait, max, header);
    FUZZ_CHECK(submit_parse_prefer_wait(NULL, max) == 0, "no header gave a wait");

    int rc = submit_check_idempotency_key(header);
    FUZZ_CHECK(rc == 0 || rc == BILLOW_EPARAM_INVALID, "check returned %d", rc);
    FUZZ_CHECK((rc == 0) == key_ok(header), "check (%d) disagrees with the documented rule", rc);

    free(header);
    return 0;
}

/* redis_url_fuzz: redis_url_parse on arbitrary REDIS_URL values.
 *
 * REDIS_URL comes from the environment, so a typo must be refused cleanly,
 * never read or written out of bounds. The host buffer is allocated at
 * exactly REDIS_URL_HOST_MAX bytes so AddressSanitizer sees any overflow.
 * Checked for every accepted URL: port and db are in their documented
 * ranges; the host is non-empty, NUL-terminated, and holds nothing that ends
 * the authority part; the credentials read too, each NUL-terminated within
 * REDIS_URL_CRED_MAX, with no user without a password; and writing the
 * result back as a URL and parsing that gives the same host, port and db.
 */
#include <stdbool.h>

#include "fuzz.h"
#include "redis_url.h"

/* Room for "redis://[" host "]:65535/1000000" and a NUL. */
#define URL_MAX (REDIS_URL_HOST_MAX + 32)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *url = fuzz_cstring(data, size);
    char *host = mem_alloc(REDIS_URL_HOST_MAX);
    char *again = mem_alloc(REDIS_URL_HOST_MAX);
    int port = -1, db = -1;

    if (redis_url_parse(url, host, REDIS_URL_HOST_MAX, &port, &db) != 0)
        goto done;
    FUZZ_CHECK(strncmp(url, "redis://", 8) == 0, "accepted a URL of another scheme: %s", url);
    FUZZ_CHECK(port >= 1 && port <= 65535, "port %d out of range: %s", port, url);
    FUZZ_CHECK(db >= 0 && db <= REDIS_URL_DB_MAX, "db %d out of range: %s", db, url);
    FUZZ_CHECK(memchr(host, '\0', REDIS_URL_HOST_MAX) != NULL, "host not terminated: %s", url);
    FUZZ_CHECK(host[0] != '\0', "empty host: %s", url);
    FUZZ_CHECK(strpbrk(host, "/?#@") == NULL, "host \"%s\" holds a delimiter: %s", host, url);
    char *user = mem_alloc(REDIS_URL_CRED_MAX);
    char *password = mem_alloc(REDIS_URL_CRED_MAX);
    int crc = redis_url_credentials(url, user, password);
    FUZZ_CHECK(crc == 0, "%s was accepted but its credentials are refused", url);
    FUZZ_CHECK(memchr(user, '\0', REDIS_URL_CRED_MAX) != NULL &&
                   memchr(password, '\0', REDIS_URL_CRED_MAX) != NULL,
               "credentials not terminated: %s", url);
    FUZZ_CHECK(password[0] != '\0' || user[0] == '\0', "a user without a password: %s", url);
    free(password);
    free(user);

    /* A host with ":" (IPv6) or starting with "[" can only be written back
     * bracketed; any other host is written bare. */
    bool bracket = strchr(host, ':') != NULL || host[0] == '[';
    char rebuilt[URL_MAX];
    snprintf(rebuilt, sizeof rebuilt, "redis://%s%s%s:%d/%d", bracket ? "[" : "", host,
             bracket ? "]" : "", port, db);
    int port2 = -1, db2 = -1;
    int rc = redis_url_parse(rebuilt, again, REDIS_URL_HOST_MAX, &port2, &db2);
    FUZZ_CHECK(rc == 0, "%s was accepted but %s is refused", url, rebuilt);
    FUZZ_CHECK(strcmp(host, again) == 0 && port == port2 && db == db2,
               "%s and %s parse differently", url, rebuilt);

done:
    free(again);
    free(host);
    free(url);
    return 0;
}

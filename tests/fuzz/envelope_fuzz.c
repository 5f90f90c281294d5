/* envelope_fuzz: envelope_decode on arbitrary bytes, then a round trip.
 *
 * Envelopes come back from Redis long after they were written (a dead job's
 * replay), so decode must survive any bytes. Whatever decode accepts, encode
 * must be able to write (encode fails only on invalid UTF-8, which a decoded
 * envelope cannot hold), and decoding that text must give the same fields:
 * an envelope that changes on its way through the queue is a job that runs
 * with other data than it was submitted with.
 *
 * The input is also tried as the enqueued_at text of an otherwise valid
 * envelope, the one field decode converts rather than copies, so the fuzzer
 * explores RFC 3339 parsing directly instead of only through whole
 * envelopes it must first get right.
 */
#include <jansson.h>

#include "envelope.h"
#include "fuzz.h"

/* Both NULL, or both strings with the same bytes. */
static int same_optional(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

/* Decodes json; when that succeeds, checks the encode and decode round trip. */
static void round_trip(const char *json, size_t size)
{
    envelope_t first, second;
    if (envelope_decode(json, size, &first) != 0) {
        /* A failed decode leaves the envelope disposed: nothing to free. */
        FUZZ_CHECK(first.payload == NULL && first.idempotency_key == NULL,
                   "a failed decode left owned fields behind");
        return;
    }
    FUZZ_CHECK(json_is_object(first.payload), "decode accepted a payload that is not an object");

    char *text = envelope_encode(&first);
    FUZZ_CHECK(text != NULL, "a decoded envelope could not be encoded");
    int rc = envelope_decode(text, strlen(text), &second);
    FUZZ_CHECK(rc == 0, "the encoded envelope was refused (%d): %s", rc, text);

    FUZZ_CHECK(strcmp(first.id, second.id) == 0, "id changed: %s", text);
    FUZZ_CHECK(strcmp(first.type, second.type) == 0, "type changed: %s", text);
    FUZZ_CHECK(strcmp(first.tenant_id, second.tenant_id) == 0, "tenant_id changed: %s", text);
    FUZZ_CHECK(strcmp(first.actor, second.actor) == 0, "actor changed: %s", text);
    FUZZ_CHECK(strcmp(first.trace, second.trace) == 0, "trace changed: %s", text);
    FUZZ_CHECK(same_optional(first.idempotency_key, second.idempotency_key),
               "idempotency_key changed: %s", text);
    FUZZ_CHECK(first.attempt == second.attempt, "attempt changed: %s", text);
    FUZZ_CHECK(first.enqueued_at_ms == second.enqueued_at_ms,
               "enqueued_at changed from %lld ms to %lld ms: %s", (long long)first.enqueued_at_ms,
               (long long)second.enqueued_at_ms, text);
    FUZZ_CHECK(json_equal(first.payload, second.payload), "payload changed: %s", text);

    free(text);
    envelope_dispose(&first);
    envelope_dispose(&second);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    round_trip((const char *)data, size);

    /* NULL when the input is not UTF-8 text: then there is nothing to splice. */
    json_t *at = json_stringn((const char *)data, size);
    if (at == NULL)
        return 0;
    json_t *env = json_pack(
        "{s:s, s:s, s:s, s:s, s:{}, s:n, s:i, s:o, s:s}", "id", "job_01JDQ3Z5X8M2N4P6R8T0V2W4Y6",
        "type", "customer.create", "tenant_id", "ten_01JDQ3Z5X8M2N4P6R8T0V2W4Y6", "actor",
        "platform", "payload", "idempotency_key", "attempt", 0, "enqueued_at", at, "trace", "");
    FUZZ_CHECK(env != NULL, "json_pack failed");
    char *json = json_dumps(env, JSON_COMPACT);
    FUZZ_CHECK(json != NULL, "json_dumps failed");
    round_trip(json, strlen(json));
    free(json);
    json_decref(env);
    return 0;
}

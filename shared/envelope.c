/* envelope: the JSON envelope every job travels in.
 *
 * Design: decode is strict because an envelope crosses a process boundary
 * and may come back from Redis long after it was written (a replay of a
 * dead job): every field must be present with its type, strings must fit
 * their fixed buffers, the id must be a job id, and an unknown field is
 * refused rather than ignored, so a newer writer and an older reader
 * disagreeing about the format fail loudly instead of dropping data.
 * Decoded values are copied out, so the parsed tree is freed before return.
 */
#include "envelope.h"

#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "timeutil.h"

/* The fields of an envelope, all required but "client" (envelopes written
 * before it existed lack it). */
static const char *const fields[] = {
    "id",          "type",  "tenant_id",       "actor",  "payload", "attempt",
    "enqueued_at", "trace", "idempotency_key", "client", NULL};

void envelope_init(envelope_t *env)
{
    memset(env, 0, sizeof *env);
    env->payload = NULL;
    env->idempotency_key = NULL;
}

void envelope_dispose(envelope_t *env)
{
    json_decref(env->payload);
    free(env->idempotency_key);
    envelope_init(env);
}

char *envelope_encode(const envelope_t *env)
{
    char enqueued_at[TIMEUTIL_RFC3339_MAX];
    timeutil_format_rfc3339(env->enqueued_at_ms, enqueued_at);
    json_t *payload = env->payload != NULL ? json_incref(env->payload) : json_object();

    /* "o" steals payload even when packing fails; "s?" writes null for NULL. */
    json_t *obj =
        json_pack("{s:s, s:s, s:s, s:s, s:o, s:s?, s:i, s:s, s:s, s:s}", "id", env->id, "type",
                  env->type, "tenant_id", env->tenant_id, "actor", env->actor, "payload", payload,
                  "idempotency_key", env->idempotency_key, "attempt", env->attempt, "enqueued_at",
                  enqueued_at, "trace", env->trace, "client", env->client);
    if (obj == NULL)
        return NULL;
    char *text = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    return text;
}

/* Copies the string field key of root into out (size bytes with the NUL).
 * Refuses a missing field, another type, a string that does not fit, and
 * an empty string unless allow_empty. */
static int copy_string(const json_t *root, const char *key, char *out, size_t size,
                       bool allow_empty)
{
    const json_t *v = json_object_get(root, key);
    if (!json_is_string(v))
        return BILLOW_EPARAM_INVALID;
    size_t len = json_string_length(v);
    if (len >= size || (len == 0 && !allow_empty))
        return BILLOW_EPARAM_INVALID;
    memcpy(out, json_string_value(v), len + 1);
    return 0;
}

static bool known_field(const char *key)
{
    for (size_t i = 0; fields[i] != NULL; i++) {
        if (strcmp(fields[i], key) == 0)
            return true;
    }
    return false;
}

int envelope_decode(const char *json, size_t len, envelope_t *env)
{
    json_t *root = NULL;
    json_error_t jerr;
    const char *key;
    json_t *value;
    int rc;

    envelope_init(env);
    if (json == NULL) {
        rc = BILLOW_EINVALID_JSON;
        goto fail;
    }
    root = json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (root == NULL) {
        rc = BILLOW_EINVALID_JSON;
        goto fail;
    }
    rc = BILLOW_EPARAM_INVALID;
    if (!json_is_object(root))
        goto fail;
    json_object_foreach(root, key, value)
    {
        if (!known_field(key))
            goto fail;
    }

    if (copy_string(root, "id", env->id, sizeof env->id, false) != 0 || !ids_valid("job", env->id))
        goto fail;
    if (copy_string(root, "type", env->type, sizeof env->type, false) != 0)
        goto fail;
    if (copy_string(root, "tenant_id", env->tenant_id, sizeof env->tenant_id, true) != 0)
        goto fail;
    if (copy_string(root, "actor", env->actor, sizeof env->actor, false) != 0)
        goto fail;
    if (copy_string(root, "trace", env->trace, sizeof env->trace, true) != 0)
        goto fail;

    if (json_object_get(root, "client") != NULL &&
        copy_string(root, "client", env->client, sizeof env->client, true) != 0)
        goto fail;

    const json_t *payload = json_object_get(root, "payload");
    if (!json_is_object(payload))
        goto fail;
    env->payload = json_incref((json_t *)payload);

    const json_t *idem = json_object_get(root, "idempotency_key");
    if (json_is_string(idem)) {
        size_t idem_len = json_string_length(idem);
        if (idem_len == 0 || idem_len > ENVELOPE_IDEMPOTENCY_KEY_MAX)
            goto fail;
        env->idempotency_key = mem_strndup(json_string_value(idem), idem_len);
    } else if (!json_is_null(idem)) {
        goto fail;
    }

    const json_t *attempt = json_object_get(root, "attempt");
    if (!json_is_integer(attempt) || json_integer_value(attempt) < 0 ||
        json_integer_value(attempt) > INT_MAX)
        goto fail;
    env->attempt = (int)json_integer_value(attempt);

    const json_t *at = json_object_get(root, "enqueued_at");
    if (!json_is_string(at) ||
        timeutil_parse_rfc3339(json_string_value(at), &env->enqueued_at_ms) != 0)
        goto fail;

    json_decref(root);
    return 0;

fail:
    json_decref(root);
    envelope_dispose(env);
    return rc;
}

/* envelope_test: encoding round trips, and decode refuses anything malformed. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"

#define JOB_ID "job_01JDQ5V3KX8Z9Y7W6V5T4S3R2Q"
/* 2026-11-25T23:17:50.123Z */
#define ENQUEUED_MS INT64_C(1795648670123)

static void fill(envelope_t *env)
{
    envelope_init(env);
    strcpy(env->id, JOB_ID);
    strcpy(env->type, "customer.create");
    strcpy(env->tenant_id, "ten_01JDQ5V3KX8Z9Y7W6V5T4S3R2Q");
    strcpy(env->actor, "key_01JDQ5V3KX8Z9Y7W6V5T4S3R2Q");
    env->payload = json_pack("{s:s, s:{s:s}, s:i}", "email", "ada@example.com", "metadata", "plan",
                             "gold", "amount", 1999);
    env->idempotency_key = strdup("order-42");
    env->attempt = 3;
    env->enqueued_at_ms = ENQUEUED_MS;
    strcpy(env->trace, "req_01JDQ5V3KX8Z9Y7W6V5T4S3R2Q");
    strcpy(env->client, "2001:db8::7");
}

/* A valid envelope's JSON with one field's value replaced by `value`
 * (raw JSON text), or removed when value is NULL. */
static char *with_field(const char *field, const char *value)
{
    envelope_t env;
    fill(&env);
    char *text = envelope_encode(&env);
    envelope_dispose(&env);
    json_t *obj = json_loads(text, 0, NULL);
    free(text);
    if (value == NULL)
        json_object_del(obj, field);
    else
        json_object_set_new(obj, field, json_loads(value, JSON_DECODE_ANY, NULL));
    char *out = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    return out;
}

static int decode_text(const char *text)
{
    envelope_t env;
    int rc = envelope_decode(text, strlen(text), &env);
    if (rc == 0)
        envelope_dispose(&env);
    else
        cr_assert_null(env.payload, "a failed decode leaves env disposed");
    return rc;
}

static int decode_with(const char *field, const char *value)
{
    char *text = with_field(field, value);
    int rc = decode_text(text);
    free(text);
    return rc;
}

Test(envelope, encode_then_decode_gives_the_same_envelope)
{
    envelope_t in, out;
    fill(&in);
    char *text = envelope_encode(&in);
    cr_assert_not_null(text);
    cr_assert_eq(envelope_decode(text, strlen(text), &out), 0);
    cr_assert_str_eq(out.id, in.id);
    cr_assert_str_eq(out.type, in.type);
    cr_assert_str_eq(out.tenant_id, in.tenant_id);
    cr_assert_str_eq(out.actor, in.actor);
    cr_assert(json_equal(out.payload, in.payload));
    cr_assert_str_eq(out.idempotency_key, "order-42");
    cr_assert_eq(out.attempt, 3);
    cr_assert_eq(out.enqueued_at_ms, ENQUEUED_MS);
    cr_assert_str_eq(out.trace, in.trace);
    cr_assert_str_eq(out.client, in.client);
    free(text);
    envelope_dispose(&in);
    envelope_dispose(&out);
}

Test(envelope, enqueued_at_is_rfc3339_with_milliseconds)
{
    envelope_t env;
    fill(&env);
    char *text = envelope_encode(&env);
    cr_assert_not_null(strstr(text, "\"enqueued_at\":\"2026-11-25T23:17:50.123Z\""), "%s", text);
    free(text);
    envelope_dispose(&env);
}

Test(envelope, a_missing_idempotency_key_round_trips_as_null)
{
    envelope_t in, out;
    fill(&in);
    free(in.idempotency_key);
    in.idempotency_key = NULL;
    in.tenant_id[0] = '\0';
    char *text = envelope_encode(&in);
    cr_assert_not_null(strstr(text, "\"idempotency_key\":null"), "%s", text);
    cr_assert_eq(envelope_decode(text, strlen(text), &out), 0);
    cr_assert_null(out.idempotency_key);
    cr_assert_str_eq(out.tenant_id, "");
    free(text);
    envelope_dispose(&in);
    envelope_dispose(&out);
}

Test(envelope, dispose_empties_the_envelope)
{
    envelope_t env;
    fill(&env);
    envelope_dispose(&env);
    cr_assert_null(env.payload);
    cr_assert_null(env.idempotency_key);
    cr_assert_str_eq(env.id, "");
    cr_assert_eq(env.attempt, 0);
}

Test(envelope, decode_refuses_a_missing_field)
{
    cr_assert_eq(decode_with("id", NULL), BILLOW_EPARAM_INVALID);
    cr_assert_eq(decode_with("payload", NULL), BILLOW_EPARAM_INVALID);
    cr_assert_eq(decode_with("enqueued_at", NULL), BILLOW_EPARAM_INVALID);
    cr_assert_eq(decode_with("idempotency_key", NULL), BILLOW_EPARAM_INVALID);
}

Test(envelope, decode_refuses_fields_of_the_wrong_type)
{
    cr_assert_eq(decode_with("id", "42"), BILLOW_EPARAM_INVALID);
    cr_assert_eq(decode_with("type", "null"), BILLOW_EPARAM_INVALID);
    cr_assert_eq(decode_with("tenant_id", "[]"), BILLOW_EPARAM_INVALID);
    cr_assert_eq(decode_with("actor", "true"), BILLOW_EPARAM_INVALID);
    cr_assert_eq(decode_with("payload", "[1,2]"), BILLOW_EPARAM_INVALID);
    cr_assert_eq(decode_with("payload", "\"{}\""), BILLOW_EPARAM_INVALID);
    cr_assert_eq(decode_with("idempotency_key", "7"), BILLOW_EPARAM_INVALID);
    cr_assert_eq(decode_with("attempt", "\"3\""), BILLOW_EPARAM_INVALID);
    cr_assert_eq(decode_with("attempt", "1.5"), BILLOW_EPARAM_INVALID);
    cr_assert_eq(decode_with("enqueued_at", "1795648670123"), BILLOW_EPARAM_INVALID);
    cr_assert_eq(decode_with("trace", "{}"), BILLOW_EPARAM_INVALID);
}

Test(envelope, decode_refuses_values_out_of_range)
{
    cr_assert_eq(decode_with("attempt", "-1"), BILLOW_EPARAM_INVALID);
    cr_assert_eq(decode_with("attempt", "4294967296"), BILLOW_EPARAM_INVALID);
    cr_assert_eq(decode_with("type", "\"\""), BILLOW_EPARAM_INVALID);
    cr_assert_eq(decode_with("idempotency_key", "\"\""), BILLOW_EPARAM_INVALID);
    cr_assert_eq(decode_with("enqueued_at", "\"2026-02-30T00:00:00Z\""), BILLOW_EPARAM_INVALID);
    cr_assert_eq(decode_with("enqueued_at", "\"yesterday\""), BILLOW_EPARAM_INVALID);
    /* A string one byte too long for its buffer. */
    char big[IDS_MAX + 3];
    memset(big, 'a', sizeof big);
    big[0] = '"';
    big[IDS_MAX + 1] = '"';
    big[IDS_MAX + 2] = '\0';
    cr_assert_eq(decode_with("trace", big), BILLOW_EPARAM_INVALID);
    char *long_key = malloc(ENVELOPE_IDEMPOTENCY_KEY_MAX + 4);
    memset(long_key, 'k', ENVELOPE_IDEMPOTENCY_KEY_MAX + 3);
    long_key[0] = '"';
    long_key[ENVELOPE_IDEMPOTENCY_KEY_MAX + 2] = '"';
    long_key[ENVELOPE_IDEMPOTENCY_KEY_MAX + 3] = '\0';
    cr_assert_eq(decode_with("idempotency_key", long_key), BILLOW_EPARAM_INVALID);
    free(long_key);
}

Test(envelope, decode_refuses_an_id_that_is_not_a_job_id)
{
    cr_assert_eq(decode_with("id", "\"cus_01JDQ5V3KX8Z9Y7W6V5T4S3R2Q\""), BILLOW_EPARAM_INVALID);
    cr_assert_eq(decode_with("id", "\"job_short\""), BILLOW_EPARAM_INVALID);
    cr_assert_eq(decode_with("id", "\"job-01JDQ5V3KX8Z9Y7W6V5T4S3R2Q\""), BILLOW_EPARAM_INVALID);
}

Test(envelope, decode_refuses_an_unknown_field)
{
    cr_assert_eq(decode_with("priority", "1"), BILLOW_EPARAM_INVALID);
}

Test(envelope, decode_refuses_json_that_is_not_an_object)
{
    cr_assert_eq(decode_text("[]"), BILLOW_EPARAM_INVALID);
    cr_assert_eq(decode_text("\"job\""), BILLOW_EPARAM_INVALID);
    cr_assert_eq(decode_text("null"), BILLOW_EPARAM_INVALID);
}

Test(envelope, decode_refuses_invalid_json)
{
    cr_assert_eq(decode_text("{"), BILLOW_EINVALID_JSON);
    cr_assert_eq(decode_text(""), BILLOW_EINVALID_JSON);
    cr_assert_eq(decode_text("{\"id\":\"job_x\"} trailing"), BILLOW_EINVALID_JSON);
    /* Duplicate keys are refused: two readers could disagree on which wins. */
    char *text = with_field("trace", NULL);
    size_t len = strlen(text);
    char *dup = malloc(len + 64);
    memcpy(dup, text, len - 1);
    strcpy(dup + len - 1, ",\"trace\":\"a\",\"trace\":\"b\"}");
    cr_assert_eq(decode_text(dup), BILLOW_EINVALID_JSON);
    free(dup);
    free(text);
}

Test(envelope, decode_reads_only_len_bytes)
{
    envelope_t env;
    fill(&env);
    char *text = envelope_encode(&env);
    envelope_dispose(&env);
    size_t len = strlen(text);
    char *padded = malloc(len + 8);
    memcpy(padded, text, len);
    memcpy(padded + len, "garbage", 8);
    cr_assert_eq(envelope_decode(padded, len, &env), 0);
    cr_assert_str_eq(env.id, JOB_ID);
    envelope_dispose(&env);
    free(padded);
    free(text);
}

Test(envelope, an_envelope_without_a_client_address_decodes_with_an_empty_one)
{
    char *text = with_field("client", NULL);
    envelope_t env;
    cr_assert_eq(envelope_decode(text, strlen(text), &env), 0);
    cr_assert_str_eq(env.client, "");
    envelope_dispose(&env);
    free(text);
    cr_assert_eq(decode_with("client", "7"), BILLOW_EPARAM_INVALID);
}

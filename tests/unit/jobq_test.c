/* jobq: routing, the job object, and the words sent to Redis. The Lua
 * functions themselves run against a real Redis in tests/integration. */
#include <criterion/criterion.h>
#include <string.h>

#include "jobq.h"

Test(jobq, job_types_route_to_their_worker_kind)
{
    cr_assert_str_eq(jobq_kind_for_type("customer.create"), "domain");
    cr_assert_str_eq(jobq_kind_for_type("tenant.create"), "domain");
    cr_assert_str_eq(jobq_kind_for_type("system.noop"), "domain");
    cr_assert_str_eq(jobq_kind_for_type("metrics.refresh"), "metrics");
    cr_assert_str_eq(jobq_kind_for_type("session.create"), "access");
    cr_assert_str_eq(jobq_kind_for_type("user.update"), "access");
    cr_assert_str_eq(jobq_kind_for_type("api_key.revoke"), "access");
    cr_assert_str_eq(jobq_kind_for_type("tenant.settings_update"), "access");
    cr_assert_null(jobq_kind_for_type("customer."), "a prefix without a verb is no type");
    cr_assert_str_eq(jobq_kind_for_type("product.create"), "domain");
    cr_assert_str_eq(jobq_kind_for_type("price.update"), "domain");
    cr_assert_str_eq(jobq_kind_for_type("subscription.cycle"), "invoice");
    cr_assert_str_eq(jobq_kind_for_type("invoice.pay"), "invoice");
    cr_assert_str_eq(jobq_kind_for_type("test_clock.advance"), "renewal");
    cr_assert_str_eq(jobq_kind_for_type("payment.charge"), "charger");
    cr_assert_null(jobq_kind_for_type("coupon.create"), "no kind runs coupons yet");
    cr_assert_null(jobq_kind_for_type(""));
}

Test(jobq, every_routed_kind_is_a_known_kind)
{
    const char *types[] = {"customer.create", "tenant.create",      "system.noop",
                           "metrics.refresh", "subscription.cycle", "test_clock.create",
                           "payment.charge"};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        cr_assert(jobq_kind_valid(jobq_kind_for_type(types[i])), "%s", types[i]);
    cr_assert_not(jobq_kind_valid("nope"));
}

Test(jobq, status_names_round_trip)
{
    for (int s = JOBQ_QUEUED; s <= JOBQ_DEAD; s++)
        cr_assert_eq(jobq_status_parse(jobq_status_name((jobq_status_t)s)), s);
    cr_assert_eq(jobq_status_parse("retrying"), -1);
}

static void sample_envelope(envelope_t *env, const char *tenant)
{
    envelope_init(env);
    strcpy(env->id, "job_01M8AGPYA84BH5ERP1GDMWX9FM");
    strcpy(env->type, "customer.create");
    strcpy(env->tenant_id, tenant);
    strcpy(env->actor, "key_01M8AGPYA84BH5ERP1GDMWX9FN");
    strcpy(env->trace, "req_01M8AGPYA64RHDV44CYER6TB4K");
    env->enqueued_at_ms = 1795649403208LL; /* 2026-11-25T23:30:03.208Z */
    env->payload = json_object();
}

Test(jobq, a_new_job_object_is_valid_json_with_every_field)
{
    envelope_t env;
    sample_envelope(&env, "ten_0000000000000000000000DEM0");
    json_t *job = jobq_new_job_json(&env);
    cr_assert_not_null(job);
    cr_assert_str_eq(json_string_value(json_object_get(job, "id")), env.id);
    cr_assert_str_eq(json_string_value(json_object_get(job, "status")), "queued");
    cr_assert_str_eq(json_string_value(json_object_get(job, "tenant_id")), env.tenant_id);
    cr_assert_str_eq(json_string_value(json_object_get(job, "request_id")), env.trace);
    cr_assert_str_eq(json_string_value(json_object_get(job, "created_at")),
                     "2026-11-25T23:30:03.208Z");
    cr_assert(json_is_null(json_object_get(job, "result")));
    cr_assert_eq(json_object_size(job), 16);
    json_decref(job);
    envelope_dispose(&env);
}

Test(jobq, a_job_without_tenant_has_a_null_tenant_id)
{
    envelope_t env;
    sample_envelope(&env, "");
    json_t *job = jobq_new_job_json(&env);
    cr_assert(json_is_null(json_object_get(job, "tenant_id")));
    json_decref(job);
    envelope_dispose(&env);
}

Test(jobq, new_job_text_that_does_not_fit_gives_zero)
{
    envelope_t env;
    sample_envelope(&env, "ten_0000000000000000000000DEM0");
    char small[64];
    cr_assert_eq(jobq_new_job_text(&env, small, sizeof(small)), 0);
    envelope_dispose(&env);
}

/* A fake HGETALL reply over field/value pairs (the test owns everything). */
typedef struct {
    redisReply top;
    redisReply items[32];
    redisReply *ptrs[32];
} fake_hash_t;

static void fake_hash(fake_hash_t *f, const char *const *kv, size_t n)
{
    memset(f, 0, sizeof(*f));
    f->top.type = REDIS_REPLY_ARRAY;
    f->top.elements = n;
    f->top.element = f->ptrs;
    for (size_t i = 0; i < n; i++) {
        f->items[i].type = REDIS_REPLY_STRING;
        f->items[i].str = (char *)kv[i];
        f->items[i].len = strlen(kv[i]);
        f->ptrs[i] = &f->items[i];
    }
}

Test(jobq, status_hash_becomes_the_api_job_object)
{
    const char *kv[] = {"id",          "job_01M8AGPYA84BH5ERP1GDMWX9FM",
                        "type",        "customer.create",
                        "status",      "succeeded",
                        "tenant_id",   "ten_0000000000000000000000DEM0",
                        "attempts",    "2",
                        "result",      "{\"id\":\"cus_1\",\"amount\":12345678901234}",
                        "enqueued_at", "1795649403208",
                        "finished_at", "1795649404000",
                        "request_id",  "req_01M8AGPYA64RHDV44CYER6TB4K"};
    fake_hash_t f;
    fake_hash(&f, kv, sizeof(kv) / sizeof(kv[0]));
    json_t *job = jobq_status_json(&f.top);
    cr_assert_not_null(job);
    cr_assert_str_eq(json_string_value(json_object_get(job, "status")), "succeeded");
    cr_assert_eq(json_integer_value(json_object_get(job, "attempts")), 2);
    json_t *result = json_object_get(job, "result");
    cr_assert_eq(json_integer_value(json_object_get(result, "amount")), 12345678901234LL,
                 "large integers in a result survive exactly");
    cr_assert_str_eq(json_string_value(json_object_get(job, "finished_at")),
                     "2026-11-25T23:30:04.000Z");
    cr_assert(json_is_null(json_object_get(job, "started_at")));
    cr_assert(json_is_null(json_object_get(job, "error")));
    json_decref(job);
}

Test(jobq, an_empty_status_hash_is_no_job)
{
    fake_hash_t f;
    fake_hash(&f, NULL, 0);
    cr_assert_null(jobq_status_json(&f.top));
}

Test(jobq, enqueue_replies_are_read_into_outcomes)
{
    const char *cases[][2] = {
        {"enqueued", "job_A"}, {"replayed", "job_B"}, {"conflict", "job_C"}, {"exists", "job_D"}};
    jobq_outcome_t want[] = {JOBQ_ENQUEUED, JOBQ_REPLAYED, JOBQ_CONFLICT, JOBQ_EXISTS};
    for (size_t i = 0; i < 4; i++) {
        fake_hash_t f;
        fake_hash(&f, cases[i], 2);
        jobq_outcome_t out;
        char id[IDS_MAX];
        cr_assert_eq(jobq_enqueue_reply(&f.top, &out, id), 0);
        cr_assert_eq(out, want[i]);
        cr_assert_str_eq(id, cases[i][1]);
    }
    const char *bad[] = {"later", "job_X"};
    fake_hash_t f;
    fake_hash(&f, bad, 2);
    jobq_outcome_t out;
    char id[IDS_MAX];
    cr_assert_neq(jobq_enqueue_reply(&f.top, &out, id), 0);
    cr_assert_neq(jobq_enqueue_reply(NULL, &out, id), 0);
}

Test(jobq, enqueue_declares_the_idempotency_key_only_when_given)
{
    envelope_t env;
    sample_envelope(&env, "ten_0000000000000000000000DEM0");
    jobq_cmd_t cmd;
    cr_assert_eq(jobq_enqueue_cmd(&cmd, &env, "{}", NULL, NULL, NULL, 1), 0);
    cr_assert_str_eq(cmd.argv[0], "FCALL");
    cr_assert_str_eq(cmd.argv[1], "billow_enqueue");
    cr_assert_str_eq(cmd.argv[2], "2");
    cr_assert_str_eq(cmd.argv[3], "job:job_01M8AGPYA84BH5ERP1GDMWX9FM");
    cr_assert_str_eq(cmd.argv[4], "jobs:domain");

    cr_assert_eq(jobq_enqueue_cmd(&cmd, &env, "{}", "platform", "key-1", "abc", 1), 0);
    cr_assert_str_eq(cmd.argv[2], "3");
    cr_assert_str_eq(cmd.argv[5], "idem:platform:key-1");
    cr_assert_eq(cmd.argc, JOBQ_CMD_ARGS, "every slot is used with an idempotency key");
    cr_assert_str_eq(cmd.argv[cmd.argc - 1], env.actor, "the actor comes last");
    for (int i = 0; i < cmd.argc; i++)
        cr_assert_eq(cmd.argvlen[i], strlen(cmd.argv[i]));
    envelope_dispose(&env);
}

Test(jobq, a_job_no_worker_kind_runs_is_refused_not_queued_somewhere)
{
    envelope_t env;
    sample_envelope(&env, "ten_0000000000000000000000DEM0");
    strcpy(env.type, "coupon.create");
    jobq_cmd_t cmd;
    cr_assert_eq(jobq_enqueue_cmd(&cmd, &env, "{}", NULL, NULL, NULL, 1), BILLOW_EPARAM_INVALID);
    cr_assert_eq(cmd.argc, 0, "nothing to send");
    envelope_dispose(&env);
}

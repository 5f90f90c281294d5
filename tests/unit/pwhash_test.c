/* pwhash_test: password checks on the thread pool, a limited number at
 * once, the rest queued in order, and refused beyond the queue's bound. */
#include <criterion/criterion.h>
#include <string.h>

#include "app.h"
#include "pwhash.h"

/* A cheap cost, so the tests do not wait on scrypt. */
static const password_params_t cheap = {.log_n = 10, .r = 8, .p = 1};

typedef struct {
    int calls;    /* Callbacks seen. */
    int ok;       /* Verifications that matched. */
    int order[8]; /* Which item finished n-th. */
    char hash[PASSWORD_ENCODED_MAX];
} seen_t;

typedef struct {
    seen_t *seen;
    int index;
} item_t;

static void on_verified(void *data, bool ok)
{
    item_t *it = data;
    if (it->seen->calls < 8)
        it->seen->order[it->seen->calls] = it->index;
    it->seen->calls++;
    it->seen->ok += ok;
}

static void on_hashed(void *data, int err, const char *encoded)
{
    seen_t *seen = data;
    seen->calls++;
    cr_assert_eq(err, 0);
    snprintf(seen->hash, sizeof seen->hash, "%s", encoded);
}

static void app_setup(app_t *app, uv_loop_t *loop, int concurrency)
{
    memset(app, 0, sizeof *app);
    uv_loop_init(loop);
    app->loop = loop;
    loop->data = app;
    app->pw_params = cheap;
    cr_assert_eq(pwhash_init(app, concurrency), 0);
}

Test(pwhash, a_hash_made_on_the_pool_verifies_and_a_wrong_password_does_not)
{
    app_t app;
    uv_loop_t loop;
    app_setup(&app, &loop, 1);
    seen_t seen = {0};
    cr_assert_eq(pwhash_hash(&app, "tulip garden rain", on_hashed, &seen), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(seen.calls, 1);
    cr_assert_eq(strncmp(seen.hash, "$scrypt$ln=10,r=8,p=1$", 22), 0, "%s", seen.hash);

    seen_t checks = {0};
    item_t right = {&checks, 0}, wrong = {&checks, 1}, unknown = {&checks, 2};
    cr_assert_eq(pwhash_verify(&app, seen.hash, "tulip garden rain", on_verified, &right), 0);
    cr_assert_eq(pwhash_verify(&app, seen.hash, "tulip garden snow", on_verified, &wrong), 0);
    /* No hash (an unknown user): checked against the dummy, never a match. */
    cr_assert_eq(pwhash_verify(&app, NULL, PWHASH_BUSY, on_verified, &unknown), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(checks.calls, 3);
    cr_assert_eq(checks.ok, 1);
    pwhash_dispose(&app);
    cr_assert_eq(uv_loop_close(&loop), 0);
}

Test(pwhash, with_one_at_a_time_the_queue_runs_in_order)
{
    app_t app;
    uv_loop_t loop;
    app_setup(&app, &loop, 1);
    seen_t seen = {0};
    item_t items[5];
    for (int i = 0; i < 5; i++) {
        items[i] = (item_t){&seen, i};
        cr_assert_eq(pwhash_verify(&app, NULL, "any password at all", on_verified, &items[i]), 0);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(seen.calls, 5);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(seen.order[i], i, "finished %d-th: item %d", i, seen.order[i]);
    pwhash_dispose(&app);
    cr_assert_eq(uv_loop_close(&loop), 0);
}

Test(pwhash, beyond_the_queue_bound_a_check_is_refused_and_the_queued_ones_still_finish)
{
    app_t app;
    uv_loop_t loop;
    app_setup(&app, &loop, 1);
    seen_t seen = {0};
    item_t it = {&seen, 0};
    /* One runs at once; PWHASH_QUEUE_MAX wait; the next is refused. */
    for (int i = 0; i < PWHASH_QUEUE_MAX + 1; i++)
        cr_assert_eq(pwhash_verify(&app, NULL, "any password at all", on_verified, &it), 0,
                     "item %d", i);
    cr_assert_eq(pwhash_verify(&app, NULL, "any password at all", on_verified, &it),
                 BILLOW_EUNAVAILABLE);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(seen.calls, PWHASH_QUEUE_MAX + 1);
    /* Drained: there is room again. */
    cr_assert_eq(pwhash_verify(&app, NULL, "any password at all", on_verified, &it), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(seen.calls, PWHASH_QUEUE_MAX + 2);
    pwhash_dispose(&app);
    cr_assert_eq(uv_loop_close(&loop), 0);
}

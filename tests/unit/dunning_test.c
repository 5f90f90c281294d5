/* dunning_test: the dunning policy — reading it, and what follows a failure. */
#include <criterion/criterion.h>
#include <string.h>

#include "dunning.h"

#define DAY DUNNING_DAY_S
/* A first failure at 2027-01-01T00:00:00Z. */
#define T0 1798761600LL

static int read_text(const char *text, dunning_policy_t *p, char *param)
{
    char why[160];
    json_t *j = json_loads(text, 0, NULL);
    cr_assert_not_null(j, "test JSON does not parse: %s", text);
    int rc = dunning_policy_read(j, p, param, why, sizeof why);
    json_decref(j);
    return rc;
}

Test(dunning, default_is_three_retries_at_3_5_7_days_then_cancel_with_every_message)
{
    dunning_policy_t p;
    dunning_policy_default(&p);
    cr_assert_eq(p.n_retries, 3);
    cr_assert_eq(p.retry_days[0], 3);
    cr_assert_eq(p.retry_days[1], 5);
    cr_assert_eq(p.retry_days[2], 7);
    cr_assert_eq(p.end, DUNNING_END_CANCEL);
    for (int i = 0; i < DUNNING_NOTIFY_COUNT_; i++)
        cr_assert(p.notify[i], "message %s is on by default", dunning_notify_name(i));
}

Test(dunning, soft_failures_follow_the_schedule_from_the_first_failure_then_end)
{
    dunning_policy_t p;
    dunning_policy_default(&p);
    dunning_step_t s = dunning_after_failure(&p, T0, 0, false);
    cr_assert_eq(s.kind, DUNNING_STEP_RETRY);
    cr_assert_eq(s.at, T0 + 3 * DAY);
    cr_assert_eq(s.scheduled_retries, 1);
    s = dunning_after_failure(&p, T0, 1, false);
    cr_assert_eq(s.kind, DUNNING_STEP_RETRY);
    cr_assert_eq(s.at, T0 + 5 * DAY);
    s = dunning_after_failure(&p, T0, 2, false);
    cr_assert_eq(s.kind, DUNNING_STEP_RETRY);
    cr_assert_eq(s.at, T0 + 7 * DAY);
    cr_assert_eq(s.scheduled_retries, 3);
    /* The fourth attempt failed: nothing is left. */
    s = dunning_after_failure(&p, T0, 3, false);
    cr_assert_eq(s.kind, DUNNING_STEP_END);
    cr_assert_eq(s.scheduled_retries, 3);
}

Test(dunning, a_hard_decline_waits_for_a_new_method_until_the_last_retry_time)
{
    dunning_policy_t p;
    dunning_policy_default(&p);
    dunning_step_t s = dunning_after_failure(&p, T0, 0, true);
    cr_assert_eq(s.kind, DUNNING_STEP_AWAIT_METHOD);
    cr_assert_eq(s.at, T0 + 7 * DAY);
    cr_assert_eq(s.scheduled_retries, 0, "a hard decline uses no scheduled retry");
    s = dunning_after_failure(&p, T0, 2, true);
    cr_assert_eq(s.kind, DUNNING_STEP_AWAIT_METHOD);
    cr_assert_eq(s.at, T0 + 7 * DAY);
}

Test(dunning, a_policy_without_retries_ends_at_the_first_failure)
{
    dunning_policy_t p;
    char param[DUNNING_PARAM_MAX] = "";
    dunning_policy_default(&p);
    cr_assert_eq(read_text("{\"retry_days\": []}", &p, param), 0);
    cr_assert_eq(dunning_after_failure(&p, T0, 0, false).kind, DUNNING_STEP_END);
    cr_assert_eq(dunning_after_failure(&p, T0, 0, true).kind, DUNNING_STEP_END);
}

Test(dunning, reading_merges_over_the_current_policy)
{
    dunning_policy_t p;
    char param[DUNNING_PARAM_MAX] = "";
    dunning_policy_default(&p);
    cr_assert_eq(read_text("{\"end_action\": \"mark_unpaid\", \"notify\": {\"payment_succeeded\": "
                           "false}}",
                           &p, param),
                 0);
    cr_assert_eq(p.end, DUNNING_END_MARK_UNPAID);
    cr_assert_not(p.notify[DUNNING_NOTIFY_PAYMENT_SUCCEEDED]);
    cr_assert(p.notify[DUNNING_NOTIFY_PAYMENT_FAILED], "members not named keep their value");
    cr_assert_eq(p.n_retries, 3, "retry_days not named keeps the schedule");
    cr_assert_eq(read_text("{\"retry_days\": [1, 2, 4, 8, 16, 32, 60]}", &p, param), 0);
    cr_assert_eq(p.n_retries, 7);
    cr_assert_eq(p.retry_days[6], 60);
    cr_assert_eq(p.end, DUNNING_END_MARK_UNPAID);
}

Test(dunning, bad_policies_are_refused_naming_the_member_and_change_nothing)
{
    static const struct {
        const char *text;
        const char *param;
    } cases[] = {
        {"{\"retry_days\": [3, 3]}", "retry_days"},
        {"{\"retry_days\": [5, 3]}", "retry_days"},
        {"{\"retry_days\": [0]}", "retry_days"},
        {"{\"retry_days\": [61]}", "retry_days"},
        {"{\"retry_days\": [1.5]}", "retry_days"},
        {"{\"retry_days\": \"3,5,7\"}", "retry_days"},
        {"{\"retry_days\": [1, 2, 3, 4, 5, 6, 7, 8, 9]}", "retry_days"},
        {"{\"end_action\": \"delete\"}", "end_action"},
        {"{\"end_action\": 1}", "end_action"},
        {"{\"notify\": {\"sms\": true}}", "notify"},
        {"{\"notify\": {\"payment_failed\": \"yes\"}}", "notify"},
        {"{\"notify\": []}", "notify"},
        {"{\"retries\": 3}", "retries"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dunning_policy_t p;
        char param[DUNNING_PARAM_MAX] = "";
        dunning_policy_default(&p);
        cr_assert_eq(read_text(cases[i].text, &p, param), -1, "%s is refused", cases[i].text);
        cr_assert_str_eq(param, cases[i].param, "%s names %s", cases[i].text, cases[i].param);
        cr_assert_eq(p.n_retries, 3, "%s left the policy as it was", cases[i].text);
        cr_assert_eq(p.end, DUNNING_END_CANCEL);
    }
}

Test(dunning, the_stored_form_reads_back_to_the_same_policy)
{
    dunning_policy_t p, q;
    char param[DUNNING_PARAM_MAX] = "";
    char why[160];
    dunning_policy_default(&p);
    cr_assert_eq(read_text("{\"retry_days\": [2, 9], \"end_action\": \"leave_past_due\", "
                           "\"notify\": {\"action_required\": false}}",
                           &p, param),
                 0);
    json_t *j = dunning_policy_json(&p);
    dunning_policy_default(&q);
    cr_assert_eq(dunning_policy_read(j, &q, param, why, sizeof why), 0);
    json_decref(j);
    cr_assert_eq(memcmp(&p, &q, sizeof p), 0);
    cr_assert_str_eq(dunning_end_name(q.end), "leave_past_due");
}

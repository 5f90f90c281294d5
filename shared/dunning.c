/* dunning: the policy for failed charges (see dunning.h). */
#include "dunning.h"

#include <stdio.h>
#include <string.h>

static const char *const end_names[] = {
    [DUNNING_END_CANCEL] = "cancel",
    [DUNNING_END_MARK_UNPAID] = "mark_unpaid",
    [DUNNING_END_LEAVE_PAST_DUE] = "leave_past_due",
};
#define END_COUNT (sizeof end_names / sizeof end_names[0])

static const char *const notify_names[DUNNING_NOTIFY_COUNT_] = {
    [DUNNING_NOTIFY_PAYMENT_FAILED] = "payment_failed",
    [DUNNING_NOTIFY_ACTION_REQUIRED] = "action_required",
    [DUNNING_NOTIFY_PAYMENT_METHOD_REQUIRED] = "payment_method_required",
    [DUNNING_NOTIFY_RETRIES_EXHAUSTED] = "retries_exhausted",
    [DUNNING_NOTIFY_PAYMENT_SUCCEEDED] = "payment_succeeded",
};

void dunning_policy_default(dunning_policy_t *p)
{
    memset(p, 0, sizeof *p);
    p->n_retries = 3;
    p->retry_days[0] = 3;
    p->retry_days[1] = 5;
    p->retry_days[2] = 7;
    p->end = DUNNING_END_CANCEL;
    for (int i = 0; i < DUNNING_NOTIFY_COUNT_; i++)
        p->notify[i] = true;
}

const char *dunning_end_name(dunning_end_t e)
{
    return (size_t)e < END_COUNT ? end_names[e] : "cancel";
}

const char *dunning_notify_name(dunning_notify_t n)
{
    return (int)n >= 0 && n < DUNNING_NOTIFY_COUNT_ ? notify_names[n] : "";
}

static int fail(char *param, const char *name, char *why, size_t why_len, const char *msg)
{
    snprintf(param, DUNNING_PARAM_MAX, "%s", name);
    snprintf(why, why_len, "%s", msg);
    return -1;
}

static int read_days(const json_t *days, dunning_policy_t *p, char *param, char *why,
                     size_t why_len)
{
    static const char name[] = "retry_days";
    char msg[160];
    if (!json_is_array(days))
        return fail(param, name, why, why_len, "retry_days must be an array of whole days.");
    size_t n = json_array_size(days);
    if (n > DUNNING_RETRIES_MAX) {
        snprintf(msg, sizeof msg, "retry_days may have at most %d entries.", DUNNING_RETRIES_MAX);
        return fail(param, name, why, why_len, msg);
    }
    int prev = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *d = json_array_get(days, i);
        json_int_t v = json_is_integer(d) ? json_integer_value(d) : -1;
        if (v < 1 || v > DUNNING_RETRY_DAY_MAX || v <= prev) {
            snprintf(msg, sizeof msg,
                     "retry_days must be whole days from 1 to %d, each later than the one "
                     "before.",
                     DUNNING_RETRY_DAY_MAX);
            return fail(param, name, why, why_len, msg);
        }
        prev = (int)v;
    }
    p->n_retries = (int)n;
    for (size_t i = 0; i < n; i++)
        p->retry_days[i] = (int)json_integer_value(json_array_get(days, i));
    return 0;
}

static int read_notify(const json_t *notify, dunning_policy_t *p, char *param, char *why,
                       size_t why_len)
{
    static const char name[] = "notify";
    const char *key;
    const json_t *v;
    if (!json_is_object(notify))
        return fail(param, name, why, why_len, "notify must be an object of true/false.");
    json_object_foreach((json_t *)notify, key, v)
    {
        int which = -1;
        for (int i = 0; i < DUNNING_NOTIFY_COUNT_; i++)
            if (strcmp(key, notify_names[i]) == 0)
                which = i;
        if (which < 0)
            return fail(param, name, why, why_len,
                        "notify takes payment_failed, action_required, payment_method_required, "
                        "retries_exhausted and payment_succeeded.");
        if (!json_is_boolean(v))
            return fail(param, name, why, why_len, "notify's members must be true or false.");
        p->notify[which] = json_is_true(v);
    }
    return 0;
}

int dunning_policy_read(const json_t *j, dunning_policy_t *p, char param[DUNNING_PARAM_MAX],
                        char *why, size_t why_len)
{
    const char *key;
    const json_t *v;
    dunning_policy_t next = *p;
    if (!json_is_object(j))
        return fail(param, "", why, why_len, "The dunning policy must be an object.");
    json_object_foreach((json_t *)j, key, v)
    {
        if (strcmp(key, "retry_days") == 0) {
            if (read_days(v, &next, param, why, why_len) != 0)
                return -1;
        } else if (strcmp(key, "end_action") == 0) {
            int found = -1;
            for (size_t i = 0; i < END_COUNT && json_is_string(v); i++)
                if (strcmp(json_string_value(v), end_names[i]) == 0)
                    found = (int)i;
            if (found < 0)
                return fail(param, "end_action", why, why_len,
                            "end_action must be cancel, mark_unpaid or leave_past_due.");
            next.end = (dunning_end_t)found;
        } else if (strcmp(key, "notify") == 0) {
            if (read_notify(v, &next, param, why, why_len) != 0)
                return -1;
        } else if (strcmp(key, "object") != 0) {
            /* "object" is what dunning_policy_json's reader sees in a
             * stored settings object; anything else is not a policy. */
            return fail(param, key, why, why_len,
                        "The dunning policy takes retry_days, end_action and notify.");
        }
    }
    *p = next;
    return 0;
}

json_t *dunning_policy_json(const dunning_policy_t *p)
{
    json_t *days = json_array(), *notify = json_object();
    for (int i = 0; i < p->n_retries; i++)
        json_array_append_new(days, json_integer(p->retry_days[i]));
    for (int i = 0; i < DUNNING_NOTIFY_COUNT_; i++)
        json_object_set_new(notify, notify_names[i], json_boolean(p->notify[i]));
    return json_pack("{s:o,s:s,s:o}", "retry_days", days, "end_action", dunning_end_name(p->end),
                     "notify", notify);
}

dunning_step_t dunning_after_failure(const dunning_policy_t *p, int64_t first_failed_at,
                                     int scheduled_retries, bool hard)
{
    dunning_step_t s = {DUNNING_STEP_END, first_failed_at, scheduled_retries};
    if (p->n_retries == 0 || scheduled_retries < 0)
        return s;
    int64_t last = first_failed_at + (int64_t)p->retry_days[p->n_retries - 1] * DUNNING_DAY_S;
    if (hard) {
        /* The schedule's end still holds: a customer who never brings a
         * new card meets the end action when the last retry would have
         * been. */
        s.kind = DUNNING_STEP_AWAIT_METHOD;
        s.at = last;
        return s;
    }
    if (scheduled_retries >= p->n_retries)
        return s;
    s.kind = DUNNING_STEP_RETRY;
    s.at = first_failed_at + (int64_t)p->retry_days[scheduled_retries] * DUNNING_DAY_S;
    s.scheduled_retries = scheduled_retries + 1;
    return s;
}

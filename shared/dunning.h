/* dunning: a tenant's policy for failed automatic charges, and what it says
 * happens after each failure.
 *
 * The policy (tenants.dunning_policy, POST /v1/settings/dunning): retries
 * at retry_days after the first failure (default 3, 5 and 7: four attempts
 * in all), then the end action (cancel the subscription, mark it unpaid,
 * or leave it past due), and which messages the customer gets.
 *
 * After a failed attempt there are three ways on: a retry at a time; no
 * retry until the customer gives a new payment method (a hard decline: the
 * same card cannot succeed), with the end applied at the last scheduled
 * retry's time if none comes; or the end now (nothing left to try). The
 * choice is pure and unit-tested; the charger writes it onto the invoice in
 * the transaction that records the attempt.
 */
#ifndef BILLOW_DUNNING_H
#define BILLOW_DUNNING_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Most scheduled retries: past eight, a card is not coming back, and each
 * retry is a message to the customer. */
#define DUNNING_RETRIES_MAX 8
/* Latest retry, in days after the first failure (about two months, the
 * longest Stripe's own schedules go). */
#define DUNNING_RETRY_DAY_MAX 60
#define DUNNING_DAY_S         86400

typedef enum {
    DUNNING_END_CANCEL,         /* Cancel the subscription at once. */
    DUNNING_END_MARK_UNPAID,    /* Subscription unpaid; it still renews, each invoice charged. */
    DUNNING_END_LEAVE_PAST_DUE, /* Leave it past due; staff decide. */
} dunning_end_t;

/* The customer messages, each on or off. */
typedef enum {
    DUNNING_NOTIFY_PAYMENT_FAILED,          /* A charge failed; when the next try is. */
    DUNNING_NOTIFY_ACTION_REQUIRED,         /* The bank wants the customer to authenticate. */
    DUNNING_NOTIFY_PAYMENT_METHOD_REQUIRED, /* Hard decline or none on file: a new one is needed. */
    DUNNING_NOTIFY_RETRIES_EXHAUSTED,       /* The end action was applied. */
    DUNNING_NOTIFY_PAYMENT_SUCCEEDED,       /* A receipt. */
    DUNNING_NOTIFY_COUNT_
} dunning_notify_t;

typedef struct {
    int n_retries;                       /* Entries in retry_days. */
    int retry_days[DUNNING_RETRIES_MAX]; /* Strictly increasing, 1..DUNNING_RETRY_DAY_MAX. */
    dunning_end_t end;                   /* What happens when nothing is left to try. */
    bool notify[DUNNING_NOTIFY_COUNT_];  /* Which messages are sent. */
} dunning_policy_t;

/* Billow's default: retries 3, 5 and 7 days after the first failure, then
 * cancel; every message on. */
void dunning_policy_default(dunning_policy_t *p);

/* Longest member name reported in param. */
#define DUNNING_PARAM_MAX 64

/* Reads j (an object with any of retry_days, end_action, notify) over *p:
 * members present replace p's, absent ones keep them; unknown members
 * (also inside notify) are refused. Returns 0, or -1 with param (the
 * member at fault, e.g. "retry_days") and why (a sentence) written; p is
 * then unchanged. */
int dunning_policy_read(const json_t *j, dunning_policy_t *p, char param[DUNNING_PARAM_MAX],
                        char *why, size_t why_len);

/* p as the stored object {retry_days, end_action, notify:{…}}. New reference. */
json_t *dunning_policy_json(const dunning_policy_t *p);

const char *dunning_end_name(dunning_end_t e);
/* The notify member name of n ("payment_failed" …). */
const char *dunning_notify_name(dunning_notify_t n);

typedef enum {
    DUNNING_STEP_RETRY,        /* Charge again at `at`. */
    DUNNING_STEP_AWAIT_METHOD, /* No retry until a new payment method; the end at `at`. */
    DUNNING_STEP_END,          /* Apply the end action now. */
} dunning_step_kind_t;

typedef struct {
    dunning_step_kind_t kind;
    int64_t at;            /* Unix seconds: the retry, or the end's deadline. */
    int scheduled_retries; /* Scheduled retries used up after this step. */
} dunning_step_t;

/* What follows a failed attempt: first_failed_at is the time of the
 * invoice's first failure, scheduled_retries the scheduled retries already
 * used (an immediate retry after a new payment method uses none), hard
 * whether retrying the same card is pointless. */
dunning_step_t dunning_after_failure(const dunning_policy_t *p, int64_t first_failed_at,
                                     int scheduled_retries, bool hard);

#endif

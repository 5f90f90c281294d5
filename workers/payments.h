/* payments: the steps the charger, the webhook processor and dunning share.
 *
 * The tenant's Stripe key (sealed in stripe_accounts, opened here with
 * ENCRYPTION_KEY for the length of one call), the Stripe customer of a
 * Billow customer (created once, under an idempotency key derived from the
 * customer's id), and above all payments_apply(): the one place where what
 * Stripe says of a PaymentIntent becomes Billow's state. The charger calls
 * it with Stripe's answer; the webhook processor with an event's object;
 * both end in the same rows, so whichever comes first does the work and
 * the other finds nothing left to do.
 *
 * Locks: payments_lock_invoice() takes the invoice's subscription,
 * customer and invoice in billing.h's order, so a charge never deadlocks
 * with a renewal of the same subscription.
 */
#ifndef BILLOW_PAYMENTS_H
#define BILLOW_PAYMENTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "dunning.h"
#include "ids.h"
#include "runtime.h"
#include "stripe.h"

/* Longest Stripe id kept (Stripe's are well under 255). */
#define PAYMENTS_STRIPE_ID_MAX 256

/* The failure code of an attempt at an invoice whose amount due Stripe
 * cannot take in its currency (a three-decimal one not ending in 0, made
 * before Billow rounded such invoices): nothing was sent to Stripe, and no
 * retry is scheduled, since the same amount cannot succeed. */
#define PAYMENTS_AMOUNT_UNSUPPORTED "amount_unsupported"

/* Prepares the module for this process: the seal key from ENCRYPTION_KEY
 * and a Stripe client for STRIPE_API_BASE. Returns 0, or -1 with a message
 * on stderr. */
int payments_init(const config_t *cfg);
void payments_dispose(void);

/* The process's Stripe client, heartbeating job's batch while it waits for
 * Stripe: a batch of slow calls would otherwise outlast the visibility
 * timeout, and another worker would take it over (and count a delivery of
 * each job). */
stripe_client_t *payments_stripe(worker_job_t *job);

/* How many calls to Stripe the process makes at once (CHARGER_PARALLEL). */
int payments_parallel(void);

/* Whether customer `id` can be charged without a call to make its Stripe
 * customer: it has one, and a default payment method, and is not closed. */
handler_outcome_t payments_customer_ready(worker_job_t *job, const char *id, bool *ready);

/* The tenant's Stripe secret key, opened (free() it), into *key. No
 * account connected: rejects the job (409 stripe_not_configured). */
handler_outcome_t payments_stripe_key(worker_job_t *job, char **key);

/* Records Stripe's failure r on job: a passing one (no answer, 429, 5xx)
 * as HANDLER_RETRY, anything else as HANDLER_PERMANENT with Stripe's
 * message kept (code "stripe_error"), and returns the outcome. */
handler_outcome_t payments_stripe_fault(worker_job_t *job, const stripe_response_t *r);

/* Billow's `amount` in `currency` as Stripe writes it (money_to_stripe),
 * into *out, for every amount sent to Stripe. An amount Stripe cannot take
 * rejects the job before anything is sent (400 stripe_amount_unsupported
 * naming `param`, or stripe_currency_unsupported): Billow charges what the
 * invoice says or nothing, never a rounded amount. */
handler_outcome_t payments_to_stripe(worker_job_t *job, const char *currency, int64_t amount,
                                     const char *param, int64_t *out);

/* Stripe's integer `amount` (a member of a Stripe object) in `currency` as
 * Billow's minor units (money_from_stripe), into *out. False, *out
 * untouched, when it is missing or has no Billow equivalent. */
bool payments_from_stripe(const json_t *amount, const char *currency, int64_t *out);

/* The Stripe customer of Billow customer `customer_id` into stripe_id,
 * creating it in Stripe (idempotency key "billow:cus:<id>") and recording
 * it when there is none yet. */
handler_outcome_t payments_ensure_customer(worker_job_t *job, const char *api_key,
                                           const char *customer_id,
                                           char stripe_id[PAYMENTS_STRIPE_ID_MAX]);

/* Locks invoice `id` for collection: its subscription, its customer, then
 * itself (billing.h's order). Rejects with 404 when there is no such
 * invoice. */
handler_outcome_t payments_lock_invoice(worker_job_t *job, const char *id);

/* An invoice as collection sees it. */
typedef struct {
    char status[16];                              /* open, paid … */
    char customer[IDS_MAX];                       /* cus_… */
    char reason[40];                              /* billing_reason; "manual": one-off. */
    int attempt_count;                            /* Attempts made. */
    int scheduled_retries;                        /* Scheduled retries used. */
    int64_t first_failed_at;                      /* Unix seconds, INT64_MIN when none. */
    int64_t now;                                  /* The customer's clock. */
    int64_t amount_remaining;                     /* What a charge asks for. */
    char currency[8];                             /* Lower case. */
    char payment_method[PAYMENTS_STRIPE_ID_MAX];  /* The customer's default, "" when none. */
    char stripe_customer[PAYMENTS_STRIPE_ID_MAX]; /* The customer's in Stripe, "" when none yet. */
    /* The invoice's PaymentIntent (pi_…, made by its first attempt that
     * reached Stripe), "" before one: every later attempt confirms this
     * same intent again, so an invoice can be paid
     * through Stripe only once whoever confirms it (a retry, or the
     * customer finishing authentication on the tenant's page). An intent
     * found canceled (in Stripe's dashboard) is not used again: the next
     * attempt makes a new one. */
    char intent[PAYMENTS_STRIPE_ID_MAX];
    /* What the charge says. Every value that goes to Stripe must be the
     * same when an attempt is asked for again, or Stripe refuses the
     * idempotency key's second use: a one-off invoice is made in its
     * charge's own transaction, so its number can differ between a try
     * that crashed and the retry, and its description leaves it out. */
    char description[512];
} payments_invoice_t;

/* Reads invoice `id` (rejecting with 404 when there is none). */
handler_outcome_t payments_read_invoice(worker_job_t *job, const char *id, payments_invoice_t *v);

/* What Stripe said about one attempt at an invoice. */
typedef struct {
    const char *invoice_id;      /* in_… */
    int attempt;                 /* 1, 2, … */
    const json_t *intent;        /* The PaymentIntent object, or NULL (no call made). */
    const char *status;          /* Overrides intent's status when not NULL ("failed"). */
    const char *failure_code;    /* card_declined, payment_method_missing … or NULL. */
    const char *decline_code;    /* insufficient_funds … or NULL. */
    const char *failure_message; /* For people, or NULL. */
    const char *payment_method;  /* pm_… or NULL (the intent's). */
    /* The Idempotency-Key of the request that confirmed the intent, or
     * NULL (no request, or an event): billow:pi:<invoice>:<attempt>. */
    const char *idempotency_key;
    const char *request_id; /* Stripe's request id, or NULL. */
} payments_outcome_t;

/* Applies o to the invoice's attempt (the caller holds the invoice's locks,
 * payments_lock_invoice): the attempt row moves only forward (a settled
 * attempt never changes); a success records the payment and pays the
 * invoice (its subscription back to active); a new failure counts the
 * attempt and writes what the tenant's dunning policy says comes next
 * (retry time, wait for a new payment method, or the end), and queues a
 * dunning.payment_failed job for the customer's messages and the
 * subscription. *attempt_obj (may be NULL) receives the attempt object
 * (new reference) or NULL when o changed nothing. */
handler_outcome_t payments_apply(worker_job_t *job, const payments_outcome_t *o,
                                 json_t **attempt_obj);

/* Applies the state of PaymentIntent `pi` (a Stripe object, from an event
 * or an answer) to the attempt of its invoice (metadata billow_invoice) it
 * speaks of, as the charger would have: the attempt still waiting on it,
 * or, for a success nobody recorded yet, the invoice's next attempt. Locks
 * the invoice. *applied is set when an attempt was written. An intent of
 * no invoice of this tenant changes nothing. */
handler_outcome_t payments_apply_intent(worker_job_t *job, const json_t *pi, bool *applied);

/* Records refund `re` (a Stripe refund object, as Stripe's answer or an
 * event carries it) against the payment of its PaymentIntent or charge,
 * keyed by its Stripe id, so the charger's answer, a replay of it and the
 * webhook's refund events end in one row whichever comes first. The row's
 * id is `id` (the refund job's), else the Billow id in the refund's
 * metadata (billow_refund), else a new one (a refund made in Stripe's
 * dashboard). `metadata` (JSON text, may be NULL) is the tenant's, kept
 * when the row has none yet. A row already there only moves forward:
 * from pending to Stripe's status, from succeeded to failed or canceled
 * (Stripe fails a refund after it succeeded when the card cannot take the
 * money back), never back. Then the payment's and invoice's refunded
 * amounts follow (payments_sync_refunded, with the charge's
 * amount_refunded when `re` carries the charge expanded), so a failed
 * refund is no longer counted. *refund_obj (may be NULL) receives the
 * refund object (new reference), or NULL when no payment of this tenant
 * has that intent or charge. */
handler_outcome_t payments_record_refund(worker_job_t *job, const char *id, const json_t *re,
                                         const char *metadata, json_t **refund_obj);

/* Sets the refunded amount of payment `payment_id` (whose row the caller
 * has locked) from its sources, each a total: the refunds recorded against
 * it that did not fail, and Stripe's own amount_refunded of the charge,
 * kept as the most Stripe ever said (`stripe_total`, in Billow's minor
 * units, is folded in; negative when not known) less the refunds recorded
 * as failed or canceled; the greater of the two, never more than the
 * payment. Seeing a total again, or an older one late, changes nothing, so
 * a replayed or stale report can never count a refund twice nor count
 * again one that failed; a refund that fails lowers the amount once. The
 * payment's status and its invoice's amount_refunded (its payments')
 * follow. *changed (may be NULL) is set when the refunded amount moved. */
handler_outcome_t payments_sync_refunded(worker_job_t *job, const char *payment_id,
                                         int64_t stripe_total, bool *changed);

/* Records a message for the customer of invoice_id (template
 * "payment.failed" …, data merged with the invoice's number, amount and
 * currency) when the tenant's policy has `which` on and the customer has
 * an email. */
handler_outcome_t payments_notify(worker_job_t *job, const char *invoice_id, dunning_notify_t which,
                                  const char *template_name, json_t *data);

/* Invoice `invoice_id` has left `open` other than through Stripe (voided,
 * or paid out of band): if its PaymentIntent has not succeeded,
 * a payment.cancel_intent follow-up asks Stripe to cancel it, so a
 * customer cannot still pay it (finishing authentication on the tenant's
 * page, say). */
handler_outcome_t payments_invoice_settled_elsewhere(worker_job_t *job, const char *invoice_id);

/* The tenant's dunning policy (defaults filled in). */
handler_outcome_t payments_policy(worker_job_t *job, dunning_policy_t *p);

/* Whether a decline or error code means the customer must act on the
 * payment (authenticate) rather than the card failing. */
bool payments_needs_action(const char *code, const char *decline_code);

#endif

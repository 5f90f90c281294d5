/* billing: the subscription engine's shared steps, for the invoice kind.
 *
 * A handler of kind_invoice loads a subscription (locking it and its
 * customer), decides what happened with shared/substate.c, computes
 * amounts with shared/pricing.c and shared/proration.c, and writes back
 * through this module: the subscription and its items, pending proration
 * items, and invoices (numbered, balance applied, charge queued).
 *
 * Time: every moment is whole seconds since the epoch. "Now" is the
 * customer's test clock's frozen time when the customer is on one, else
 * the transaction's time, so test clocks run the very same code.
 *
 * Locks are taken in one order everywhere: subscription, customer,
 * invoice, then the tenant's invoice sequence, which is taken last and
 * held until commit (that is what makes numbers gapless).
 */
#ifndef BILLOW_BILLING_H
#define BILLOW_BILLING_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "calendar.h"
#include "ids.h"
#include "money.h"
#include "runtime.h"
#include "substate.h"

/* Most items one subscription may have (as Stripe): each is a line on
 * every invoice, and a change prorates each one. */
#define BILLING_ITEMS_MAX 20

/* A timestamp that is null. */
#define BILLING_UNSET INT64_MIN

/* Longest product name kept for line descriptions. */
#define BILLING_NAME_MAX 257

typedef struct {
    char id[IDS_MAX];                    /* si_…; empty for an item not yet stored. */
    char price_id[IDS_MAX];              /* price_… */
    char product_name[BILLING_NAME_MAX]; /* For line descriptions. */
    int64_t quantity;                    /* Units. */
    int64_t period_amount;               /* What a whole period of this item costs. */
    int trial_period_days;               /* The price's default trial, 0 for none. */
} billing_item_t;

typedef struct {
    char id[IDS_MAX];                        /* sub_… */
    char customer_id[IDS_MAX];               /* cus_… */
    char currency[MONEY_CODE_MAX];           /* Of every price and invoice. */
    char test_clock_id[IDS_MAX];             /* Empty when on real time. */
    char latest_invoice_id[IDS_MAX];         /* Empty before the first. */
    substate_t status;                       /* Current status. */
    calendar_schedule_t sched;               /* The billing schedule. */
    int64_t start_date;                      /* When it started. */
    int64_t period_start;                    /* Current period, or BILLING_UNSET (paused, ended). */
    int64_t period_end;                      /* Its end, or BILLING_UNSET. */
    int64_t trial_start;                     /* Or BILLING_UNSET. */
    int64_t trial_end;                       /* Or BILLING_UNSET. */
    int64_t canceled_at;                     /* When a cancel was asked for, or BILLING_UNSET. */
    int64_t ended_at;                        /* When it ended, or BILLING_UNSET. */
    int64_t paused_at;                       /* While paused, or BILLING_UNSET. */
    bool cancel_at_period_end;               /* It ends at period_end. */
    json_t *pending_update;                  /* Owned; a change due at period_end, or NULL. */
    int64_t now;                             /* Its customer's now (test clock or real). */
    int64_t customer_balance;                /* The customer's balance (locked with it). */
    bool has_pending;                        /* Pending invoice items wait for its next invoice. */
    size_t n_items;                          /* Items in use. */
    billing_item_t items[BILLING_ITEMS_MAX]; /* Its items, by id. */
    bool items_changed;                      /* billing_sub_save() must rewrite the items. */
} billing_sub_t;

/* Frees what s owns. */
void billing_sub_dispose(billing_sub_t *s);

/* Loads subscription `id` into *s, locking it and its customer for the
 * rest of the transaction. Returns HANDLER_OK, HANDLER_REJECTED (404
 * resource_missing, param `param`) when there is no such subscription, or
 * a fault. s must be zeroed; dispose it whatever the outcome. */
handler_outcome_t billing_sub_load(worker_job_t *job, const char *id, const char *param,
                                   billing_sub_t *s);

/* As billing_sub_load for n subscriptions at once (in one statement, locked
 * in id order): found[i] says whether ids[i] exists and was read into
 * subs[i] (zeroed by the caller; each disposed whatever the outcome). An
 * id appearing twice is read once. */
handler_outcome_t billing_subs_load(worker_job_t *job, const char *const *ids, size_t n,
                                    billing_sub_t *subs, bool *found);

/* Inserts the subscription row for a new s (its items come with the first
 * billing_sub_save()), with created_at = s->now. */
handler_outcome_t billing_sub_insert(worker_job_t *job, billing_sub_t *s, const json_t *metadata);

/* Writes s back (and its items when items_changed) and sets job->result
 * to the subscription object. */
handler_outcome_t billing_sub_save(worker_job_t *job, billing_sub_t *s);

/* Moves s's status by ev (shared/substate.c). A refused move rejects the
 * job with 409 code "subscription_state" and the state machine's
 * sentence. */
handler_outcome_t billing_sub_transition(worker_job_t *job, billing_sub_t *s, substate_event_t ev);

/* *owes = whether any invoice of s other than `except_id` (may be NULL or
 * empty for none) is still open: the question behind every move of s's
 * status that follows its invoices (back to active when paid, past due
 * when resumed). *owes is set only on HANDLER_OK. */
handler_outcome_t billing_sub_owes(worker_job_t *job, const billing_sub_t *s, const char *except_id,
                                   bool *owes);

/* Tells s that its invoice `invoice_id` has just become paid (by a
 * payment, by staff, or by being made with nothing due) and moves it by
 * SUBSTATE_EV_INVOICE_PAID when no other invoice of s is still open: a
 * subscription is past due (or unpaid) while any of its invoices is open
 * after a failed collection, whichever of them is the latest. Only s's
 * status changes; the caller saves s. A status the table leaves as it is
 * (active, trialing, paused, canceled) is not looked into, and one it
 * refuses stays as it is: a paid invoice is a fact, not a request. */
handler_outcome_t billing_sub_invoice_paid(worker_job_t *job, billing_sub_t *s,
                                           const char *invoice_id);

/* Resolves wanted items ([{"price", "quantity", "at"?}], as the api
 * validated them) against the catalog into out[] (product names, period
 * amounts), checking each price exists (404), and all share one currency
 * and interval (400 price_mismatch); with check_active, that each price not
 * already on `current` (may be NULL) is active and its product too (409
 * price_inactive): an archived price keeps billing where it is, but is not
 * sold again. Errors name param_prefix ("items") and the entry's "at" (its
 * index in the request) or else its position.
 * *sched_unit and *sched_count receive the common interval, *currency the
 * common currency. Returns HANDLER_OK or a rejection. */
handler_outcome_t billing_items_resolve(worker_job_t *job, const json_t *wanted,
                                        const char *param_prefix, bool check_active,
                                        const billing_sub_t *current, billing_item_t *out,
                                        size_t *n_out, char currency[MONEY_CODE_MAX],
                                        calendar_unit_t *sched_unit, int *sched_count);

/* The charge for item `it` over [from, to): the sum, over the periods of
 * s->sched that the span overlaps, of the whole period amount for a whole
 * period and the prorated share (shared/proration.c) of a part. *out in
 * minor units. */
handler_outcome_t billing_charge(worker_job_t *job, const billing_sub_t *s,
                                 const billing_item_t *it, int64_t from, int64_t to, int64_t *out);

/* The charge for item `it` over [from, s->period_end): what a change at
 * `from` charges for the new item (a credit for the old one is
 * billing_credit's, which may be less). */
handler_outcome_t billing_remaining(worker_job_t *job, const billing_sub_t *s,
                                    const billing_item_t *it, int64_t from, int64_t *out);

/* The credit for item `it`'s unused time from `at` to s->period_end (a
 * cancel, a pause, a change, an earlier anchor): the list-price charge
 * (billing_charge) for the part of that time the item's lines of the
 * current period charged, capped by what they charged net of the credits
 * already given (shared/proration.c, proration_credit_span and
 * proration_credit_cap). *amount (≥ 0) is what to credit, over [*from,
 * *to) (empty, *amount 0, when none of the time was charged). Valid only
 * on HANDLER_OK. */
handler_outcome_t billing_credit(worker_job_t *job, const billing_sub_t *s,
                                 const billing_item_t *it, int64_t at, int64_t *amount,
                                 int64_t *from, int64_t *to);

/* Gives every item of s that has none yet its id (si_…), so the lines that
 * charge it can name it before it is stored. */
void billing_items_name(billing_sub_t *s);

/* Appends a line to lines (a JSON array): type ("subscription",
 * "proration"), description, the item's price and quantity, amount, the
 * span [from, to) it covers, the item's id and `period`, the start of the
 * billing period of s that the line is for (what billing_credit() reads
 * back). */
void billing_line_add(json_t *lines, const char *type, const char *description,
                      const billing_item_t *it, int64_t amount, int64_t from, int64_t to,
                      int64_t period);

/* Writes lines as pending invoice items of s (create_prorations): the next
 * invoice of the subscription takes them in. */
handler_outcome_t billing_pending_add(worker_job_t *job, billing_sub_t *s, const json_t *lines);

/* Creates an invoice for s: `lines` (borrowed) plus, when take_pending, the
 * subscription's pending items; totals checked in minor units; the
 * customer's balance applied (a credit lowers amount_due, a negative total
 * becomes credit); an amount due Stripe cannot collect rounded down
 * (money_collectable_rounding, shown as the invoice's rounding and part of
 * its total); finalized at once (open, or paid when nothing is due),
 * numbered from the tenant's gapless sequence; a payment.charge follow-up
 * when something is due; s->latest_invoice_id set. An invoice that closes
 * paid goes through billing_sub_invoice_paid(), so s->status may move (the
 * caller saves s). With skip_if_empty and no line at all, no invoice is
 * made (*amount_due = -1). *amount_due may be NULL. */
handler_outcome_t billing_invoice_create(worker_job_t *job, billing_sub_t *s, const char *reason,
                                         int64_t period_start, int64_t period_end,
                                         const json_t *lines, bool take_pending, bool skip_if_empty,
                                         int64_t *amount_due);

/* As billing_invoice_create, with the invoice recorded as made by job
 * `made_by` (its created_by_job, unique per tenant) rather than by job: a
 * renewal made ahead of its cycle job (by a change that first brings its
 * subscription up to date) names that job, whose id is derived from the
 * period, so the period is invoiced once whichever of them gets there. */
handler_outcome_t billing_invoice_create_by(worker_job_t *job, const char *made_by,
                                            billing_sub_t *s, const char *reason,
                                            int64_t period_start, int64_t period_end,
                                            const json_t *lines, bool take_pending,
                                            bool skip_if_empty, int64_t *amount_due);

/* "2027-01-15" for t, for line descriptions (out[11]). */
void billing_date(int64_t t, char out[11]);

#endif

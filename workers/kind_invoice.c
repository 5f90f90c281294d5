/* kind_invoice: the handlers of the `invoice` worker kind (see
 * kind_invoice.h): subscriptions and the invoices they make.
 *
 * Every handler loads what it changes with billing_sub_load() (which locks
 * the subscription and its customer), asks shared/substate.c whether the
 * change is allowed, computes the money with billing.c's helpers, and saves
 * in the job's transaction. Time is the customer's: a test clock's frozen
 * time or the transaction's.
 *
 * Design: a period's end is one job, subscription.cycle, whose id is
 * derived from (subscription, period end): the renewal scheduler and a
 * catching-up handler may both ask for it, any number of times, and it
 * runs once. It applies what is due at that moment in a fixed order:
 * an incomplete subscription expires, a pending cancel ends it, a
 * scheduled change takes effect, a trial ends, and the next period is
 * invoiced. When the next period has also ended already (downtime, a test
 * clock moved months ahead), it asks for that period's job at once. A
 * change, cancel or pause first ends, in place, every period that has ended
 * by its now (bring_up_to_date), each as its cycle job would and under that
 * job's id, so what was owed is billed before the change is prorated.
 *
 * Renewals come in bulk, so subscription.cycle also has a set-based form
 * (subscription_cycle_batch): the plain renewals of a batch are priced by
 * the same functions and written in one statement; the rest, and any batch
 * whose statement fails, go through subscription_cycle job by job.
 */
#include "kind_invoice.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "billing.h"
#include "handler_util.h"
#include "invstate.h"
#include "mem.h"
#include "payments.h"
#include "timeutil.h"

/* The proration choices of Stripe's proration_behavior. */
typedef enum {
    PRORATE_CREATE,  /* create_prorations: pending items for the next invoice. */
    PRORATE_INVOICE, /* always_invoice: invoice the prorations now. */
    PRORATE_NONE,    /* none: no proration. */
} prorate_t;

static prorate_t prorate_of(const json_t *p)
{
    const char *b = json_string_value(json_object_get(p, "proration_behavior"));
    if (b && strcmp(b, "always_invoice") == 0)
        return PRORATE_INVOICE;
    if (b && strcmp(b, "none") == 0)
        return PRORATE_NONE;
    return PRORATE_CREATE;
}

/* Reads the RFC 3339 member key of p as seconds; BILLING_UNSET when
 * absent. Returns false when present but unreadable. */
static bool opt_time(const json_t *p, const char *key, int64_t *out)
{
    const json_t *v = json_object_get(p, key);
    int64_t ms;
    *out = BILLING_UNSET;
    if (v == NULL || json_is_null(v))
        return true;
    if (!json_is_string(v) || timeutil_parse_rfc3339(json_string_value(v), &ms) != 0)
        return false;
    *out = ms / 1000;
    return true;
}

static void describe_period(char *out, size_t n, const billing_item_t *it, int64_t from, int64_t to)
{
    char a[11], b[11];
    billing_date(from, a);
    billing_date(to, b);
    snprintf(out, n, "%" PRId64 " × %s (%s – %s)", it->quantity, it->product_name, a, b);
}

/* Lines charging each item of s for [from, to) (to a boundary of s's
 * schedule); with none and a part period, the part is free. `from` is
 * always the start of the period being charged, so it is the lines'
 * period too. */
static handler_outcome_t charge_lines(worker_job_t *job, const billing_sub_t *s, int64_t from,
                                      int64_t to, bool free_part, json_t *lines)
{
    /* A part period is one that does not start on a boundary of the
     * schedule: told by its span, not by its amount, which a start just
     * after a boundary rounds to the full price. */
    if (free_part) {
        int64_t fs, fe;
        if (calendar_period_containing(&s->sched, from, &fs, &fe, NULL) != 0)
            return runtime_fault(job, HANDLER_PERMANENT, "internal_error",
                                 "Subscription %s's schedule cannot place %" PRId64 ".", s->id,
                                 from);
        free_part = fs != from;
    }
    for (size_t i = 0; i < s->n_items; i++) {
        const billing_item_t *it = &s->items[i];
        int64_t amount = 0;
        handler_outcome_t o = billing_charge(job, s, it, from, to, &amount);
        if (o != HANDLER_OK)
            return o;
        if (free_part)
            amount = 0;
        char desc[BILLING_NAME_MAX + 64];
        describe_period(desc, sizeof desc, it, from, to);
        billing_line_add(lines, "subscription", desc, it, amount, from, to, from);
    }
    return HANDLER_OK;
}

/* A proration line for item it from `at` to the end of the current period:
 * a credit (sign −1) for an item going away, a charge (+1) for one coming.
 * A credit pays back only what the period charged for the item
 * (billing_credit); when that is nothing, there is no line. */
static handler_outcome_t proration_line(worker_job_t *job, const billing_sub_t *s,
                                        const billing_item_t *it, int64_t at, int sign,
                                        json_t *lines)
{
    int64_t amount, from = at, to = s->period_end;
    handler_outcome_t o = sign < 0 ? billing_credit(job, s, it, at, &amount, &from, &to)
                                   : billing_remaining(job, s, it, at, &amount);
    if (o != HANDLER_OK)
        return o;
    if (sign < 0 && amount == 0)
        return HANDLER_OK;
    char date[11], desc[BILLING_NAME_MAX + 64];
    billing_date(from, date);
    snprintf(desc, sizeof desc, "%s time on %" PRId64 " × %s after %s",
             sign < 0 ? "Unused" : "Remaining", it->quantity, it->product_name, date);
    billing_line_add(lines, "proration", desc, it, sign < 0 ? -amount : amount, from, to,
                     s->period_start);
    return HANDLER_OK;
}

/* Credits for every item's unused time from `at` (a cancel, a pause, an
 * anchor or interval reset). */
static handler_outcome_t credit_all(worker_job_t *job, const billing_sub_t *s, int64_t at,
                                    json_t *lines)
{
    for (size_t i = 0; i < s->n_items; i++) {
        handler_outcome_t o = proration_line(job, s, &s->items[i], at, -1, lines);
        if (o != HANDLER_OK)
            return o;
    }
    return HANDLER_OK;
}

/* Asks for the cycle job of s's current period when that period has ended
 * by s's now already. */
static handler_outcome_t catch_up(worker_job_t *job, const billing_sub_t *s)
{
    if (s->period_end == BILLING_UNSET || s->period_end > s->now)
        return HANDLER_OK;
    char id[IDS_MAX];
    kind_invoice_cycle_job_id(s->id, s->period_end, id);
    char end[TIMEUTIL_RFC3339_MAX];
    timeutil_format_rfc3339_s(s->period_end * 1000, end);
    if (runtime_followup_id(job, "subscription.cycle",
                            json_pack("{s:s,s:s}", "subscription", s->id, "period_end", end),
                            id) != 0)
        return HANDLER_RETRY;
    return HANDLER_OK;
}

void kind_invoice_cycle_job_id(const char *subscription_id, int64_t period_end, char out[IDS_MAX])
{
    char key[IDS_MAX + 64];
    snprintf(key, sizeof key, "subscription.cycle|%s|%" PRId64, subscription_id, period_end);
    ids_derive("job", (uint64_t)period_end * 1000, key, out);
}

/* The first moment at or after base whose day of month is day (clamped to
 * the month's length), at base's time of day. */
static int64_t next_day_of_month(int64_t base, int day)
{
    time_t t = (time_t)base;
    struct tm tm;
    gmtime_r(&t, &tm);
    for (int step = 0; step < 2; step++) {
        int year = tm.tm_year + 1900, month = tm.tm_mon + 1;
        int dim = calendar_days_in_month(year, month);
        struct tm c = tm;
        c.tm_mday = day < dim ? day : dim;
        int64_t cand = (int64_t)timegm(&c);
        if (cand >= base)
            return cand;
        tm.tm_mday = 1;
        tm.tm_mon += 1;
        timegm(&tm); /* Normalises month 12 into the next year. */
    }
    return base;
}

static const char CUSTOMER_SQL[] =
    "SELECT c.status, coalesce(c.currency, ''), coalesce(c.test_clock_id, ''),"
    " floor(extract(epoch FROM coalesce(tc.frozen_time, now())))::bigint, c.balance "
    "FROM customers c "
    "LEFT JOIN test_clocks tc ON tc.tenant_id = c.tenant_id AND tc.id = c.test_clock_id "
    "WHERE c.id = $1 FOR UPDATE OF c";

/* subscription.create: see docs/billing.md for the rules of the first
 * period (trial, anchor, backdating). */
static handler_outcome_t subscription_create(worker_job_t *job)
{
    const json_t *p = job->env->payload;
    const char *id = handler_util_req_string(p, "id");
    const char *customer = handler_util_req_string(p, "customer");
    billing_sub_t s;
    PGresult *res = NULL;
    json_t *lines = json_array();
    handler_outcome_t out;
    int64_t anchor, backdate;

    memset(&s, 0, sizeof s);
    if (!id || !customer || !opt_time(p, "billing_cycle_anchor", &anchor) ||
        !opt_time(p, "backdate_start_date", &backdate)) {
        out = handler_util_bad_payload(job, "id, customer and readable times are required");
        goto done;
    }
    const char *cparams[1] = {customer};
    out = handler_util_exec(job, CUSTOMER_SQL, 1, cparams, PGRES_TUPLES_OK, &res);
    if (out != HANDLER_OK)
        goto done;
    if (PQntuples(res) == 0) {
        out = runtime_reject(job, 404, "resource_missing", "customer", "No such customer: '%s'.",
                             customer);
        goto done;
    }
    if (strcmp(PQgetvalue(res, 0, 0), "active") != 0) {
        bool closed = strcmp(PQgetvalue(res, 0, 0), "closed") == 0;
        out = runtime_reject(job, 409, closed ? "customer_closed" : "customer_suspended",
                             "customer", "Customer '%s' is %s; it cannot get new subscriptions%s.",
                             customer, closed ? "closed" : "suspended",
                             closed ? "" : " until it is active again");
        goto done;
    }
    char customer_currency[MONEY_CODE_MAX];
    snprintf(customer_currency, sizeof customer_currency, "%s", PQgetvalue(res, 0, 1));
    snprintf(s.test_clock_id, sizeof s.test_clock_id, "%s", PQgetvalue(res, 0, 2));
    s.now = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
    s.customer_balance = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
    PQclear(res);
    res = NULL;

    snprintf(s.id, sizeof s.id, "%s", id);
    snprintf(s.customer_id, sizeof s.customer_id, "%s", customer);
    out = billing_items_resolve(job, json_object_get(p, "items"), "items", true, NULL, s.items,
                                &s.n_items, s.currency, &s.sched.unit, &s.sched.count);
    if (out != HANDLER_OK)
        goto done;
    billing_items_name(&s); /* The first invoice's lines name them. */
    if (customer_currency[0] && strcmp(customer_currency, s.currency) != 0) {
        out = runtime_reject(job, 409, "currency_mismatch", "items",
                             "Customer '%s' is billed in %s; these prices are in %s.", customer,
                             customer_currency, s.currency);
        goto done;
    }

    /* The start, the trial and the anchor. */
    int64_t start = backdate != BILLING_UNSET ? backdate : s.now;
    if (start > s.now) {
        out = runtime_reject(job, 400, "parameter_invalid", "backdate_start_date",
                             "backdate_start_date must not be in the future of the customer's "
                             "clock.");
        goto done;
    }
    const json_t *trial = json_object_get(p, "trial_period_days");
    int64_t trial_days =
        json_is_integer(trial) ? json_integer_value(trial) : s.items[0].trial_period_days;
    s.start_date = start;
    s.period_start = start;
    s.trial_start = s.trial_end = BILLING_UNSET;
    s.canceled_at = s.ended_at = s.paused_at = BILLING_UNSET;
    s.cancel_at_period_end = json_is_true(json_object_get(p, "cancel_at_period_end"));
    int64_t base = start;
    if (trial_days > 0) {
        s.trial_start = start;
        s.trial_end = start + trial_days * 86400;
        base = s.trial_end;
    }
    int day = (int)json_integer_value(
        json_object_get(json_object_get(p, "billing_cycle_anchor_config"), "day_of_month"));
    if (anchor != BILLING_UNSET) {
        if (anchor < base) {
            out = runtime_reject(job, 400, "parameter_invalid", "billing_cycle_anchor",
                                 "billing_cycle_anchor must not be before the start%s.",
                                 trial_days > 0 ? " or the end of the trial" : "");
            goto done;
        }
    } else if (day > 0) {
        if (s.sched.unit != CALENDAR_MONTH && s.sched.unit != CALENDAR_YEAR) {
            out = runtime_reject(job, 400, "parameter_invalid",
                                 "billing_cycle_anchor_config.day_of_month",
                                 "day_of_month needs a monthly or yearly price.");
            goto done;
        }
        anchor = next_day_of_month(base, day);
        s.sched.day_of_month = day;
    } else {
        anchor = base;
    }
    s.sched.anchor = anchor;
    int64_t first_end;
    if (calendar_next_boundary(&s.sched, base, &first_end) != 0) {
        out = runtime_reject(job, 400, "parameter_invalid", "billing_cycle_anchor",
                             "The billing schedule falls outside the years Billow supports.");
        goto done;
    }
    int64_t one_back;
    if (calendar_boundary(&s.sched, -1, &one_back) != 0 || one_back >= base) {
        out = runtime_reject(job, 400, "parameter_invalid", "billing_cycle_anchor",
                             "billing_cycle_anchor must be within one billing interval of the "
                             "start%s.",
                             trial_days > 0 ? " of billing (the trial's end)" : "");
        goto done;
    }
    s.period_end = trial_days > 0 ? s.trial_end : first_end;
    /* A backdated subscription was already running (moved from another
     * system): it does not wait for a first payment, and its ended periods
     * are caught up at once. */
    s.status = trial_days > 0              ? SUBSTATE_TRIALING
               : backdate != BILLING_UNSET ? SUBSTATE_ACTIVE
                                           : SUBSTATE_INCOMPLETE;

    out = billing_sub_insert(job, &s, json_object_get(p, "metadata"));
    if (out != HANDLER_OK)
        goto done;
    if (customer_currency[0] == '\0') {
        const char *up[2] = {customer, s.currency};
        out = handler_util_exec(job, "UPDATE customers SET currency = $2 WHERE id = $1", 2, up,
                                PGRES_COMMAND_OK, NULL);
        if (out != HANDLER_OK)
            goto done;
    }
    if (trial_days > 0) {
        for (size_t i = 0; i < s.n_items; i++) {
            char desc[BILLING_NAME_MAX + 32];
            snprintf(desc, sizeof desc, "Trial period for %s", s.items[i].product_name);
            billing_line_add(lines, "subscription", desc, &s.items[i], 0, start, s.trial_end,
                             start);
        }
    } else {
        bool none = prorate_of(p) == PRORATE_NONE;
        out = charge_lines(job, &s, start, s.period_end, none, lines);
        if (out != HANDLER_OK)
            goto done;
    }
    int64_t due;
    out = billing_invoice_create(job, &s, "subscription_create", start, s.period_end, lines, false,
                                 false, &due);
    if (out == HANDLER_OK)
        out = billing_sub_save(job, &s);
    if (out == HANDLER_OK)
        out = catch_up(job, &s);

done:
    PQclear(res);
    json_decref(lines);
    billing_sub_dispose(&s);
    return out;
}

/* Sets job->result to the stored subscription object (for a job that
 * found nothing to do). */
static handler_outcome_t result_as_stored(worker_job_t *job, const char *id)
{
    const char *params[1] = {id};
    PGresult *res = NULL;
    handler_outcome_t out = handler_util_exec(
        job, "SELECT subscription_object(s)::text FROM subscriptions s WHERE id = $1", 1, params,
        PGRES_TUPLES_OK, &res);
    if (out == HANDLER_OK)
        out = handler_util_take_result(job, res);
    PQclear(res);
    return out;
}

/* Moves invoice `id` by ev at `now` (the customer's clock). A voided
 * invoice gives back the credit it had used and has its PaymentIntent, if
 * one still waits (for the customer's authentication, say), canceled in
 * Stripe. Every void passes here, the staff's and the automatic ones (an
 * incomplete subscription that expires or is canceled), so none can leave
 * an intent through which the customer would pay a void invoice. With
 * quiet, an invoice that cannot move is left alone (HANDLER_OK, *moved
 * false) instead of rejecting the job. */
static handler_outcome_t invoice_move(worker_job_t *job, const char *id, invstate_event_t ev,
                                      bool quiet, bool *moved)
{
    const char *params[3] = {id, NULL, NULL};
    PGresult *res = NULL;
    handler_outcome_t out =
        handler_util_exec(job,
                          "SELECT i.status, i.amount_due FROM invoices i WHERE i.id = $1 "
                          "FOR UPDATE",
                          1, params, PGRES_TUPLES_OK, &res);
    char why[160], txn[IDS_MAX];
    invstate_t to;
    *moved = false;
    if (out != HANDLER_OK)
        goto done;
    if (PQntuples(res) == 0) {
        out = runtime_reject(job, 404, "resource_missing", "id", "No such invoice: '%s'.", id);
        goto done;
    }
    int from = invstate_parse(PQgetvalue(res, 0, 0));
    if (from < 0 || invstate_next((invstate_t)from, ev, strtoll(PQgetvalue(res, 0, 1), NULL, 10),
                                  &to, why) != 0) {
        if (!quiet)
            out = runtime_reject(job, 409, "invoice_state", NULL, "%s", why);
        goto done;
    }
    ids_generate("cbtxn", txn);
    params[1] = invstate_name(to);
    params[2] = txn;
    out = handler_util_exec(
        job,
        "WITH clock AS ("
        "  SELECT coalesce(tc.frozen_time, now()) AS at FROM invoices i"
        "  JOIN customers c ON c.tenant_id = i.tenant_id AND c.id = i.customer_id"
        "  LEFT JOIN test_clocks tc ON tc.tenant_id = c.tenant_id AND tc.id = c.test_clock_id"
        "  WHERE i.id = $1"
        "), inv AS ("
        "  UPDATE invoices i SET status = $2, updated_at = now(),"
        "   voided_at = CASE WHEN $2 = 'void' THEN clock.at ELSE voided_at END,"
        "   marked_uncollectible_at = CASE WHEN $2 = 'uncollectible' THEN clock.at"
        "    ELSE marked_uncollectible_at END,"
        "   paid_at = CASE WHEN $2 = 'paid' THEN clock.at ELSE paid_at END,"
        "   amount_paid = CASE WHEN $2 = 'paid' THEN amount_due ELSE amount_paid END,"
        "   amount_remaining = CASE WHEN $2 = 'paid' THEN 0 ELSE amount_remaining END,"
        "   next_payment_attempt = NULL, dunning_ends_at = NULL, payment_method_required = false"
        "  FROM clock WHERE i.id = $1"
        "  RETURNING i.tenant_id, i.id, i.customer_id, i.currency, i.number, clock.at,"
        "   CASE WHEN $2 = 'void' THEN i.ending_balance - i.starting_balance ELSE 0 END AS used"
        "), cust AS ("
        "  UPDATE customers c SET balance = c.balance - inv.used FROM inv"
        "  WHERE c.id = inv.customer_id AND inv.used <> 0 RETURNING c.balance"
        "), txn AS ("
        "  INSERT INTO customer_balance_transactions (tenant_id, id, customer_id, type, amount,"
        "   currency, ending_balance, invoice_id, description, created_at)"
        "  SELECT inv.tenant_id, $3, inv.customer_id, 'unapplied_from_invoice', -inv.used,"
        "   inv.currency, cust.balance, inv.id, 'Given back from voided invoice ' || inv.number,"
        "   inv.at FROM inv, cust"
        ") SELECT 1 FROM inv",
        3, params, PGRES_TUPLES_OK, &res);
    if (out != HANDLER_OK)
        goto done;
    *moved = true;
    if (to == INVSTATE_VOID)
        out = payments_invoice_settled_elsewhere(job, id);

done:
    PQclear(res);
    return out;
}

/* Loads wanted items into s (they replace the current ones); a change of
 * interval starts a new schedule at `at`, keeping its day of the month.
 * With check_active, prices new to s must be on sale (a change now, or one
 * being scheduled); a scheduled change applied at its time was checked
 * when it was made. */
static handler_outcome_t apply_items(worker_job_t *job, billing_sub_t *s, const json_t *wanted,
                                     const char *param, bool check_active, int64_t at,
                                     bool *interval_changed)
{
    billing_item_t items[BILLING_ITEMS_MAX];
    size_t n = 0;
    char currency[MONEY_CODE_MAX];
    calendar_unit_t unit;
    int count;
    handler_outcome_t out = billing_items_resolve(job, wanted, param, check_active, s, items, &n,
                                                  currency, &unit, &count);
    if (out != HANDLER_OK)
        return out;
    if (strcmp(currency, s->currency) != 0) {
        /* Name the first item of the request, as a create would. */
        char named[64];
        snprintf(named, sizeof named, "%s", param);
        for (size_t i = 0; i < n; i++) {
            const json_t *index = json_object_get(json_array_get(wanted, i), "at");
            if (json_is_integer(index)) {
                snprintf(named, sizeof named, "%s[%lld].price", param,
                         (long long)json_integer_value(index));
                break;
            }
        }
        return runtime_reject(job, 400, "price_mismatch", named,
                              "This subscription is billed in %s; the new prices are in %s.",
                              s->currency, currency);
    }
    /* Items keep their ids where the request named them. */
    for (size_t i = 0; i < n; i++) {
        const char *keep = json_string_value(json_object_get(json_array_get(wanted, i), "id"));
        snprintf(items[i].id, sizeof items[i].id, "%s", keep ? keep : "");
    }
    *interval_changed = unit != s->sched.unit || count != s->sched.count;
    if (*interval_changed) {
        /* The billing day stays: a schedule on the 31st keeps ending on
         * month ends, so the new one is anchored on the first such day at
         * or after `at` (at itself when a period of the old one ends
         * there). A schedule without day_of_month aims for its anchor's
         * day, which a boundary in a short month hides (a Jan 31 anchor
         * ends a period on Apr 30): starting on a boundary of the old
         * schedule, the new one keeps that day too, and writes it down
         * when its own anchor falls short of it. Started between two
         * boundaries (a change now), it restarts on the day it starts.
         * Days and weeks have no billing day. */
        int day = s->sched.day_of_month;
        int64_t old_start;
        bool implied = day == 0 &&
                       calendar_period_containing(&s->sched, at, &old_start, NULL, NULL) == 0 &&
                       old_start == at;
        if (implied)
            day = calendar_billing_day(&s->sched);
        if (unit != CALENDAR_MONTH && unit != CALENDAR_YEAR)
            day = 0;
        s->sched.unit = unit;
        s->sched.count = count;
        s->sched.day_of_month = 0;
        s->sched.anchor = day > 0 ? next_day_of_month(at, day) : at;
        if (day > 0 && (!implied || calendar_billing_day(&s->sched) != day))
            s->sched.day_of_month = day;
    }
    memcpy(s->items, items, n * sizeof items[0]);
    s->n_items = n;
    s->items_changed = true;
    billing_items_name(s); /* New items are charged before they are stored. */
    return HANDLER_OK;
}

/* Ends s's current period (it has ended by s's now; s renews) as its
 * cycle job does (see the top of the file), recording the invoices as made
 * by job `made_by`. Afterwards s has ended or is in its next period; the
 * caller saves it. */
static handler_outcome_t end_period(worker_job_t *job, billing_sub_t *s, const char *made_by)
{
    int64_t end = s->period_end;
    json_t *lines = json_array();
    handler_outcome_t out = HANDLER_OK;
    bool moved;

    if (s->status == SUBSTATE_INCOMPLETE) {
        out = billing_sub_transition(job, s, SUBSTATE_EV_INCOMPLETE_EXPIRED);
        if (out == HANDLER_OK && s->latest_invoice_id[0])
            out = invoice_move(job, s->latest_invoice_id, INVSTATE_EV_VOID, true, &moved);
        s->canceled_at = s->ended_at = end;
        s->period_start = s->period_end = BILLING_UNSET;
        json_decref(s->pending_update);
        s->pending_update = NULL;
        goto done;
    }
    if (s->cancel_at_period_end) {
        out = billing_sub_transition(job, s, SUBSTATE_EV_CANCEL);
        if (out == HANDLER_OK)
            out = billing_invoice_create_by(job, made_by, s, "subscription_cancel", end, end, lines,
                                            true, true, NULL);
        s->ended_at = end;
        s->period_start = s->period_end = BILLING_UNSET;
        s->cancel_at_period_end = false;
        json_decref(s->pending_update); /* The cancel won: it is never applied. */
        s->pending_update = NULL;
        goto done;
    }
    if (s->pending_update) {
        bool changed_interval;
        out = apply_items(job, s, json_object_get(s->pending_update, "items"),
                          "pending_update.items", false, end, &changed_interval);
        if (out != HANDLER_OK)
            goto done;
        json_decref(s->pending_update);
        s->pending_update = NULL;
    }
    if (s->status == SUBSTATE_TRIALING && s->trial_end != BILLING_UNSET && s->trial_end <= end &&
        (out = billing_sub_transition(job, s, SUBSTATE_EV_TRIAL_END)) != HANDLER_OK)
        goto done;
    int64_t next_end;
    if (calendar_next_boundary(&s->sched, end, &next_end) != 0) {
        out = runtime_fault(job, HANDLER_PERMANENT, "internal_error",
                            "Subscription %s has no period after %" PRId64 ".", s->id, end);
        goto done;
    }
    s->period_start = end;
    s->period_end = next_end;
    out = charge_lines(job, s, end, next_end, false, lines);
    if (out == HANDLER_OK)
        out = billing_invoice_create_by(job, made_by, s, "subscription_cycle", end, next_end, lines,
                                        true, false, NULL);

done:
    json_decref(lines);
    return out;
}

/* Brings s up to date before a change made at s's now: every period that
 * has ended by then is ended first, in order, exactly as its cycle job
 * would end it and with its invoice recorded as made by that job (whose id
 * is derived from the period). So what was owed is billed at the prices
 * of its time, and the change is prorated over the period that holds now.
 * The cycle jobs, whenever they run, find their period gone and do
 * nothing; one that ran first left nothing here to do. s is locked, so
 * neither can run while the other holds it. */
static handler_outcome_t bring_up_to_date(worker_job_t *job, billing_sub_t *s)
{
    handler_outcome_t out = HANDLER_OK;
    while (out == HANDLER_OK && substate_renews(s->status) && s->period_end != BILLING_UNSET &&
           s->period_end <= s->now) {
        char id[IDS_MAX];
        kind_invoice_cycle_job_id(s->id, s->period_end, id);
        out = end_period(job, s, id);
    }
    return out;
}

/* subscription.cycle: the end of one period (see the top of the file). */
static handler_outcome_t subscription_cycle(worker_job_t *job)
{
    const json_t *p = job->env->payload;
    const char *id = handler_util_req_string(p, "subscription");
    int64_t due_end;
    billing_sub_t s;
    handler_outcome_t out;

    memset(&s, 0, sizeof s);
    if (!id || !opt_time(p, "period_end", &due_end) || due_end == BILLING_UNSET) {
        out = handler_util_bad_payload(job, "subscription and period_end are required");
        goto done;
    }
    out = billing_sub_load(job, id, "subscription", &s);
    if (out != HANDLER_OK)
        goto done;
    if (s.period_end != due_end || !substate_renews(s.status)) {
        out = result_as_stored(job, id); /* Already past this period, or ended. */
        goto done;
    }
    out = end_period(job, &s, job->env->id);
    if (out == HANDLER_OK)
        out = billing_sub_save(job, &s);
    if (out == HANDLER_OK)
        out = catch_up(job, &s);

done:
    billing_sub_dispose(&s);
    return out;
}

/* The set-based renewal: what one statement writes for the plain periods
 * of a batch (see subscription_cycle_batch). Parameters: $1 the number of
 * invoices, $2 the invoices, $3 their lines, $4 the subscriptions' new
 * periods, $5 the charge follow-ups. Returns each renewed subscription's
 * id and object. */
static const char CYCLE_SET_SQL[] =
    "WITH seq AS ("
    "  INSERT INTO invoice_sequences AS q (tenant_id, last)"
    "  VALUES (current_setting('app.tenant_id'), $1::bigint)"
    "  ON CONFLICT (tenant_id) DO UPDATE SET last = q.last + $1::bigint RETURNING last"
    "), inv AS ("
    "  INSERT INTO invoices (tenant_id, id, customer_id, subscription_id, number, status,"
    "   billing_reason, currency, period_start, period_end, subtotal, total, starting_balance,"
    "   ending_balance, amount_due, amount_paid, amount_remaining, created_by_job, created_at,"
    "   finalized_at, paid_at, rounding)"
    "  SELECT t.id, x.id, x.customer, x.subscription,"
    "   invoice_number(t.invoice_prefix, seq.last - $1::bigint + x.ord), x.status,"
    "   'subscription_cycle', x.currency, to_timestamp(x.period_start),"
    "   to_timestamp(x.period_end), x.subtotal, x.due, 0, 0, x.due,"
    "   CASE WHEN x.status = 'paid' THEN x.due ELSE 0 END,"
    "   CASE WHEN x.status = 'paid' THEN 0 ELSE x.due END, x.job, to_timestamp(x.now),"
    "   to_timestamp(x.now), CASE WHEN x.status = 'paid' THEN to_timestamp(x.now) END,"
    "   x.due - x.subtotal"
    "  FROM seq, tenants t, jsonb_to_recordset($2::jsonb) AS x(ord bigint, id text,"
    "   customer text, subscription text, status text, currency text, period_start bigint,"
    "   period_end bigint, subtotal bigint, due bigint, job text, now bigint)"
    "  WHERE t.id = current_setting('app.tenant_id')"
    "), lines AS ("
    "  INSERT INTO invoice_lines (tenant_id, id, invoice_id, type, description, price_id,"
    "   quantity, amount, proration, period_start, period_end, position, subscription_item_id,"
    "   subscription_period_start)"
    "  SELECT current_setting('app.tenant_id'), x.id, x.invoice, x.type, x.description, x.price,"
    "   x.quantity, x.amount, x.proration, to_timestamp(x.period_start),"
    "   to_timestamp(x.period_end), x.position, x.item, to_timestamp(x.item_period)"
    "  FROM jsonb_to_recordset($3::jsonb) AS x(id text, invoice text, type text,"
    "   description text, price text, quantity bigint, amount bigint, proration boolean,"
    "   period_start bigint, period_end bigint, position integer, item text,"
    "   item_period bigint)"
    "), ob AS ("
    "  INSERT INTO outbox (tenant_id, job_id, envelope)"
    "  SELECT current_setting('app.tenant_id'), x.job_id, x.envelope::jsonb"
    "  FROM jsonb_to_recordset($5::jsonb) AS x(job_id text, envelope text)"
    "  ON CONFLICT (tenant_id, job_id) DO NOTHING"
    ") UPDATE subscriptions s SET current_period_start = to_timestamp(x.period_start),"
    "   current_period_end = to_timestamp(x.period_end), latest_invoice_id = x.invoice,"
    "   updated_at = now()"
    " FROM jsonb_to_recordset($4::jsonb) AS x(id text, period_start bigint, period_end bigint,"
    "  invoice text)"
    " WHERE s.id = x.id RETURNING s.id, subscription_object(s)::text";

/* Forgets what a failed attempt at the set-based path left on job, so the
 * per-job handler starts clean. */
static void untake(worker_job_t *job)
{
    json_decref(job->error);
    job->error = NULL;
}

/* subscription.cycle, set-based: the plain renewals of a batch (an active
 * subscription, or a past-due one with something due, at the end of the
 * period its job names, with no pending change, cancel, prorations or
 * balance, and a next period that has not ended yet) are priced here one
 * by one with the same functions as subscription_cycle, then written in
 * one statement: numbers from one update of the tenant's sequence, every
 * invoice, line, period and charge follow-up. Anything else is left to
 * subscription_cycle, job by job. */
static handler_outcome_t subscription_cycle_batch(worker_job_t *const *jobs, size_t n, bool *taken)
{
    const char **ids = mem_calloc(n + 1, sizeof *ids);
    int64_t *due_end = mem_calloc(n + 1, sizeof *due_end);
    billing_sub_t *subs = mem_calloc(n + 1, sizeof *subs);
    bool *found = mem_calloc(n + 1, sizeof *found);
    bool *plain = mem_calloc(n + 1, sizeof *plain);
    char **envelopes = mem_calloc(n + 1, sizeof *envelopes);
    json_t *invoices = json_array(), *all_lines = json_array(), *periods = json_array();
    json_t *charges = json_array();
    char *texts[4] = {NULL, NULL, NULL, NULL};
    PGresult *res = NULL;
    handler_outcome_t out = HANDLER_OK;
    size_t nplain = 0, nids = 0;

    for (size_t i = 0; i < n; i++) {
        const json_t *p = jobs[i]->env->payload;
        ids[i] = handler_util_req_string(p, "subscription");
        if (ids[i] && opt_time(p, "period_end", &due_end[i]) && due_end[i] != BILLING_UNSET)
            nids = i + 1;
        else
            ids[i] = "";
    }
    if (nids == 0)
        goto done;
    out = billing_subs_load(jobs[0], ids, n, subs, found);
    if (out != HANDLER_OK)
        goto done;
    for (size_t i = 0; i < n; i++) {
        billing_sub_t *s = &subs[i];
        int64_t next_end;
        if (!found[i] || s->period_end != due_end[i] ||
            (s->status != SUBSTATE_ACTIVE && s->status != SUBSTATE_PAST_DUE) ||
            s->cancel_at_period_end || s->pending_update || s->has_pending ||
            s->customer_balance != 0 ||
            calendar_next_boundary(&s->sched, s->period_end, &next_end) != 0 || next_end <= s->now)
            continue;
        /* Two jobs of one subscription in a batch: only the first is plain. */
        bool seen = false;
        for (size_t k = 0; k < i; k++)
            seen = seen || (plain[k] && strcmp(ids[k], ids[i]) == 0);
        json_t *lines = json_array();
        if (seen || charge_lines(jobs[i], s, s->period_end, next_end, false, lines) != HANDLER_OK) {
            untake(jobs[i]);
            json_decref(lines);
            continue;
        }
        int64_t total = 0;
        bool fits = true;
        size_t k;
        json_t *line;
        char invoice_id[IDS_MAX];
        ids_generate("in", invoice_id);
        json_array_foreach(lines, k, line)
        {
            char line_id[IDS_MAX];
            ids_generate("il", line_id);
            fits = fits && money_add(total, json_integer_value(json_object_get(line, "amount")),
                                     &total) == 0;
            json_object_set_new(line, "id", json_string(line_id));
            json_object_set_new(line, "invoice", json_string(invoice_id));
            json_object_set_new(line, "position", json_integer((json_int_t)k));
        }
        /* A free renewal closes paid, which may move a past-due
         * subscription back to active: that is billing_invoice_create's
         * to decide, job by job. */
        if (!fits || total < 0 || (total == 0 && s->status != SUBSTATE_ACTIVE)) {
            json_decref(lines);
            continue;
        }
        /* No balance here, so the lines' sum is what is due, rounded as
         * billing_invoice_create rounds it. One rounded to nothing closes
         * paid: left to that function too, as above. */
        int64_t subtotal = total, rounding = 0;
        invstate_t status;
        char why[160];
        if (money_collectable_rounding(s->currency, subtotal, &rounding) != 0 ||
            (rounding != 0 && subtotal + rounding == 0)) {
            json_decref(lines);
            continue;
        }
        total = subtotal + rounding;
        if (invstate_next(INVSTATE_DRAFT, INVSTATE_EV_FINALIZE, total, &status, why) != 0) {
            json_decref(lines);
            continue;
        }
        json_array_extend(all_lines, lines);
        json_decref(lines);
        json_array_append_new(
            invoices,
            json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:s,s:I}", "ord",
                      (json_int_t)(nplain + 1), "id", invoice_id, "customer", s->customer_id,
                      "subscription", s->id, "status", invstate_name(status), "currency",
                      s->currency, "period_start", (json_int_t)s->period_end, "period_end",
                      (json_int_t)next_end, "subtotal", (json_int_t)subtotal, "due",
                      (json_int_t)total, "job", jobs[i]->env->id, "now", (json_int_t)s->now));
        json_array_append_new(periods, json_pack("{s:s,s:I,s:I,s:s}", "id", s->id, "period_start",
                                                 (json_int_t)s->period_end, "period_end",
                                                 (json_int_t)next_end, "invoice", invoice_id));
        if (total > 0) {
            char charge_id[IDS_MAX], key[IDS_MAX * 2];
            snprintf(key, sizeof key, "payment.charge|%s|1", invoice_id);
            ids_derive("job", (uint64_t)timeutil_now_ms(), key, charge_id);
            envelopes[i] = runtime_followup_envelope(
                jobs[i], "payment.charge",
                json_pack("{s:s,s:s,s:s,s:I,s:s,s:i}", "invoice", invoice_id, "customer",
                          s->customer_id, "subscription", s->id, "amount", (json_int_t)total,
                          "currency", s->currency, "attempt", 1),
                charge_id, charge_id);
            if (envelopes[i] == NULL) {
                out = HANDLER_PERMANENT;
                goto done;
            }
            json_array_append_new(
                charges, json_pack("{s:s,s:s}", "job_id", charge_id, "envelope", envelopes[i]));
        }
        plain[i] = true;
        nplain++;
    }
    if (nplain == 0)
        goto done;

    char count[24];
    snprintf(count, sizeof count, "%zu", nplain);
    texts[0] = json_dumps(invoices, JSON_COMPACT);
    texts[1] = json_dumps(all_lines, JSON_COMPACT);
    texts[2] = json_dumps(periods, JSON_COMPACT);
    texts[3] = json_dumps(charges, JSON_COMPACT);
    const char *params[] = {count, texts[0], texts[1], texts[2], texts[3]};
    out = handler_util_exec(jobs[0], CYCLE_SET_SQL, 5, params, PGRES_TUPLES_OK, &res);
    if (out == HANDLER_OK && (size_t)PQntuples(res) != nplain)
        out = runtime_db_fault(jobs[0], res);
    if (out != HANDLER_OK)
        goto done;
    for (int row = 0; row < PQntuples(res); row++) {
        for (size_t i = 0; i < n; i++) {
            if (!plain[i] || taken[i] || strcmp(ids[i], PQgetvalue(res, row, 0)) != 0)
                continue;
            json_decref(jobs[i]->result);
            jobs[i]->result = json_loads(PQgetvalue(res, row, 1), 0, NULL);
            if (envelopes[i])
                runtime_followup_written(jobs[i], envelopes[i]);
            taken[i] = true;
            break;
        }
    }

done:
    PQclear(res);
    for (int t = 0; t < 4; t++)
        free(texts[t]);
    for (size_t i = 0; i < n; i++) {
        billing_sub_dispose(&subs[i]);
        free(envelopes[i]);
    }
    json_decref(invoices);
    json_decref(all_lines);
    json_decref(periods);
    json_decref(charges);
    free(ids);
    free(due_end);
    free(subs);
    free(found);
    free(plain);
    free(envelopes);
    return out;
}

/* Applies lines per the proration choice: pending items, an invoice now
 * (for [from, to)), or nothing. */
static handler_outcome_t settle(worker_job_t *job, billing_sub_t *s, prorate_t how,
                                const json_t *lines, int64_t from, int64_t to)
{
    switch (how) {
    case PRORATE_NONE:
        return HANDLER_OK;
    case PRORATE_CREATE:
        return billing_pending_add(job, s, lines);
    case PRORATE_INVOICE:
        return billing_invoice_create(job, s, "subscription_update", from, to, lines, true, true,
                                      NULL);
    }
    return HANDLER_OK;
}

/* Builds the wanted item list [{id?, price, quantity}] from s's items and
 * the request's changes ([{id?, price?, quantity?, deleted?}]). */
static handler_outcome_t merge_items(worker_job_t *job, const billing_sub_t *s,
                                     const json_t *changes, json_t **wanted)
{
    json_t *list = json_array();
    for (size_t i = 0; i < s->n_items; i++)
        json_array_append_new(list, json_pack("{s:s,s:s,s:I}", "id", s->items[i].id, "price",
                                              s->items[i].price_id, "quantity",
                                              (json_int_t)s->items[i].quantity));
    size_t i;
    const json_t *c;
    json_array_foreach(changes, i, c)
    {
        const char *item_id = json_string_value(json_object_get(c, "id"));
        const json_t *price = json_object_get(c, "price"), *qty = json_object_get(c, "quantity");
        json_t *target = NULL;
        size_t at = 0, k;
        json_t *row;
        if (item_id) {
            json_array_foreach(list, k, row)
            {
                if (strcmp(json_string_value(json_object_get(row, "id")), item_id) == 0) {
                    target = row;
                    at = k;
                    break;
                }
            }
            if (target == NULL) {
                json_decref(list);
                char param[48];
                snprintf(param, sizeof param, "items[%zu].id", i);
                return runtime_reject(job, 404, "resource_missing", param,
                                      "This subscription has no item '%s'.", item_id);
            }
            if (json_is_true(json_object_get(c, "deleted"))) {
                json_array_remove(list, at);
                continue;
            }
        } else {
            target = json_pack("{s:s}", "id", "");
            json_array_append_new(list, target);
        }
        json_object_set_new(target, "at", json_integer((json_int_t)i));
        if (json_is_string(price))
            json_object_set(target, "price", (json_t *)price);
        if (json_is_integer(qty))
            json_object_set(target, "quantity", (json_t *)qty);
        else if (json_object_get(target, "quantity") == NULL)
            json_object_set_new(target, "quantity", json_integer(1));
    }
    /* Empty ids mean new items. */
    size_t k;
    json_t *row;
    json_array_foreach(list, k, row)
    {
        if (json_string_length(json_object_get(row, "id")) == 0)
            json_object_del(row, "id");
    }
    if (json_array_size(list) == 0) {
        json_decref(list);
        return runtime_reject(job, 400, "parameter_invalid", "items",
                              "A subscription needs at least one item; cancel it instead.");
    }
    *wanted = list;
    return HANDLER_OK;
}

static const billing_item_t *find_item(const billing_item_t *items, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (id[0] && strcmp(items[i].id, id) == 0)
            return &items[i];
    return NULL;
}

/* Starts a period of s's schedule at s->now, ending at the schedule's next
 * boundary (a whole period when now is a boundary, else the part up to the
 * next one, prorated), and invoices it at once with `lines` (credits
 * already collected) and the pending items, for `reason`. */
static handler_outcome_t start_period_now(worker_job_t *job, billing_sub_t *s, const char *reason,
                                          json_t *lines)
{
    int64_t next_end;
    if (calendar_next_boundary(&s->sched, s->now, &next_end) != 0)
        return runtime_fault(job, HANDLER_PERMANENT, "internal_error",
                             "Subscription %s has no period after %" PRId64 ".", s->id, s->now);
    s->period_start = s->now;
    s->period_end = next_end;
    handler_outcome_t out = charge_lines(job, s, s->now, next_end, false, lines);
    if (out == HANDLER_OK)
        out = billing_invoice_create(job, s, reason, s->now, next_end, lines, true, false, NULL);
    return out;
}

/* Starts s's schedule afresh at s->now (the interval stays; the anchor and
 * its day become now's) and invoices the new full period at once, as
 * start_period_now(). */
static handler_outcome_t restart_now(worker_job_t *job, billing_sub_t *s, const char *reason,
                                     json_t *lines)
{
    s->sched.anchor = s->now;
    s->sched.day_of_month = 0;
    return start_period_now(job, s, reason, lines);
}

/* Changes items now, with prorations (or a fresh period when the interval
 * changes). */
static handler_outcome_t change_items_now(worker_job_t *job, billing_sub_t *s, const json_t *wanted,
                                          prorate_t how, json_t *lines)
{
    billing_sub_t old = *s;
    bool interval_changed;
    old.pending_update = NULL; /* Owned by s. */
    /* A new interval starts its schedule where billing starts: now, or for
     * a trial at its end, which stays the current period's end. Anchored
     * now, the first paid period would be cut short at the first boundary
     * after the trial (prorated) and every renewal would fall on the day
     * of the change. */
    bool trialing = s->status == SUBSTATE_TRIALING;
    int64_t start = trialing && s->trial_end != BILLING_UNSET ? s->trial_end : s->now;
    handler_outcome_t out = apply_items(job, s, wanted, "items", true, start, &interval_changed);
    if (out != HANDLER_OK || trialing)
        return out; /* A trial is free: items change with nothing to prorate. */
    if (interval_changed) {
        /* A new interval restarts the schedule now (apply_items anchored
         * it, on the billing day when there is one): credit what is unused
         * and invoice the first period, in full, or its part up to the
         * billing day. */
        if (how != PRORATE_NONE && (out = credit_all(job, &old, s->now, lines)) != HANDLER_OK)
            return out;
        return start_period_now(job, s, "subscription_update", lines);
    }
    for (size_t i = 0; i < old.n_items; i++) {
        const billing_item_t *now_it = find_item(s->items, s->n_items, old.items[i].id);
        if (now_it && strcmp(now_it->price_id, old.items[i].price_id) == 0 &&
            now_it->quantity == old.items[i].quantity)
            continue;
        if ((out = proration_line(job, &old, &old.items[i], s->now, -1, lines)) != HANDLER_OK)
            return out;
    }
    for (size_t i = 0; i < s->n_items; i++) {
        const billing_item_t *was = find_item(old.items, old.n_items, s->items[i].id);
        if (was && strcmp(was->price_id, s->items[i].price_id) == 0 &&
            was->quantity == s->items[i].quantity)
            continue;
        if ((out = proration_line(job, s, &s->items[i], s->now, +1, lines)) != HANDLER_OK)
            return out;
    }
    return settle(job, s, how, lines, s->now, s->period_end);
}

/* Moves the billing cycle anchor to "now" or a later moment. */
static handler_outcome_t move_anchor(worker_job_t *job, billing_sub_t *s, const json_t *anchor,
                                     prorate_t how, json_t *lines)
{
    handler_outcome_t out;
    if (json_is_string(anchor) && strcmp(json_string_value(anchor), "now") == 0) {
        if (s->status != SUBSTATE_TRIALING && how != PRORATE_NONE &&
            (out = credit_all(job, s, s->now, lines)) != HANDLER_OK)
            return out;
        if (s->status == SUBSTATE_TRIALING &&
            (out = billing_sub_transition(job, s, SUBSTATE_EV_TRIAL_END)) != HANDLER_OK)
            return out;
        if (s->trial_end != BILLING_UNSET && s->trial_end > s->now)
            s->trial_end = s->now;
        return restart_now(job, s, "subscription_update", lines);
    }
    int64_t t, ms, next_end;
    if (!json_is_string(anchor) || timeutil_parse_rfc3339(json_string_value(anchor), &ms) != 0)
        return handler_util_bad_payload(job, "billing_cycle_anchor must be \"now\" or a time");
    t = ms / 1000;
    if (s->status == SUBSTATE_TRIALING)
        return runtime_reject(job, 409, "subscription_state", "billing_cycle_anchor",
                              "A trialing subscription's cycle starts when its trial ends; "
                              "\"now\" ends the trial and starts billing at once.");
    if (t <= s->now)
        return runtime_reject(job, 400, "parameter_invalid", "billing_cycle_anchor",
                              "billing_cycle_anchor must be \"now\" or in the future.");
    if (calendar_next_boundary(&s->sched, s->period_end, &next_end) != 0 || t > next_end)
        return runtime_reject(job, 400, "parameter_invalid", "billing_cycle_anchor",
                              "billing_cycle_anchor must be no later than the end of the next "
                              "period.");
    /* The current period now ends at t: the time it loses is credited,
     * the time it gains is charged, both prorated. */
    for (size_t i = 0; i < s->n_items && t != s->period_end; i++) {
        const billing_item_t *it = &s->items[i];
        if (t < s->period_end) {
            out = proration_line(job, s, it, t, -1, lines);
        } else {
            int64_t amount;
            char a[11], desc[BILLING_NAME_MAX + 64];
            out = billing_charge(job, s, it, s->period_end, t, &amount);
            billing_date(t, a);
            snprintf(desc, sizeof desc, "Remaining time on %" PRId64 " × %s until %s", it->quantity,
                     it->product_name, a);
            if (out == HANDLER_OK)
                billing_line_add(lines, "proration", desc, it, amount, s->period_end, t,
                                 s->period_start);
        }
        if (out != HANDLER_OK)
            return out;
    }
    int64_t lo = t < s->period_end ? t : s->period_end, hi = t < s->period_end ? s->period_end : t;
    out = settle(job, s, how, lines, lo, hi);
    s->sched.anchor = t;
    s->sched.day_of_month = 0;
    s->period_end = t;
    return out;
}

/* Loads the subscription the job's payload names ("id") into s (zeroed;
 * dispose it whatever the outcome). */
static handler_outcome_t load_named(worker_job_t *job, billing_sub_t *s)
{
    const char *id = handler_util_req_string(job->env->payload, "id");
    if (!id)
        return handler_util_bad_payload(job, "id is required");
    return billing_sub_load(job, id, "id", s);
}

/* subscription.update: items (now or at the period's end), a pending
 * cancel, the anchor, metadata, dropping the scheduled change
 * (pending_update: null), on the subscription brought up to date.
 *
 * A scheduled change is a snapshot of the whole item list, applied as it
 * is at the period's end. A change of items made now on top of it would be
 * silently undone then (an upgrade the customer paid for reverting to the
 * snapshot), so it is refused while a change is scheduled, unless the same
 * request drops the scheduled one. */
static handler_outcome_t subscription_update(worker_job_t *job)
{
    const json_t *p = job->env->payload;
    const char *id = handler_util_req_string(p, "id");
    const json_t *changes = json_object_get(p, "items");
    const json_t *cape = json_object_get(p, "cancel_at_period_end");
    const json_t *anchor = json_object_get(p, "billing_cycle_anchor");
    const json_t *metadata = json_object_get(p, "metadata");
    const char *effective = json_string_value(json_object_get(p, "effective_at"));
    bool scheduling = effective && strcmp(effective, "period_end") == 0;
    bool drop_pending = json_is_null(json_object_get(p, "pending_update"));
    prorate_t how = prorate_of(p);
    billing_sub_t s;
    json_t *lines = json_array(), *wanted = NULL;
    handler_outcome_t out;

    memset(&s, 0, sizeof s);
    out = load_named(job, &s);
    if (out == HANDLER_OK)
        out = bring_up_to_date(job, &s);
    if (out != HANDLER_OK)
        goto done;
    if (changes || anchor || json_is_true(cape)) {
        out = billing_sub_transition(job, &s, SUBSTATE_EV_UPDATE);
        if (out != HANDLER_OK)
            goto done;
    } else if (s.status == SUBSTATE_CANCELED) {
        out = runtime_reject(job, 409, "subscription_state", NULL,
                             "This subscription is canceled; it cannot be changed any more.");
        goto done;
    }
    if (changes && !scheduling && s.pending_update && !drop_pending) {
        const char *asked = json_string_value(json_object_get(s.pending_update, "requested_at"));
        out = runtime_reject(
            job, 409, "pending_update_exists", "items",
            "This subscription has a change scheduled for its period end (pending_update, "
            "requested at %s), which would undo this change then. Send \"pending_update\": "
            "null with this change to drop the scheduled one, or make this change with "
            "effective_at: \"period_end\" to replace it.",
            asked ? asked : "earlier");
        goto done;
    }
    /* A new anchor moves the period end the change was scheduled for: it
     * would apply on a date nobody was told. */
    if (anchor && s.pending_update && !drop_pending) {
        const char *asked = json_string_value(json_object_get(s.pending_update, "requested_at"));
        out = runtime_reject(
            job, 409, "pending_update_exists", "billing_cycle_anchor",
            "This subscription has a change scheduled for its period end (pending_update, "
            "requested at %s); a new billing cycle anchor moves that end. Send "
            "\"pending_update\": null with the new anchor to drop the scheduled change, or move "
            "the anchor once the change has been made.",
            asked ? asked : "earlier");
        goto done;
    }
    if (json_is_boolean(cape)) {
        s.cancel_at_period_end = json_is_true(cape);
        s.canceled_at = s.cancel_at_period_end ? s.now : BILLING_UNSET;
    }
    /* A subscription that ends at its period end has no next period for a
     * scheduled change to apply to: the cancel wins, and drops it at once
     * (undoing the cancel does not bring it back). */
    if (changes && scheduling && s.cancel_at_period_end) {
        out = runtime_reject(job, 409, "subscription_state", "effective_at",
                             "This subscription ends at its period end (cancel_at_period_end), "
                             "so a change scheduled for then would never be made. Send "
                             "cancel_at_period_end: false with it to keep the subscription.");
        goto done;
    }
    if (drop_pending || s.cancel_at_period_end) {
        json_decref(s.pending_update);
        s.pending_update = NULL;
    }
    if (changes) {
        out = merge_items(job, &s, changes, &wanted);
        if (out != HANDLER_OK)
            goto done;
        if (scheduling) {
            char at[TIMEUTIL_RFC3339_MAX];
            timeutil_format_rfc3339_s(s.now * 1000, at);
            json_decref(s.pending_update);
            json_t *items = json_deep_copy(wanted);
            size_t k;
            json_t *row;
            json_array_foreach(items, k, row) json_object_del(row, "at");
            s.pending_update = json_pack("{s:o,s:s}", "items", items, "requested_at", at);
            /* Checked now, so the change cannot fail when it is due. */
            billing_sub_t probe = s;
            bool changed;
            probe.pending_update = NULL;
            out = apply_items(job, &probe, wanted, "items", true, s.period_end, &changed);
        } else {
            out = change_items_now(job, &s, wanted, how, lines);
        }
        if (out != HANDLER_OK)
            goto done;
    }
    if (anchor) {
        out = move_anchor(job, &s, anchor, how, lines);
        if (out != HANDLER_OK)
            goto done;
    }
    if (json_is_object(metadata)) {
        char *md = json_dumps(metadata, JSON_COMPACT);
        const char *params[2] = {id, md};
        out = handler_util_exec(job,
                                "UPDATE subscriptions s SET metadata = metadata_merge(s.metadata, "
                                "$2::jsonb) WHERE id = $1",
                                2, params, PGRES_COMMAND_OK, NULL);
        free(md);
        if (out != HANDLER_OK)
            goto done;
    }
    out = billing_sub_save(job, &s);

done:
    json_decref(lines);
    json_decref(wanted);
    billing_sub_dispose(&s);
    return out;
}

/* What one staff action (cancel, pause) does to subscription s,
 * whose status has just moved by the action's event from `was`; lines is
 * an empty array to collect invoice lines in. */
typedef handler_outcome_t (*sub_action_fn)(worker_job_t *job, billing_sub_t *s, substate_t was,
                                           json_t *lines);

/* Runs one staff action: loads payload.id, brings it up to date, moves its
 * status by ev, lets fn do the rest, saves. */
static handler_outcome_t run_action(worker_job_t *job, substate_event_t ev, sub_action_fn fn)
{
    billing_sub_t s;
    json_t *lines = json_array();
    handler_outcome_t out;

    memset(&s, 0, sizeof s);
    out = load_named(job, &s);
    if (out == HANDLER_OK)
        out = bring_up_to_date(job, &s);
    if (out != HANDLER_OK)
        goto done;
    substate_t was = s.status;
    out = billing_sub_transition(job, &s, ev);
    if (out == HANDLER_OK)
        out = fn(job, &s, was, lines);
    if (out == HANDLER_OK)
        out = billing_sub_save(job, &s);

done:
    json_decref(lines);
    billing_sub_dispose(&s);
    return out;
}

/* subscription.cancel: ends it now, crediting the unused time when asked
 * (prorate); the credit and any pending items go through a final invoice,
 * so they reach the customer's balance. */
static handler_outcome_t cancel_now(worker_job_t *job, billing_sub_t *s, substate_t was,
                                    json_t *lines)
{
    handler_outcome_t out = HANDLER_OK;
    bool voided;
    /* An incomplete subscription's first invoice was owed for a service
     * that never started: it goes with it, as at expiry. */
    if (was == SUBSTATE_INCOMPLETE && s->latest_invoice_id[0])
        out = invoice_move(job, s->latest_invoice_id, INVSTATE_EV_VOID, true, &voided);
    if (out == HANDLER_OK && json_is_true(json_object_get(job->env->payload, "prorate")) &&
        was != SUBSTATE_TRIALING && was != SUBSTATE_INCOMPLETE && s->period_end != BILLING_UNSET)
        out = credit_all(job, s, s->now, lines);
    if (out == HANDLER_OK)
        out = billing_invoice_create(job, s, "subscription_cancel", s->now, s->now, lines, true,
                                     true, NULL);
    s->canceled_at = s->ended_at = s->now;
    s->period_start = s->period_end = BILLING_UNSET;
    s->cancel_at_period_end = false;
    json_decref(s->pending_update);
    s->pending_update = NULL;
    return out;
}

static handler_outcome_t subscription_cancel(worker_job_t *job)
{
    return run_action(job, SUBSTATE_EV_CANCEL, cancel_now);
}

/* subscription.pause: billing stops now; the unused time is credited as
 * proration_behavior says; no period runs until resume. */
static handler_outcome_t pause_now(worker_job_t *job, billing_sub_t *s, substate_t was,
                                   json_t *lines)
{
    handler_outcome_t out = HANDLER_OK;
    if (s->cancel_at_period_end)
        return runtime_reject(job, 409, "subscription_state", NULL,
                              "This subscription ends at its period's end; undo the cancel before "
                              "pausing it.");
    /* The pause ends the period the scheduled change was for, and the
     * resume starts another: the caller says whether it still stands. */
    if (s->pending_update && !json_is_null(json_object_get(job->env->payload, "pending_update"))) {
        const char *asked = json_string_value(json_object_get(s->pending_update, "requested_at"));
        return runtime_reject(
            job, 409, "pending_update_exists", "pending_update",
            "This subscription has a change scheduled for its period end (pending_update, "
            "requested at %s), which a pause ends. Send \"pending_update\": null to pause it "
            "and drop the scheduled change; schedule it again after the resume if it still "
            "stands.",
            asked ? asked : "earlier");
    }
    json_decref(s->pending_update);
    s->pending_update = NULL;
    prorate_t how = prorate_of(job->env->payload);
    if (was != SUBSTATE_TRIALING && s->period_end != BILLING_UNSET && how != PRORATE_NONE &&
        (out = credit_all(job, s, s->now, lines)) == HANDLER_OK)
        out = settle(job, s, how, lines, s->now, s->now);
    s->paused_at = s->now;
    s->period_start = s->period_end = BILLING_UNSET;
    return out;
}

static handler_outcome_t subscription_pause(worker_job_t *job)
{
    return run_action(job, SUBSTATE_EV_PAUSE, pause_now);
}

/* An open invoice of subscription $1 whose retries have ended: its last
 * attempt failed, nothing is scheduled (the policy's end was applied,
 * which clears dunning_ends_at) and no attempt is in flight. An invoice
 * that failed on its amount has no end (staff settle it). */
static const char RETRIES_OVER_SQL[] =
    "SELECT 1 FROM invoices i WHERE i.subscription_id = $1 AND i.status = 'open'"
    " AND i.attempt_count > 0 AND i.next_payment_attempt IS NULL AND i.dunning_ends_at IS NULL"
    " AND coalesce(i.last_payment_error ->> 'code', '') NOT IN ('amount_unsupported',"
    " 'amount_mismatch') AND NOT EXISTS (SELECT 1 FROM payment_attempts a"
    " WHERE a.tenant_id = i.tenant_id AND a.invoice_id = i.id AND a.status = 'processing') LIMIT 1";

/* The status a resumed subscription that owes takes beyond past due: the
 * end "mark unpaid", when an owed invoice's retries ended while it was
 * paused (the end then found no status to move). Cancel needs nothing
 * here: it cancels a paused subscription too. */
static handler_outcome_t resume_retries_over(worker_job_t *job, billing_sub_t *s)
{
    const char *params[1] = {s->id};
    PGresult *res = NULL;
    dunning_policy_t policy;
    handler_outcome_t out = payments_policy(job, &policy);
    if (out != HANDLER_OK || policy.end != DUNNING_END_MARK_UNPAID)
        return out;
    out = handler_util_exec(job, RETRIES_OVER_SQL, 1, params, PGRES_TUPLES_OK, &res);
    if (out == HANDLER_OK && PQntuples(res) > 0)
        out = billing_sub_transition(job, s, SUBSTATE_EV_RETRIES_EXHAUSTED);
    PQclear(res);
    return out;
}

/* subscription.resume: a new period starts now, anchored now, invoiced in
 * full with whatever was left pending. The status follows every invoice,
 * as a payment's does: with one from before the pause still open it is
 * past due, not active; unpaid if that invoice's retries ended during the
 * pause and the policy's end marks subscriptions unpaid. */
static handler_outcome_t subscription_resume(worker_job_t *job)
{
    billing_sub_t s;
    json_t *lines = json_array();
    handler_outcome_t out;
    bool owes = false;

    memset(&s, 0, sizeof s);
    out = load_named(job, &s);
    if (out == HANDLER_OK && s.status == SUBSTATE_PAUSED)
        out = billing_sub_owes(job, &s, NULL, &owes);
    if (out == HANDLER_OK)
        out = billing_sub_transition(job, &s, owes ? SUBSTATE_EV_RESUME_OWING : SUBSTATE_EV_RESUME);
    if (out == HANDLER_OK && owes)
        out = resume_retries_over(job, &s);
    if (out != HANDLER_OK)
        goto done;
    s.paused_at = BILLING_UNSET;
    /* Not subscription_cycle: a resume may start a period in the very
     * second an earlier one started (pause and resume at once), and the
     * one-invoice-per-period key is for the periods the schedule makes. */
    out = restart_now(job, &s, "subscription_resume", lines);
    if (out == HANDLER_OK)
        out = billing_sub_save(job, &s);

done:
    json_decref(lines);
    billing_sub_dispose(&s);
    return out;
}

handler_outcome_t kind_invoice_settle(worker_job_t *job, const char *id, invstate_event_t ev,
                                      bool quiet, bool *moved)
{
    const char *params[1] = {id};
    billing_sub_t s;
    PGresult *res = NULL;
    handler_outcome_t out;
    bool has_sub = false;

    *moved = false;
    memset(&s, 0, sizeof s);
    out = handler_util_exec(job, "SELECT coalesce(subscription_id, '') FROM invoices WHERE id = $1",
                            1, params, PGRES_TUPLES_OK, &res);
    if (out != HANDLER_OK)
        goto done;
    if (PQntuples(res) == 0) {
        out = runtime_reject(job, 404, "resource_missing", "id", "No such invoice: '%s'.", id);
        goto done;
    }
    if (PQgetvalue(res, 0, 0)[0]) {
        has_sub = true;
        out = billing_sub_load(job, PQgetvalue(res, 0, 0), "id", &s);
        if (out != HANDLER_OK)
            goto done;
    }
    out = invoice_move(job, id, ev, quiet, moved);
    if (out != HANDLER_OK || !*moved || ev != INVSTATE_EV_PAY || !has_sub)
        goto done;
    /* Any of the subscription's invoices counts, not only its latest: a
     * renewal that failed and is paid by a retry after a newer invoice was
     * made (a credit, a renewal) settles it as much. A payment that
     * arrives after the subscription ended (a late success of an old
     * attempt) pays the invoice and leaves the subscription canceled. */
    substate_t was = s.status;
    out = billing_sub_invoice_paid(job, &s, id);
    if (out == HANDLER_OK && s.status != was) {
        out = billing_sub_save(job, &s);
        /* billing_sub_save answers with the subscription; the caller's job
         * answers with its own result. */
        json_decref(job->result);
        job->result = NULL;
    }

done:
    PQclear(res);
    billing_sub_dispose(&s);
    return out;
}

/* invoice.void, invoice.mark_uncollectible, invoice.pay: one move of the
 * invoice's status (kind_invoice_settle), answered with the invoice. */
static handler_outcome_t invoice_event(worker_job_t *job, invstate_event_t ev)
{
    const char *id = handler_util_req_string(job->env->payload, "id");
    const char *params[1] = {id};
    PGresult *res = NULL;
    handler_outcome_t out;
    bool moved = false;

    if (!id) {
        out = handler_util_bad_payload(job, "id is required");
        goto done;
    }
    out = kind_invoice_settle(job, id, ev, false, &moved);
    /* Paid out of band, the invoice takes no more money through Stripe (a
     * void cancels its intent in invoice_move); written off, it may still
     * be paid (a late authentication settles it), so its intent stays. */
    if (out == HANDLER_OK && moved && ev == INVSTATE_EV_PAY)
        out = payments_invoice_settled_elsewhere(job, id);
    if (out != HANDLER_OK)
        goto done;
    out = handler_util_exec(job, "SELECT invoice_object(i)::text FROM invoices i WHERE id = $1", 1,
                            params, PGRES_TUPLES_OK, &res);
    if (out == HANDLER_OK)
        out = handler_util_take_result(job, res);

done:
    PQclear(res);
    return out;
}

static handler_outcome_t invoice_void(worker_job_t *job)
{
    return invoice_event(job, INVSTATE_EV_VOID);
}

static handler_outcome_t invoice_mark_uncollectible(worker_job_t *job)
{
    return invoice_event(job, INVSTATE_EV_MARK_UNCOLLECTIBLE);
}

static handler_outcome_t invoice_pay(worker_job_t *job)
{
    return invoice_event(job, INVSTATE_EV_PAY);
}

const worker_handler_t kind_invoice_handlers[] = {
    {"subscription.create", subscription_create, false, NULL},
    {"subscription.update", subscription_update, false, NULL},
    {"subscription.cancel", subscription_cancel, false, NULL},
    {"subscription.pause", subscription_pause, false, NULL},
    {"subscription.resume", subscription_resume, false, NULL},
    {"subscription.cycle", subscription_cycle, false, subscription_cycle_batch},
    {"invoice.void", invoice_void, false, NULL},
    {"invoice.mark_uncollectible", invoice_mark_uncollectible, false, NULL},
    {"invoice.pay", invoice_pay, false, NULL},
    {NULL, NULL, false, NULL},
};

/* billing: the subscription engine's shared steps (see billing.h).
 *
 * Design: the C side decides and computes; every write is one statement
 * with all its values as parameters, and the objects a job returns come
 * from the schema's *_object() functions, as everywhere else. An invoice is
 * written by a single statement that takes the next number, inserts the
 * invoice and its lines, claims the pending items and moves the customer's
 * balance with its ledger entry, so none of these can happen without the
 * others.
 */
#include "billing.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "handler_util.h"
#include "invstate.h"
#include "mem.h"
#include "pricing.h"
#include "proration.h"
#include "timeutil.h"

/* Text of an int64 for a statement parameter. */
typedef struct {
    char s[24];
} num_t;

static const char *num(num_t *n, int64_t v)
{
    snprintf(n->s, sizeof n->s, "%" PRId64, v);
    return n->s;
}

/* As num, NULL (SQL null) for BILLING_UNSET. */
static const char *opt_time(num_t *n, int64_t v)
{
    return v == BILLING_UNSET ? NULL : num(n, v);
}

static int64_t time_col(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return BILLING_UNSET;
    return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

static void copy(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src ? src : "");
}

void billing_date(int64_t t, char out[11])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 11, "%Y-%m-%d", &tm);
}

void billing_sub_dispose(billing_sub_t *s)
{
    json_decref(s->pending_update);
    s->pending_update = NULL;
}

/* Fills *it from one {"id"?, "quantity", "price": price object,
 * "product_name", "product_active"?} row of a catalog query. */
static handler_outcome_t item_from_row(worker_job_t *job, const json_t *row, billing_item_t *it)
{
    const json_t *price = json_object_get(row, "price");
    pricing_t pricing;
    char param[64], why[160];
    memset(it, 0, sizeof *it);
    copy(it->id, sizeof it->id, json_string_value(json_object_get(row, "id")));
    copy(it->price_id, sizeof it->price_id, json_string_value(json_object_get(price, "id")));
    copy(it->product_name, sizeof it->product_name,
         json_string_value(json_object_get(row, "product_name")));
    it->quantity = json_integer_value(json_object_get(row, "quantity"));
    it->trial_period_days = (int)json_integer_value(
        json_object_get(json_object_get(price, "recurring"), "trial_period_days"));
    if (pricing_parse(price, &pricing, param, why) != 0)
        return runtime_fault(job, HANDLER_PERMANENT, "internal_error",
                             "Stored price %s does not read: %s", it->price_id, why);
    if (pricing_amount(&pricing, it->quantity, &it->period_amount) != 0)
        return runtime_reject(job, 400, "amount_too_large", "items",
                              "%" PRId64 " × %s is more than an invoice can hold.", it->quantity,
                              it->price_id);
    return HANDLER_OK;
}

static const char LOAD_SQL[] =
    "SELECT s.id, s.customer_id, s.status, s.currency, s.interval, s.interval_count,"
    " floor(extract(epoch FROM s.billing_cycle_anchor))::bigint, s.anchor_day,"
    " floor(extract(epoch FROM s.start_date))::bigint,"
    " floor(extract(epoch FROM s.current_period_start))::bigint,"
    " floor(extract(epoch FROM s.current_period_end))::bigint,"
    " floor(extract(epoch FROM s.trial_start))::bigint,"
    " floor(extract(epoch FROM s.trial_end))::bigint,"
    " floor(extract(epoch FROM s.canceled_at))::bigint,"
    " floor(extract(epoch FROM s.ended_at))::bigint,"
    " floor(extract(epoch FROM s.paused_at))::bigint,"
    " s.cancel_at_period_end, s.pending_update::text, coalesce(s.test_clock_id, ''),"
    " coalesce(s.latest_invoice_id, ''),"
    " floor(extract(epoch FROM coalesce(tc.frozen_time, now())))::bigint,"
    " coalesce((SELECT jsonb_agg(jsonb_build_object('id', i.id, 'quantity', i.quantity,"
    "                                   'price', price_object(p), 'product_name', pr.name)"
    "                            ORDER BY i.id)"
    "   FROM subscription_items i"
    "   JOIN prices p ON p.tenant_id = i.tenant_id AND p.id = i.price_id"
    "   JOIN products pr ON pr.tenant_id = p.tenant_id AND pr.id = p.product_id"
    "  WHERE i.tenant_id = s.tenant_id AND i.subscription_id = s.id), '[]'::jsonb)::text,"
    " c.balance, EXISTS (SELECT 1 FROM invoice_items ii WHERE ii.tenant_id = s.tenant_id"
    "  AND ii.subscription_id = s.id AND ii.invoice_id IS NULL) "
    "FROM subscriptions s "
    "JOIN customers c ON c.tenant_id = s.tenant_id AND c.id = s.customer_id "
    "LEFT JOIN test_clocks tc ON tc.tenant_id = s.tenant_id AND tc.id = s.test_clock_id "
    "WHERE s.id = ANY($1::text[]) ORDER BY s.id FOR UPDATE OF s, c";

/* Reads row `row` of a LOAD_SQL result into *s. */
static handler_outcome_t sub_from_row(worker_job_t *job, const PGresult *res, int row,
                                      billing_sub_t *s)
{
    handler_outcome_t out = HANDLER_OK;
    json_t *items = NULL;
    copy(s->id, sizeof s->id, PQgetvalue(res, row, 0));
    copy(s->customer_id, sizeof s->customer_id, PQgetvalue(res, row, 1));
    int st = substate_parse(PQgetvalue(res, row, 2));
    copy(s->currency, sizeof s->currency, PQgetvalue(res, row, 3));
    if (st < 0 || calendar_unit_parse(PQgetvalue(res, row, 4), &s->sched.unit) != 0) {
        out = runtime_fault(job, HANDLER_PERMANENT, "internal_error",
                            "Subscription %s has an unreadable status or interval.", s->id);
        goto done;
    }
    s->status = (substate_t)st;
    s->sched.count = atoi(PQgetvalue(res, row, 5));
    s->sched.anchor = time_col(res, row, 6);
    s->sched.day_of_month = atoi(PQgetvalue(res, row, 7));
    s->start_date = time_col(res, row, 8);
    s->period_start = time_col(res, row, 9);
    s->period_end = time_col(res, row, 10);
    s->trial_start = time_col(res, row, 11);
    s->trial_end = time_col(res, row, 12);
    s->canceled_at = time_col(res, row, 13);
    s->ended_at = time_col(res, row, 14);
    s->paused_at = time_col(res, row, 15);
    s->cancel_at_period_end = strcmp(PQgetvalue(res, row, 16), "t") == 0;
    s->pending_update =
        PQgetisnull(res, row, 17) ? NULL : json_loads(PQgetvalue(res, row, 17), 0, NULL);
    copy(s->test_clock_id, sizeof s->test_clock_id, PQgetvalue(res, row, 18));
    copy(s->latest_invoice_id, sizeof s->latest_invoice_id, PQgetvalue(res, row, 19));
    s->now = time_col(res, row, 20);
    items = json_loads(PQgetvalue(res, row, 21), 0, NULL);
    s->customer_balance = strtoll(PQgetvalue(res, row, 22), NULL, 10);
    s->has_pending = strcmp(PQgetvalue(res, row, 23), "t") == 0;
    if (!json_is_array(items) || json_array_size(items) > BILLING_ITEMS_MAX) {
        out = runtime_fault(job, HANDLER_PERMANENT, "internal_error",
                            "Subscription %s has unreadable items.", s->id);
        goto done;
    }
    s->n_items = json_array_size(items);
    for (size_t i = 0; i < s->n_items && out == HANDLER_OK; i++)
        out = item_from_row(job, json_array_get(items, i), &s->items[i]);

done:
    json_decref(items);
    return out;
}

handler_outcome_t billing_sub_load(worker_job_t *job, const char *id, const char *param,
                                   billing_sub_t *s)
{
    char *arr = runtime_pg_array(&id, 1);
    const char *params[1] = {arr};
    PGresult *res = NULL;
    handler_outcome_t out = handler_util_exec(job, LOAD_SQL, 1, params, PGRES_TUPLES_OK, &res);
    if (out == HANDLER_OK && PQntuples(res) == 0)
        out =
            runtime_reject(job, 404, "resource_missing", param, "No such subscription: '%s'.", id);
    else if (out == HANDLER_OK)
        out = sub_from_row(job, res, 0, s);
    PQclear(res);
    free(arr);
    return out;
}

handler_outcome_t billing_subs_load(worker_job_t *job, const char *const *ids, size_t n,
                                    billing_sub_t *subs, bool *found)
{
    char *arr = runtime_pg_array(ids, n);
    const char *params[1] = {arr};
    PGresult *res = NULL;
    handler_outcome_t out = handler_util_exec(job, LOAD_SQL, 1, params, PGRES_TUPLES_OK, &res);
    for (size_t i = 0; i < n; i++)
        found[i] = false;
    for (int row = 0; out == HANDLER_OK && row < PQntuples(res); row++) {
        for (size_t i = 0; i < n; i++) {
            if (found[i] || strcmp(ids[i], PQgetvalue(res, row, 0)) != 0)
                continue;
            out = sub_from_row(job, res, row, &subs[i]);
            found[i] = out == HANDLER_OK;
        }
    }
    PQclear(res);
    free(arr);
    return out;
}

static const char INSERT_SQL[] =
    "INSERT INTO subscriptions (tenant_id, id, customer_id, status, currency, interval,"
    " interval_count, billing_cycle_anchor, anchor_day, start_date, test_clock_id, metadata,"
    " created_at) "
    "VALUES (current_setting('app.tenant_id'), $1, $2, $3, $4, $5, $6::int,"
    " to_timestamp($7::bigint), $8::int, to_timestamp($9::bigint), nullif($10, ''),"
    " coalesce($11::jsonb, '{}'::jsonb), to_timestamp($12::bigint))";

handler_outcome_t billing_sub_insert(worker_job_t *job, billing_sub_t *s, const json_t *metadata)
{
    num_t count, anchor, day, start, now;
    char *md = json_is_object(metadata) ? json_dumps(metadata, JSON_COMPACT) : NULL;
    const char *params[] = {s->id,
                            s->customer_id,
                            substate_name(s->status),
                            s->currency,
                            calendar_unit_name(s->sched.unit),
                            num(&count, s->sched.count),
                            num(&anchor, s->sched.anchor),
                            num(&day, s->sched.day_of_month),
                            num(&start, s->start_date),
                            s->test_clock_id,
                            md,
                            num(&now, s->now)};
    handler_outcome_t out = handler_util_exec(job, INSERT_SQL, 12, params, PGRES_COMMAND_OK, NULL);
    free(md);
    s->items_changed = true;
    return out;
}

void billing_items_name(billing_sub_t *s)
{
    for (size_t i = 0; i < s->n_items; i++)
        if (s->items[i].id[0] == '\0')
            ids_generate("si", s->items[i].id);
}

/* Replaces the stored items of s with s->items (new ones get ids). */
static handler_outcome_t save_items(worker_job_t *job, billing_sub_t *s)
{
    json_t *rows = json_array();
    billing_items_name(s);
    for (size_t i = 0; i < s->n_items; i++) {
        billing_item_t *it = &s->items[i];
        json_array_append_new(rows, json_pack("{s:s,s:s,s:I}", "id", it->id, "price", it->price_id,
                                              "quantity", (json_int_t)it->quantity));
    }
    char *text = json_dumps(rows, JSON_COMPACT);
    json_decref(rows);
    const char *params[2] = {s->id, text};
    handler_outcome_t out =
        handler_util_exec(job, "DELETE FROM subscription_items WHERE subscription_id = $1", 1,
                          params, PGRES_COMMAND_OK, NULL);
    if (out == HANDLER_OK)
        out = handler_util_exec(
            job,
            "INSERT INTO subscription_items (tenant_id, id, subscription_id, price_id,"
            " quantity) SELECT current_setting('app.tenant_id'), x.id, $1, x.price,"
            " x.quantity FROM jsonb_to_recordset($2::jsonb) AS x(id text, price text,"
            " quantity bigint)",
            2, params, PGRES_COMMAND_OK, NULL);
    free(text);
    return out;
}

static const char SAVE_SQL[] =
    "UPDATE subscriptions AS s SET status = $2, interval = $3, interval_count = $4::int,"
    " billing_cycle_anchor = to_timestamp($5::bigint), anchor_day = $6::int,"
    " current_period_start = to_timestamp($7::bigint),"
    " current_period_end = to_timestamp($8::bigint), trial_start = to_timestamp($9::bigint),"
    " trial_end = to_timestamp($10::bigint), canceled_at = to_timestamp($11::bigint),"
    " ended_at = to_timestamp($12::bigint), paused_at = to_timestamp($13::bigint),"
    " cancel_at_period_end = $14::boolean, pending_update = $15::jsonb,"
    " latest_invoice_id = nullif($16, ''), updated_at = now() "
    "WHERE s.id = $1 RETURNING subscription_object(s)::text";

handler_outcome_t billing_sub_save(worker_job_t *job, billing_sub_t *s)
{
    handler_outcome_t out = HANDLER_OK;
    if (s->items_changed) {
        out = save_items(job, s);
        if (out != HANDLER_OK)
            return out;
        s->items_changed = false;
    }
    num_t n[10];
    char *pending = s->pending_update ? json_dumps(s->pending_update, JSON_COMPACT) : NULL;
    const char *params[] = {s->id,
                            substate_name(s->status),
                            calendar_unit_name(s->sched.unit),
                            num(&n[0], s->sched.count),
                            num(&n[1], s->sched.anchor),
                            num(&n[2], s->sched.day_of_month),
                            opt_time(&n[3], s->period_start),
                            opt_time(&n[4], s->period_end),
                            opt_time(&n[5], s->trial_start),
                            opt_time(&n[6], s->trial_end),
                            opt_time(&n[7], s->canceled_at),
                            opt_time(&n[8], s->ended_at),
                            opt_time(&n[9], s->paused_at),
                            s->cancel_at_period_end ? "true" : "false",
                            pending,
                            s->latest_invoice_id};
    PGresult *res = NULL;
    out = handler_util_exec(job, SAVE_SQL, 16, params, PGRES_TUPLES_OK, &res);
    if (out == HANDLER_OK)
        out = handler_util_take_result(job, res);
    PQclear(res);
    free(pending);
    return out;
}

handler_outcome_t billing_sub_transition(worker_job_t *job, billing_sub_t *s, substate_event_t ev)
{
    char why[160];
    substate_t to;
    if (substate_next(s->status, ev, &to, why) != 0)
        return runtime_reject(job, 409, "subscription_state", NULL, "%s", why);
    s->status = to;
    return HANDLER_OK;
}

/* The one question behind "back to active": is any invoice of the
 * subscription other than the one named still open? Open means owed: a
 * void or a write-off (uncollectible) is not, yet neither of them makes the
 * subscription active, since only a paid invoice does that. */
static const char OTHER_OPEN_SQL[] =
    "SELECT 1 FROM invoices WHERE subscription_id = $1 AND status = 'open' AND id <> $2 LIMIT 1";

handler_outcome_t billing_sub_owes(worker_job_t *job, const billing_sub_t *s, const char *except_id,
                                   bool *owes)
{
    const char *params[2] = {s->id, except_id ? except_id : ""};
    PGresult *res = NULL;
    handler_outcome_t out =
        handler_util_exec(job, OTHER_OPEN_SQL, 2, params, PGRES_TUPLES_OK, &res);
    if (out == HANDLER_OK)
        *owes = PQntuples(res) > 0;
    PQclear(res);
    return out;
}

handler_outcome_t billing_sub_invoice_paid(worker_job_t *job, billing_sub_t *s,
                                           const char *invoice_id)
{
    substate_t to;
    char why[160];
    bool owes = false;
    /* Most invoices are paid by active subscriptions, which nothing moves:
     * spare them the query. A canceled one (also one being canceled, whose
     * final invoice is made after its status became canceled) stays so. */
    if (substate_next(s->status, SUBSTATE_EV_INVOICE_PAID, &to, why) != 0 || to == s->status)
        return HANDLER_OK;
    handler_outcome_t out = billing_sub_owes(job, s, invoice_id, &owes);
    if (out == HANDLER_OK && !owes)
        out = billing_sub_transition(job, s, SUBSTATE_EV_INVOICE_PAID);
    return out;
}

static const char PRICES_SQL[] =
    "SELECT coalesce(jsonb_agg(jsonb_build_object('price', price_object(p), 'product_name',"
    " pr.name, 'product_active', pr.active)), '[]'::jsonb)::text "
    "FROM prices p JOIN products pr ON pr.tenant_id = p.tenant_id AND pr.id = p.product_id "
    "WHERE p.id = ANY($1::text[])";

handler_outcome_t billing_items_resolve(worker_job_t *job, const json_t *wanted,
                                        const char *param_prefix, bool check_active,
                                        const billing_sub_t *current, billing_item_t *out,
                                        size_t *n_out, char currency[MONEY_CODE_MAX],
                                        calendar_unit_t *sched_unit, int *sched_count)
{
    size_t n = json_array_size(wanted);
    const char *ids[BILLING_ITEMS_MAX];
    PGresult *res = NULL;
    json_t *rows = NULL;
    char *arr = NULL;
    handler_outcome_t o = HANDLER_OK;

    if (!json_is_array(wanted) || n == 0 || n > BILLING_ITEMS_MAX)
        return handler_util_bad_payload(job, "items must be an array of 1 to 20 items");
    for (size_t i = 0; i < n; i++) {
        ids[i] = handler_util_req_string(json_array_get(wanted, i), "price");
        if (ids[i] == NULL)
            return handler_util_bad_payload(job, "every item needs a price");
    }
    arr = runtime_pg_array(ids, n);
    const char *params[1] = {arr};
    o = handler_util_exec(job, PRICES_SQL, 1, params, PGRES_TUPLES_OK, &res);
    if (o != HANDLER_OK)
        goto done;
    rows = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    for (size_t i = 0; i < n && o == HANDLER_OK; i++) {
        const json_t *w = json_array_get(wanted, i), *row = NULL;
        size_t j;
        json_array_foreach(rows, j, row)
        {
            if (strcmp(json_string_value(json_object_get(json_object_get(row, "price"), "id")),
                       ids[i]) == 0)
                break;
            row = NULL;
        }
        char param[64];
        const json_t *at = json_object_get(w, "at");
        snprintf(param, sizeof param, "%s[%lld].price", param_prefix,
                 json_is_integer(at) ? (long long)json_integer_value(at) : (long long)i);
        if (row == NULL) {
            o = runtime_reject(job, 404, "resource_missing", param, "No such price: '%s'.", ids[i]);
            break;
        }
        const json_t *price = json_object_get(row, "price");
        bool kept = false;
        for (size_t k = 0; current && k < current->n_items; k++)
            kept = kept || strcmp(current->items[k].price_id, ids[i]) == 0;
        if (check_active && !kept &&
            (!json_is_true(json_object_get(price, "active")) ||
             !json_is_true(json_object_get(row, "product_active")))) {
            o = runtime_reject(job, 409, "price_inactive", param,
                               "Price '%s' (or its product) is archived; it cannot be used for "
                               "new subscriptions or changes.",
                               ids[i]);
            break;
        }
        const json_t *rec = json_object_get(price, "recurring");
        const char *cur = json_string_value(json_object_get(price, "currency"));
        calendar_unit_t unit;
        int count = (int)json_integer_value(json_object_get(rec, "interval_count"));
        if (calendar_unit_parse(json_string_value(json_object_get(rec, "interval")), &unit) != 0) {
            o = runtime_fault(job, HANDLER_PERMANENT, "internal_error",
                              "Stored price %s has an unreadable interval.", ids[i]);
            break;
        }
        if (i == 0) {
            copy(currency, MONEY_CODE_MAX, cur);
            *sched_unit = unit;
            *sched_count = count;
        } else if (strcmp(currency, cur) != 0 || unit != *sched_unit || count != *sched_count) {
            o = runtime_reject(job, 400, "price_mismatch", param,
                               "All items of a subscription must share one currency and billing "
                               "interval; '%s' differs from the first item's price.",
                               ids[i]);
            break;
        }
        for (size_t k = 0; k < i; k++)
            if (strcmp(ids[k], ids[i]) == 0) {
                o = runtime_reject(job, 400, "parameter_invalid", param,
                                   "Price '%s' appears twice; set one item's quantity instead.",
                                   ids[i]);
                break;
            }
        if (o != HANDLER_OK)
            break;
        json_t *r = json_pack("{s:O,s:O,s:O}", "price", price, "product_name",
                              json_object_get(row, "product_name"), "quantity",
                              json_object_get(w, "quantity"));
        if (!json_is_integer(json_object_get(w, "quantity")))
            json_object_set_new(r, "quantity", json_integer(1));
        o = item_from_row(job, r, &out[i]);
        json_decref(r);
    }
    if (o == HANDLER_OK)
        *n_out = n;

done:
    json_decref(rows);
    PQclear(res);
    free(arr);
    return o;
}

/* The full period of s's schedule that contains t. */
static handler_outcome_t full_period(worker_job_t *job, const billing_sub_t *s, int64_t t,
                                     int64_t *fs, int64_t *fe)
{
    if (calendar_period_containing(&s->sched, t, fs, fe, NULL) != 0)
        return runtime_fault(job, HANDLER_PERMANENT, "internal_error",
                             "Subscription %s's schedule cannot place %" PRId64 ".", s->id, t);
    return HANDLER_OK;
}

static handler_outcome_t part(worker_job_t *job, const billing_item_t *it, int64_t fs, int64_t fe,
                              int64_t from, int64_t to, int64_t *out)
{
    int rc = proration_part(it->period_amount, fs, fe, from, to, out);
    if (rc == BILLOW_EAMOUNT_TOO_LARGE)
        return runtime_reject(job, 400, "amount_too_large", "items",
                              "The proration of %s is more than an invoice can hold.",
                              it->price_id);
    if (rc != 0)
        return runtime_fault(job, HANDLER_PERMANENT, "internal_error",
                             "Proration of %s over an empty period.", it->price_id);
    return HANDLER_OK;
}

handler_outcome_t billing_charge(worker_job_t *job, const billing_sub_t *s,
                                 const billing_item_t *it, int64_t from, int64_t to, int64_t *out)
{
    int64_t acc = 0;
    while (from < to) {
        int64_t fs, fe, share;
        handler_outcome_t o = full_period(job, s, from, &fs, &fe);
        if (o != HANDLER_OK)
            return o;
        int64_t upto = to < fe ? to : fe;
        if (from == fs && upto == fe)
            share = it->period_amount;
        else if ((o = part(job, it, fs, fe, from, upto, &share)) != HANDLER_OK)
            return o;
        if (money_add(acc, share, &acc) != 0)
            return runtime_reject(job, 400, "amount_too_large", "items",
                                  "The charge for %s is more than an invoice can hold.",
                                  it->price_id);
        from = upto;
    }
    *out = acc;
    return HANDLER_OK;
}

handler_outcome_t billing_remaining(worker_job_t *job, const billing_sub_t *s,
                                    const billing_item_t *it, int64_t from, int64_t *out)
{
    if (s->period_end == BILLING_UNSET || from >= s->period_end) {
        *out = 0;
        return HANDLER_OK;
    }
    return billing_charge(job, s, it, from, s->period_end, out);
}

/* What the item's lines (invoiced on an invoice that is not void, or
 * pending) charged for one period of the subscription: the hull of the
 * spans of its charges and the net of its charges and credits. */
static const char CHARGED_SQL[] =
    "SELECT floor(extract(epoch FROM min(x.period_start) FILTER (WHERE x.amount > 0)))::bigint,"
    " floor(extract(epoch FROM max(x.period_end) FILTER (WHERE x.amount > 0)))::bigint,"
    " coalesce(sum(x.amount), 0)::bigint "
    "FROM (SELECT l.amount, l.period_start, l.period_end FROM invoices i"
    "  JOIN invoice_lines l ON l.tenant_id = i.tenant_id AND l.invoice_id = i.id"
    "  WHERE i.subscription_id = $1 AND i.status <> 'void' AND l.subscription_item_id = $2"
    "   AND l.subscription_period_start = to_timestamp($3::bigint)"
    " UNION ALL"
    " SELECT amount, period_start, period_end FROM invoice_items"
    "  WHERE subscription_id = $1 AND invoice_id IS NULL AND subscription_item_id = $2"
    "   AND subscription_period_start = to_timestamp($3::bigint)) AS x";

handler_outcome_t billing_credit(worker_job_t *job, const billing_sub_t *s,
                                 const billing_item_t *it, int64_t at, int64_t *amount,
                                 int64_t *from, int64_t *to)
{
    proration_charged_t c = {.from = at, .to = at, .net = 0};
    *amount = 0;
    *from = *to = at;
    if (s->period_start == BILLING_UNSET || s->period_end == BILLING_UNSET || at >= s->period_end ||
        it->id[0] == '\0')
        return HANDLER_OK;
    num_t period;
    const char *params[3] = {s->id, it->id, num(&period, s->period_start)};
    PGresult *res = NULL;
    handler_outcome_t out = handler_util_exec(job, CHARGED_SQL, 3, params, PGRES_TUPLES_OK, &res);
    /* No charge above zero leaves the span empty (from == to == at). */
    if (out == HANDLER_OK && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) {
        c.from = time_col(res, 0, 0);
        c.to = time_col(res, 0, 1);
        c.net = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
    }
    PQclear(res);
    if (out != HANDLER_OK)
        return out;
    int64_t unused = 0;
    proration_credit_span(&c, at, s->period_end, from, to);
    if (*from < *to && (out = billing_charge(job, s, it, *from, *to, &unused)) != HANDLER_OK)
        return out;
    *amount = proration_credit_cap(&c, unused);
    return HANDLER_OK;
}

void billing_line_add(json_t *lines, const char *type, const char *description,
                      const billing_item_t *it, int64_t amount, int64_t from, int64_t to,
                      int64_t period)
{
    json_array_append_new(
        lines, json_pack("{s:s,s:s,s:s,s:I,s:I,s:b,s:I,s:I,s:s*,s:I}", "type", type, "description",
                         description, "price", it->price_id, "quantity", (json_int_t)it->quantity,
                         "amount", (json_int_t)amount, "proration", strcmp(type, "proration") == 0,
                         "period_start", (json_int_t)from, "period_end", (json_int_t)to, "item",
                         it->id[0] ? it->id : NULL, "item_period", (json_int_t)period));
}

static const char PENDING_ADD_SQL[] =
    "INSERT INTO invoice_items (tenant_id, id, customer_id, subscription_id, currency, amount,"
    " description, price_id, quantity, proration, period_start, period_end, created_at,"
    " subscription_item_id, subscription_period_start) "
    "SELECT current_setting('app.tenant_id'), x.id, $1, $2, $3, x.amount, x.description,"
    " x.price, x.quantity, true, to_timestamp(x.period_start), to_timestamp(x.period_end),"
    " to_timestamp($4::bigint), x.item, to_timestamp(x.item_period) "
    "FROM jsonb_to_recordset($5::jsonb) AS x(id text, amount bigint, description text,"
    " price text, quantity bigint, period_start bigint, period_end bigint, item text,"
    " item_period bigint)";

handler_outcome_t billing_pending_add(worker_job_t *job, billing_sub_t *s, const json_t *lines)
{
    if (json_array_size(lines) == 0)
        return HANDLER_OK;
    json_t *rows = json_deep_copy(lines);
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        char id[IDS_MAX];
        ids_generate("ii", id);
        json_object_set_new(row, "id", json_string(id));
    }
    char *text = json_dumps(rows, JSON_COMPACT);
    json_decref(rows);
    num_t now;
    const char *params[] = {s->customer_id, s->id, s->currency, num(&now, s->now), text};
    handler_outcome_t out =
        handler_util_exec(job, PENDING_ADD_SQL, 5, params, PGRES_COMMAND_OK, NULL);
    if (out == HANDLER_OK)
        s->has_pending = true;
    free(text);
    return out;
}

/* Appends s's pending items to lines and their ids to *ids (a JSON array),
 * locking them. */
static handler_outcome_t take_pending(worker_job_t *job, const billing_sub_t *s, json_t *lines,
                                      json_t *ids)
{
    const char *params[1] = {s->id};
    PGresult *res = NULL;
    handler_outcome_t out =
        handler_util_exec(job,
                          "SELECT id, amount, description, coalesce(price_id, ''), quantity,"
                          " floor(extract(epoch FROM period_start))::bigint,"
                          " floor(extract(epoch FROM period_end))::bigint, subscription_item_id,"
                          " floor(extract(epoch FROM subscription_period_start))::bigint "
                          "FROM invoice_items WHERE subscription_id = $1 AND invoice_id IS NULL "
                          "ORDER BY id FOR UPDATE",
                          1, params, PGRES_TUPLES_OK, &res);
    for (int r = 0; out == HANDLER_OK && r < PQntuples(res); r++) {
        json_array_append_new(ids, json_string(PQgetvalue(res, r, 0)));
        json_t *item_period = PQgetisnull(res, r, 8)
                                  ? json_null()
                                  : json_integer(strtoll(PQgetvalue(res, r, 8), NULL, 10));
        json_array_append_new(
            lines, json_pack("{s:s,s:s,s:s*,s:I,s:I,s:b,s:I,s:I,s:s*,s:o}", "type", "proration",
                             "description", PQgetvalue(res, r, 2), "price",
                             PQgetisnull(res, r, 3) ? NULL : PQgetvalue(res, r, 3), "quantity",
                             (json_int_t)strtoll(PQgetvalue(res, r, 4), NULL, 10), "amount",
                             (json_int_t)strtoll(PQgetvalue(res, r, 1), NULL, 10), "proration", 1,
                             "period_start", (json_int_t)strtoll(PQgetvalue(res, r, 5), NULL, 10),
                             "period_end", (json_int_t)strtoll(PQgetvalue(res, r, 6), NULL, 10),
                             "item", PQgetisnull(res, r, 7) ? NULL : PQgetvalue(res, r, 7),
                             "item_period", item_period));
    }
    PQclear(res);
    return out;
}

static const char INVOICE_SQL[] =
    "WITH seq AS ("
    "  INSERT INTO invoice_sequences AS q (tenant_id, last)"
    "  VALUES (current_setting('app.tenant_id'), 1)"
    "  ON CONFLICT (tenant_id) DO UPDATE SET last = q.last + 1 RETURNING last"
    "), inv AS ("
    "  INSERT INTO invoices (tenant_id, id, customer_id, subscription_id, number, status,"
    "   billing_reason, currency, period_start, period_end, subtotal, total, starting_balance,"
    "   ending_balance, amount_due, amount_paid, amount_remaining, created_by_job, created_at,"
    "   finalized_at, paid_at, rounding)"
    "  SELECT t.id, $1, $2, nullif($3, ''), invoice_number(t.invoice_prefix, seq.last),"
    "   $4, $5, $6, to_timestamp($7::bigint), to_timestamp($8::bigint), $9::bigint, $10::bigint,"
    "   $11::bigint, $12::bigint, $13::bigint,"
    "   CASE WHEN $4 = 'paid' THEN $13::bigint ELSE 0 END,"
    "   CASE WHEN $4 = 'paid' THEN 0 ELSE $13::bigint END,"
    "   $14, to_timestamp($15::bigint), to_timestamp($15::bigint),"
    "   CASE WHEN $4 = 'paid' THEN to_timestamp($15::bigint) END, $19::bigint"
    "  FROM seq, tenants t WHERE t.id = current_setting('app.tenant_id')"
    "  RETURNING tenant_id, id, number"
    "), lines AS ("
    "  INSERT INTO invoice_lines (tenant_id, id, invoice_id, type, description, price_id,"
    "   quantity, amount, proration, period_start, period_end, position, subscription_item_id,"
    "   subscription_period_start)"
    "  SELECT inv.tenant_id, x.id, inv.id, x.type, x.description, x.price, x.quantity, x.amount,"
    "   x.proration, to_timestamp(x.period_start), to_timestamp(x.period_end), x.position,"
    "   x.item, to_timestamp(x.item_period)"
    "  FROM inv, jsonb_to_recordset($16::jsonb) AS x(id text, type text, description text,"
    "   price text, quantity bigint, amount bigint, proration boolean, period_start bigint,"
    "   period_end bigint, position integer, item text, item_period bigint)"
    "), items AS ("
    "  UPDATE invoice_items SET invoice_id = inv.id FROM inv"
    "  WHERE invoice_items.id = ANY($17::text[]) AND invoice_items.invoice_id IS NULL"
    "), cust AS ("
    "  UPDATE customers SET balance = $12::bigint WHERE id = $2 AND $11::bigint <> $12::bigint"
    "), txn AS ("
    "  INSERT INTO customer_balance_transactions (tenant_id, id, customer_id, type, amount,"
    "   currency, ending_balance, invoice_id, description, created_at)"
    "  SELECT inv.tenant_id, $18, $2, CASE WHEN $12::bigint < $11::bigint THEN 'credit_note'"
    "   ELSE 'applied_to_invoice' END, $12::bigint - $11::bigint, $6, $12::bigint, inv.id,"
    "   CASE WHEN $12::bigint < $11::bigint THEN 'Credit from invoice ' || inv.number"
    "   ELSE 'Applied to invoice ' || inv.number END, to_timestamp($15::bigint)"
    "  FROM inv WHERE $11::bigint <> $12::bigint"
    ") SELECT number FROM inv";

handler_outcome_t billing_invoice_create(worker_job_t *job, billing_sub_t *s, const char *reason,
                                         int64_t period_start, int64_t period_end,
                                         const json_t *lines, bool take, bool skip_if_empty,
                                         int64_t *amount_due)
{
    return billing_invoice_create_by(job, job->env->id, s, reason, period_start, period_end, lines,
                                     take, skip_if_empty, amount_due);
}

handler_outcome_t billing_invoice_create_by(worker_job_t *job, const char *made_by,
                                            billing_sub_t *s, const char *reason,
                                            int64_t period_start, int64_t period_end,
                                            const json_t *lines, bool take, bool skip_if_empty,
                                            int64_t *amount_due)
{
    json_t *all = json_deep_copy(lines), *pending_ids = json_array();
    char *lines_text = NULL, *ids_text = NULL;
    PGresult *res = NULL;
    handler_outcome_t out = HANDLER_OK;
    int64_t subtotal = 0, balance = 0;

    if (amount_due)
        *amount_due = -1;
    if (take && s->has_pending && (out = take_pending(job, s, all, pending_ids)) != HANDLER_OK)
        goto done;
    if (skip_if_empty && json_array_size(all) == 0)
        goto done;

    size_t i;
    json_t *line;
    json_array_foreach(all, i, line)
    {
        char id[IDS_MAX];
        ids_generate("il", id);
        json_object_set_new(line, "id", json_string(id));
        json_object_set_new(line, "position", json_integer((json_int_t)i));
        if (money_add(subtotal, json_integer_value(json_object_get(line, "amount")), &subtotal) !=
            0) {
            out = runtime_reject(job, 400, "amount_too_large", NULL,
                                 "This invoice's total is more than Billow can represent.");
            goto done;
        }
    }
    balance = s->customer_balance;

    /* The balance (Stripe's sign: negative is credit) joins the total:
     * what is left positive is due, what is left negative stays credit.
     * What is due is then rounded down to an amount Stripe can collect
     * (whole tens of fils in the three-decimal currencies), and the
     * rounding joins the total, so every figure still adds up. */
    int64_t total = subtotal, applied, due, ending, rounding = 0;
    if (money_add(total, balance, &applied) != 0) {
        out = runtime_reject(job, 400, "amount_too_large", NULL,
                             "This invoice's total is more than Billow can represent.");
        goto done;
    }
    if (applied > 0) {
        if (money_collectable_rounding(s->currency, applied, &rounding) != 0) {
            out = runtime_fault(job, HANDLER_PERMANENT, "internal_error",
                                "Invoice currency '%s' is not one Billow knows.", s->currency);
            goto done;
        }
        total += rounding;
        applied += rounding;
    }
    due = applied > 0 ? applied : 0;
    ending = applied > 0 ? 0 : applied;
    invstate_t status;
    char why[160];
    if (invstate_next(INVSTATE_DRAFT, INVSTATE_EV_FINALIZE, due, &status, why) != 0) {
        out = runtime_fault(job, HANDLER_PERMANENT, "internal_error", "%s", why);
        goto done;
    }

    char invoice_id[IDS_MAX], txn_id[IDS_MAX];
    ids_generate("in", invoice_id);
    ids_generate("cbtxn", txn_id);
    lines_text = json_dumps(all, JSON_COMPACT);
    size_t n_ids = json_array_size(pending_ids);
    const char **idv = mem_alloc((n_ids + 1) * sizeof *idv);
    for (size_t k = 0; k < n_ids; k++)
        idv[k] = json_string_value(json_array_get(pending_ids, k));
    ids_text = runtime_pg_array(idv, n_ids);
    free(idv);
    num_t ps, pe, sub, tot, sb, eb, du, now, rnd;
    const char *params[] = {invoice_id,
                            s->customer_id,
                            s->id,
                            invstate_name(status),
                            reason,
                            s->currency,
                            num(&ps, period_start),
                            num(&pe, period_end),
                            num(&sub, subtotal),
                            num(&tot, total),
                            num(&sb, balance),
                            num(&eb, ending),
                            num(&du, due),
                            made_by,
                            num(&now, s->now),
                            lines_text,
                            ids_text,
                            txn_id,
                            num(&rnd, rounding)};
    out = handler_util_exec(job, INVOICE_SQL, 19, params, PGRES_TUPLES_OK, &res);
    if (out != HANDLER_OK) {
        if (handler_util_unique_violation(res, "invoices_period"))
            out = runtime_reject(job, 409, "invoice_exists", NULL,
                                 "Subscription %s already has an invoice for the period starting "
                                 "then.",
                                 s->id);
        goto done;
    }
    copy(s->latest_invoice_id, sizeof s->latest_invoice_id, invoice_id);
    s->customer_balance = ending;
    if (take)
        s->has_pending = false;
    if (amount_due)
        *amount_due = due;
    /* Made with nothing due (a credit covered it, or it is free), it is
     * paid as much as a charged one: a first invoice activates its
     * subscription, and a past-due one with nothing else open is active. */
    if (status == INVSTATE_PAID &&
        (out = billing_sub_invoice_paid(job, s, invoice_id)) != HANDLER_OK)
        goto done;
    if (due > 0) {
        char charge_id[IDS_MAX], key[IDS_MAX * 2];
        snprintf(key, sizeof key, "payment.charge|%s|1", invoice_id);
        ids_derive("job", (uint64_t)timeutil_now_ms(), key, charge_id);
        if (runtime_followup_id(job, "payment.charge",
                                json_pack("{s:s,s:s,s:s,s:I,s:s,s:i}", "invoice", invoice_id,
                                          "customer", s->customer_id, "subscription", s->id,
                                          "amount", (json_int_t)due, "currency", s->currency,
                                          "attempt", 1),
                                charge_id) != 0)
            out = HANDLER_RETRY;
    }

done:
    PQclear(res);
    free(lines_text);
    free(ids_text);
    json_decref(all);
    json_decref(pending_ids);
    return out;
}

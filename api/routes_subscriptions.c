/* routes_subscriptions: a tenant's subscriptions.
 *
 * The front checks the shape of every request (types, ranges, ids, the
 * combinations that make no sense) and hands the invoice worker a
 * normalised payload; what only the database knows (the customer exists
 * and is open, the prices are active and agree, the status allows the
 * change) is the worker's to decide, through shared/substate.c. Reads come
 * from Postgres as the tenant.
 */
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "body.h"
#include "ids.h"
#include "pricing.h"
#include "query.h"
#include "reads.h"
#include "routes.h"
#include "submit.h"
#include "substate.h"

/* Most items a request may name (the worker holds a subscription to the
 * same number). */
#define ITEMS_MAX 20

/* Longest trial, in days (two years). */
#define TRIAL_DAYS_MAX 730

static const char *const create_keys[] = {"customer",
                                          "items",
                                          "trial_period_days",
                                          "billing_cycle_anchor",
                                          "billing_cycle_anchor_config",
                                          "proration_behavior",
                                          "backdate_start_date",
                                          "cancel_at_period_end",
                                          "metadata",
                                          NULL};
static const char *const update_keys[] = {"items",
                                          "proration_behavior",
                                          "effective_at",
                                          "cancel_at_period_end",
                                          "billing_cycle_anchor",
                                          "metadata",
                                          "pending_update",
                                          NULL};
static const char *const prorations[] = {"create_prorations", "always_invoice", "none", NULL};

/* Validates items (create: each {price, quantity?}; update: each {id?,
 * price?, quantity?, deleted?}) and copies them, normalised, into *out. */
static int check_items(const json_t *items, bool update, json_t **out, validate_error_t *e)
{
    static const char *const create_item_keys[] = {"price", "quantity", NULL};
    static const char *const update_item_keys[] = {"id", "price", "quantity", "deleted", NULL};
    if (!json_is_array(items) || json_array_size(items) == 0 || json_array_size(items) > ITEMS_MAX)
        return validate_fail(e, BILLOW_EPARAM_INVALID, "items",
                             "items must be an array of 1 to %d items.", ITEMS_MAX);
    json_t *list = json_array();
    size_t i;
    const json_t *it;
    json_array_foreach(items, i, it)
    {
        char p_price[48], p_qty[48], p_id[48], p_del[48];
        snprintf(p_price, sizeof p_price, "items[%zu].price", i);
        snprintf(p_qty, sizeof p_qty, "items[%zu].quantity", i);
        snprintf(p_id, sizeof p_id, "items[%zu].id", i);
        snprintf(p_del, sizeof p_del, "items[%zu].deleted", i);
        const char *price = NULL, *id = NULL;
        int64_t qty = 1;
        bool has_qty = false, deleted = false;
        if (!json_is_object(it)) {
            validate_fail(e, BILLOW_EPARAM_INVALID, p_price, "Each item must be an object.");
            goto fail;
        }
        if (validate_known_keys(it, update ? update_item_keys : create_item_keys, e) != 0) {
            char key[sizeof e->param];
            snprintf(key, sizeof key, "%s", e->param);
            snprintf(e->param, sizeof e->param, "items[%zu].%.30s", i % 100, key);
            goto fail;
        }
        if (body_id(it, "price", p_price, "price", !update, &price, e) != 0 ||
            body_id(it, "id", p_id, "si", false, &id, e) != 0 ||
            body_int(it, "quantity", p_qty, 0, PRICING_QUANTITY_MAX, &qty, &has_qty, e) != 0 ||
            body_bool(it, "deleted", p_del, &deleted, e) != 0)
            goto fail;
        if (update && id == NULL && price == NULL) {
            validate_fail(e, BILLOW_EPARAM_MISSING, p_price,
                          "A new item needs a price; an existing one is named by its id.");
            goto fail;
        }
        if (deleted && (id == NULL || price || has_qty)) {
            validate_fail(e, BILLOW_EPARAM_INVALID, p_del,
                          "deleted needs the item's id and nothing else.");
            goto fail;
        }
        json_t *row = json_object();
        if (id)
            json_object_set_new(row, "id", json_string(id));
        if (price)
            json_object_set_new(row, "price", json_string(price));
        if (has_qty || !update)
            json_object_set_new(row, "quantity", json_integer(qty));
        if (deleted)
            json_object_set_new(row, "deleted", json_true());
        json_array_append_new(list, row);
    }
    *out = list;
    return 0;
fail:
    json_decref(list);
    return e->code;
}

/* Copies the member key of body into payload when present. */
static void carry(json_t *payload, const json_t *body, const char *key)
{
    json_t *v = json_object_get(body, key);
    if (v)
        json_object_set(payload, key, v);
}

void routes_subscriptions_create(api_req_t *ar)
{
    validate_error_t e;
    json_t *body = ar->body, *items = NULL, *payload = NULL;
    const char *customer, *proration;
    int64_t trial = 0, day = 0, anchor_ms = 0, backdate_ms = 0;
    bool has_trial = false, has_anchor = false, has_backdate = false, cape = false;
    char anchor[TIMEUTIL_RFC3339_MAX], backdate[TIMEUTIL_RFC3339_MAX];
    const json_t *config = json_object_get(body, "billing_cycle_anchor_config");
    const json_t *md = json_object_get(body, "metadata");

    if (validate_known_keys(body, create_keys, &e) != 0 ||
        body_id(body, "customer", "customer", "cus", true, &customer, &e) != 0)
        goto fail;
    if (json_object_get(body, "items") == NULL) {
        validate_fail(&e, BILLOW_EPARAM_MISSING, "items", "items is required.");
        goto fail;
    }
    if (check_items(json_object_get(body, "items"), false, &items, &e) != 0 ||
        body_int(body, "trial_period_days", "trial_period_days", 0, TRIAL_DAYS_MAX, &trial,
                 &has_trial, &e) != 0 ||
        body_time(body, "billing_cycle_anchor", "billing_cycle_anchor", &anchor_ms, anchor,
                  &has_anchor, &e) != 0 ||
        body_time(body, "backdate_start_date", "backdate_start_date", &backdate_ms, backdate,
                  &has_backdate, &e) != 0 ||
        body_enum(body, "proration_behavior", "proration_behavior", prorations, &proration, &e) !=
            0 ||
        body_bool(body, "cancel_at_period_end", "cancel_at_period_end", &cape, &e) != 0)
        goto fail;
    if (config) {
        static const char *const config_keys[] = {"day_of_month", NULL};
        if (!json_is_object(config) || validate_known_keys(config, config_keys, &e) != 0 ||
            json_object_get(config, "day_of_month") == NULL) {
            validate_fail(&e, BILLOW_EPARAM_INVALID, "billing_cycle_anchor_config",
                          "billing_cycle_anchor_config must be {\"day_of_month\": 1..31}.");
            goto fail;
        }
        if (body_int(config, "day_of_month", "billing_cycle_anchor_config.day_of_month", 1, 31,
                     &day, NULL, &e) != 0)
            goto fail;
        if (has_anchor) {
            validate_fail(&e, BILLOW_EPARAM_INVALID, "billing_cycle_anchor_config",
                          "Give billing_cycle_anchor or billing_cycle_anchor_config, not both.");
            goto fail;
        }
    }
    if (md && validate_metadata("metadata", md, &e) != 0)
        goto fail;

    payload = json_pack("{s:s,s:o}", "customer", customer, "items", items);
    items = NULL;
    if (has_trial)
        json_object_set_new(payload, "trial_period_days", json_integer(trial));
    if (has_anchor)
        json_object_set_new(payload, "billing_cycle_anchor", json_string(anchor));
    if (has_backdate)
        json_object_set_new(payload, "backdate_start_date", json_string(backdate));
    if (config)
        json_object_set_new(payload, "billing_cycle_anchor_config",
                            json_pack("{s:I}", "day_of_month", (json_int_t)day));
    if (proration)
        json_object_set_new(payload, "proration_behavior", json_string(proration));
    json_object_set_new(payload, "cancel_at_period_end", json_boolean(cape));
    carry(payload, body, "metadata");

    char id[IDS_MAX];
    ids_generate("sub", id);
    submit_t s = {.type = "subscription.create",
                  .tenant_id = ar->auth.tenant_id,
                  .payload = payload,
                  .object_id = id,
                  .created_status = 201};
    submit_job_or_respond(ar, &s);
    return;
fail:
    json_decref(items);
    respond_invalid(ar, &e);
}

/* True when the {id} of the path is a subscription id; otherwise answers
 * 404. */
static bool id_ok_or_respond(api_req_t *ar)
{
    if (ids_valid("sub", ar->params[0]))
        return true;
    respond_error(ar, BILLOW_ENOT_FOUND, "id", "No such subscription: '%s'.", ar->params[0]);
    return false;
}

/* Submits one change of subscription {id} with payload (stolen). */
static void submit_change(api_req_t *ar, const char *type, json_t *payload)
{
    submit_t s = {.type = type,
                  .tenant_id = ar->auth.tenant_id,
                  .payload = payload,
                  .object_id = ar->params[0],
                  .created_status = 200};
    submit_job_or_respond(ar, &s);
}

void routes_subscriptions_update(api_req_t *ar)
{
    static const char *const effective[] = {"now", "period_end", NULL};
    validate_error_t e;
    json_t *body = ar->body, *items = NULL, *payload = NULL;
    const char *proration, *when;
    bool cape = false;
    const json_t *anchor = json_object_get(body, "billing_cycle_anchor");
    const json_t *md = json_object_get(body, "metadata");
    const json_t *pending = json_object_get(body, "pending_update");
    char anchor_canon[TIMEUTIL_RFC3339_MAX] = "now";

    if (!id_ok_or_respond(ar))
        return;
    if (validate_known_keys(body, update_keys, &e) != 0 ||
        body_enum(body, "proration_behavior", "proration_behavior", prorations, &proration, &e) !=
            0 ||
        body_enum(body, "effective_at", "effective_at", effective, &when, &e) != 0 ||
        body_bool(body, "cancel_at_period_end", "cancel_at_period_end", &cape, &e) != 0)
        goto fail;
    if (!json_object_get(body, "items") && !json_object_get(body, "cancel_at_period_end") &&
        !anchor && !md && !pending) {
        validate_fail(&e, BILLOW_EPARAM_MISSING, NULL,
                      "Send at least one of items, cancel_at_period_end, billing_cycle_anchor, "
                      "metadata or pending_update.");
        goto fail;
    }
    /* The scheduled change can only be dropped here; it is set by a change
     * of items with effective_at: period_end. */
    if (pending && !json_is_null(pending)) {
        validate_fail(&e, BILLOW_EPARAM_INVALID, "pending_update",
                      "pending_update can only be null, to drop the change scheduled for the "
                      "period end.");
        goto fail;
    }
    if (json_object_get(body, "items") &&
        check_items(json_object_get(body, "items"), true, &items, &e) != 0)
        goto fail;
    if (anchor && !(json_is_string(anchor) && strcmp(json_string_value(anchor), "now") == 0)) {
        int64_t ms;
        if (body_time(body, "billing_cycle_anchor", "billing_cycle_anchor", &ms, anchor_canon, NULL,
                      &e) != 0) {
            snprintf(e.message, sizeof e.message,
                     "billing_cycle_anchor must be \"now\" or an RFC 3339 time.");
            goto fail;
        }
    }
    if (anchor && items) {
        validate_fail(&e, BILLOW_EPARAM_INVALID, "billing_cycle_anchor",
                      "Change items and the billing cycle anchor in separate requests.");
        goto fail;
    }
    if (when && !items) {
        validate_fail(&e, BILLOW_EPARAM_INVALID, "effective_at",
                      "effective_at applies to a change of items only.");
        goto fail;
    }
    /* A change scheduled for the period end replaces the pending one
     * anyway; asking to drop it as well would say two things at once. */
    if (pending && when && strcmp(when, "period_end") == 0) {
        validate_fail(&e, BILLOW_EPARAM_INVALID, "pending_update",
                      "A change with effective_at: period_end replaces the pending update; send "
                      "pending_update: null only with a change made now, or alone.");
        goto fail;
    }
    if (md && validate_metadata("metadata", md, &e) != 0)
        goto fail;

    payload = json_object();
    if (items)
        json_object_set_new(payload, "items", items);
    items = NULL;
    if (anchor)
        json_object_set_new(payload, "billing_cycle_anchor", json_string(anchor_canon));
    if (proration)
        json_object_set_new(payload, "proration_behavior", json_string(proration));
    if (when)
        json_object_set_new(payload, "effective_at", json_string(when));
    carry(payload, body, "cancel_at_period_end");
    carry(payload, body, "metadata");
    carry(payload, body, "pending_update");
    submit_change(ar, "subscription.update", payload);
    return;
fail:
    json_decref(items);
    respond_invalid(ar, &e);
}

void routes_subscriptions_cancel(api_req_t *ar)
{
    static const char *const keys[] = {"prorate", NULL};
    validate_error_t e;
    bool prorate = false;
    if (!id_ok_or_respond(ar))
        return;
    if (validate_known_keys(ar->body, keys, &e) != 0 ||
        body_bool(ar->body, "prorate", "prorate", &prorate, &e) != 0) {
        respond_invalid(ar, &e);
        return;
    }
    submit_change(ar, "subscription.cancel", json_pack("{s:b}", "prorate", prorate));
}

void routes_subscriptions_pause(api_req_t *ar)
{
    static const char *const keys[] = {"proration_behavior", "pending_update", NULL};
    validate_error_t e;
    const char *proration;
    const json_t *pending = json_object_get(ar->body, "pending_update");
    if (!id_ok_or_respond(ar))
        return;
    if (validate_known_keys(ar->body, keys, &e) != 0 ||
        body_enum(ar->body, "proration_behavior", "proration_behavior", prorations, &proration,
                  &e) != 0) {
        respond_invalid(ar, &e);
        return;
    }
    /* As on update: the scheduled change can only be dropped here. */
    if (pending && !json_is_null(pending)) {
        validate_fail(&e, BILLOW_EPARAM_INVALID, "pending_update",
                      "pending_update can only be null, to drop the change scheduled for the "
                      "period end.");
        respond_invalid(ar, &e);
        return;
    }
    json_t *payload =
        json_pack("{s:s}", "proration_behavior", proration ? proration : "create_prorations");
    carry(payload, ar->body, "pending_update");
    submit_change(ar, "subscription.pause", payload);
}

void routes_subscriptions_resume(api_req_t *ar)
{
    static const char *const keys[] = {NULL};
    validate_error_t e;
    if (!id_ok_or_respond(ar))
        return;
    if (validate_known_keys(ar->body, keys, &e) != 0) {
        respond_invalid(ar, &e);
        return;
    }
    submit_change(ar, "subscription.resume", json_object());
}

void routes_subscriptions_get(api_req_t *ar)
{
    if (!id_ok_or_respond(ar))
        return;
    const char *params[1] = {ar->params[0]};
    reads_object(ar, "subscription",
                 "SELECT subscription_object(s)::text FROM subscriptions s WHERE s.id = $1", 1,
                 params);
}

void routes_subscriptions_list(api_req_t *ar)
{
    static const char *const allowed[] = {"limit", "starting_after", "customer", "status", NULL};
    char after[IDS_MAX], customer[IDS_MAX], status[16] = "";
    int limit;
    if (reads_page_params(ar, allowed, "sub", &limit, after) != 0 ||
        reads_id_filter(ar, "customer", "cus", customer) != 0)
        return;
    int rc = query_get(ar->http->query, "status", status, sizeof status);
    if (rc < 0 || (rc > 0 && substate_parse(status) < 0)) {
        respond_error(ar, BILLOW_EPARAM_INVALID, "status",
                      "status must be one of incomplete, trialing, active, past_due, paused, "
                      "canceled, unpaid.");
        return;
    }
    if (rc == 0)
        status[0] = '\0';
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit + 1);
    const char *params[4] = {after, customer, status, lim};
    reads_list(ar, "/v1/subscriptions", limit,
               "SELECT subscription_object(s)::text FROM subscriptions s"
               " WHERE ($1 = '' OR s.id < $1) AND ($2 = '' OR s.customer_id = $2)"
               " AND ($3 = '' OR s.status = $3) ORDER BY s.id DESC LIMIT $4::int",
               4, params);
}

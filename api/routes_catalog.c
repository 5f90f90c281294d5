/* routes_catalog: a tenant's catalog, its products and their prices.
 *
 * A product is what a tenant sells (a plan, an add-on) with the features
 * it grants; a price is what the product costs and how often: an amount
 * per unit or by tiers, in one currency, every interval. Reads come from
 * Postgres as the tenant (another tenant's product is simply absent: 404).
 * Writes are validated here and become product.* and price.* jobs for the
 * domain worker.
 *
 * Design: a price is validated completely here, by the same pure modules
 * the invoice worker computes with (money, pricing, calendar), and its job
 * carries the normalised price (the currency lower-case, every tier with
 * all three members, interval_count filled in), so the worker only writes
 * it. What only the database knows, whether the product exists and is
 * still active, the worker decides. What a price charges never changes: an
 * update may touch only nickname, metadata and active, and an update
 * naming a pricing field is refused with the reason.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "body.h"
#include "calendar.h"
#include "ids.h"
#include "money.h"
#include "pricing.h"
#include "query.h"
#include "reads.h"
#include "routes.h"
#include "submit.h"
#include "validate.h"

/* Longest product description: a paragraph for a pricing page, not a
 * document store. */
#define CATALOG_DESCRIPTION_MAX 4096
/* Most features a product may grant, as many as metadata keys, so a
 * product stays a small row that every entitlement check can read whole. */
#define CATALOG_FEATURES_MAX 50
/* Longest feature key (the key pattern's bound). */
#define CATALOG_FEATURE_KEY_MAX 64
/* Largest numeric feature limit: 10^12, beyond any real seat or quota
 * count, and exact in every JSON reader (below 2^53). */
#define CATALOG_FEATURE_LIMIT_MAX INT64_C(1000000000000)
/* Longest trial a price may offer: two years, as Stripe allows. */
#define CATALOG_TRIAL_DAYS_MAX 730
/* Longest price nickname, a label for staff like a customer's name. */
#define CATALOG_NICKNAME_MAX VALIDATE_NAME_MAX
/* Room for a list filter's value: a prefixed id, "false" or a currency
 * code; a longer value cannot be any of them. */
#define CATALOG_FILTER_MAX IDS_MAX

static const char *const product_keys[] = {"name",     "description", "features",
                                           "metadata", "active",      NULL};
static const char *const price_create_keys[] = {
    "product",   "currency", "billing_scheme", "unit_amount", "tiers_mode", "tiers",
    "recurring", "nickname", "metadata",       "active",      NULL};
static const char *const recurring_keys[] = {"interval", "interval_count", "trial_period_days",
                                             NULL};
/* The members that say what a price charges: fixed once the price exists. */
static const char *const price_fixed_keys[] = {"product",     "currency",   "billing_scheme",
                                               "unit_amount", "tiers_mode", "tiers",
                                               "recurring",   NULL};
static const char *const price_update_keys[] = {"nickname", "metadata", "active", NULL};

/* What an update route needs to confirm its object exists before it
 * enqueues (so a missing id is a 404 at once, without a job). */
typedef struct {
    const char *prefix;   /* Id prefix ("prod"). */
    const char *noun;     /* For the 404 message ("product"). */
    const char *exists;   /* SQL returning a row when $1 exists for the tenant. */
    const char *job_type; /* The update job ("product.update"). */
} catalog_object_t;

static const catalog_object_t PRODUCT = {"prod", "product", "SELECT 1 FROM products WHERE id = $1",
                                         "product.update"};
static const catalog_object_t PRICE = {"price", "price", "SELECT 1 FROM prices WHERE id = $1",
                                       "price.update"};

/* Answers 404 resource_missing for the path's id. */
static void respond_missing(api_req_t *ar, const catalog_object_t *o)
{
    respond_error(ar, BILLOW_ENOT_FOUND, "id", "No such %s: '%s'.", o->noun, ar->params[0]);
}

/* Checks the optional text member key of obj: 1..max bytes of printable
 * UTF-8, or null where allow_null (an update clearing it). */
static int check_text(const json_t *obj, const char *key, size_t max, bool allow_null,
                      validate_error_t *e)
{
    const json_t *v = json_object_get(obj, key);
    if (v == NULL || (allow_null && json_is_null(v)))
        return 0;
    if (!json_is_string(v))
        return validate_fail(e, BILLOW_EPARAM_INVALID, key, "%s must be a string%s.", key,
                             allow_null ? " or null" : "");
    return validate_text(key, json_string_value(v), max, e);
}

/* Checks the optional boolean member key of obj. */
static int check_boolean(const json_t *obj, const char *key, validate_error_t *e)
{
    const json_t *v = json_object_get(obj, key);
    if (v != NULL && !json_is_boolean(v))
        return validate_fail(e, BILLOW_EPARAM_INVALID, key, "%s must be true or false.", key);
    return 0;
}

/* Redoes an unknown-parameter error found inside the object member parent
 * so that it names the full path ("recurring.intervals"). */
static int unknown_in(validate_error_t *e, const char *parent)
{
    char key[sizeof e->param];
    memcpy(key, e->param, sizeof key);
    char param[sizeof e->param + 32];
    snprintf(param, sizeof param, "%s.%s", parent, key);
    return validate_fail(e, BILLOW_EPARAM_UNKNOWN, param, "Received unknown parameter: %s.", param);
}

/* ^[a-z][a-z0-9_]{0,63}$ */
static bool feature_key_valid(const char *k)
{
    size_t len = strlen(k);
    if (len == 0 || len > CATALOG_FEATURE_KEY_MAX || k[0] < 'a' || k[0] > 'z')
        return false;
    for (size_t i = 1; i < len; i++) {
        char c = k[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

/* A product's features: an object of at most CATALOG_FEATURES_MAX keys,
 * each true/false (a capability) or an integer limit (a quota). */
static int check_features(const json_t *features, validate_error_t *e)
{
    if (!json_is_object(features))
        return validate_fail(e, BILLOW_EPARAM_INVALID, "features",
                             "features must be an object mapping feature keys to true, false or "
                             "an integer limit.");
    if (json_object_size(features) > CATALOG_FEATURES_MAX)
        return validate_fail(e, BILLOW_EPARAM_INVALID, "features",
                             "features may have at most %d keys.", CATALOG_FEATURES_MAX);
    const char *key;
    const json_t *value;
    /* json_object_foreach wants a non-const object; iteration does not modify it. */
    json_t *o = (json_t *)features;
    json_object_foreach(o, key, value)
    {
        char where[sizeof e->param];
        snprintf(where, sizeof where, "features[%.50s]", key);
        if (!feature_key_valid(key))
            return validate_fail(e, BILLOW_EPARAM_INVALID, where,
                                 "Feature keys must be 1 to %d characters of a-z, 0-9 and \"_\", "
                                 "starting with a letter.",
                                 CATALOG_FEATURE_KEY_MAX);
        bool limit = json_is_integer(value) && json_integer_value(value) >= 0 &&
                     json_integer_value(value) <= CATALOG_FEATURE_LIMIT_MAX;
        if (!json_is_boolean(value) && !limit)
            return validate_fail(e, BILLOW_EPARAM_INVALID, where,
                                 "A feature must be true, false or an integer limit from 0 to "
                                 "%" PRId64 ".",
                                 CATALOG_FEATURE_LIMIT_MAX);
    }
    return 0;
}

/* Validates a product's fields for a creation or (update) an update, where
 * null clears the description and features. Answers and returns -1 on the
 * first problem. */
static int check_product_or_respond(api_req_t *ar, bool update)
{
    validate_error_t e;
    const json_t *body = ar->body;
    const json_t *features = json_object_get(body, "features");
    const json_t *metadata = json_object_get(body, "metadata");
    if (validate_known_keys(body, product_keys, &e) != 0)
        goto fail;
    if (!update && json_object_get(body, "name") == NULL) {
        validate_fail(&e, BILLOW_EPARAM_MISSING, "name", "name is required.");
        goto fail;
    }
    if (check_text(body, "name", VALIDATE_NAME_MAX, false, &e) != 0 ||
        check_text(body, "description", CATALOG_DESCRIPTION_MAX, update, &e) != 0)
        goto fail;
    if (features && !(update && json_is_null(features)) && check_features(features, &e) != 0)
        goto fail;
    if (metadata && validate_metadata("metadata", metadata, &e) != 0)
        goto fail;
    if (check_boolean(body, "active", &e) != 0)
        goto fail;
    return 0;
fail:
    respond_invalid(ar, &e);
    return -1;
}

static void on_exists(void *data, int err, const PGresult *res)
{
    api_req_t *ar = data;
    const catalog_object_t *o = ar->state;
    if (err) {
        reads_failed(ar, err, res);
        return;
    }
    if (PQntuples(res) == 0) {
        respond_missing(ar, o);
        return;
    }
    submit_t s = {.type = o->job_type,
                  .tenant_id = ar->auth.tenant_id,
                  .payload = json_incref(ar->body),
                  .object_id = ar->params[0],
                  .created_status = 200};
    submit_job_or_respond(ar, &s);
}

/* Enqueues the update job of o for the path's id once the read pool has
 * confirmed the object exists for the tenant; answers either way. */
static void update_if_exists(api_req_t *ar, const catalog_object_t *o)
{
    ar->state = (void *)o;
    const char *params[1] = {ar->params[0]};
    if (pg_pool_query(ar->app->pg, ar->auth.tenant_id, o->exists, 1, params, on_exists, ar) != 0)
        respond_error(ar, BILLOW_EUNAVAILABLE, NULL, "The database is unavailable; retry later.");
}

/* Reads the list filter `active` ("true" or "false") into out, "" when
 * absent. Answers 400 and returns -1 for any other value. */
static int active_filter_or_respond(api_req_t *ar, char out[CATALOG_FILTER_MAX])
{
    int rc = query_get(ar->http->query, "active", out, CATALOG_FILTER_MAX);
    if (rc == 0)
        out[0] = '\0';
    else if (rc < 0 || (strcmp(out, "true") != 0 && strcmp(out, "false") != 0)) {
        respond_error(ar, BILLOW_EPARAM_INVALID, "active", "active must be true or false.");
        return -1;
    }
    return 0;
}

void routes_products_create(api_req_t *ar)
{
    if (check_product_or_respond(ar, false) != 0)
        return;
    char id[IDS_MAX];
    ids_generate("prod", id);
    submit_t s = {.type = "product.create",
                  .tenant_id = ar->auth.tenant_id,
                  .payload = json_incref(ar->body),
                  .object_id = id,
                  .created_status = 201};
    submit_job_or_respond(ar, &s);
}

void routes_products_get(api_req_t *ar)
{
    if (!ids_valid("prod", ar->params[0])) {
        respond_missing(ar, &PRODUCT);
        return;
    }
    const char *params[1] = {ar->params[0]};
    reads_object(ar, "product", "SELECT product_object(p)::text FROM products p WHERE p.id = $1", 1,
                 params);
}

void routes_products_update(api_req_t *ar)
{
    if (!ids_valid("prod", ar->params[0])) {
        respond_missing(ar, &PRODUCT);
        return;
    }
    if (check_product_or_respond(ar, true) != 0)
        return;
    if (json_object_size(ar->body) == 0) {
        respond_error(ar, BILLOW_EPARAM_MISSING, NULL,
                      "Send at least one of name, description, features, metadata or active.");
        return;
    }
    update_if_exists(ar, &PRODUCT);
}

void routes_products_list(api_req_t *ar)
{
    static const char *const allowed[] = {"limit", "starting_after", "active", NULL};
    char after[IDS_MAX], active[CATALOG_FILTER_MAX], lim[16];
    int limit;
    if (reads_page_params(ar, allowed, "prod", &limit, after) != 0 ||
        active_filter_or_respond(ar, active) != 0)
        return;
    snprintf(lim, sizeof(lim), "%d", limit + 1);
    const char *params[3] = {after, active, lim};
    reads_list(ar, "/v1/products", limit,
               "SELECT product_object(p)::text FROM products p"
               " WHERE ($1 = '' OR p.id < $1) AND ($2 = '' OR p.active = ($2 = 'true'))"
               " ORDER BY p.id DESC LIMIT $3::int",
               3, params);
}

/* The longest interval_count of unit (calendar.h's bounds), for messages. */
static int interval_count_max(calendar_unit_t unit)
{
    switch (unit) {
    case CALENDAR_DAY:
        return CALENDAR_MAX_DAYS;
    case CALENDAR_WEEK:
        return CALENDAR_MAX_WEEKS;
    case CALENDAR_MONTH:
        return CALENDAR_MAX_MONTHS;
    case CALENDAR_YEAR:
        return CALENDAR_MAX_YEARS;
    }
    return 0;
}

/* Reads the recurring member r into *out, normalised: {interval,
 * interval_count (1 when absent), trial_period_days (null when absent)}.
 * *out (caller frees) is set only on success. */
static int check_recurring(const json_t *r, json_t **out, validate_error_t *e)
{
    if (r == NULL)
        return validate_fail(e, BILLOW_EPARAM_MISSING, "recurring",
                             "recurring is required: {\"interval\": \"month\"}, with "
                             "interval_count and trial_period_days optional.");
    if (!json_is_object(r))
        return validate_fail(e, BILLOW_EPARAM_INVALID, "recurring",
                             "recurring must be an object with interval, interval_count and "
                             "trial_period_days.");
    if (validate_known_keys(r, recurring_keys, e) != 0)
        return unknown_in(e, "recurring");
    const json_t *interval = json_object_get(r, "interval");
    calendar_unit_t unit;
    if (interval == NULL)
        return validate_fail(e, BILLOW_EPARAM_MISSING, "recurring.interval",
                             "recurring.interval is required: \"day\", \"week\", \"month\" or "
                             "\"year\".");
    if (!json_is_string(interval) || calendar_unit_parse(json_string_value(interval), &unit) != 0)
        return validate_fail(
            e, BILLOW_EPARAM_INVALID, "recurring.interval",
            "recurring.interval must be \"day\", \"week\", \"month\" or \"year\".");
    const json_t *count = json_object_get(r, "interval_count");
    json_int_t n = 1;
    if (count != NULL) {
        n = json_is_integer(count) ? json_integer_value(count) : 0;
        /* Bounded by the longest count of any unit before the cast to int,
         * so a huge JSON integer cannot wrap into a valid one. */
        if (n < 1 || n > CALENDAR_MAX_DAYS || calendar_check_interval(unit, (int)n) != 0)
            return validate_fail(e, BILLOW_EPARAM_INVALID, "recurring.interval_count",
                                 "recurring.interval_count must be an integer from 1 to %d when "
                                 "the interval is \"%s\".",
                                 interval_count_max(unit), calendar_unit_name(unit));
    }
    const json_t *trial = json_object_get(r, "trial_period_days");
    if (trial != NULL && !json_is_null(trial) &&
        (!json_is_integer(trial) || json_integer_value(trial) < 1 ||
         json_integer_value(trial) > CATALOG_TRIAL_DAYS_MAX))
        return validate_fail(e, BILLOW_EPARAM_INVALID, "recurring.trial_period_days",
                             "recurring.trial_period_days must be an integer from 1 to %d.",
                             CATALOG_TRIAL_DAYS_MAX);
    *out = json_pack("{s:s,s:I,s:O}", "interval", calendar_unit_name(unit), "interval_count", n,
                     "trial_period_days", trial ? trial : json_null());
    return 0;
}

/* The tiers of p as the API shows and stores them: every tier with up_to
 * (an integer, or "inf" for the last), unit_amount and flat_amount. */
static json_t *tiers_json(const pricing_t *p)
{
    json_t *tiers = json_array();
    for (size_t i = 0; i < p->n_tiers; i++) {
        const pricing_tier_t *t = &p->tiers[i];
        json_t *up_to =
            t->up_to == PRICING_UP_TO_INF ? json_string("inf") : json_integer((json_int_t)t->up_to);
        json_array_append_new(tiers, json_pack("{s:o,s:I,s:I}", "up_to", up_to, "unit_amount",
                                               (json_int_t)t->unit_amount, "flat_amount",
                                               (json_int_t)t->flat_amount));
    }
    return tiers;
}

/* Validates a new price in body and builds the normalised price the job
 * carries into *out (caller frees; set only on success). */
static int check_price(const json_t *body, json_t **out, validate_error_t *e)
{
    const char *product;
    const json_t *metadata = json_object_get(body, "metadata");
    const json_t *nickname = json_object_get(body, "nickname");
    const json_t *active = json_object_get(body, "active");
    const money_currency_t *known;
    pricing_t pricing;
    char param[64], why[160];
    json_t *recurring = NULL;
    int rc;

    if ((rc = validate_known_keys(body, price_create_keys, e)) != 0 ||
        (rc = validate_string_member(body, "product", true, IDS_MAX, &product, e)) != 0)
        return rc;
    if (!ids_valid("prod", product))
        return validate_fail(e, BILLOW_EPARAM_INVALID, "product",
                             "product must be a product id (prod_…).");
    if ((rc = body_currency(body, "currency", true, &known, e)) != 0)
        return rc;
    if ((rc = pricing_parse(body, &pricing, param, why)) != 0)
        return validate_fail(e, rc, param, "%s", why);
    if ((rc = check_recurring(json_object_get(body, "recurring"), &recurring, e)) != 0 ||
        (rc = check_text(body, "nickname", CATALOG_NICKNAME_MAX, false, e)) != 0 ||
        (metadata && (rc = validate_metadata("metadata", metadata, e)) != 0) ||
        (rc = check_boolean(body, "active", e)) != 0) {
        json_decref(recurring);
        return rc;
    }
    bool tiered = pricing.scheme == PRICING_TIERED;
    *out = json_pack("{s:s,s:s,s:s,s:o,s:o,s:o,s:o,s:o,s:o,s:b}", "product", product, "currency",
                     known->code, "billing_scheme", tiered ? "tiered" : "per_unit", "unit_amount",
                     tiered ? json_null() : json_integer((json_int_t)pricing.unit_amount),
                     "tiers_mode",
                     !tiered                                   ? json_null()
                     : pricing.tiers_mode == PRICING_GRADUATED ? json_string("graduated")
                                                               : json_string("volume"),
                     "tiers", tiered ? tiers_json(&pricing) : json_null(), "recurring", recurring,
                     "nickname", nickname ? json_incref((json_t *)nickname) : json_null(),
                     "metadata", metadata ? json_incref((json_t *)metadata) : json_object(),
                     "active", active == NULL || json_is_true(active));
    return 0;
}

void routes_prices_create(api_req_t *ar)
{
    validate_error_t e;
    json_t *payload = NULL;
    if (check_price(ar->body, &payload, &e) != 0) {
        respond_invalid(ar, &e);
        return;
    }
    char id[IDS_MAX];
    ids_generate("price", id);
    submit_t s = {.type = "price.create",
                  .tenant_id = ar->auth.tenant_id,
                  .payload = payload,
                  .object_id = id,
                  .created_status = 201};
    submit_job_or_respond(ar, &s);
}

void routes_prices_get(api_req_t *ar)
{
    if (!ids_valid("price", ar->params[0])) {
        respond_missing(ar, &PRICE);
        return;
    }
    const char *params[1] = {ar->params[0]};
    reads_object(ar, "price", "SELECT price_object(p)::text FROM prices p WHERE p.id = $1", 1,
                 params);
}

void routes_prices_update(api_req_t *ar)
{
    validate_error_t e;
    const json_t *body = ar->body;
    const json_t *metadata = json_object_get(body, "metadata");
    if (!ids_valid("price", ar->params[0])) {
        respond_missing(ar, &PRICE);
        return;
    }
    for (size_t i = 0; price_fixed_keys[i] != NULL; i++) {
        if (json_object_get(body, price_fixed_keys[i]) != NULL) {
            validate_fail(&e, BILLOW_EPARAM_INVALID, price_fixed_keys[i],
                          "%s cannot change: prices are immutable. Create a new price and move "
                          "subscriptions to it.",
                          price_fixed_keys[i]);
            goto fail;
        }
    }
    if (validate_known_keys(body, price_update_keys, &e) != 0 ||
        check_text(body, "nickname", CATALOG_NICKNAME_MAX, true, &e) != 0 ||
        (metadata && validate_metadata("metadata", metadata, &e) != 0) ||
        check_boolean(body, "active", &e) != 0)
        goto fail;
    if (json_object_size(body) == 0) {
        respond_error(ar, BILLOW_EPARAM_MISSING, NULL,
                      "Send at least one of nickname, metadata or active.");
        return;
    }
    update_if_exists(ar, &PRICE);
    return;
fail:
    respond_invalid(ar, &e);
}

void routes_prices_list(api_req_t *ar)
{
    static const char *const allowed[] = {"limit",  "starting_after", "product",
                                          "active", "currency",       NULL};
    char after[IDS_MAX], product[IDS_MAX], active[CATALOG_FILTER_MAX], currency[CATALOG_FILTER_MAX],
        lim[16];
    int limit;
    if (reads_page_params(ar, allowed, "price", &limit, after) != 0 ||
        active_filter_or_respond(ar, active) != 0)
        return;
    if (reads_id_filter(ar, "product", "prod", product) != 0)
        return;
    int rc = query_get(ar->http->query, "currency", currency, sizeof(currency));
    if (rc == 0) {
        currency[0] = '\0';
    } else {
        const money_currency_t *known = rc < 0 ? NULL : money_currency_find(currency);
        if (known == NULL) {
            respond_error(ar, BILLOW_EPARAM_INVALID, "currency",
                          "currency must be a three-letter ISO 4217 code Billow supports, such "
                          "as \"usd\".");
            return;
        }
        snprintf(currency, sizeof(currency), "%s", known->code);
    }
    snprintf(lim, sizeof(lim), "%d", limit + 1);
    const char *params[5] = {after, product, active, currency, lim};
    reads_list(ar, "/v1/prices", limit,
               "SELECT price_object(p)::text FROM prices p"
               " WHERE ($1 = '' OR p.id < $1) AND ($2 = '' OR p.product_id = $2)"
               " AND ($3 = '' OR p.active = ($3 = 'true')) AND ($4 = '' OR p.currency = $4)"
               " ORDER BY p.id DESC LIMIT $5::int",
               5, params);
}

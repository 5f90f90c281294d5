/* pricing: Stripe's price models, parsed from JSON and applied to a quantity.
 *
 * Design: pricing_parse() is the only gate a price passes on its way into
 * Billow, so it checks everything pricing_amount() relies on (amounts in
 * money's range, tiers strictly ascending and ending unbounded) and names
 * the first offending member the way the API reports it ("tiers[2].up_to").
 * A JSON null counts as an absent member, because stored prices carry
 * "unit_amount": null on a tiered price and "tiers": null on a per-unit
 * one, as Stripe's price objects do.
 *
 * pricing_amount() charges nothing for a quantity of zero in every model:
 * no unit is bought, so no tier is reached and no flat amount is due. Every
 * multiplication and sum is checked through money, so a huge tier times a
 * huge quantity is an error, never a wrapped amount.
 */
#include "pricing.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "money.h"

/* The sizes of pricing_parse()'s param and why buffers (see pricing.h);
 * snprintf() truncates to them, so no message can overrun the caller's. */
#define PARAM_MAX 64
#define WHY_MAX   160

/* Fills param and why and returns BILLOW_EPARAM_INVALID, so that every
 * refusal below is one statement. */
static int refuse(char param[PARAM_MAX], char why[WHY_MAX], const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int refuse(char param[PARAM_MAX], char why[WHY_MAX], const char *name, const char *fmt, ...)
{
    snprintf(param, PARAM_MAX, "%s", name);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, WHY_MAX, fmt, ap);
    va_end(ap);
    return BILLOW_EPARAM_INVALID;
}

/* The member `key` of obj, or NULL when it is absent or null. */
static const json_t *member(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

/* Reads amount member `key` of obj (an integer from 0 to MONEY_AMOUNT_MAX)
 * into *out. *present says whether it was given; an absent member is not an
 * error here. `name` is the member's name in error reports. */
static int read_amount(const json_t *obj, const char *key, const char *name, int64_t *out,
                       int *present, char param[PARAM_MAX], char why[WHY_MAX])
{
    const json_t *v = member(obj, key);
    *present = v != NULL;
    if (v == NULL)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) > MONEY_AMOUNT_MAX)
        return refuse(param, why, name,
                      "%s must be an integer number of minor units from 0 to %" PRId64 ".", key,
                      MONEY_AMOUNT_MAX);
    *out = (int64_t)json_integer_value(v);
    return 0;
}

/* Reads tier i of n from v into *tier; prev_up_to is the previous tier's
 * up_to (0 for the first). */
static int parse_tier(const json_t *v, size_t i, size_t n, int64_t prev_up_to, pricing_tier_t *tier,
                      char param[PARAM_MAX], char why[WHY_MAX])
{
    char name[PARAM_MAX];
    snprintf(name, sizeof(name), "tiers[%zu]", i);
    if (!json_is_object(v))
        return refuse(param, why, name,
                      "Each tier must be an object with up_to and unit_amount or flat_amount.");

    char up_to_name[PARAM_MAX];
    snprintf(up_to_name, sizeof(up_to_name), "tiers[%zu].up_to", i);
    const json_t *up_to = member(v, "up_to");
    int last = i + 1 == n;
    if (up_to == NULL)
        return refuse(param, why, up_to_name,
                      "up_to is required: an integer of at least 1, or \"inf\" for the last "
                      "tier.");
    if (json_is_string(up_to) && strcmp(json_string_value(up_to), "inf") == 0) {
        if (!last)
            return refuse(param, why, up_to_name,
                          "Only the last tier may have up_to \"inf\"; give this tier an integer "
                          "bound.");
        tier->up_to = PRICING_UP_TO_INF;
    } else if (json_is_integer(up_to) && json_integer_value(up_to) >= 1) {
        if (last)
            return refuse(param, why, up_to_name,
                          "The last tier must have up_to \"inf\", so that every quantity falls in "
                          "a tier.");
        tier->up_to = (int64_t)json_integer_value(up_to);
        if (tier->up_to <= prev_up_to)
            return refuse(param, why, up_to_name,
                          "up_to must be greater than the previous tier's up_to (%" PRId64 ").",
                          prev_up_to);
    } else {
        return refuse(param, why, up_to_name,
                      "up_to must be an integer of at least 1, or \"inf\" for the last tier.");
    }

    char amount_name[PARAM_MAX];
    int has_unit, has_flat;
    tier->unit_amount = 0;
    tier->flat_amount = 0;
    snprintf(amount_name, sizeof(amount_name), "tiers[%zu].unit_amount", i);
    int rc = read_amount(v, "unit_amount", amount_name, &tier->unit_amount, &has_unit, param, why);
    if (rc != 0)
        return rc;
    snprintf(amount_name, sizeof(amount_name), "tiers[%zu].flat_amount", i);
    rc = read_amount(v, "flat_amount", amount_name, &tier->flat_amount, &has_flat, param, why);
    if (rc != 0)
        return rc;
    if (!has_unit && !has_flat)
        return refuse(param, why, name, "A tier needs unit_amount, flat_amount or both.");
    return 0;
}

static int parse_tiered(const json_t *price, pricing_t *out, char param[PARAM_MAX],
                        char why[WHY_MAX])
{
    if (member(price, "unit_amount") != NULL)
        return refuse(param, why, "unit_amount",
                      "unit_amount is not allowed when billing_scheme is \"tiered\"; give each "
                      "tier its own unit_amount.");

    const json_t *mode = member(price, "tiers_mode");
    if (mode == NULL)
        return refuse(param, why, "tiers_mode",
                      "tiers_mode is required when billing_scheme is \"tiered\": \"graduated\" "
                      "or \"volume\".");
    if (json_is_string(mode) && strcmp(json_string_value(mode), "graduated") == 0)
        out->tiers_mode = PRICING_GRADUATED;
    else if (json_is_string(mode) && strcmp(json_string_value(mode), "volume") == 0)
        out->tiers_mode = PRICING_VOLUME;
    else
        return refuse(param, why, "tiers_mode", "tiers_mode must be \"graduated\" or \"volume\".");

    const json_t *tiers = member(price, "tiers");
    if (tiers == NULL)
        return refuse(param, why, "tiers", "tiers is required when billing_scheme is \"tiered\".");
    if (!json_is_array(tiers) || json_array_size(tiers) < 1 ||
        json_array_size(tiers) > PRICING_TIERS_MAX)
        return refuse(param, why, "tiers", "tiers must be an array of 1 to %d tiers.",
                      PRICING_TIERS_MAX);

    out->n_tiers = json_array_size(tiers);
    int64_t prev_up_to = 0;
    for (size_t i = 0; i < out->n_tiers; i++) {
        int rc = parse_tier(json_array_get(tiers, i), i, out->n_tiers, prev_up_to, &out->tiers[i],
                            param, why);
        if (rc != 0)
            return rc;
        prev_up_to = out->tiers[i].up_to;
    }
    return 0;
}

static int parse_per_unit(const json_t *price, pricing_t *out, char param[PARAM_MAX],
                          char why[WHY_MAX])
{
    if (member(price, "tiers") != NULL)
        return refuse(param, why, "tiers",
                      "tiers is only allowed when billing_scheme is \"tiered\".");
    if (member(price, "tiers_mode") != NULL)
        return refuse(param, why, "tiers_mode",
                      "tiers_mode is only allowed when billing_scheme is \"tiered\".");
    int present;
    int rc =
        read_amount(price, "unit_amount", "unit_amount", &out->unit_amount, &present, param, why);
    if (rc != 0)
        return rc;
    if (!present)
        return refuse(param, why, "unit_amount",
                      "unit_amount is required when billing_scheme is \"per_unit\".");
    return 0;
}

int pricing_parse(const json_t *price, pricing_t *out, char param[64], char why[160])
{
    if (!json_is_object(price))
        return refuse(param, why, "", "A price must be a JSON object.");
    memset(out, 0, sizeof(*out));

    const json_t *scheme = member(price, "billing_scheme");
    if (scheme == NULL ||
        (json_is_string(scheme) && strcmp(json_string_value(scheme), "per_unit") == 0)) {
        out->scheme = PRICING_PER_UNIT;
        return parse_per_unit(price, out, param, why);
    }
    if (json_is_string(scheme) && strcmp(json_string_value(scheme), "tiered") == 0) {
        out->scheme = PRICING_TIERED;
        return parse_tiered(price, out, param, why);
    }
    return refuse(param, why, "billing_scheme",
                  "billing_scheme must be \"per_unit\" or \"tiered\".");
}

/* Each unit at the price of its own tier, plus the flat amount of every
 * tier that at least one unit reaches. */
static int graduated(const pricing_t *p, int64_t quantity, int64_t *out)
{
    int64_t total = 0, below = 0, line;
    for (size_t i = 0; i < p->n_tiers && quantity > below; i++) {
        const pricing_tier_t *tier = &p->tiers[i];
        int64_t top = quantity < tier->up_to ? quantity : tier->up_to;
        int rc = money_mul(tier->unit_amount, top - below, &line);
        if (rc == 0)
            rc = money_add(total, line, &total);
        if (rc == 0)
            rc = money_add(total, tier->flat_amount, &total);
        if (rc != 0)
            return rc;
        below = tier->up_to;
    }
    /* As in volume(): only a hand-built price lacks the unbounded tier. */
    if (quantity > below)
        return BILLOW_EPARAM_INVALID;
    *out = total;
    return 0;
}

/* Every unit at the price of the tier the whole quantity falls in, plus
 * that tier's flat amount. */
static int volume(const pricing_t *p, int64_t quantity, int64_t *out)
{
    if (quantity == 0) {
        *out = 0;
        return 0;
    }
    for (size_t i = 0; i < p->n_tiers; i++) {
        const pricing_tier_t *tier = &p->tiers[i];
        if (quantity > tier->up_to)
            continue;
        int64_t units;
        int rc = money_mul(tier->unit_amount, quantity, &units);
        if (rc != 0)
            return rc;
        return money_add(units, tier->flat_amount, out);
    }
    /* A parsed price ends with an unbounded tier, so only a hand-built one
     * without it gets here. */
    return BILLOW_EPARAM_INVALID;
}

int pricing_amount(const pricing_t *p, int64_t quantity, int64_t *out)
{
    if (quantity < 0 || quantity > PRICING_QUANTITY_MAX)
        return BILLOW_EPARAM_INVALID;
    if (p->scheme == PRICING_PER_UNIT)
        return money_mul(p->unit_amount, quantity, out);
    if (p->tiers_mode == PRICING_GRADUATED)
        return graduated(p, quantity, out);
    return volume(p, quantity, out);
}

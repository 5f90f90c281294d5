/* pricing: parsing Stripe-style prices and charging quantities. */
#include <criterion/criterion.h>
#include <string.h>

#include "money.h"
#include "pricing.h"
#include "prop.h"

/* Parses the JSON text of a price; the test fails if the text is not JSON. */
static int parse_text(const char *text, pricing_t *out, char param[64], char why[160])
{
    json_error_t error;
    json_t *price = json_loads(text, 0, &error);
    cr_assert_not_null(price, "test JSON does not parse: %s", error.text);
    int rc = pricing_parse(price, out, param, why);
    json_decref(price);
    return rc;
}

static pricing_t parse_or_fail(const char *text)
{
    pricing_t p;
    char param[64] = "", why[160] = "";
    cr_assert_eq(parse_text(text, &p, param, why), 0, "%s: %s: %s", text, param, why);
    return p;
}

static int64_t amount_or_fail(const pricing_t *p, int64_t quantity)
{
    int64_t out = -1;
    cr_assert_eq(pricing_amount(p, quantity, &out), 0, "quantity %" PRId64, quantity);
    return out;
}

/* Stripe's documented tiers: 1-5 at 7.00, 6-10 at 6.50, 11+ at 6.00. */
#define STRIPE_TIERS                                                                               \
    "[{\"up_to\": 5, \"unit_amount\": 700}, {\"up_to\": 10, \"unit_amount\": 650},"                \
    " {\"up_to\": \"inf\", \"unit_amount\": 600}]"

Test(pricing, per_unit_is_the_default_scheme)
{
    pricing_t p = parse_or_fail("{\"unit_amount\": 1999, \"currency\": \"usd\"}");
    cr_assert_eq(p.scheme, PRICING_PER_UNIT);
    cr_assert_eq(p.unit_amount, 1999);
    cr_assert_eq(amount_or_fail(&p, 3), 5997);
    cr_assert_eq(amount_or_fail(&p, 0), 0);
}

Test(pricing, null_members_count_as_absent)
{
    pricing_t p = parse_or_fail("{\"billing_scheme\": \"per_unit\", \"unit_amount\": 0,"
                                " \"tiers\": null, \"tiers_mode\": null}");
    cr_assert_eq(p.unit_amount, 0);
    p = parse_or_fail("{\"billing_scheme\": \"tiered\", \"unit_amount\": null,"
                      " \"tiers_mode\": \"volume\", \"tiers\": [{\"up_to\": \"inf\","
                      " \"unit_amount\": 5, \"flat_amount\": null}]}");
    cr_assert_eq(p.n_tiers, 1);
    cr_assert_eq(p.tiers[0].flat_amount, 0);
}

Test(pricing, tiers_parse_like_stripes)
{
    pricing_t p =
        parse_or_fail("{\"billing_scheme\": \"tiered\", \"tiers_mode\": \"graduated\","
                      " \"tiers\": [{\"up_to\": 5, \"unit_amount\": 500, \"flat_amount\": "
                      "0}, {\"up_to\": \"inf\", \"unit_amount\": 400}]}");
    cr_assert_eq(p.scheme, PRICING_TIERED);
    cr_assert_eq(p.tiers_mode, PRICING_GRADUATED);
    cr_assert_eq(p.n_tiers, 2);
    cr_assert_eq(p.tiers[0].up_to, 5);
    cr_assert_eq(p.tiers[0].unit_amount, 500);
    cr_assert_eq(p.tiers[0].flat_amount, 0);
    cr_assert_eq(p.tiers[1].up_to, PRICING_UP_TO_INF);
    cr_assert_eq(p.tiers[1].unit_amount, 400);
    cr_assert_eq(p.tiers[1].flat_amount, 0);
    /* 8 units: 5 × 5.00 + 3 × 4.00. */
    cr_assert_eq(amount_or_fail(&p, 8), 3700);
    p.tiers_mode = PRICING_VOLUME;
    /* 8 units all at the second tier's 4.00. */
    cr_assert_eq(amount_or_fail(&p, 8), 3200);
}

Test(pricing, graduated_matches_stripes_documented_example)
{
    pricing_t p = parse_or_fail(
        "{\"billing_scheme\": \"tiered\", \"tiers_mode\": \"graduated\", \"tiers\": " STRIPE_TIERS
        "}");
    cr_assert_eq(amount_or_fail(&p, 1), 700);
    cr_assert_eq(amount_or_fail(&p, 5), 3500);
    cr_assert_eq(amount_or_fail(&p, 6), 4150);   /* 35.00 + 6.50 */
    cr_assert_eq(amount_or_fail(&p, 10), 6750);  /* 35.00 + 32.50 */
    cr_assert_eq(amount_or_fail(&p, 20), 12750); /* 35.00 + 32.50 + 10 × 6.00 */
    cr_assert_eq(amount_or_fail(&p, 25), 15750); /* 35.00 + 32.50 + 15 × 6.00 */
}

Test(pricing, volume_matches_stripes_documented_example)
{
    pricing_t p = parse_or_fail(
        "{\"billing_scheme\": \"tiered\", \"tiers_mode\": \"volume\", \"tiers\": " STRIPE_TIERS
        "}");
    cr_assert_eq(amount_or_fail(&p, 1), 700);
    cr_assert_eq(amount_or_fail(&p, 5), 3500);
    cr_assert_eq(amount_or_fail(&p, 6), 3900);   /* 6 × 6.50 */
    cr_assert_eq(amount_or_fail(&p, 10), 6500);  /* 10 × 6.50 */
    cr_assert_eq(amount_or_fail(&p, 11), 6600);  /* 11 × 6.00 */
    cr_assert_eq(amount_or_fail(&p, 20), 12000); /* 20 × 6.00 */
    cr_assert_eq(amount_or_fail(&p, 25), 15000);
}

Test(pricing, volume_can_charge_less_for_more_units)
{
    pricing_t p = parse_or_fail("{\"billing_scheme\": \"tiered\", \"tiers_mode\": \"volume\","
                                " \"tiers\": [{\"up_to\": 10, \"unit_amount\": 1000},"
                                " {\"up_to\": \"inf\", \"unit_amount\": 500}]}");
    cr_assert_eq(amount_or_fail(&p, 10), 10000);
    cr_assert_eq(amount_or_fail(&p, 11), 5500);
    p.tiers_mode = PRICING_GRADUATED;
    cr_assert_eq(amount_or_fail(&p, 11), 10500);
}

Test(pricing, flat_amounts_are_charged_per_tier_reached)
{
    /* A base fee of 10.00 covers the first 5 seats; each seat beyond costs
     * 4.00, and passing 5 seats adds a 2.00 fee once. */
    const char *tiers = "[{\"up_to\": 5, \"flat_amount\": 1000},"
                        " {\"up_to\": \"inf\", \"unit_amount\": 400, \"flat_amount\": 200}]";
    char text[512];
    snprintf(text, sizeof(text),
             "{\"billing_scheme\": \"tiered\", \"tiers_mode\": \"graduated\", \"tiers\": %s}",
             tiers);
    pricing_t g = parse_or_fail(text);
    cr_assert_eq(amount_or_fail(&g, 1), 1000);
    cr_assert_eq(amount_or_fail(&g, 5), 1000);
    cr_assert_eq(amount_or_fail(&g, 6), 1600); /* 10.00 + 2.00 + 1 × 4.00 */
    cr_assert_eq(amount_or_fail(&g, 8), 2400); /* 10.00 + 2.00 + 3 × 4.00 */
    snprintf(text, sizeof(text),
             "{\"billing_scheme\": \"tiered\", \"tiers_mode\": \"volume\", \"tiers\": %s}", tiers);
    pricing_t v = parse_or_fail(text);
    cr_assert_eq(amount_or_fail(&v, 3), 1000);
    cr_assert_eq(amount_or_fail(&v, 6), 2600); /* 6 × 4.00 + 2.00 */
}

Test(pricing, a_quantity_of_zero_costs_nothing_in_every_model)
{
    const char *tiers = "[{\"up_to\": 5, \"unit_amount\": 100, \"flat_amount\": 1000},"
                        " {\"up_to\": \"inf\", \"unit_amount\": 50, \"flat_amount\": 200}]";
    char text[512];
    snprintf(text, sizeof(text),
             "{\"billing_scheme\": \"tiered\", \"tiers_mode\": \"graduated\", \"tiers\": %s}",
             tiers);
    pricing_t g = parse_or_fail(text);
    cr_assert_eq(amount_or_fail(&g, 0), 0);
    g.tiers_mode = PRICING_VOLUME;
    cr_assert_eq(amount_or_fail(&g, 0), 0);
}

Test(pricing, reaching_a_tiers_last_unit_does_not_reach_the_next_tier)
{
    pricing_t p = parse_or_fail("{\"billing_scheme\": \"tiered\", \"tiers_mode\": \"graduated\","
                                " \"tiers\": [{\"up_to\": 1000000000, \"unit_amount\": 1},"
                                " {\"up_to\": \"inf\", \"unit_amount\": 0, \"flat_amount\": 5}]}");
    cr_assert_eq(amount_or_fail(&p, PRICING_QUANTITY_MAX), PRICING_QUANTITY_MAX);
    p.tiers[0].up_to = 999999999;
    cr_assert_eq(amount_or_fail(&p, PRICING_QUANTITY_MAX), 999999999 + 5);
}

Test(pricing, quantities_outside_0_to_the_maximum_are_refused)
{
    pricing_t p = parse_or_fail("{\"unit_amount\": 1}");
    int64_t out = 42;
    cr_assert_eq(pricing_amount(&p, -1, &out), BILLOW_EPARAM_INVALID);
    cr_assert_eq(pricing_amount(&p, PRICING_QUANTITY_MAX + 1, &out), BILLOW_EPARAM_INVALID);
    cr_assert_eq(out, 42);
    cr_assert_eq(amount_or_fail(&p, PRICING_QUANTITY_MAX), PRICING_QUANTITY_MAX);
}

Test(pricing, amounts_beyond_money_range_are_refused)
{
    int64_t out = 42;
    pricing_t p = parse_or_fail("{\"unit_amount\": 1000000000000000}");
    cr_assert_eq(pricing_amount(&p, 2, &out), BILLOW_EAMOUNT_TOO_LARGE);
    p = parse_or_fail("{\"billing_scheme\": \"tiered\", \"tiers_mode\": \"graduated\", \"tiers\": "
                      "[{\"up_to\": 1, \"unit_amount\": 1000000000000000}, {\"up_to\": \"inf\","
                      " \"flat_amount\": 1}]}");
    cr_assert_eq(amount_or_fail(&p, 1), MONEY_AMOUNT_MAX);
    cr_assert_eq(pricing_amount(&p, 2, &out), BILLOW_EAMOUNT_TOO_LARGE);
    p = parse_or_fail("{\"billing_scheme\": \"tiered\", \"tiers_mode\": \"volume\", \"tiers\": "
                      "[{\"up_to\": \"inf\", \"unit_amount\": 500000000000000, \"flat_amount\": "
                      "1}]}");
    cr_assert_eq(pricing_amount(&p, 2, &out), BILLOW_EAMOUNT_TOO_LARGE);
    cr_assert_eq(out, 42);
}

typedef struct {
    const char *json;  /* The price. */
    const char *param; /* The member blamed. */
    const char *why;   /* A part of the explanation. */
} refusal_t;

#define TIERED(mode, tiers)                                                                        \
    "{\"billing_scheme\": \"tiered\", \"tiers_mode\": " mode ", \"tiers\": " tiers "}"
#define INF_TIER "{\"up_to\": \"inf\", \"unit_amount\": 1}"

static const refusal_t REFUSALS[] = {
    {"[1]", "", "must be a JSON object"},
    {"{\"billing_scheme\": \"flat\"}", "billing_scheme",
     "billing_scheme must be \"per_unit\" or \"tiered\"."},
    {"{\"billing_scheme\": 1, \"unit_amount\": 5}", "billing_scheme", "\"per_unit\" or \"tiered\""},
    {"{}", "unit_amount", "unit_amount is required when billing_scheme is \"per_unit\"."},
    {"{\"unit_amount\": -1}", "unit_amount", "from 0 to 1000000000000000"},
    {"{\"unit_amount\": 1.5}", "unit_amount", "must be an integer"},
    {"{\"unit_amount\": \"100\"}", "unit_amount", "must be an integer"},
    {"{\"unit_amount\": 1000000000000001}", "unit_amount", "from 0 to 1000000000000000"},
    {"{\"unit_amount\": 100, \"tiers\": [" INF_TIER "]}", "tiers",
     "only allowed when billing_scheme is \"tiered\""},
    {"{\"unit_amount\": 100, \"tiers_mode\": \"volume\"}", "tiers_mode",
     "only allowed when billing_scheme is \"tiered\""},
    {"{\"billing_scheme\": \"tiered\", \"tiers\": [" INF_TIER "]}", "tiers_mode",
     "tiers_mode is required"},
    {TIERED("\"stairstep\"", "[" INF_TIER "]"), "tiers_mode",
     "tiers_mode must be \"graduated\" or \"volume\"."},
    {TIERED("1", "[" INF_TIER "]"), "tiers_mode",
     "tiers_mode must be \"graduated\" or \"volume\"."},
    {"{\"billing_scheme\": \"tiered\", \"tiers_mode\": \"volume\"}", "tiers",
     "tiers is required when billing_scheme is \"tiered\"."},
    {TIERED("\"volume\"", "[]"), "tiers", "an array of 1 to 25 tiers"},
    {TIERED("\"volume\"", "{}"), "tiers", "an array of 1 to 25 tiers"},
    {"{\"billing_scheme\": \"tiered\", \"unit_amount\": 5, \"tiers_mode\": \"volume\", \"tiers\": "
     "[" INF_TIER "]}",
     "unit_amount", "not allowed when billing_scheme is \"tiered\""},
    {TIERED("\"volume\"", "[5]"), "tiers[0]", "must be an object"},
    {TIERED("\"volume\"", "[{\"up_to\": 5, \"unit_amount\": 1}, {\"unit_amount\": 1}]"),
     "tiers[1].up_to", "up_to is required"},
    {TIERED("\"volume\"", "[{\"up_to\": 0, \"unit_amount\": 1}, " INF_TIER "]"), "tiers[0].up_to",
     "at least 1"},
    {TIERED("\"volume\"", "[{\"up_to\": 5.0, \"unit_amount\": 1}, " INF_TIER "]"), "tiers[0].up_to",
     "at least 1"},
    {TIERED("\"volume\"", "[{\"up_to\": \"infinity\", \"unit_amount\": 1}]"), "tiers[0].up_to",
     "\"inf\""},
    {TIERED("\"graduated\"", "[{\"up_to\": 5, \"unit_amount\": 1}, {\"up_to\": 5, "
                             "\"unit_amount\": 1}, " INF_TIER "]"),
     "tiers[1].up_to", "greater than the previous tier's up_to (5)"},
    {TIERED("\"graduated\"", "[{\"up_to\": 9, \"unit_amount\": 1}, {\"up_to\": 3, "
                             "\"unit_amount\": 1}, " INF_TIER "]"),
     "tiers[1].up_to", "greater than the previous tier's up_to (9)"},
    {TIERED("\"graduated\"", "[" INF_TIER ", " INF_TIER "]"), "tiers[0].up_to",
     "Only the last tier may have up_to \"inf\""},
    {TIERED("\"graduated\"", "[{\"up_to\": 5, \"unit_amount\": 1}, {\"up_to\": 10, "
                             "\"unit_amount\": 1}]"),
     "tiers[1].up_to", "The last tier must have up_to \"inf\""},
    {TIERED("\"graduated\"", "[{\"up_to\": 5, \"unit_amount\": 1}, {\"up_to\": 10, "
                             "\"unit_amount\": 1}, {\"up_to\": \"inf\"}]"),
     "tiers[2]", "A tier needs unit_amount, flat_amount or both."},
    {TIERED("\"graduated\"", "[{\"up_to\": 5, \"unit_amount\": 1}, {\"up_to\": \"inf\", "
                             "\"unit_amount\": -3}]"),
     "tiers[1].unit_amount", "from 0 to"},
    {TIERED("\"graduated\"", "[{\"up_to\": 5, \"flat_amount\": 1000000000000001}, " INF_TIER "]"),
     "tiers[0].flat_amount", "from 0 to"},
};

Test(pricing, invalid_prices_name_the_member_and_say_why)
{
    for (size_t i = 0; i < sizeof(REFUSALS) / sizeof(REFUSALS[0]); i++) {
        pricing_t p;
        char param[64] = "unset", why[160] = "";
        cr_assert_eq(parse_text(REFUSALS[i].json, &p, param, why), BILLOW_EPARAM_INVALID, "%s",
                     REFUSALS[i].json);
        cr_assert_str_eq(param, REFUSALS[i].param, "%s", REFUSALS[i].json);
        cr_assert_not_null(strstr(why, REFUSALS[i].why), "%s: why was '%s'", REFUSALS[i].json, why);
        /* A sentence: capital letter or member name first, full stop last. */
        cr_assert_eq(why[strlen(why) - 1], '.', "'%s'", why);
    }
}

Test(pricing, more_than_25_tiers_are_refused)
{
    char text[4096];
    size_t len = (size_t)snprintf(text, sizeof(text),
                                  "{\"billing_scheme\": \"tiered\", \"tiers_mode\": \"volume\","
                                  " \"tiers\": [");
    for (int i = 1; i <= PRICING_TIERS_MAX; i++)
        len += (size_t)snprintf(text + len, sizeof(text) - len,
                                "{\"up_to\": %d, \"unit_amount\": 1}, ", i);
    snprintf(text + len, sizeof(text) - len, INF_TIER "]}");
    pricing_t p;
    char param[64], why[160];
    cr_assert_eq(parse_text(text, &p, param, why), BILLOW_EPARAM_INVALID);
    cr_assert_str_eq(param, "tiers");

    /* Exactly 25 (24 bounded and the unbounded one) parse. */
    len = (size_t)snprintf(
        text, sizeof(text),
        "{\"billing_scheme\": \"tiered\", \"tiers_mode\": \"volume\", \"tiers\": [");
    for (int i = 1; i < PRICING_TIERS_MAX; i++)
        len += (size_t)snprintf(text + len, sizeof(text) - len,
                                "{\"up_to\": %d, \"unit_amount\": 1}, ", i);
    snprintf(text + len, sizeof(text) - len, INF_TIER "]}");
    p = parse_or_fail(text);
    cr_assert_eq(p.n_tiers, PRICING_TIERS_MAX);
}

/* A random tiered price: 1 to 25 tiers whose bounds climb by steps up to
 * max_step, unit amounts up to 10,000 and flat amounts up to 1,000,000 (so
 * even a billion units stay within money's range). */
static pricing_t random_tiered(prop_t *p, pricing_tiers_mode_t mode, int64_t max_step)
{
    pricing_t price = {.scheme = PRICING_TIERED, .tiers_mode = mode};
    price.n_tiers = (size_t)prop_range(p, 1, PRICING_TIERS_MAX);
    int64_t up_to = 0;
    for (size_t i = 0; i < price.n_tiers; i++) {
        up_to += prop_range(p, 1, max_step);
        price.tiers[i].up_to = i + 1 == price.n_tiers ? PRICING_UP_TO_INF : up_to;
        price.tiers[i].unit_amount = prop_one_in(p, 5) ? 0 : prop_range(p, 0, 10000);
        price.tiers[i].flat_amount = prop_one_in(p, 2) ? 0 : prop_range(p, 0, 1000000);
    }
    return price;
}

/* The same price as the JSON the API accepts. Caller frees with json_decref. */
static json_t *price_json(const pricing_t *price)
{
    json_t *tiers = json_array();
    for (size_t i = 0; i < price->n_tiers; i++) {
        const pricing_tier_t *t = &price->tiers[i];
        json_t *up_to = t->up_to == PRICING_UP_TO_INF ? json_string("inf") : json_integer(t->up_to);
        json_array_append_new(tiers, json_pack("{s:o, s:I, s:I}", "up_to", up_to, "unit_amount",
                                               (json_int_t)t->unit_amount, "flat_amount",
                                               (json_int_t)t->flat_amount));
    }
    return json_pack("{s:s, s:s, s:o}", "billing_scheme", "tiered", "tiers_mode",
                     price->tiers_mode == PRICING_GRADUATED ? "graduated" : "volume", "tiers",
                     tiers);
}

/* A quantity from 0 to the maximum, spread over every order of magnitude. */
static int64_t random_quantity(prop_t *p)
{
    int64_t top = 1;
    for (int64_t digits = prop_range(p, 0, 9); digits > 0; digits--)
        top *= 10;
    return prop_range(p, 0, top);
}

/* Property: a graduated amount never falls as the quantity grows. */
Test(pricing, prop_graduated_amount_never_falls_with_quantity)
{
    prop_t p;
    cr_assert_eq(prop_begin(&p, "pricing/prop_graduated_amount_never_falls_with_quantity"), 0);
    for (long i = 0; i < p.cases; i++) {
        pricing_t price = random_tiered(&p, PRICING_GRADUATED, prop_one_in(&p, 2) ? 50 : 40000000);
        int64_t q1 = random_quantity(&p);
        int64_t q2 = prop_one_in(&p, 2) ? q1 + 1 : random_quantity(&p);
        if (q2 > PRICING_QUANTITY_MAX)
            q2 = PRICING_QUANTITY_MAX;
        if (q1 > q2) {
            int64_t t = q1;
            q1 = q2;
            q2 = t;
        }
        int64_t a1, a2;
        cr_assert_eq(pricing_amount(&price, q1, &a1), 0);
        cr_assert_eq(pricing_amount(&price, q2, &a2), 0);
        cr_assert_leq(a1, a2,
                      "seed %" PRIu64 " case %ld: %" PRId64 " units cost %" PRId64 " but %" PRId64
                      " cost %" PRId64,
                      p.seed, i, q1, a1, q2, a2);
    }
}

/* Property: one unbounded tier is per-unit pricing: graduated equals
 * per_unit, and volume equals per_unit plus the tier's flat amount (for any
 * quantity above zero; zero costs nothing). */
Test(pricing, prop_one_tier_is_per_unit_pricing)
{
    prop_t p;
    cr_assert_eq(prop_begin(&p, "pricing/prop_one_tier_is_per_unit_pricing"), 0);
    for (long i = 0; i < p.cases; i++) {
        int64_t unit = prop_range(&p, 0, 100000);
        int64_t flat = prop_range(&p, 0, 100000);
        int64_t q = random_quantity(&p);
        pricing_t per_unit = {.scheme = PRICING_PER_UNIT, .unit_amount = unit};
        pricing_t graduated = {.scheme = PRICING_TIERED,
                               .tiers_mode = PRICING_GRADUATED,
                               .n_tiers = 1,
                               .tiers = {{.up_to = PRICING_UP_TO_INF, .unit_amount = unit}}};
        pricing_t volume = {
            .scheme = PRICING_TIERED,
            .tiers_mode = PRICING_VOLUME,
            .n_tiers = 1,
            .tiers = {{.up_to = PRICING_UP_TO_INF, .unit_amount = unit, .flat_amount = flat}}};
        int64_t a, g, v;
        cr_assert_eq(pricing_amount(&per_unit, q, &a), 0);
        cr_assert_eq(pricing_amount(&graduated, q, &g), 0);
        cr_assert_eq(pricing_amount(&volume, q, &v), 0);
        cr_assert_eq(a, unit * q);
        cr_assert_eq(g, a, "seed %" PRIu64 " case %ld: unit %" PRId64 " × %" PRId64, p.seed, i,
                     unit, q);
        cr_assert_eq(v, q > 0 ? a + flat : 0,
                     "seed %" PRIu64 " case %ld: unit %" PRId64 " flat %" PRId64 " × %" PRId64,
                     p.seed, i, unit, flat, q);
    }
}

/* Property: a graduated price parsed from its JSON charges, for up to 2,000
 * units, exactly the unit-by-unit sum (each unit at its tier's price, each
 * tier's flat amount at its first unit). */
Test(pricing, prop_graduated_equals_unit_by_unit_sum)
{
    prop_t p;
    cr_assert_eq(prop_begin(&p, "pricing/prop_graduated_equals_unit_by_unit_sum"), 0);
    for (long i = 0; i < p.cases; i++) {
        pricing_t made = random_tiered(&p, PRICING_GRADUATED, prop_one_in(&p, 2) ? 10 : 200);
        json_t *json = price_json(&made);
        pricing_t price;
        char param[64], why[160];
        cr_assert_eq(pricing_parse(json, &price, param, why), 0,
                     "seed %" PRIu64 " case %ld: %s: %s", p.seed, i, param, why);
        json_decref(json);
        cr_assert_eq(price.n_tiers, made.n_tiers);
        cr_assert_eq(memcmp(price.tiers, made.tiers, made.n_tiers * sizeof(made.tiers[0])), 0,
                     "seed %" PRIu64 " case %ld: tiers changed in the JSON round trip", p.seed, i);

        int64_t q = prop_range(&p, 0, 2000);
        int64_t brute = 0;
        size_t tier = 0;
        for (int64_t unit = 1; unit <= q; unit++) {
            while (unit > price.tiers[tier].up_to)
                tier++;
            int64_t first = tier == 0 ? 1 : price.tiers[tier - 1].up_to + 1;
            if (unit == first)
                brute += price.tiers[tier].flat_amount;
            brute += price.tiers[tier].unit_amount;
        }
        int64_t got;
        cr_assert_eq(pricing_amount(&price, q, &got), 0);
        cr_assert_eq(got, brute,
                     "seed %" PRIu64 " case %ld: %" PRId64 " units cost %" PRId64
                     ", unit by unit %" PRId64,
                     p.seed, i, q, got, brute);
    }
}

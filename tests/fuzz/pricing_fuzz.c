/* pricing_fuzz: pricing_parse() and pricing_amount() on arbitrary price JSON.
 *
 * A price's pricing members come from the client (POST /v1/prices) and back
 * from the database; pricing_parse() is the one reader of both. Checked: it
 * returns 0 or BILLOW_EPARAM_INVALID; a refusal names a parameter and a
 * sentence, both terminated and UTF-8 (they go into a JSON error); what it
 * accepts has the shape its header promises (a tiered price has 1 to
 * PRICING_TIERS_MAX tiers with strictly ascending up_to, the last one
 * unbounded, no negative amount); and pricing_amount() on it answers every
 * quantity with an amount within money's range or a clear error, never
 * falls as the quantity grows, and charges nothing for nothing.
 */
#include <jansson.h>
#include <stdbool.h>

#include "fuzz.h"
#include "money.h"
#include "pricing.h"

/* True when jansson accepts s as UTF-8 text. */
static bool utf8(const char *s)
{
    json_t *j = json_string(s);
    bool ok = j != NULL;
    json_decref(j);
    return ok;
}

static void check_accepted(const pricing_t *p)
{
    if (p->scheme == PRICING_PER_UNIT) {
        FUZZ_CHECK(p->unit_amount >= 0 && p->unit_amount <= MONEY_AMOUNT_MAX,
                   "accepted unit_amount %lld", (long long)p->unit_amount);
        return;
    }
    FUZZ_CHECK(p->n_tiers >= 1 && p->n_tiers <= PRICING_TIERS_MAX, "accepted %zu tiers",
               p->n_tiers);
    for (size_t i = 0; i < p->n_tiers; i++) {
        FUZZ_CHECK(p->tiers[i].unit_amount >= 0 && p->tiers[i].flat_amount >= 0,
                   "accepted a negative amount in tier %zu", i);
        if (i > 0)
            FUZZ_CHECK(p->tiers[i].up_to > p->tiers[i - 1].up_to,
                       "accepted tiers out of order at %zu", i);
    }
    FUZZ_CHECK(p->tiers[p->n_tiers - 1].up_to == PRICING_UP_TO_INF,
               "accepted a last tier that is bounded");
}

/* The quantities worth asking about: none, one, every tier's edge and the
 * next unit, and the largest allowed. */
static void check_amounts(const pricing_t *p)
{
    int64_t q[2 + 2 * PRICING_TIERS_MAX + 1];
    size_t n = 0;
    q[n++] = 0;
    q[n++] = 1;
    for (size_t i = 0; p->scheme == PRICING_TIERED && i < p->n_tiers; i++) {
        if (p->tiers[i].up_to == PRICING_UP_TO_INF || p->tiers[i].up_to >= PRICING_QUANTITY_MAX)
            continue;
        q[n++] = p->tiers[i].up_to;
        q[n++] = p->tiers[i].up_to + 1;
    }
    q[n++] = PRICING_QUANTITY_MAX;
    int64_t zero = -1;
    FUZZ_CHECK(pricing_amount(p, 0, &zero) == 0 && zero == 0, "charged %lld for nothing",
               (long long)zero);
    for (size_t i = 0; i < n; i++) {
        int64_t a = -1, b = -1;
        int rc = pricing_amount(p, q[i], &a);
        FUZZ_CHECK(rc == 0 || rc == BILLOW_EAMOUNT_TOO_LARGE, "quantity %lld: rc %d",
                   (long long)q[i], rc);
        if (rc != 0)
            continue;
        FUZZ_CHECK(a >= 0 && a <= MONEY_AMOUNT_MAX, "quantity %lld costs %lld", (long long)q[i],
                   (long long)a);
        if (p->scheme == PRICING_PER_UNIT || p->tiers_mode == PRICING_GRADUATED) {
            /* One more unit never costs less (volume pricing may: a
             * bigger tier can be cheaper per unit, by design). */
            if (q[i] < PRICING_QUANTITY_MAX && pricing_amount(p, q[i] + 1, &b) == 0)
                FUZZ_CHECK(b >= a, "quantity %lld costs %lld, one more %lld", (long long)q[i],
                           (long long)a, (long long)b);
        }
    }
    int64_t out;
    FUZZ_CHECK(pricing_amount(p, -1, &out) == BILLOW_EPARAM_INVALID, "accepted quantity -1");
    FUZZ_CHECK(pricing_amount(p, PRICING_QUANTITY_MAX + 1, &out) == BILLOW_EPARAM_INVALID,
               "accepted a quantity over the maximum");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *price = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    if (price == NULL)
        return 0;
    pricing_t p;
    char param[64], why[160];
    memset(param, 'x', sizeof param);
    memset(why, 'x', sizeof why);
    int rc = pricing_parse(price, &p, param, why);
    FUZZ_CHECK(rc == 0 || rc == BILLOW_EPARAM_INVALID, "pricing_parse returned %d", rc);
    if (rc == 0) {
        check_accepted(&p);
        check_amounts(&p);
    } else {
        FUZZ_CHECK(memchr(param, '\0', sizeof param) != NULL, "param not terminated");
        FUZZ_CHECK(memchr(why, '\0', sizeof why) != NULL, "sentence not terminated");
        FUZZ_CHECK(utf8(param) && utf8(why), "param or sentence is not UTF-8");
        FUZZ_CHECK(why[0] != '\0', "a refusal without a sentence");
    }
    json_decref(price);
    return 0;
}

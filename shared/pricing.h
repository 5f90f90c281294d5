/* pricing: what a price charges for a quantity in one period.
 *
 * The models are Stripe's: billing_scheme "per_unit" charges unit_amount ×
 * quantity (a flat fee is a per_unit price sold at quantity 1); "tiered"
 * charges by tiers, either "graduated" (each unit at the price of the tier
 * it falls in, plus the flat amount of every tier reached) or "volume"
 * (every unit at the price of the tier the total quantity falls in, plus
 * that tier's flat amount). Tiers are ordered by up_to; the last one is
 * unbounded.
 *
 * API: pricing_parse() reads the price JSON the API accepts and the
 * database stores (it validates and explains what is wrong), and
 * pricing_amount() computes. Both are pure.
 */
#ifndef BILLOW_PRICING_H
#define BILLOW_PRICING_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Most tiers a price may have: enough for any real volume schedule, and a
 * bound on the work a quantity costs. */
#define PRICING_TIERS_MAX 25

/* up_to of the last, unbounded tier ("inf" in JSON). */
#define PRICING_UP_TO_INF INT64_MAX

/* The largest quantity a subscription item may have. */
#define PRICING_QUANTITY_MAX INT64_C(1000000000)

typedef enum {
    PRICING_PER_UNIT, /* unit_amount × quantity. */
    PRICING_TIERED,   /* By tiers, in tiers_mode. */
} pricing_scheme_t;

typedef enum {
    PRICING_GRADUATED, /* Each unit priced by its own tier; flat amounts of all tiers reached. */
    PRICING_VOLUME,    /* All units priced by the tier of the total; that tier's flat amount. */
} pricing_tiers_mode_t;

typedef struct {
    int64_t up_to;       /* Last quantity in this tier (inclusive), or PRICING_UP_TO_INF. */
    int64_t unit_amount; /* Minor units per unit in this tier (≥ 0). */
    int64_t flat_amount; /* Minor units once when this tier is reached (≥ 0). */
} pricing_tier_t;

typedef struct {
    pricing_scheme_t scheme;                 /* per_unit or tiered. */
    pricing_tiers_mode_t tiers_mode;         /* Tiered only. */
    int64_t unit_amount;                     /* Per unit only (≥ 0). */
    size_t n_tiers;                          /* Tiered only: 1 to PRICING_TIERS_MAX. */
    pricing_tier_t tiers[PRICING_TIERS_MAX]; /* Tiered only: ascending up_to, last unbounded. */
} pricing_t;

/* Reads the pricing members of a price object — "billing_scheme"
 * ("per_unit" when absent), "unit_amount" (per_unit: required integer,
 * 0 ≤ x ≤ MONEY_AMOUNT_MAX), "tiers_mode" and "tiers" (tiered: required;
 * each tier {"up_to": integer ≥ 1 or "inf", "unit_amount": integer ≥ 0,
 * "flat_amount": integer ≥ 0}, at least one of the amounts given,
 * strictly ascending up_to, the last "inf") — into *out. Other members are
 * ignored. Returns 0, or BILLOW_EPARAM_INVALID with the offending member's
 * name in param[64] ("tiers[2].up_to") and a sentence in why[160] (*out
 * then undefined). */
int pricing_parse(const json_t *price, pricing_t *out, char param[64],
                  char why[160]) BILLOW_MUSTCHECK;

/* *out = what p charges for `quantity` (0 to PRICING_QUANTITY_MAX) units.
 * Returns 0, BILLOW_EPARAM_INVALID for a quantity out of range, or
 * BILLOW_EAMOUNT_TOO_LARGE when the amount is out of money's range. */
int pricing_amount(const pricing_t *p, int64_t quantity, int64_t *out) BILLOW_MUSTCHECK;

#endif

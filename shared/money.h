/* money: amounts in integer minor units, and the currencies they are in.
 *
 * Every amount in Billow is an int64_t count of a currency's minor units
 * (cents for usd, yen for jpy, fils for kwd), never a floating-point number.
 * The currency table gives each ISO 4217 code its exponent (minor units per
 * major unit = 10^exponent). Arithmetic is checked: a result beyond
 * MONEY_AMOUNT_MAX in either direction is an error, never a wrapped value.
 *
 * Rounding happens in one place, money_mul_div(), and its callers say which
 * mode they use and why (see docs/billing.md).
 */
#ifndef BILLOW_MONEY_H
#define BILLOW_MONEY_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* The largest amount (in minor units, either sign) any Billow value may
 * hold: 10^15, a trillion dollars in cents. Far beyond any invoice, and
 * small enough that amount × quantity checks stay meaningful and sums of
 * thousands of lines cannot approach INT64_MAX. */
#define MONEY_AMOUNT_MAX INT64_C(1000000000000000)

/* Longest currency code plus its terminator. */
#define MONEY_CODE_MAX 4

/* Longest text money_format() writes, terminator included. */
#define MONEY_FORMAT_MAX 32

typedef struct {
    const char *code; /* Lower-case ISO 4217 code, as the API spells it ("usd"). */
    int exponent;     /* Decimal places of the minor unit: jpy 0, usd 2, kwd 3. */
} money_currency_t;

/* How money_mul_div() rounds an inexact quotient. */
typedef enum {
    MONEY_ROUND_HALF_UP, /* To the nearest; a half goes away from zero (2.5 → 3, −2.5 → −3). */
    MONEY_ROUND_DOWN,    /* Toward zero (2.7 → 2, −2.7 → −2). */
} money_round_t;

/* The currency whose code is `code` (lower or upper case), or NULL when
 * Billow does not know it. The returned entry is static. */
const money_currency_t *money_currency_find(const char *code);

/* The NULL-code-terminated table of every currency Billow knows, in code
 * order (for documentation and tests). */
extern const money_currency_t MONEY_CURRENCIES[];

/* True when |amount| ≤ MONEY_AMOUNT_MAX. */
int money_in_range(int64_t amount);

/* *out = a + b. Returns 0, or BILLOW_EAMOUNT_TOO_LARGE when an operand or
 * the result is out of range (*out untouched). */
int money_add(int64_t a, int64_t b, int64_t *out) BILLOW_MUSTCHECK;

/* *out = a − b, checked like money_add(). */
int money_sub(int64_t a, int64_t b, int64_t *out) BILLOW_MUSTCHECK;

/* *out = amount × factor (a unit amount times a quantity), checked like
 * money_add(). */
int money_mul(int64_t amount, int64_t factor, int64_t *out) BILLOW_MUSTCHECK;

/* *out = amount × num / den rounded by `mode`, computed exactly with a
 * 128-bit intermediate (no overflow before the division). den must be > 0
 * and num ≥ 0. Returns 0, BILLOW_EPARAM_INVALID for den ≤ 0 or num < 0, or
 * BILLOW_EAMOUNT_TOO_LARGE when the result is out of range. */
int money_mul_div(int64_t amount, int64_t num, int64_t den, money_round_t mode,
                  int64_t *out) BILLOW_MUSTCHECK;

/* Billow's amount (minor units by ISO 4217) as Stripe writes it, into
 * *out. Stripe counts most currencies' minor units as ISO does, but not
 * all: it writes isk as a two-decimal currency (100 = 1 króna), and takes
 * amounts in the three-decimal currencies (bhd, jod, kwd, omr, tnd) only
 * when their last digit is 0, for its card networks. Every amount sent to
 * Stripe goes through here. Returns 0; BILLOW_EPARAM_INVALID for a code
 * Billow does not know; BILLOW_ESTRIPE_CURRENCY for a currency Stripe does
 * not take (iqd, lyd); BILLOW_ESTRIPE_AMOUNT for an amount Stripe cannot
 * take (a three-decimal one not ending in 0); BILLOW_EAMOUNT_TOO_LARGE
 * out of range. *out is set only on success. */
int money_to_stripe(const char *currency, int64_t amount, int64_t *out) BILLOW_MUSTCHECK;

/* The adjustment that makes `amount_due` (≥ 0, minor units of `currency`)
 * an amount Stripe can collect, into *rounding: 0 when it is one already
 * (every currency but the three-decimal ones, and zero); in bhd, jod, kwd,
 * omr and tnd, minus its last digit, so that amount_due + *rounding is
 * amount_due rounded down to whole tens of the minor unit: in the
 * customer's favour, by at most 9. Invoices apply it to what they ask for
 * (docs/billing.md, "Rounding to what Stripe can collect"); an amount a
 * caller gives is refused instead (money_to_stripe). Returns 0;
 * BILLOW_EPARAM_INVALID for a code Billow does not know or a negative
 * amount; BILLOW_EAMOUNT_TOO_LARGE out of range. *rounding is set only on
 * success. */
int money_collectable_rounding(const char *currency, int64_t amount_due,
                               int64_t *rounding) BILLOW_MUSTCHECK;

/* Stripe's amount in `currency` as Billow's minor units, into *out: the
 * inverse of money_to_stripe(), for every amount read from Stripe (intents,
 * charges, refunds, disputes, events). Returns 0, or the codes of
 * money_to_stripe(); BILLOW_ESTRIPE_AMOUNT also for an amount with no
 * Billow equivalent (isk with fractions of a króna, from charges made
 * before Stripe refused them). */
int money_from_stripe(const char *currency, int64_t stripe_amount, int64_t *out) BILLOW_MUSTCHECK;

/* Writes amount in major units with the currency's decimals and no
 * grouping ("-12.34" for −1234 usd, "1500" for 1500 jpy, "1.500" for 1500
 * kwd) into out[MONEY_FORMAT_MAX]. For invoices and reports; the API
 * itself always speaks minor units. */
void money_format(int64_t amount, const money_currency_t *currency, char out[MONEY_FORMAT_MAX]);

#endif

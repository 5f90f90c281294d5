/* money: checked integer arithmetic on minor units, and the currency table.
 *
 * Design: amounts are bounded far below INT64_MAX (MONEY_AMOUNT_MAX), so a
 * sum of two valid amounts can never wrap; the compiler's overflow builtins
 * still guard every operation, so the bound is a business rule rather than
 * the only thing standing between a bad input and undefined behaviour.
 * money_mul_div() multiplies in 128 bits, because amount × seconds of a
 * proration (10^15 × 10^8) is far beyond 64 bits before the division brings
 * it back.
 *
 * The currency table is the ISO 4217 exponent of each code Billow sells in,
 * sorted so that a lookup is a binary search. Exponents follow ISO 4217,
 * not any one card network's habits: isk and ugx are zero-decimal, huf and
 * czk two-decimal.
 */
#include "money.h"

#include <stdbool.h>
#include <string.h>

/* Sorted by code (strcmp order), lower case; money_currency_find() relies
 * on the order and the money tests check it. */
const money_currency_t MONEY_CURRENCIES[] = {
    {"aed", 2}, /* UAE dirham. */
    {"ars", 2}, /* Argentine peso. */
    {"aud", 2}, /* Australian dollar. */
    {"bgn", 2}, /* Bulgarian lev. */
    {"bhd", 3}, /* Bahraini dinar. */
    {"bif", 0}, /* Burundian franc. */
    {"brl", 2}, /* Brazilian real. */
    {"cad", 2}, /* Canadian dollar. */
    {"chf", 2}, /* Swiss franc. */
    {"clp", 0}, /* Chilean peso. */
    {"cny", 2}, /* Chinese yuan. */
    {"cop", 2}, /* Colombian peso. */
    {"czk", 2}, /* Czech koruna. */
    {"djf", 0}, /* Djiboutian franc. */
    {"dkk", 2}, /* Danish krone. */
    {"egp", 2}, /* Egyptian pound. */
    {"eur", 2}, /* Euro. */
    {"gbp", 2}, /* Pound sterling. */
    {"gnf", 0}, /* Guinean franc. */
    {"hkd", 2}, /* Hong Kong dollar. */
    {"huf", 2}, /* Hungarian forint. */
    {"idr", 2}, /* Indonesian rupiah. */
    {"ils", 2}, /* Israeli new shekel. */
    {"inr", 2}, /* Indian rupee. */
    {"iqd", 3}, /* Iraqi dinar. */
    {"isk", 0}, /* Icelandic króna. */
    {"jod", 3}, /* Jordanian dinar. */
    {"jpy", 0}, /* Japanese yen. */
    {"kes", 2}, /* Kenyan shilling. */
    {"kmf", 0}, /* Comorian franc. */
    {"krw", 0}, /* South Korean won. */
    {"kwd", 3}, /* Kuwaiti dinar. */
    {"lyd", 3}, /* Libyan dinar. */
    {"mxn", 2}, /* Mexican peso. */
    {"myr", 2}, /* Malaysian ringgit. */
    {"ngn", 2}, /* Nigerian naira. */
    {"nok", 2}, /* Norwegian krone. */
    {"nzd", 2}, /* New Zealand dollar. */
    {"omr", 3}, /* Omani rial. */
    {"php", 2}, /* Philippine peso. */
    {"pkr", 2}, /* Pakistani rupee. */
    {"pln", 2}, /* Polish złoty. */
    {"pyg", 0}, /* Paraguayan guaraní. */
    {"ron", 2}, /* Romanian leu. */
    {"rwf", 0}, /* Rwandan franc. */
    {"sar", 2}, /* Saudi riyal. */
    {"sek", 2}, /* Swedish krona. */
    {"sgd", 2}, /* Singapore dollar. */
    {"thb", 2}, /* Thai baht. */
    {"tnd", 3}, /* Tunisian dinar. */
    {"try", 2}, /* Turkish lira. */
    {"twd", 2}, /* New Taiwan dollar. */
    {"uah", 2}, /* Ukrainian hryvnia. */
    {"ugx", 0}, /* Ugandan shilling. */
    {"usd", 2}, /* United States dollar. */
    {"vnd", 0}, /* Vietnamese đồng. */
    {"vuv", 0}, /* Vanuatu vatu. */
    {"xaf", 0}, /* Central African CFA franc. */
    {"xof", 0}, /* West African CFA franc. */
    {"xpf", 0}, /* CFP franc. */
    {"zar", 2}, /* South African rand. */
    {NULL, 0},
};

/* Where Stripe writes a currency's amounts other than as ISO 4217 minor
 * units (https://docs.stripe.com/currencies, "Special cases" and
 * "Three-decimal currencies"); every currency of MONEY_CURRENCIES not
 * listed is written as Billow writes it. Sorted by code. */
typedef struct {
    const char *code; /* Lower-case ISO code. */
    bool supported;   /* Stripe takes payments in it at all. */
    int64_t factor;   /* Stripe's amount = Billow's × factor. */
    int64_t step;     /* Billow's amount must be a multiple of this. */
} stripe_rule_t;

static const stripe_rule_t STRIPE_RULES[] = {
    {"bhd", true, 1, 10},  /* Three decimals; the last must be 0. */
    {"iqd", false, 0, 0},  /* Not one of Stripe's presentment currencies. */
    {"isk", true, 100, 1}, /* Zero-decimal by ISO, two-decimal to Stripe. */
    {"jod", true, 1, 10},  /* Three decimals; the last must be 0. */
    {"kwd", true, 1, 10},  /* Three decimals; the last must be 0. */
    {"lyd", false, 0, 0},  /* Not one of Stripe's presentment currencies. */
    {"omr", true, 1, 10},  /* Three decimals; the last must be 0. */
    {"tnd", true, 1, 10},  /* Three decimals; the last must be 0. */
};

/* The rule for a known currency code (lower case). */
static stripe_rule_t stripe_rule(const char *code)
{
    for (size_t i = 0; i < sizeof STRIPE_RULES / sizeof STRIPE_RULES[0]; i++)
        if (strcmp(STRIPE_RULES[i].code, code) == 0)
            return STRIPE_RULES[i];
    return (stripe_rule_t){code, true, 1, 1};
}

/* GCC's and Clang's 128-bit integer; __extension__ tells -Wpedantic that
 * leaving ISO C here is deliberate. */
__extension__ typedef __int128 int128_t;

/* Entries before the terminator. */
#define CURRENCY_COUNT (sizeof(MONEY_CURRENCIES) / sizeof(MONEY_CURRENCIES[0]) - 1)

/* The largest exponent money_format() honours: with it the text is at
 * most a sign, 20 digits and a point, within MONEY_FORMAT_MAX, and no real
 * currency comes near it. */
#define FORMAT_MAX_EXPONENT 18

const money_currency_t *money_currency_find(const char *code)
{
    if (code == NULL)
        return NULL;
    /* Every ISO 4217 code is exactly three letters; anything else cannot be
     * one, and rejecting it here keeps the copy below bounded. */
    char lower[MONEY_CODE_MAX];
    for (size_t i = 0; i < MONEY_CODE_MAX - 1; i++) {
        char c = code[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c < 'a' || c > 'z')
            return NULL;
        lower[i] = c;
    }
    if (code[MONEY_CODE_MAX - 1] != '\0')
        return NULL;
    lower[MONEY_CODE_MAX - 1] = '\0';

    size_t lo = 0, hi = CURRENCY_COUNT;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = strcmp(lower, MONEY_CURRENCIES[mid].code);
        if (cmp == 0)
            return &MONEY_CURRENCIES[mid];
        if (cmp < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

int money_in_range(int64_t amount)
{
    return amount >= -MONEY_AMOUNT_MAX && amount <= MONEY_AMOUNT_MAX;
}

int money_add(int64_t a, int64_t b, int64_t *out)
{
    int64_t r;
    if (!money_in_range(a) || !money_in_range(b) || __builtin_add_overflow(a, b, &r) ||
        !money_in_range(r))
        return BILLOW_EAMOUNT_TOO_LARGE;
    *out = r;
    return 0;
}

int money_sub(int64_t a, int64_t b, int64_t *out)
{
    int64_t r;
    if (!money_in_range(a) || !money_in_range(b) || __builtin_sub_overflow(a, b, &r) ||
        !money_in_range(r))
        return BILLOW_EAMOUNT_TOO_LARGE;
    *out = r;
    return 0;
}

int money_mul(int64_t amount, int64_t factor, int64_t *out)
{
    int64_t r;
    if (!money_in_range(amount) || !money_in_range(factor) ||
        __builtin_mul_overflow(amount, factor, &r) || !money_in_range(r))
        return BILLOW_EAMOUNT_TOO_LARGE;
    *out = r;
    return 0;
}

int money_mul_div(int64_t amount, int64_t num, int64_t den, money_round_t mode, int64_t *out)
{
    if (den <= 0 || num < 0)
        return BILLOW_EPARAM_INVALID;
    if (!money_in_range(amount))
        return BILLOW_EAMOUNT_TOO_LARGE;
    /* |amount × num| < 10^15 × 2^63 < 2^113: exact in 128 bits. */
    int128_t product = (int128_t)amount * num;
    int128_t q = product / den; /* C truncates toward zero. */
    int128_t r = product % den; /* Same sign as product. */
    if (mode == MONEY_ROUND_HALF_UP) {
        /* Compare the magnitude of the remainder with half the divisor
         * without dividing (2|r| < 2·den fits easily): a half or more moves
         * the quotient one unit away from zero, for either sign alike. */
        int128_t twice = r < 0 ? -2 * r : 2 * r;
        if (twice >= den)
            q += product < 0 ? -1 : 1;
    }
    if (q < -MONEY_AMOUNT_MAX || q > MONEY_AMOUNT_MAX)
        return BILLOW_EAMOUNT_TOO_LARGE;
    *out = (int64_t)q;
    return 0;
}

void money_format(int64_t amount, const money_currency_t *currency, char out[MONEY_FORMAT_MAX])
{
    int exponent = currency->exponent;
    if (exponent < 0)
        exponent = 0;
    if (exponent > FORMAT_MAX_EXPONENT)
        exponent = FORMAT_MAX_EXPONENT;
    /* The magnitude as unsigned, so that even INT64_MIN formats. */
    uint64_t magnitude = amount < 0 ? (uint64_t)0 - (uint64_t)amount : (uint64_t)amount;

    /* Digits from the least significant up, the point after `exponent` of
     * them, and at least one digit before the point: at most 20 digits, a
     * point and a sign, well within MONEY_FORMAT_MAX. */
    char reversed[MONEY_FORMAT_MAX];
    size_t n = 0;
    for (int i = 0;; i++) {
        if (i == exponent && exponent > 0)
            reversed[n++] = '.';
        reversed[n++] = (char)('0' + magnitude % 10);
        magnitude /= 10;
        if (magnitude == 0 && i >= exponent)
            break;
    }
    size_t len = 0;
    if (amount < 0)
        out[len++] = '-';
    while (n > 0)
        out[len++] = reversed[--n];
    out[len] = '\0';
}

/* The Stripe rule of currency into *rule: 0, or BILLOW_EPARAM_INVALID for a
 * code Billow does not know, BILLOW_ESTRIPE_CURRENCY for one Stripe does not
 * take. */
static int stripe_rule_of(const char *currency, stripe_rule_t *rule)
{
    const money_currency_t *c = money_currency_find(currency);
    if (c == NULL)
        return BILLOW_EPARAM_INVALID;
    *rule = stripe_rule(c->code);
    return rule->supported ? 0 : BILLOW_ESTRIPE_CURRENCY;
}

int money_to_stripe(const char *currency, int64_t amount, int64_t *out)
{
    stripe_rule_t rule;
    int rc = stripe_rule_of(currency, &rule);
    if (rc != 0)
        return rc;
    if (!money_in_range(amount))
        return BILLOW_EAMOUNT_TOO_LARGE;
    /* Refused rather than rounded: charging another amount than the
     * invoice's is not Billow's to decide. */
    if (amount % rule.step != 0)
        return BILLOW_ESTRIPE_AMOUNT;
    int64_t r;
    if (__builtin_mul_overflow(amount, rule.factor, &r))
        return BILLOW_EAMOUNT_TOO_LARGE;
    *out = r;
    return 0;
}

int money_from_stripe(const char *currency, int64_t stripe_amount, int64_t *out)
{
    stripe_rule_t rule;
    int rc = stripe_rule_of(currency, &rule);
    if (rc != 0)
        return rc;
    if (stripe_amount % rule.factor != 0)
        return BILLOW_ESTRIPE_AMOUNT;
    int64_t r = stripe_amount / rule.factor;
    if (!money_in_range(r))
        return BILLOW_EAMOUNT_TOO_LARGE;
    *out = r;
    return 0;
}

int money_collectable_rounding(const char *currency, int64_t amount_due, int64_t *rounding)
{
    const money_currency_t *c = money_currency_find(currency);
    if (c == NULL || amount_due < 0)
        return BILLOW_EPARAM_INVALID;
    if (!money_in_range(amount_due))
        return BILLOW_EAMOUNT_TOO_LARGE;
    /* Down, never to the nearest: Billow may forgive a few fils of what
     * it computed, but never ask for more than that. A currency Stripe
     * does not take at all (step 0) has nothing to round to; its charge
     * is refused for the currency. */
    stripe_rule_t rule = stripe_rule(c->code);
    *rounding = rule.step > 1 ? -(amount_due % rule.step) : 0;
    return 0;
}

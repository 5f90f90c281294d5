/* payments_validate: the pure checks behind the payment routes (see
 * payments_validate.h).
 *
 * Design: a body is checked member by member in a fixed order (unknown
 * members first, then required ones, then each value), and the first
 * problem is the answer, so a client fixing one error at a time converges.
 * The payloads are built fresh, never copied from the body, so a member the
 * rules did not look at cannot ride into a job.
 */
#include "payments_validate.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "body.h"
#include "dunning.h"
#include "mem.h"
#include "money.h"

static const char *const payment_keys[] = {"customer",    "amount",   "currency",
                                           "description", "metadata", NULL};
static const char *const refund_keys[] = {"amount", "reason", "metadata", NULL};
static const char *const refund_reasons[] = {"duplicate", "fraudulent", "requested_by_customer",
                                             NULL};
static const char *const setup_intent_keys[] = {"metadata", NULL};
static const char *const stripe_settings_keys[] = {"secret_key", "webhook_secrets", NULL};
static const char *const dunning_keys[] = {"retry_days", "end_action", "notify", NULL};

/* The prefixes of the Stripe keys Billow takes, and whether each is live.
 * Publishable keys (pk_) cannot charge; a restricted key must say its mode
 * in its prefix as Stripe's do, since Billow checks it against the
 * tenant's. */
static const struct {
    const char *prefix;
    bool livemode;
} key_prefixes[] = {
    {"sk_test_", false},
    {"sk_live_", true},
    {"rk_test_", false},
    {"rk_live_", true},
};

/* Reads the optional metadata member of body into a new reference ({}
 * when absent). Returns 0 or the error. */
static int metadata_of(const json_t *body, json_t **out, validate_error_t *e)
{
    const json_t *md = json_object_get(body, "metadata");
    if (md != NULL && validate_metadata("metadata", md, e) != 0)
        return e->code;
    *out = md ? json_deep_copy(md) : json_object();
    return 0;
}

int payments_validate_payment(const json_t *body, json_t **payload, validate_error_t *e)
{
    const char *customer = NULL, *description = NULL;
    const money_currency_t *known;
    int64_t amount = 0;
    bool has_amount = false;
    json_t *metadata = NULL;
    int rc;

    if ((rc = validate_known_keys(body, payment_keys, e)) != 0 ||
        (rc = body_id(body, "customer", "customer", "cus", true, &customer, e)) != 0 ||
        (rc = body_int(body, "amount", "amount", 1, MONEY_AMOUNT_MAX, &amount, &has_amount, e)) !=
            0)
        return rc;
    if (!has_amount)
        return validate_fail(e, BILLOW_EPARAM_MISSING, "amount",
                             "amount is required: a positive integer in the currency's minor "
                             "units (cents for usd).");
    if ((rc = body_currency(body, "currency", true, &known, e)) != 0 ||
        (rc = payments_validate_stripe_amount("amount", known->code, amount, e)) != 0 ||
        (rc = validate_string_member(body, "description", false, PAYMENTS_DESCRIPTION_MAX,
                                     &description, e)) != 0 ||
        (description &&
         (rc = validate_text("description", description, PAYMENTS_DESCRIPTION_MAX, e)) != 0) ||
        (rc = metadata_of(body, &metadata, e)) != 0)
        return rc;
    *payload =
        json_pack("{s:s,s:I,s:s,s:o,s:o}", "customer", customer, "amount", (json_int_t)amount,
                  "currency", known->code, "description",
                  description ? json_string(description) : json_null(), "metadata", metadata);
    return 0;
}

int payments_validate_stripe_amount(const char *param, const char *currency, int64_t amount,
                                    validate_error_t *e)
{
    int64_t stripe_amount, rounding;
    switch (money_to_stripe(currency, amount, &stripe_amount)) {
    case 0:
        return 0;
    case BILLOW_ESTRIPE_CURRENCY:
        return validate_fail(e, BILLOW_ESTRIPE_CURRENCY, "currency",
                             "Stripe does not take payments in %s. Nothing was sent to Stripe.",
                             currency);
    case BILLOW_ESTRIPE_AMOUNT:
        /* The amounts either side that Stripe takes, for the caller to
         * choose from: Billow does not choose for them. */
        if (money_collectable_rounding(currency, amount, &rounding) != 0)
            break;
        if (amount + rounding == 0)
            return validate_fail(e, BILLOW_ESTRIPE_AMOUNT, param,
                                 "Stripe takes %s amounts only in whole tens of the minor unit "
                                 "(the last of the three decimals 0, for its card networks); "
                                 "%s %" PRId64 " is not one: the least it takes is 10.",
                                 currency, param, amount);
        return validate_fail(e, BILLOW_ESTRIPE_AMOUNT, param,
                             "Stripe takes %s amounts only in whole tens of the minor unit (the "
                             "last of the three decimals 0, for its card networks); %s %" PRId64
                             " is not one: send %" PRId64 " or %" PRId64 ".",
                             currency, param, amount, amount + rounding, amount + rounding + 10);
    default:
        break;
    }
    return validate_fail(e, BILLOW_EPARAM_INVALID, param,
                         "%s %" PRId64 " cannot be sent to Stripe.", param, amount);
}

int payments_validate_refund(const json_t *body, json_t **payload, validate_error_t *e)
{
    const char *reason = NULL;
    int64_t amount = 0;
    bool has_amount = false;
    json_t *metadata = NULL;
    int rc;

    if ((rc = validate_known_keys(body, refund_keys, e)) != 0 ||
        (rc = body_int(body, "amount", "amount", 1, MONEY_AMOUNT_MAX, &amount, &has_amount, e)) !=
            0 ||
        (rc = body_enum(body, "reason", "reason", refund_reasons, &reason, e)) != 0 ||
        (rc = metadata_of(body, &metadata, e)) != 0)
        return rc;
    json_t *out = json_pack("{s:o}", "metadata", metadata);
    if (has_amount)
        json_object_set_new(out, "amount", json_integer((json_int_t)amount));
    if (reason)
        json_object_set_new(out, "reason", json_string(reason));
    *payload = out;
    return 0;
}

int payments_validate_setup_intent(const json_t *body, json_t **payload, validate_error_t *e)
{
    json_t *metadata = NULL;
    int rc;
    if ((rc = validate_known_keys(body, setup_intent_keys, e)) != 0 ||
        (rc = metadata_of(body, &metadata, e)) != 0)
        return rc;
    *payload = json_pack("{s:o}", "metadata", metadata);
    return 0;
}

/* True when s is PAYMENTS_SECRET_MIN..PAYMENTS_SECRET_MAX visible ASCII
 * characters: a secret goes into an Authorization header and an HMAC key,
 * where a space or a control character can only be a paste gone wrong. */
static bool secret_shape_ok(const char *s, size_t len)
{
    if (len < PAYMENTS_SECRET_MIN || len > PAYMENTS_SECRET_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] < 0x21 || s[i] > 0x7e)
            return false;
    return true;
}

int payments_validate_secret_key(const json_t *v, bool *livemode, validate_error_t *e)
{
    const char *s = json_string_value(v);
    if (s != NULL && secret_shape_ok(s, json_string_length(v))) {
        for (size_t i = 0; i < sizeof key_prefixes / sizeof key_prefixes[0]; i++) {
            if (strncmp(s, key_prefixes[i].prefix, strlen(key_prefixes[i].prefix)) == 0) {
                *livemode = key_prefixes[i].livemode;
                return 0;
            }
        }
    }
    return validate_fail(e, BILLOW_EPARAM_INVALID, "secret_key",
                         "secret_key must be a Stripe secret or restricted key (sk_test_…, "
                         "sk_live_…, rk_test_… or rk_live_…) of %d to %d characters without "
                         "spaces.",
                         PAYMENTS_SECRET_MIN, PAYMENTS_SECRET_MAX);
}

int payments_validate_webhook_secret(const char *param, const json_t *v, validate_error_t *e)
{
    const char *s = json_string_value(v);
    if (s != NULL && secret_shape_ok(s, json_string_length(v)) && strncmp(s, "whsec_", 6) == 0)
        return 0;
    return validate_fail(e, BILLOW_EPARAM_INVALID, param,
                         "%s must be a Stripe webhook signing secret (whsec_…) of %d to %d "
                         "characters without spaces.",
                         param, PAYMENTS_SECRET_MIN, PAYMENTS_SECRET_MAX);
}

void payments_validate_hint(const char *secret, char out[PAYMENTS_HINT_MAX])
{
    size_t len = strlen(secret);
    if (len < PAYMENTS_SECRET_MIN) {
        snprintf(out, PAYMENTS_HINT_MAX, "%.*s…", PAYMENTS_HINT_HEAD, secret);
        return;
    }
    snprintf(out, PAYMENTS_HINT_MAX, "%.*s…%s", PAYMENTS_HINT_HEAD, secret,
             secret + len - PAYMENTS_HINT_TAIL);
}

/* {sealed, hint} of secret, sealed under key with context. */
static json_t *sealed_secret(const seal_key_t *key, const char *context, const char *secret)
{
    char hint[PAYMENTS_HINT_MAX];
    char *sealed = seal_encrypt(key, context, secret, strlen(secret));
    /* Secrets are at most PAYMENTS_SECRET_MAX bytes, far below
     * SEAL_PLAIN_MAX, so sealing cannot refuse one. */
    if (sealed == NULL)
        abort();
    payments_validate_hint(secret, hint);
    json_t *out = json_pack("{s:s,s:s}", "sealed", sealed, "hint", hint);
    free(sealed);
    return out;
}

/* Checks the webhook_secrets member v and seals each into *out (caller
 * frees; set only on success). */
static int webhook_secrets(const json_t *v, const seal_key_t *key, json_t **out,
                           validate_error_t *e)
{
    size_t n = json_array_size(v);
    if (!json_is_array(v) || n < 1 || n > PAYMENTS_WEBHOOK_SECRETS_MAX)
        return validate_fail(e, BILLOW_EPARAM_INVALID, "webhook_secrets",
                             "webhook_secrets must be an array of 1 to %d webhook signing "
                             "secrets (whsec_…), the newest first.",
                             PAYMENTS_WEBHOOK_SECRETS_MAX);
    for (size_t i = 0; i < n; i++) {
        char param[32];
        const json_t *s = json_array_get(v, i);
        snprintf(param, sizeof param, "webhook_secrets[%zu]", i);
        int rc = payments_validate_webhook_secret(param, s, e);
        if (rc != 0)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (json_equal(json_array_get(v, j), s))
                return validate_fail(e, BILLOW_EPARAM_INVALID, param,
                                     "%s is the same secret as webhook_secrets[%zu].", param, j);
    }
    json_t *sealed = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(sealed, sealed_secret(key, PAYMENTS_SEAL_WEBHOOK_SECRET,
                                                    json_string_value(json_array_get(v, i))));
    *out = sealed;
    return 0;
}

int payments_validate_stripe_settings(const json_t *body, bool tenant_livemode,
                                      const seal_key_t *key, json_t **payload, validate_error_t *e)
{
    const json_t *secret_key = json_object_get(body, "secret_key");
    const json_t *secrets = json_object_get(body, "webhook_secrets");
    json_t *sealed_secrets = NULL;
    bool livemode = false;
    int rc;

    if ((rc = validate_known_keys(body, stripe_settings_keys, e)) != 0)
        return rc;
    if (secret_key == NULL && secrets == NULL)
        return validate_fail(e, BILLOW_EPARAM_MISSING, NULL,
                             "Send secret_key, webhook_secrets or both.");
    if (secret_key != NULL) {
        if ((rc = payments_validate_secret_key(secret_key, &livemode, e)) != 0)
            return rc;
        if (livemode != tenant_livemode)
            return validate_fail(e, BILLOW_ESTRIPE_KEY_MODE, "secret_key",
                                 "This is a %s key and the tenant is in %s mode: use the key of "
                                 "the tenant's mode.",
                                 livemode ? "live" : "test", tenant_livemode ? "live" : "test");
    }
    if (secrets != NULL && (rc = webhook_secrets(secrets, key, &sealed_secrets, e)) != 0)
        return rc;
    json_t *out = json_object();
    if (secret_key != NULL) {
        json_t *sk = sealed_secret(key, PAYMENTS_SEAL_SECRET_KEY, json_string_value(secret_key));
        json_object_set_new(sk, "livemode", json_boolean(livemode));
        json_object_set_new(out, "secret_key", sk);
    }
    if (sealed_secrets != NULL)
        json_object_set_new(out, "webhook_secrets", sealed_secrets);
    *payload = out;
    return 0;
}

int payments_validate_dunning(const json_t *body, json_t **payload, validate_error_t *e)
{
    const json_t *notify = json_object_get(body, "notify");
    dunning_policy_t policy;
    char param[DUNNING_PARAM_MAX];
    char why[sizeof e->message];
    int rc;

    if ((rc = validate_known_keys(body, dunning_keys, e)) != 0)
        return rc;
    if (json_object_size(body) == 0)
        return validate_fail(e, BILLOW_EPARAM_MISSING, NULL,
                             "Send at least one of retry_days, end_action or notify.");
    /* dunning.c refuses an unknown notify member as "notify"; the API
     * names the member itself, as it does for the body's. */
    if (json_is_object(notify)) {
        const char *k;
        const json_t *v;
        json_object_foreach((json_t *)notify, k, v)
        {
            bool known = false;
            for (int i = 0; i < DUNNING_NOTIFY_COUNT_ && !known; i++)
                known = strcmp(k, dunning_notify_name((dunning_notify_t)i)) == 0;
            if (!known) {
                char unknown[sizeof e->param];
                snprintf(unknown, sizeof unknown, "notify.%s", k);
                return validate_fail(e, BILLOW_EPARAM_UNKNOWN, unknown,
                                     "Received unknown parameter: %s.", unknown);
            }
        }
    }
    dunning_policy_default(&policy);
    if (dunning_policy_read(body, &policy, param, why, sizeof why) != 0)
        return validate_fail(e, BILLOW_EPARAM_INVALID, param, "%s", why);
    *payload = json_deep_copy(body);
    return 0;
}

bool payments_validate_stripe_customer(const char *s)
{
    size_t len = strlen(s);
    if (strncmp(s, "cus_", 4) != 0 || len < 5 || len > 4 + PAYMENTS_STRIPE_CUSTOMER_MAX)
        return false;
    for (size_t i = 4; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
            return false;
    }
    return true;
}

/* ^evt_[A-Za-z0-9_]{1,PAYMENTS_EVENT_ID_MAX}$ */
static bool event_id_ok(const char *s, size_t len)
{
    if (len < 5 || len > 4 + PAYMENTS_EVENT_ID_MAX || strncmp(s, "evt_", 4) != 0)
        return false;
    for (size_t i = 4; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

/* 1..PAYMENTS_EVENT_TYPE_MAX visible ASCII characters. */
static bool event_type_ok(const char *s, size_t len)
{
    if (len < 1 || len > PAYMENTS_EVENT_TYPE_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] < 0x21 || s[i] > 0x7e)
            return false;
    return true;
}

/* Latest `created` that fits the 48-bit millisecond time of an id. */
#define EVENT_CREATED_MAX (INT64_C(0xFFFFFFFFFFFF) / 1000)

int payments_validate_event(const char *body, size_t len, json_t **event, validate_error_t *e)
{
    json_error_t jerr;
    json_t *ev = len ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    if (ev == NULL) {
        if (len == 0)
            return validate_fail(e, BILLOW_EINVALID_JSON, NULL,
                                 "The body is empty; a Stripe event is a JSON object.");
        /* Say where, and what, only: the same rule as the router's. */
        char *near = strstr(jerr.text, " near '");
        if (near)
            *near = '\0';
        return validate_fail(e, BILLOW_EINVALID_JSON, NULL,
                             "Invalid JSON at line %d column %d (position %d): %s.", jerr.line,
                             jerr.column, jerr.position, jerr.text);
    }
    const json_t *id = json_object_get(ev, "id");
    const json_t *type = json_object_get(ev, "type");
    int rc = 0;
    if (!json_is_object(ev))
        rc = validate_fail(e, BILLOW_EINVALID_JSON, NULL, "A Stripe event is a JSON object.");
    else if (!json_is_string(id) || !event_id_ok(json_string_value(id), json_string_length(id)))
        rc = validate_fail(e, BILLOW_EEVENT_INVALID, "id",
                           "The event's id must be a string: \"evt_\" then 1 to %d letters, "
                           "digits or \"_\".",
                           PAYMENTS_EVENT_ID_MAX);
    else if (!json_is_string(type) ||
             !event_type_ok(json_string_value(type), json_string_length(type)))
        rc = validate_fail(e, BILLOW_EEVENT_INVALID, "type",
                           "The event's type must be a string of 1 to %d characters without "
                           "spaces (\"payment_intent.succeeded\").",
                           PAYMENTS_EVENT_TYPE_MAX);
    /* The webhook worker orders events by `created` and applies
     * data.object: an event without them could only die there. */
    const json_t *created = json_object_get(ev, "created");
    if (rc == 0 && (!json_is_integer(created) || json_integer_value(created) < 0 ||
                    json_integer_value(created) > EVENT_CREATED_MAX))
        rc = validate_fail(e, BILLOW_EEVENT_INVALID, "created",
                           "The event's created must be a time in whole seconds since 1970.");
    if (rc == 0 && !json_is_object(json_object_get(json_object_get(ev, "data"), "object")))
        rc = validate_fail(e, BILLOW_EEVENT_INVALID, "data.object",
                           "The event's data.object must be the object it tells of.");
    if (rc != 0) {
        json_decref(ev);
        return rc;
    }
    *event = ev;
    return 0;
}

void payments_validate_event_job_id(const char *tenant_id, const json_t *event, char out[IDS_MAX])
{
    const json_t *created = json_object_get(event, "created");
    json_int_t t = json_is_integer(created) ? json_integer_value(created) : 0;
    if (t < 0 || t > EVENT_CREATED_MAX)
        t = 0;
    char *key = mem_printf("stripe.event|%s|%s", tenant_id,
                           json_string_value(json_object_get(event, "id")));
    ids_derive("job", (uint64_t)t * 1000, key, out);
    free(key);
}

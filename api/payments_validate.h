/* payments_validate: the pure checks behind the payment routes.
 *
 * Each function reads one request body (or one value of it) and either
 * fills a validate_error_t naming the parameter and the rule, or builds the
 * normalised payload of the job the route submits: a one-off payment, a
 * refund, a setup intent, the tenant's Stripe settings (secrets sealed,
 * with hints for people) and its dunning policy. The routes only add what
 * needs the database or the request (ids, existence checks) and submit.
 * A Stripe webhook's event is read here too, with the id of the job it
 * becomes, derived so that a redelivery is the same job.
 *
 * Design: nothing here touches the loop, Postgres or Redis, so every rule
 * is unit-tested (tests/unit/payments_validate_test.c). The dunning policy's
 * own rules live in shared/dunning.c, which the workers apply too; this
 * module adds only what an API request needs on top (unknown members named
 * exactly, at least one member).
 */
#ifndef BILLOW_PAYMENTS_VALIDATE_H
#define BILLOW_PAYMENTS_VALIDATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ids.h"
#include "seal.h"
#include "validate.h"

/* Longest description of a one-off payment: what a receipt line and
 * Stripe's own description field hold, not a document. */
#define PAYMENTS_DESCRIPTION_MAX 500
/* Shortest and longest Stripe secret (secret key or webhook signing
 * secret) accepted: real ones are a few dozen to about a hundred
 * characters; the bounds refuse a truncated paste and keep a pasted
 * document out of the database. */
#define PAYMENTS_SECRET_MIN 10
#define PAYMENTS_SECRET_MAX 255
/* Most webhook signing secrets kept at once: Stripe rolls a secret with a
 * grace period, so two or three at a time cover a rotation; each one more
 * is one more HMAC per delivery. */
#define PAYMENTS_WEBHOOK_SECRETS_MAX 3
/* Longest part after "cus_" of a Stripe customer id (the database's
 * check), so a stored reference to one stays small. */
#define PAYMENTS_STRIPE_CUSTOMER_MAX 250
/* Longest Stripe event type ("payment_intent.payment_failed" is 29). */
#define PAYMENTS_EVENT_TYPE_MAX 64
/* Longest part after "evt_" of a Stripe event id (the database's check). */
#define PAYMENTS_EVENT_ID_MAX 250
/* A hint: the first 8 characters, "…" (3 bytes of UTF-8), the last 4. */
#define PAYMENTS_HINT_HEAD 8
#define PAYMENTS_HINT_TAIL 4
#define PAYMENTS_HINT_MAX  (PAYMENTS_HINT_HEAD + 3 + PAYMENTS_HINT_TAIL + 1)

/* The seal contexts of the tenant's Stripe secrets: a value sealed as one
 * cannot be opened as the other (or as any other secret of Billow's). */
#define PAYMENTS_SEAL_SECRET_KEY     "stripe_secret_key"
#define PAYMENTS_SEAL_WEBHOOK_SECRET "stripe_webhook_secret"

/* POST /v1/payments: body {customer, amount, currency, description?,
 * metadata?}, the amount one Stripe takes in the currency
 * (payments_validate_stripe_amount). On success *payload (caller frees;
 * set only then) is
 * {customer, amount, currency (lower-case), description (or null),
 * metadata (or {})}. Returns 0 or the validation error. */
int payments_validate_payment(const json_t *body, json_t **payload,
                              validate_error_t *e) BILLOW_MUSTCHECK;

/* An amount a caller gives directly (a one-time payment's, a refund's) in
 * `currency` (lower case, one Billow knows), checked against what Stripe
 * takes there: in bhd, jod, kwd, omr and tnd only amounts whose last digit
 * is 0 (BILLOW_ESTRIPE_AMOUNT naming `param`, the rule and the nearest
 * amounts Stripe takes); nothing in iqd or lyd (BILLOW_ESTRIPE_CURRENCY,
 * param "currency"). Such an amount is refused, never rounded: it is the
 * caller's. Returns 0 or the error. */
int payments_validate_stripe_amount(const char *param, const char *currency, int64_t amount,
                                    validate_error_t *e) BILLOW_MUSTCHECK;

/* POST /v1/payments/{id}/refunds: body {amount?, reason?, metadata?}. On
 * success *payload (caller frees) is {amount? , reason?, metadata (or
 * {})}, amount and reason only when given. Returns 0 or the error. */
int payments_validate_refund(const json_t *body, json_t **payload,
                             validate_error_t *e) BILLOW_MUSTCHECK;

/* POST /v1/customers/{id}/setup_intents: body {metadata?}. On success
 * *payload (caller frees) is {metadata (or {})}. Returns 0 or the error. */
int payments_validate_setup_intent(const json_t *body, json_t **payload,
                                   validate_error_t *e) BILLOW_MUSTCHECK;

/* A Stripe secret key as POST /v1/settings/stripe takes it: sk_test_,
 * sk_live_, rk_test_ or rk_live_ then the rest, PAYMENTS_SECRET_MIN to
 * PAYMENTS_SECRET_MAX visible ASCII characters in all (no spaces). Sets
 * *livemode (a live key) on success. Returns 0 or the error, naming param
 * "secret_key". */
int payments_validate_secret_key(const json_t *v, bool *livemode,
                                 validate_error_t *e) BILLOW_MUSTCHECK;

/* A webhook signing secret: "whsec_" then the rest, within the same
 * bounds. param names it in the error ("webhook_secrets[0]"). */
int payments_validate_webhook_secret(const char *param, const json_t *v,
                                     validate_error_t *e) BILLOW_MUSTCHECK;

/* Writes the hint of secret for people into out: its first
 * PAYMENTS_HINT_HEAD characters, "…" and its last PAYMENTS_HINT_TAIL
 * ("sk_test_…4242"). secret is a validated secret (ASCII, at least
 * PAYMENTS_SECRET_MIN characters); a shorter one gives its head only. */
void payments_validate_hint(const char *secret, char out[PAYMENTS_HINT_MAX]);

/* POST /v1/settings/stripe: body {secret_key?, webhook_secrets?}, at least
 * one. The key's mode must be the tenant's (tenant_livemode), else
 * BILLOW_ESTRIPE_KEY_MODE. On success *payload (caller frees) holds no
 * secret in clear: {secret_key?: {sealed, hint, livemode}, webhook_secrets?:
 * [{sealed, hint}, …]}, each secret sealed under key with its context
 * (PAYMENTS_SEAL_*), in the order given (the first is the newest).
 * Returns 0 or the error. */
int payments_validate_stripe_settings(const json_t *body, bool tenant_livemode,
                                      const seal_key_t *key, json_t **payload,
                                      validate_error_t *e) BILLOW_MUSTCHECK;

/* POST /v1/settings/dunning: body {retry_days?, end_action?, notify?}, at
 * least one, by shared/dunning.c's rules. On success *payload (caller
 * frees) holds the members given, as given (they are valid).
 * Returns 0 or the error. */
int payments_validate_dunning(const json_t *body, json_t **payload,
                              validate_error_t *e) BILLOW_MUSTCHECK;

/* True when s is a Stripe customer id: "cus_" then 1 to
 * PAYMENTS_STRIPE_CUSTOMER_MAX letters or digits. */
bool payments_validate_stripe_customer(const char *s);

/* Parses a webhook delivery's body (len bytes, already verified) as a
 * Stripe event: a JSON object with a string id ("evt_" then 1 to
 * PAYMENTS_EVENT_ID_MAX letters, digits or "_") and a string type (1 to
 * PAYMENTS_EVENT_TYPE_MAX visible ASCII characters). On success *event
 * (caller decrefs) is the parsed object. Returns 0, BILLOW_EINVALID_JSON
 * (not JSON, or not an object) or BILLOW_EEVENT_INVALID (param "id" or
 * "type"), with e filled. */
int payments_validate_event(const char *body, size_t len, json_t **event,
                            validate_error_t *e) BILLOW_MUSTCHECK;

/* The id of the stripe.event job of a valid event for tenant_id, derived
 * (ids_derive) from "stripe.event|<tenant id>|<event id>" at the event's
 * `created` second (0 when it has none), so every delivery of one event
 * to one tenant names the same job and the queue takes it once. */
void payments_validate_event_job_id(const char *tenant_id, const json_t *event, char out[IDS_MAX]);

#endif

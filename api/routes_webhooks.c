/* routes_webhooks: deliveries from Stripe, POST /webhooks/stripe/{tenant}.
 *
 * Each tenant connects its own Stripe account, so each has its own
 * endpoint, named by the tenant's id or slug, and its own signing secrets.
 * The route has no bearer token: the Stripe-Signature header is the
 * credential. A delivery is checked in order of cost: the header's shape
 * (no query), the tenant and its sealed secrets (one read), the HMAC of
 * the raw bytes under each opened secret (shared/stripe_sig.c), and only
 * then the body as JSON. A genuine event becomes a stripe.event job for
 * the webhook worker and is answered 200 at once: Stripe wants a quick
 * answer, and the worker applies the event in its own time.
 *
 * Design: the job's id is derived from the tenant and the event's id, so
 * Stripe's redeliveries (after a timeout, a 5xx, or just twice) are the
 * same job, which the queue holds once and the worker applies once; a
 * redelivery is still answered 200, or Stripe would go on retrying. The
 * router hands this route the body raw (router.h): the signature is over
 * the exact bytes, which a parse and re-encode would not keep.
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "ids.h"
#include "log.h"
#include "mem.h"
#include "payments_validate.h"
#include "reads.h"
#include "routes.h"
#include "stripe_sig.h"
#include "submit.h"
#include "timeutil.h"
#include "validate.h"

/* The actor recorded on the jobs of deliveries: nobody signed in asked. */
#define WEBHOOK_ACTOR "system"

/* The API error of a failed signature check. */
static int signature_error(stripe_sig_result_t r)
{
    switch (r) {
    case STRIPE_SIG_MISSING:
        return BILLOW_ESIGNATURE_MISSING;
    case STRIPE_SIG_MISMATCH:
        return BILLOW_ESIGNATURE_MISMATCH;
    case STRIPE_SIG_EXPIRED:
        return BILLOW_ESIGNATURE_EXPIRED;
    case STRIPE_SIG_MALFORMED:
    case STRIPE_SIG_OK:
        break;
    }
    return BILLOW_ESIGNATURE_MALFORMED;
}

static void respond_signature(api_req_t *ar, stripe_sig_result_t r)
{
    respond_error(ar, signature_error(r), "Stripe-Signature", "%s", stripe_sig_message(r));
}

static void respond_no_tenant(api_req_t *ar)
{
    respond_error(ar, BILLOW_ENOT_FOUND, "tenant", "No such tenant: '%s'.", ar->params[0]);
}

/* Opens the sealed secrets (a JSON array of sealed text) into secrets[]
 * (each to free with wipe_secrets); returns how many opened. A secret that
 * does not open (sealed under another ENCRYPTION_KEY) is logged and left
 * out: the others may still verify the delivery. */
static size_t open_secrets(api_req_t *ar, const json_t *sealed, char **secrets)
{
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(sealed); i++) {
        const char *text = json_string_value(json_array_get(sealed, i));
        char *plain = NULL;
        size_t len = 0;
        if (text == NULL || seal_decrypt(&ar->app->seal_key, PAYMENTS_SEAL_WEBHOOK_SECRET, text,
                                         &plain, &len) != 0) {
            log_write(LOG_ERROR, "webhook_secret_unreadable", "{s:s,s:s,s:I}", "request_id",
                      ar->http->request_id, "tenant_id", ar->auth.tenant_id, "index",
                      (json_int_t)i);
            continue;
        }
        secrets[n++] = plain;
    }
    return n;
}

static void wipe_secrets(char **secrets, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        OPENSSL_cleanse(secrets[i], strlen(secrets[i]));
        free(secrets[i]);
    }
    free(secrets);
}

/* The signature verified: the event becomes its job, answered at once. */
static void accept_event(api_req_t *ar)
{
    validate_error_t e;
    json_t *event = NULL;
    char job_id[IDS_MAX];
    if (payments_validate_event(ar->http->body, ar->http->body_len, &event, &e) != 0) {
        respond_invalid(ar, &e);
        return;
    }
    payments_validate_event_job_id(ar->auth.tenant_id, event, job_id);
    submit_t s = {.type = "stripe.event",
                  .tenant_id = ar->auth.tenant_id,
                  .payload = json_pack("{s:o}", "event", event),
                  .created_status = 200,
                  .job_id = job_id,
                  .answer =
                      json_pack("{s:b,s:s,s:b}", "received", 1, "job", job_id, "duplicate", 0),
                  .answer_status = 200,
                  .no_idempotency = true};
    submit_job_or_respond(ar, &s);
}

static void on_secrets(void *data, int err, const PGresult *res)
{
    api_req_t *ar = data;
    json_t *sealed = NULL;
    char **secrets = NULL;
    size_t n = 0;
    if (err) {
        reads_failed(ar, err, res);
        return;
    }
    if (PQntuples(res) == 0) {
        respond_no_tenant(ar);
        return;
    }
    snprintf(ar->auth.tenant_id, sizeof ar->auth.tenant_id, "%s", PQgetvalue(res, 0, 0));
    snprintf(ar->auth.actor, sizeof ar->auth.actor, "%s", WEBHOOK_ACTOR);
    sealed = json_loads(PQgetvalue(res, 0, 1), 0, NULL);
    if (json_array_size(sealed) == 0) {
        json_decref(sealed);
        respond_error(ar, BILLOW_ESTRIPE_NOT_CONFIGURED, "tenant",
                      "The tenant has no Stripe webhook signing secret: add one with POST "
                      "/v1/settings/stripe.");
        return;
    }
    secrets = mem_calloc(json_array_size(sealed), sizeof(*secrets));
    n = open_secrets(ar, sealed, secrets);
    json_decref(sealed);
    if (n == 0) {
        /* Every secret is unreadable: the api's ENCRYPTION_KEY is not the
         * one that sealed them. Billow's fault, not the sender's. */
        wipe_secrets(secrets, n);
        respond_error(ar, BILLOW_EINTERNAL, NULL, NULL);
        return;
    }
    stripe_sig_result_t r = stripe_sig_verify(
        http_req_header(ar->http, "Stripe-Signature"), ar->http->body, ar->http->body_len,
        (const char *const *)secrets, n, timeutil_now_ms() / 1000, STRIPE_SIG_TOLERANCE_S);
    wipe_secrets(secrets, n);
    if (r != STRIPE_SIG_OK) {
        respond_signature(ar, r);
        return;
    }
    accept_event(ar);
}

void routes_webhooks_stripe(api_req_t *ar)
{
    const char *ref = ar->params[0];
    if (!ids_valid("ten", ref) && validate_slug("tenant", ref, NULL) != 0) {
        respond_no_tenant(ar);
        return;
    }
    /* The header's shape needs no secret: a request without a usable one
     * is refused before it costs a query. With no secrets, a well-formed
     * header can only be a mismatch, which the full check below decides. */
    stripe_sig_result_t r =
        stripe_sig_verify(http_req_header(ar->http, "Stripe-Signature"), ar->http->body,
                          ar->http->body_len, NULL, 0, 0, STRIPE_SIG_TOLERANCE_S);
    if (r == STRIPE_SIG_MISSING || r == STRIPE_SIG_MALFORMED) {
        respond_signature(ar, r);
        return;
    }
    const char *params[1] = {ref};
    if (pg_pool_query(ar->app->pg, NULL,
                      "SELECT tenant_id, array_to_json(secrets)::text"
                      " FROM stripe_webhook_secrets($1)",
                      1, params, on_secrets, ar) != 0)
        respond_error(ar, BILLOW_EUNAVAILABLE, NULL, "The database is unavailable; retry later.");
}

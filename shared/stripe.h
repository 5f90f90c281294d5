/* stripe: Billow's client of the Stripe API, over libcurl.
 *
 * Requests are form-encoded with Stripe's bracket notation
 * (metadata[billow_invoice]=in_…, payment_method_types[]=card), carry the
 * tenant's secret key as a bearer token, the pinned Stripe-Version and, on
 * every POST, an Idempotency-Key derived from Billow's own ids, so a retried
 * call (after a timeout, a crash, a redelivered job) is the same call to
 * Stripe and never a second charge.
 *
 * Every answer is classified once, here, so the charger, the webhook
 * processor and the api treat Stripe's errors alike: a decline goes to
 * dunning; no answer, 429, 5xx and Stripe's "retry this" are passing;
 * invalid requests, bad keys and idempotency conflicts are permanent, with
 * Stripe's message kept.
 *
 * One stripe_client_t keeps one curl handle (and its kept-alive connection);
 * it is not for use by two threads at once.
 */
#ifndef BILLOW_STRIPE_H
#define BILLOW_STRIPE_H

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* The API version every request pins (object shapes of 2024-06-20). */
#define STRIPE_API_VERSION "2024-06-20"
/* Where Stripe is when STRIPE_API_BASE is not set. */
#define STRIPE_DEFAULT_BASE "https://api.stripe.com"
/* Longest base URL kept. */
#define STRIPE_BASE_MAX 256
/* Time allowed to connect, and for a whole call; Stripe answers in well
 * under a second, and a charger stuck on a dead connection holds a batch. */
#define STRIPE_CONNECT_TIMEOUT_MS 5000
#define STRIPE_TIMEOUT_MS         30000
/* Largest answer read: Stripe's objects are a few KiB; more is not Stripe. */
#define STRIPE_RESPONSE_MAX (1024 * 1024)
/* Most parameters in one form: Billow's calls use a few dozen. */
#define STRIPE_FORM_MAX 128
/* Most calls stripe_call_many has on the wire at once: Stripe allows an
 * account about a hundred requests a second in live mode and less in test
 * mode, so a charger with more would be answered 429. */
#define STRIPE_PARALLEL_MAX 32

/* A form under construction: key/value pairs in order. */
typedef struct stripe_form_s stripe_form_t;

stripe_form_t *stripe_form_new(void);
/* Adds key (already in bracket notation, e.g. "metadata[billow_invoice]")
 * = value (copied). Past STRIPE_FORM_MAX pairs the pair is dropped and the
 * form is marked invalid (stripe_call then fails it as a bug). */
void stripe_form_add(stripe_form_t *f, const char *key, const char *value);
/* Adds key = the decimal digits of v. */
void stripe_form_add_int(stripe_form_t *f, const char *key, int64_t v);
/* Adds metadata[key] = value. */
void stripe_form_add_metadata(stripe_form_t *f, const char *key, const char *value);
/* The form as application/x-www-form-urlencoded text (keys and values
 * percent-encoded; caller frees with free()). "" for an empty form. */
char *stripe_form_encode(const stripe_form_t *f);
void stripe_form_free(stripe_form_t *f);

typedef enum {
    STRIPE_OK,       /* 2xx: body is the object. */
    STRIPE_DECLINED, /* 402 card_error: the card was declined (code, decline_code set; for a
                        PaymentIntent, body.error.payment_intent is its state). */
    STRIPE_RETRY,    /* Passing: no answer (connection refused, timeout, cut), 429, 5xx,
                        409 lock_timeout, or Stripe-Should-Retry: true. */
    STRIPE_REJECTED, /* Permanent: invalid_request_error, 401/403, idempotency_error,
                        Stripe-Should-Retry: false, or an answer that is not Stripe's JSON. */
} stripe_outcome_t;

typedef struct {
    stripe_outcome_t outcome;
    long status;           /* HTTP status, 0 when there was no answer. */
    json_t *body;          /* The parsed answer (owned), or NULL. */
    char request_id[64];   /* Stripe's Request-Id header, "" when none. */
    char type[64];         /* error.type ("card_error" …), "" when none. */
    char code[64];         /* error.code ("card_declined" …), "" when none. */
    char decline_code[64]; /* error.decline_code ("insufficient_funds" …), "" when none. */
    char message[512];     /* error.message, or what went wrong on the way. */
} stripe_response_t;

/* What a call runs now and then while it waits for Stripe (see
 * stripe_client_on_wait). */
typedef void (*stripe_wait_fn)(void *arg);

typedef struct {
    char base[STRIPE_BASE_MAX];      /* No trailing slash. */
    CURL *curl;                      /* Reused between calls (keep-alive). */
    CURLM *multi;                    /* stripe_call_many's, made on first use. */
    CURL *pool[STRIPE_PARALLEL_MAX]; /* Its easy handles, made on first use. */
    stripe_wait_fn on_wait;          /* Run while a call waits, or NULL. */
    void *on_wait_arg;               /* on_wait's argument. */
} stripe_client_t;

/* Prepares c for base (NULL or "": STRIPE_DEFAULT_BASE). curl_global_init
 * must have run. Returns 0, or BILLOW_EPARAM_INVALID for a base that is not
 * http(s):// or too long. */
int stripe_client_init(stripe_client_t *c, const char *base);
void stripe_client_dispose(stripe_client_t *c);

/* Makes every later call on c run fn(arg) while it waits for Stripe: at
 * least once a second during each call (libcurl's progress callback), and
 * after every wait of stripe_call_many. A worker uses it to tell its queue
 * it is alive while Stripe is slow. fn must not use c; it should be cheap
 * when it has nothing to do, as it runs often. fn NULL stops it. */
void stripe_client_on_wait(stripe_client_t *c, stripe_wait_fn fn, void *arg);

/* Calls Stripe: method "GET" (form, when not NULL, as the query) or "POST"
 * (form as the body; idempotency_key required), path "/v1/…", as api_key.
 * Always fills out (dispose it), with outcome set. */
void stripe_call(stripe_client_t *c, const char *api_key, const char *method, const char *path,
                 const stripe_form_t *form, const char *idempotency_key, stripe_response_t *out);
void stripe_response_dispose(stripe_response_t *r);

/* One call of stripe_call_many: the arguments of stripe_call. */
typedef struct {
    const char *api_key;
    const char *method;
    const char *path;
    const stripe_form_t *form;
    const char *idempotency_key;
    stripe_response_t *out; /* Filled as stripe_call fills it (dispose each). */
} stripe_request_t;

/* Makes the n calls of reqs, up to `parallel` (1..STRIPE_PARALLEL_MAX) at
 * once, and returns when every one has its answer (or its failure), each
 * in its out exactly as stripe_call would have filled it. */
void stripe_call_many(stripe_client_t *c, const stripe_request_t *reqs, size_t n, int parallel);

/* The outcome of an answer with HTTP status (0: none), parsed body (may be
 * NULL) and Stripe-Should-Retry header value (NULL when absent). Pure. */
stripe_outcome_t stripe_classify(long status, const json_t *body, const char *should_retry);

/* Whether a decline is hard: retrying the same card cannot succeed (lost,
 * stolen, expired, fraudulent, closed account …), so automatic retries stop
 * and the customer is asked for a new payment method. Either argument may
 * be NULL or "". Unknown codes are soft (Stripe adds decline codes freely). */
bool stripe_decline_is_hard(const char *code, const char *decline_code);

#endif

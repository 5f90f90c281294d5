/* stripe: Billow's client of the Stripe API, over libcurl.
 *
 * API: a caller builds a stripe_form_t, calls stripe_call with the tenant's
 * key and (on a POST) an idempotency key, and acts on out->outcome alone;
 * the error fields are there to record and to show.
 *
 * Design: one curl easy handle per client, reset before each call (which
 * keeps its connection cache, so calls reuse a kept-alive connection) and
 * then given every option afresh, so nothing of one call leaks into the
 * next. stripe_call_many runs several calls at once on a multi handle and
 * a pool of easy handles, each prepared and read exactly as a single
 * call's (call_begin, call_end), so the two cannot answer differently. The answer is read into
 * memory up to STRIPE_RESPONSE_MAX and parsed with jansson; the Request-Id and Stripe-Should-Retry
 * headers are read back through curl's header API. Whatever arrives (nothing, a cut answer,
 * garbage, an answer too large) ends in one of four outcomes, decided in
 * one pure function, stripe_classify, so the rules can be tested without a
 * network. A call can take up to STRIPE_TIMEOUT_MS, longer than a worker
 * may go without showing it is alive; so a client runs its on_wait while
 * it waits (libcurl's progress callback, and stripe_call_many's loop).
 */
#include "stripe.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "mem.h"

/* How long one wait for any of many calls' sockets may last before curl
 * is asked again (it also wakes on activity); timeouts are per call. */
#define STRIPE_POLL_MS 100

/* Sent as User-Agent, so Stripe's logs show which client called. */
#define STRIPE_USER_AGENT "Billow/1"
/* Longest api key, idempotency key and path accepted: Stripe's keys are
 * about a hundred characters, idempotency keys at most 255; a longer one
 * is a bug upstream, not something to send. */
#define STRIPE_HEADER_VALUE_MAX 255
#define STRIPE_PATH_MAX         512

struct stripe_form_s {
    size_t n;                      /* Pairs kept. */
    bool invalid;                  /* A pair was dropped or was NULL: the form is a bug. */
    char *keys[STRIPE_FORM_MAX];   /* Owned, not yet encoded. */
    char *values[STRIPE_FORM_MAX]; /* Owned, not yet encoded. */
};

stripe_form_t *stripe_form_new(void)
{
    return mem_calloc(1, sizeof(stripe_form_t));
}

void stripe_form_add(stripe_form_t *f, const char *key, const char *value)
{
    if (f == NULL)
        return;
    if (key == NULL || key[0] == '\0' || value == NULL || f->n == STRIPE_FORM_MAX) {
        f->invalid = true;
        return;
    }
    f->keys[f->n] = mem_strdup(key);
    f->values[f->n] = mem_strdup(value);
    f->n++;
}

void stripe_form_add_int(stripe_form_t *f, const char *key, int64_t v)
{
    char digits[24]; /* "-9223372036854775808" and a NUL fit. */
    snprintf(digits, sizeof digits, "%" PRId64, v);
    stripe_form_add(f, key, digits);
}

void stripe_form_add_metadata(stripe_form_t *f, const char *key, const char *value)
{
    if (key == NULL) {
        stripe_form_add(f, NULL, value);
        return;
    }
    char *full = mem_printf("metadata[%s]", key);
    stripe_form_add(f, full, value);
    free(full);
}

/* Appends s percent-encoded to out at *len: everything but RFC 3986's
 * unreserved characters becomes %XX, as curl_easy_escape does, so '&', '='
 * and the brackets of a key can never be read as structure. out has room
 * for 3 * strlen(s) more bytes. */
static void percent_encode(const char *s, char *out, size_t *len)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        unsigned char c = *p;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            out[(*len)++] = (char)c;
        } else {
            out[(*len)++] = '%';
            out[(*len)++] = hex[c >> 4];
            out[(*len)++] = hex[c & 0x0f];
        }
    }
}

char *stripe_form_encode(const stripe_form_t *f)
{
    size_t cap = 1;
    for (size_t i = 0; f != NULL && i < f->n; i++)
        cap += 3 * (strlen(f->keys[i]) + strlen(f->values[i])) + 2;
    char *out = mem_alloc(cap);
    size_t len = 0;
    for (size_t i = 0; f != NULL && i < f->n; i++) {
        if (i > 0)
            out[len++] = '&';
        percent_encode(f->keys[i], out, &len);
        out[len++] = '=';
        percent_encode(f->values[i], out, &len);
    }
    out[len] = '\0';
    return out;
}

void stripe_form_free(stripe_form_t *f)
{
    if (f == NULL)
        return;
    for (size_t i = 0; i < f->n; i++) {
        free(f->keys[i]);
        free(f->values[i]);
    }
    free(f);
}

/* Whether s is something that may be put on a header line or in a URL:
 * printable ASCII without spaces, so a key read from a bad row cannot
 * inject a header or split a request. */
static bool is_token(const char *s, size_t max)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++, n++) {
        if (n >= max || *p <= ' ' || *p >= 0x7f)
            return false;
    }
    return n > 0;
}

int stripe_client_init(stripe_client_t *c, const char *base)
{
    memset(c, 0, sizeof *c);
    if (base == NULL || base[0] == '\0')
        base = STRIPE_DEFAULT_BASE;
    size_t len = strlen(base);
    while (len > 0 && base[len - 1] == '/')
        len--;
    size_t scheme_len = strncmp(base, "https://", 8) == 0  ? 8
                        : strncmp(base, "http://", 7) == 0 ? 7
                                                           : 0;
    if (scheme_len == 0 || len <= scheme_len || len >= STRIPE_BASE_MAX)
        return BILLOW_EPARAM_INVALID;
    char trimmed[STRIPE_BASE_MAX];
    memcpy(trimmed, base, len);
    trimmed[len] = '\0';
    if (!is_token(trimmed, STRIPE_BASE_MAX))
        return BILLOW_EPARAM_INVALID;
    /* curl_easy_init fails only when it cannot allocate: out of memory,
     * which Billow treats as fatal everywhere (see mem.h). */
    CURL *curl = curl_easy_init();
    if (curl == NULL) {
        fputs("billow: curl_easy_init failed (out of memory)\n", stderr);
        abort();
    }
    memcpy(c->base, trimmed, len + 1);
    c->curl = curl;
    return 0;
}

void stripe_client_on_wait(stripe_client_t *c, stripe_wait_fn fn, void *arg)
{
    c->on_wait = fn;
    c->on_wait_arg = fn != NULL ? arg : NULL;
}

/* libcurl's progress callback: runs the client's on_wait. It never stops
 * the transfer (its timeouts are the call's own). */
static int on_progress(void *data, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    const stripe_client_t *c = data;
    c->on_wait(c->on_wait_arg);
    return 0;
}

void stripe_client_dispose(stripe_client_t *c)
{
    if (c == NULL)
        return;
    if (c->curl != NULL)
        curl_easy_cleanup(c->curl);
    c->curl = NULL;
    for (size_t i = 0; i < STRIPE_PARALLEL_MAX; i++) {
        if (c->pool[i] != NULL)
            curl_easy_cleanup(c->pool[i]);
        c->pool[i] = NULL;
    }
    if (c->multi != NULL)
        curl_multi_cleanup(c->multi);
    c->multi = NULL;
}

/* Copies src into dst (size n), cut if needed at a character boundary so a
 * cut UTF-8 sequence never reaches a log or a JSON answer. */
static void copy_text(char *dst, size_t n, const char *src)
{
    size_t len = strlen(src);
    if (len >= n) {
        len = n - 1;
        /* Back off over continuation bytes (10xxxxxx) to the start of the
         * character that did not fit. */
        while (len > 0 && ((unsigned char)src[len] & 0xc0) == 0x80)
            len--;
    }
    memcpy(dst, src, len);
    dst[len] = '\0';
}

static void set_message(stripe_response_t *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_message(stripe_response_t *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *text = mem_vprintf(fmt, ap);
    va_end(ap);
    copy_text(out->message, sizeof out->message, text);
    free(text);
}

/* The string member key of obj, or NULL. */
static const char *string_member(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* The error object of a Stripe answer, or NULL. */
static const json_t *error_object(const json_t *body)
{
    const json_t *error = json_object_get(body, "error");
    return json_is_object(error) ? error : NULL;
}

stripe_outcome_t stripe_classify(long status, const json_t *body, const char *should_retry)
{
    if (status <= 0)
        return STRIPE_RETRY;
    if (status >= 200 && status < 300)
        return json_is_object(body) ? STRIPE_OK : STRIPE_REJECTED;
    const json_t *error = error_object(body);
    const char *type = string_member(error, "type");
    const char *code = string_member(error, "code");
    bool declined = status == 402 && type != NULL && strcmp(type, "card_error") == 0;
    /* Stripe knows best whether the same request can succeed later (a lock
     * released, a replica caught up), so its word overrides the status.
     * Only a decline keeps its outcome under "false": "do not send this
     * again" is what a decline means anyway, and it must reach dunning,
     * not be filed as a permanent error. */
    if (should_retry != NULL && strcmp(should_retry, "true") == 0)
        return STRIPE_RETRY;
    if (declined)
        return STRIPE_DECLINED;
    if (should_retry != NULL && strcmp(should_retry, "false") == 0)
        return STRIPE_REJECTED;
    if (status == 429 || (status >= 500 && status < 600))
        return STRIPE_RETRY;
    /* A 409 is passing when an object was locked by a concurrent request
     * or another request with the same idempotency key is still running;
     * any other conflict (a key reused with other parameters) is not. */
    if (status == 409 && code != NULL &&
        (strcmp(code, "lock_timeout") == 0 || strcmp(code, "idempotency_key_in_use") == 0))
        return STRIPE_RETRY;
    return STRIPE_REJECTED;
}

/* Declines after which the same card will not be accepted, whatever the
 * time or amount. Issuers and card networks say so (lost or stolen, closed,
 * revoked by the cardholder, "do not try again"), or the stored card's
 * data is wrong (number, expiry) or cannot be used for this merchant or
 * currency. Card networks fine merchants that keep retrying these, so the
 * charger stops and asks the customer for another payment method. Anything
 * else (insufficient_funds, generic_decline, do_not_honor, try_again_later,
 * processing_error, authentication_required …) may pass on a later try.
 * Sources: Stripe's decline code table ("Next steps": the customer must use
 * another card) and the codes Stripe's declining test cards return. */
static const char *const hard_decline_codes[] = {
    "lost_card",
    "stolen_card",
    "pickup_card",
    "fraudulent",
    "restricted_card",
    "security_violation",
    "revocation_of_all_authorizations",
    "revocation_of_authorization",
    "stop_payment_order",
    "invalid_account",
    "new_account_information_available",
    "card_not_supported",
    "currency_not_supported",
    "do_not_try_again",
    "merchant_blacklist",
    "invalid_number",
    "incorrect_number",
    "expired_card",
    "invalid_expiry_month",
    "invalid_expiry_year",
};

/* Error codes (error.code, when Stripe sets no decline_code, or a
 * card_declined without one) that mean the same: the payment method itself
 * cannot be charged again. account_closed is the bank-debit form of a
 * closed card account. */
static const char *const hard_error_codes[] = {
    "expired_card",         "incorrect_number",    "invalid_number", "card_not_supported",
    "invalid_expiry_month", "invalid_expiry_year", "account_closed",
};

static bool in_table(const char *const *table, size_t n, const char *s)
{
    if (s == NULL || s[0] == '\0')
        return false;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(table[i], s) == 0)
            return true;
    }
    return false;
}

bool stripe_decline_is_hard(const char *code, const char *decline_code)
{
    return in_table(hard_decline_codes, sizeof hard_decline_codes / sizeof hard_decline_codes[0],
                    decline_code) ||
           in_table(hard_error_codes, sizeof hard_error_codes / sizeof hard_error_codes[0], code);
}

/* The answer as it arrives. */
typedef struct {
    char *data;     /* mem_alloc'd, grown as needed; not NUL-terminated. */
    size_t len;     /* Bytes kept. */
    size_t cap;     /* Bytes allocated. */
    bool too_large; /* The answer passed STRIPE_RESPONSE_MAX; the transfer was stopped. */
} answer_t;

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    answer_t *a = userdata;
    size_t n = size * nmemb;
    if (n > STRIPE_RESPONSE_MAX - a->len) {
        a->too_large = true;
        /* Taking less than offered makes curl stop with CURLE_WRITE_ERROR. */
        return 0;
    }
    if (a->len + n > a->cap) {
        size_t cap = a->cap == 0 ? 16384 : a->cap;
        while (cap < a->len + n)
            cap *= 2;
        a->data = mem_realloc(a->data, cap);
        a->cap = cap;
    }
    memcpy(a->data + a->len, ptr, n);
    a->len += n;
    return n;
}

/* The value of the answer's last header name (of the final response,
 * not an interim one), or NULL. Valid until the next use of curl. */
static const char *answer_header(CURL *curl, const char *name)
{
    struct curl_header *h = NULL;
    if (curl_easy_header(curl, name, 0, CURLH_HEADER, -1, &h) != CURLHE_OK || h == NULL)
        return NULL;
    return h->value;
}

/* Fills out's error fields from the answer's error object, if any. */
static void copy_error_fields(stripe_response_t *out)
{
    const json_t *error = error_object(out->body);
    if (error == NULL)
        return;
    const char *s;
    if ((s = string_member(error, "type")) != NULL)
        copy_text(out->type, sizeof out->type, s);
    if ((s = string_member(error, "code")) != NULL)
        copy_text(out->code, sizeof out->code, s);
    if ((s = string_member(error, "decline_code")) != NULL)
        copy_text(out->decline_code, sizeof out->decline_code, s);
    if ((s = string_member(error, "message")) != NULL)
        copy_text(out->message, sizeof out->message, s);
}

/* Checks the arguments of a call; returns NULL or what is wrong with them. */
static const char *call_mistake(const stripe_client_t *c, const char *api_key, bool post,
                                const char *path, const stripe_form_t *form,
                                const char *idempotency_key)
{
    if (c == NULL || c->curl == NULL)
        return "the Stripe client is not initialised";
    if (api_key == NULL || !is_token(api_key, STRIPE_HEADER_VALUE_MAX))
        return "the Stripe API key is missing or not a single printable token";
    if (path == NULL || path[0] != '/' || !is_token(path, STRIPE_PATH_MAX))
        return "the path must start with '/' and be printable ASCII without spaces";
    if (form != NULL && form->invalid)
        return "the form is invalid: a pair was NULL or there were more than STRIPE_FORM_MAX "
               "pairs (a bug in the caller)";
    if (post && (idempotency_key == NULL || !is_token(idempotency_key, STRIPE_HEADER_VALUE_MAX)))
        return "a POST to Stripe needs an idempotency key, a single printable token (a bug in "
               "the caller)";
    return NULL;
}

/* One call on its way: everything its easy handle points at until the
 * answer is read. */
typedef struct {
    stripe_response_t *out;
    CURL *curl;    /* Its handle (borrowed), or NULL when the call was refused unsent. */
    char *encoded; /* The form, encoded. */
    char *url;     /* Base, path and (GET) query. */
    char *auth;    /* "Authorization: Bearer …". */
    char *idem;    /* "Idempotency-Key: …", or NULL. */
    struct curl_slist *headers;
    answer_t answer;
    char curl_error[CURL_ERROR_SIZE];
} call_t;

/* Prepares req on curl into k (zeroed by the caller). Returns false, with
 * k->out filled (REJECTED: a bug in the caller), when req cannot be sent. */
static bool call_begin(call_t *k, const stripe_client_t *c, CURL *curl, const stripe_request_t *req)
{
    stripe_response_t *out = req->out;
    memset(out, 0, sizeof *out);
    out->outcome = STRIPE_REJECTED;
    k->out = out;
    const char *method = req->method;
    bool post = method != NULL && strcmp(method, "POST") == 0;
    bool get = method != NULL && strcmp(method, "GET") == 0;
    if (!post && !get) {
        set_message(out, "Billow calls Stripe with GET or POST only, not %s",
                    method != NULL ? method : "(none)");
        return false;
    }
    const char *mistake =
        call_mistake(c, req->api_key, post, req->path, req->form, req->idempotency_key);
    if (mistake != NULL) {
        set_message(out, "%s", mistake);
        return false;
    }

    k->encoded = stripe_form_encode(req->form);
    if (get && k->encoded[0] != '\0')
        k->url = mem_printf("%s%s?%s", c->base, req->path, k->encoded);
    else
        k->url = mem_printf("%s%s", c->base, req->path);
    k->auth = mem_printf("Authorization: Bearer %s", req->api_key);
    k->headers = curl_slist_append(k->headers, k->auth);
    k->headers = curl_slist_append(k->headers, "Stripe-Version: " STRIPE_API_VERSION);
    if (post) {
        k->idem = mem_printf("Idempotency-Key: %s", req->idempotency_key);
        k->headers = curl_slist_append(k->headers, k->idem);
        k->headers =
            curl_slist_append(k->headers, "Content-Type: application/x-www-form-urlencoded");
        /* No "Expect: 100-continue" round trip: Stripe answers forms at once. */
        k->headers = curl_slist_append(k->headers, "Expect:");
    }
    if (k->headers == NULL) {
        fputs("billow: curl_slist_append failed (out of memory)\n", stderr);
        abort();
    }

    k->curl = curl;
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, k->url);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, k->headers);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, STRIPE_USER_AGENT);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long)STRIPE_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)STRIPE_TIMEOUT_MS);
    /* Workers may run calls on threads: no SIGALRM for DNS timeouts. */
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)STRIPE_RESPONSE_MAX);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &k->answer);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, k->curl_error);
    if (c->on_wait != NULL) {
        curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(curl, CURLOPT_XFERINFODATA, (void *)c);
        curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    }
    if (post) {
        curl_easy_setopt(curl, CURLOPT_POST, 1L);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(k->encoded));
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, k->encoded);
    } else {
        curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
    }
    return true;
}

/* Reads the answer of k's finished transfer (res) into k->out. */
static void call_end(call_t *k, CURLcode res)
{
    stripe_response_t *out = k->out;
    long status = 0;
    curl_easy_getinfo(k->curl, CURLINFO_RESPONSE_CODE, &status);
    const char *request_id = answer_header(k->curl, "Request-Id");
    if (request_id != NULL)
        copy_text(out->request_id, sizeof out->request_id, request_id);

    if (k->answer.too_large || res == CURLE_FILESIZE_EXCEEDED) {
        out->status = status;
        set_message(out, "the answer (HTTP %ld) is larger than %d bytes: not Stripe's", status,
                    STRIPE_RESPONSE_MAX);
        return;
    }
    if (res != CURLE_OK) {
        /* Nothing, or only part of an answer: whether Stripe acted is
         * unknown, and the idempotency key makes asking again safe. */
        out->outcome = STRIPE_RETRY;
        set_message(out, "no answer from Stripe: %s",
                    k->curl_error[0] != '\0' ? k->curl_error : curl_easy_strerror(res));
        return;
    }

    out->status = status;
    if (k->answer.len > 0)
        out->body = json_loadb(k->answer.data, k->answer.len, 0, NULL);
    out->outcome =
        stripe_classify(status, out->body, answer_header(k->curl, "Stripe-Should-Retry"));
    copy_error_fields(out);
    if (out->outcome != STRIPE_OK && out->message[0] == '\0') {
        if (!json_is_object(out->body))
            set_message(out, "the answer (HTTP %ld) is not a JSON object: not Stripe's", status);
        else
            set_message(out, "Stripe answered HTTP %ld without an error message", status);
    }
}

/* Frees what k holds. The handle pointed at the headers, the body and
 * curl_error: reset drops those (and keeps its connection for the next
 * call). */
static void call_dispose(call_t *k)
{
    if (k->curl != NULL)
        curl_easy_reset(k->curl);
    curl_slist_free_all(k->headers);
    free(k->answer.data);
    free(k->idem);
    free(k->auth);
    free(k->url);
    free(k->encoded);
    memset(k, 0, sizeof *k);
}

void stripe_call(stripe_client_t *c, const char *api_key, const char *method, const char *path,
                 const stripe_form_t *form, const char *idempotency_key, stripe_response_t *out)
{
    stripe_request_t req = {api_key, method, path, form, idempotency_key, out};
    call_t k;
    memset(&k, 0, sizeof k);
    if (call_begin(&k, c, c != NULL ? c->curl : NULL, &req))
        call_end(&k, curl_easy_perform(k.curl));
    call_dispose(&k);
}

/* The client's multi handle and its pool of easy handles, made on first
 * use: a worker that never calls Stripe in parallel never has them. */
static void many_ready(stripe_client_t *c)
{
    if (c->multi == NULL) {
        c->multi = curl_multi_init();
        if (c->multi == NULL) {
            fputs("billow: curl_multi_init failed (out of memory)\n", stderr);
            abort();
        }
        curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)STRIPE_PARALLEL_MAX);
    }
    for (size_t i = 0; i < STRIPE_PARALLEL_MAX; i++) {
        if (c->pool[i] == NULL && (c->pool[i] = curl_easy_init()) == NULL) {
            fputs("billow: curl_easy_init failed (out of memory)\n", stderr);
            abort();
        }
    }
}

void stripe_call_many(stripe_client_t *c, const stripe_request_t *reqs, size_t n, int parallel)
{
    call_t calls[STRIPE_PARALLEL_MAX];
    size_t next = 0, running = 0;
    if (n == 0)
        return;
    if (parallel < 1)
        parallel = 1;
    if (parallel > STRIPE_PARALLEL_MAX)
        parallel = STRIPE_PARALLEL_MAX;
    if (c == NULL || c->curl == NULL) {
        /* call_begin refuses each one with the same sentence. */
        for (size_t i = 0; i < n; i++) {
            call_t k;
            memset(&k, 0, sizeof k);
            (void)call_begin(&k, c, NULL, &reqs[i]);
            call_dispose(&k);
        }
        return;
    }
    many_ready(c);
    memset(calls, 0, sizeof calls);
    for (;;) {
        /* Fill the free slots (a slot's handle is pool[slot]). */
        for (int slot = 0; slot < parallel && next < n; slot++) {
            if (calls[slot].out != NULL)
                continue;
            if (!call_begin(&calls[slot], c, c->pool[slot], &reqs[next++])) {
                call_dispose(&calls[slot]);
                slot--; /* The slot is free still: try the next request in it. */
                continue;
            }
            curl_easy_setopt(c->pool[slot], CURLOPT_PRIVATE, &calls[slot]);
            curl_multi_add_handle(c->multi, c->pool[slot]);
            running++;
        }
        if (running == 0)
            break;
        int still = 0;
        curl_multi_perform(c->multi, &still);
        CURLMsg *msg;
        int left = 0;
        while ((msg = curl_multi_info_read(c->multi, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            call_t *k = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&k);
            CURLcode res = msg->data.result;
            curl_multi_remove_handle(c->multi, msg->easy_handle);
            call_end(k, res);
            call_dispose(k);
            running--;
        }
        if (still > 0)
            curl_multi_poll(c->multi, NULL, 0, STRIPE_POLL_MS, NULL);
        /* Each transfer's progress callback runs only when curl looks at
         * it; this runs on_wait after every wait, whatever curl did. */
        if (c->on_wait != NULL)
            c->on_wait(c->on_wait_arg);
    }
}

void stripe_response_dispose(stripe_response_t *r)
{
    if (r == NULL)
        return;
    json_decref(r->body);
    r->body = NULL;
}

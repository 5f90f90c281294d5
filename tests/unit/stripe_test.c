/* stripe: the form encoder, the classification of Stripe's answers, decline
 * hardness, and stripe_call against a one-shot HTTP server in the test. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "err.h"
#include "mem.h"
#include "stripe.h"
#include "timeutil.h"

static void setup(void)
{
    cr_assert_eq(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
}

static void teardown(void)
{
    curl_global_cleanup();
}

TestSuite(stripe, .init = setup, .fini = teardown);

/* ---- form encoding ---------------------------------------------------- */

/* The form's encoding, checked against expected, and freed. */
static void assert_encodes_to(stripe_form_t *f, const char *expected)
{
    char *text = stripe_form_encode(f);
    cr_assert_str_eq(text, expected);
    free(text);
}

Test(stripe, empty_form_encodes_to_the_empty_string)
{
    stripe_form_t *f = stripe_form_new();
    assert_encodes_to(f, "");
    stripe_form_free(f);
    char *none = stripe_form_encode(NULL);
    cr_assert_str_eq(none, "");
    free(none);
}

Test(stripe, nested_keys_and_arrays_keep_their_order_with_brackets_encoded)
{
    stripe_form_t *f = stripe_form_new();
    stripe_form_add(f, "customer", "cus_1");
    stripe_form_add(f, "payment_method_types[]", "card");
    stripe_form_add(f, "address[line1]", "1 Main St");
    stripe_form_add_metadata(f, "billow_invoice", "in_01J");
    assert_encodes_to(f, "customer=cus_1&payment_method_types%5B%5D=card&address%5Bline1%5D=1%20"
                         "Main%20St&metadata%5Bbillow_invoice%5D=in_01J");
    stripe_form_free(f);
}

Test(stripe, special_characters_are_percent_encoded_in_keys_and_values)
{
    stripe_form_t *f = stripe_form_new();
    stripe_form_add(f, "description", "a&b=c d+e/f?g#h%i");
    stripe_form_add(f, "name", "Zo\xc3\xab \xe2\x82\xac");
    stripe_form_add(f, "k&=", "unreserved-._~AZaz09");
    stripe_form_add(f, "empty", "");
    assert_encodes_to(f, "description=a%26b%3Dc%20d%2Be%2Ff%3Fg%23h%25i"
                         "&name=Zo%C3%AB%20%E2%82%AC&k%26%3D=unreserved-._~AZaz09&empty=");
    stripe_form_free(f);
}

Test(stripe, encoded_pairs_decode_back_with_curl)
{
    const char *values[] = {"a&b=c", "line\nbreak", "\xf0\x9f\x92\xb3 card", "[]{}\"'\\", "%41"};
    stripe_form_t *f = stripe_form_new();
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++)
        stripe_form_add_metadata(f, values[i], values[i]);
    char *text = stripe_form_encode(f);
    char *save = NULL;
    size_t i = 0;
    for (char *pair = strtok_r(text, "&", &save); pair != NULL;
         pair = strtok_r(NULL, "&", &save), i++) {
        char *eq = strchr(pair, '=');
        cr_assert_not_null(eq, "pair %zu has no '='", i);
        *eq = '\0';
        char *key = curl_easy_unescape(NULL, pair, 0, NULL);
        char *value = curl_easy_unescape(NULL, eq + 1, 0, NULL);
        char *expected_key = mem_printf("metadata[%s]", values[i]);
        cr_assert_str_eq(key, expected_key);
        cr_assert_str_eq(value, values[i]);
        free(expected_key);
        curl_free(key);
        curl_free(value);
    }
    cr_assert_eq(i, sizeof values / sizeof values[0]);
    free(text);
    stripe_form_free(f);
}

Test(stripe, integers_are_written_in_decimal_down_to_the_int64_limits)
{
    stripe_form_t *f = stripe_form_new();
    stripe_form_add_int(f, "amount", 1999);
    stripe_form_add_int(f, "zero", 0);
    stripe_form_add_int(f, "balance", -42);
    stripe_form_add_int(f, "max", INT64_MAX);
    stripe_form_add_int(f, "min", INT64_MIN);
    assert_encodes_to(f, "amount=1999&zero=0&balance=-42&max=9223372036854775807"
                         "&min=-9223372036854775808");
    stripe_form_free(f);
}

/* ---- classification --------------------------------------------------- */

typedef struct {
    long status;
    const char *body; /* JSON text, or NULL for no body. */
    const char *should_retry;
    stripe_outcome_t expected;
} classify_case_t;

static const char *outcome_name(stripe_outcome_t o)
{
    switch (o) {
    case STRIPE_OK:
        return "OK";
    case STRIPE_DECLINED:
        return "DECLINED";
    case STRIPE_RETRY:
        return "RETRY";
    case STRIPE_REJECTED:
        return "REJECTED";
    }
    return "?";
}

#define CARD_ERROR                                                                                 \
    "{\"error\":{\"type\":\"card_error\",\"code\":\"card_declined\",\"decline_code\":"             \
    "\"insufficient_funds\"}}"
#define INVALID_REQUEST                                                                            \
    "{\"error\":{\"type\":\"invalid_request_error\",\"code\":\"parameter_missing\"}}"
#define API_ERROR "{\"error\":{\"type\":\"api_error\"}}"

Test(stripe, classify_follows_the_table_of_outcomes)
{
    static const classify_case_t cases[] = {
        /* No answer at all. */
        {0, NULL, NULL, STRIPE_RETRY},
        {0, "{}", "false", STRIPE_RETRY},
        /* 2xx: the object, if it is one; Stripe-Should-Retry has no say. */
        {200, "{\"id\":\"pi_1\"}", NULL, STRIPE_OK},
        {201, "{}", NULL, STRIPE_OK},
        {200, "{\"id\":\"pi_1\"}", "false", STRIPE_OK},
        {200, NULL, NULL, STRIPE_REJECTED},
        {200, "[1,2]", NULL, STRIPE_REJECTED},
        {204, NULL, "true", STRIPE_REJECTED},
        /* Declines. */
        {402, CARD_ERROR, NULL, STRIPE_DECLINED},
        {402, CARD_ERROR, "false", STRIPE_DECLINED},
        {402, CARD_ERROR, "true", STRIPE_RETRY},
        {402, INVALID_REQUEST, NULL, STRIPE_REJECTED},
        {402, NULL, NULL, STRIPE_REJECTED},
        {402, "{\"error\":\"card_error\"}", NULL, STRIPE_REJECTED},
        /* Passing failures. */
        {429, "{\"error\":{\"type\":\"invalid_request_error\",\"code\":\"rate_limit\"}}", NULL,
         STRIPE_RETRY},
        {500, API_ERROR, NULL, STRIPE_RETRY},
        {502, NULL, NULL, STRIPE_RETRY},
        {503, "<html>", NULL, STRIPE_RETRY},
        {599, NULL, NULL, STRIPE_RETRY},
        {409, "{\"error\":{\"type\":\"invalid_request_error\",\"code\":\"lock_timeout\"}}", NULL,
         STRIPE_RETRY},
        {409, "{\"error\":{\"type\":\"idempotency_error\",\"code\":\"idempotency_key_in_use\"}}",
         NULL, STRIPE_RETRY},
        /* Stripe-Should-Retry overrides the status. */
        {400, INVALID_REQUEST, "true", STRIPE_RETRY},
        {409, "{\"error\":{\"code\":\"resource_already_exists\"}}", "true", STRIPE_RETRY},
        {500, API_ERROR, "false", STRIPE_REJECTED},
        {429, NULL, "false", STRIPE_REJECTED},
        {409, "{\"error\":{\"code\":\"lock_timeout\"}}", "false", STRIPE_REJECTED},
        /* Only "true" and "false" are read. */
        {400, INVALID_REQUEST, "TRUE", STRIPE_REJECTED},
        {500, API_ERROR, "no", STRIPE_RETRY},
        /* Permanent. */
        {409,
         "{\"error\":{\"type\":\"idempotency_error\",\"message\":\"Keys for idempotent "
         "requests can only be used with the same parameters\"}}",
         NULL, STRIPE_REJECTED},
        {409, NULL, NULL, STRIPE_REJECTED},
        {400, INVALID_REQUEST, NULL, STRIPE_REJECTED},
        {400, "{\"error\":{\"type\":\"idempotency_error\"}}", NULL, STRIPE_REJECTED},
        {401, "{\"error\":{\"type\":\"invalid_request_error\"}}", NULL, STRIPE_REJECTED},
        {403, NULL, NULL, STRIPE_REJECTED},
        {404, "{\"error\":{\"code\":\"resource_missing\"}}", NULL, STRIPE_REJECTED},
        {301, NULL, NULL, STRIPE_REJECTED},
        {418, NULL, NULL, STRIPE_REJECTED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const classify_case_t *c = &cases[i];
        json_t *body = c->body != NULL ? json_loads(c->body, JSON_DECODE_ANY, NULL) : NULL;
        cr_assert(c->body == NULL || body != NULL || strcmp(c->body, "<html>") == 0,
                  "case %zu: bad fixture", i);
        stripe_outcome_t got = stripe_classify(c->status, body, c->should_retry);
        cr_assert_eq(got, c->expected, "case %zu (HTTP %ld, Should-Retry %s): %s, expected %s", i,
                     c->status, c->should_retry ? c->should_retry : "-", outcome_name(got),
                     outcome_name(c->expected));
        json_decref(body);
    }
}

/* ---- decline hardness ------------------------------------------------- */

Test(stripe, hard_decline_codes_are_hard_under_card_declined)
{
    const char *hard[] = {"lost_card",
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
                          "expired_card"};
    for (size_t i = 0; i < sizeof hard / sizeof hard[0]; i++) {
        cr_assert(stripe_decline_is_hard("card_declined", hard[i]), "%s", hard[i]);
        cr_assert(stripe_decline_is_hard(NULL, hard[i]), "%s without a code", hard[i]);
    }
}

Test(stripe, hard_error_codes_are_hard_without_a_decline_code)
{
    const char *hard[] = {"expired_card", "incorrect_number", "invalid_number",
                          "card_not_supported"};
    for (size_t i = 0; i < sizeof hard / sizeof hard[0]; i++) {
        cr_assert(stripe_decline_is_hard(hard[i], NULL), "%s", hard[i]);
        cr_assert(stripe_decline_is_hard(hard[i], ""), "%s", hard[i]);
    }
}

Test(stripe, wrong_stored_expiry_and_closed_accounts_are_hard)
{
    cr_assert(stripe_decline_is_hard("invalid_expiry_month", NULL));
    cr_assert(stripe_decline_is_hard("invalid_expiry_year", NULL));
    cr_assert(stripe_decline_is_hard("card_declined", "invalid_expiry_year"));
    cr_assert(stripe_decline_is_hard("account_closed", NULL));
}

Test(stripe, soft_declines_may_be_retried)
{
    const char *soft[] = {
        "insufficient_funds", "generic_decline",  "do_not_honor",         "card_velocity_exceeded",
        "try_again_later",    "processing_error", "issuer_not_available", "authentication_required",
        "approve_with_id",    "call_issuer",      "reenter_transaction",  "testmode_decline"};
    for (size_t i = 0; i < sizeof soft / sizeof soft[0]; i++)
        cr_assert_not(stripe_decline_is_hard("card_declined", soft[i]), "%s", soft[i]);
    cr_assert_not(stripe_decline_is_hard("card_declined", NULL));
    cr_assert_not(stripe_decline_is_hard("processing_error", NULL));
    cr_assert_not(stripe_decline_is_hard("incorrect_cvc", NULL));
    cr_assert_not(stripe_decline_is_hard("authentication_required", "authentication_required"));
}

Test(stripe, unknown_or_absent_codes_are_soft)
{
    cr_assert_not(stripe_decline_is_hard(NULL, NULL));
    cr_assert_not(stripe_decline_is_hard("", ""));
    cr_assert_not(stripe_decline_is_hard("card_declined", "a_code_stripe_adds_next_year"));
    cr_assert_not(stripe_decline_is_hard("a_new_error_code", NULL));
    /* Matching is exact, not by prefix or case. */
    cr_assert_not(stripe_decline_is_hard(NULL, "LOST_CARD"));
    cr_assert_not(stripe_decline_is_hard(NULL, "lost_card_"));
    cr_assert_not(stripe_decline_is_hard(NULL, "lost"));
}

Test(stripe, test_cards_declines_map_as_dunning_expects)
{
    /* (last_payment_error.code, decline_code) of the declining test cards
     * (pm_card_chargeDeclined…, Stripe's test payment methods). */
    cr_assert(stripe_decline_is_hard("card_declined", "lost_card"));
    cr_assert(stripe_decline_is_hard("card_declined", "stolen_card"));
    cr_assert(stripe_decline_is_hard("expired_card", NULL));
    cr_assert(stripe_decline_is_hard("card_declined", "fraudulent"));
    cr_assert_not(stripe_decline_is_hard("card_declined", "generic_decline"));
    cr_assert_not(stripe_decline_is_hard("card_declined", "insufficient_funds"));
    cr_assert_not(stripe_decline_is_hard("incorrect_cvc", NULL));
    cr_assert_not(stripe_decline_is_hard("processing_error", NULL));
    cr_assert_not(stripe_decline_is_hard("card_declined", "card_velocity_exceeded"));
}

/* ---- stripe_call against a one-shot server ---------------------------- */

/* Room for one captured request: Billow's forms are a few KiB at most. */
#define REQUEST_ROOM 65536
/* How long the server waits for curl to connect before giving up, so a
 * test that never calls does not hang. */
#define ACCEPT_WAIT_MS 10000

/* A test fixture: on 127.0.0.1, accepts one connection, reads one request
 * (headers and a Content-Length body, as raw bytes), writes a canned answer
 * and closes. */
typedef struct {
    int fd;                     /* Listening socket. */
    int port;                   /* Its port. */
    const char *answer;         /* Written back verbatim. */
    size_t answer_len;          /* Its length. */
    char request[REQUEST_ROOM]; /* The request as received, NUL-terminated. */
    size_t request_len;         /* Its length. */
    int hold_ms;                /* How long the answer is held back after the request. */
    atomic_bool answered;       /* Set just before the answer is written. */
    pthread_t thread;           /* Serves the one connection. */
} test_server_t;

static int listen_loopback(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    cr_assert_eq(listen(fd, 1), 0);
    socklen_t len = sizeof addr;
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
    *port = ntohs(addr.sin_port);
    return fd;
}

/* Whether the request in s is complete: headers and Content-Length bytes. */
static bool request_complete(const test_server_t *s)
{
    const char *end = strstr(s->request, "\r\n\r\n");
    if (end == NULL)
        return false;
    size_t body_len = 0;
    const char *cl = strcasestr(s->request, "\r\nContent-Length:");
    if (cl != NULL && cl < end)
        body_len = strtoul(cl + strlen("\r\nContent-Length:"), NULL, 10);
    return s->request_len >= (size_t)(end + 4 - s->request) + body_len;
}

static void *serve_one(void *arg)
{
    test_server_t *s = arg;
    struct pollfd p = {.fd = s->fd, .events = POLLIN};
    if (poll(&p, 1, ACCEPT_WAIT_MS) != 1)
        return NULL;
    int conn = accept(s->fd, NULL, NULL);
    if (conn < 0)
        return NULL;
    while (s->request_len < sizeof s->request - 1 && !request_complete(s)) {
        ssize_t n =
            recv(conn, s->request + s->request_len, sizeof s->request - 1 - s->request_len, 0);
        if (n <= 0)
            break;
        s->request_len += (size_t)n;
        s->request[s->request_len] = '\0';
    }
    if (s->hold_ms > 0)
        poll(NULL, 0, s->hold_ms);
    atomic_store(&s->answered, true);
    size_t sent = 0;
    while (sent < s->answer_len) {
        ssize_t n = send(conn, s->answer + sent, s->answer_len - sent, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        sent += (size_t)n;
    }
    shutdown(conn, SHUT_WR);
    close(conn);
    return NULL;
}

static test_server_t *server_start_len(const char *answer, size_t len)
{
    test_server_t *s = mem_calloc(1, sizeof *s);
    s->fd = listen_loopback(&s->port);
    s->answer = answer;
    s->answer_len = len;
    cr_assert_eq(pthread_create(&s->thread, NULL, serve_one, s), 0);
    return s;
}

static test_server_t *server_start(const char *answer)
{
    return server_start_len(answer, strlen(answer));
}

static void server_finish(test_server_t *s)
{
    pthread_join(s->thread, NULL);
    close(s->fd);
}

/* A base URL for the server, for stripe_client_init. */
static void base_of(int port, char *out, size_t n)
{
    snprintf(out, n, "http://127.0.0.1:%d", port);
}

/* A port on which nothing listens: bound, then closed. */
static int closed_port(void)
{
    int port;
    int fd = listen_loopback(&port);
    close(fd);
    return port;
}

/* Whether the captured request has the header line "line". */
static bool has_header(const test_server_t *s, const char *line)
{
    char *needle = mem_printf("\r\n%s\r\n", line);
    const char *end = strstr(s->request, "\r\n\r\n");
    const char *at = strstr(s->request, needle);
    bool found = at != NULL && end != NULL && at <= end;
    free(needle);
    return found;
}

/* Whether the captured request has a header named name (any value). */
static bool has_header_named(const test_server_t *s, const char *name)
{
    char *needle = mem_printf("\r\n%s:", name);
    const char *end = strstr(s->request, "\r\n\r\n");
    const char *at = strcasestr(s->request, needle);
    bool found = at != NULL && end != NULL && at < end;
    free(needle);
    return found;
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static const char *request_body(const test_server_t *s)
{
    const char *end = strstr(s->request, "\r\n\r\n");
    cr_assert_not_null(end, "no complete request was received");
    return end + 4;
}

/* A canned answer with a body, its Content-Length computed. */
static char *answer_with(const char *status_line, const char *extra_headers, const char *body)
{
    return mem_printf("HTTP/1.1 %s\r\nContent-Type: application/json\r\nConnection: close\r\n%s"
                      "Content-Length: %zu\r\n\r\n%s",
                      status_line, extra_headers, strlen(body), body);
}

/* Runs one call against a server answering answer; returns the server (the
 * captured request) for inspection; the caller frees it with free(). */
static test_server_t *call_against(const char *answer, const char *method, const char *path,
                                   const stripe_form_t *form, const char *idempotency_key,
                                   stripe_response_t *out)
{
    test_server_t *s = server_start(answer);
    char base[64];
    base_of(s->port, base, sizeof base);
    stripe_client_t c;
    cr_assert_eq(stripe_client_init(&c, base), 0);
    stripe_call(&c, "sk_test_123", method, path, form, idempotency_key, out);
    stripe_client_dispose(&c);
    server_finish(s);
    return s;
}

Test(stripe, post_sends_the_key_version_idempotency_key_and_form)
{
    char *answer = answer_with("200 OK", "Request-Id: req_abc123\r\n",
                               "{\"id\":\"cus_1\",\"object\":\"customer\"}");
    stripe_form_t *f = stripe_form_new();
    stripe_form_add(f, "email", "a+b@example.com");
    stripe_form_add_metadata(f, "billow_customer", "cus_01J");
    stripe_response_t out;
    test_server_t *s = call_against(answer, "POST", "/v1/customers", f, "billow:cus:cus_01J", &out);

    cr_assert(starts_with(s->request, "POST /v1/customers HTTP/1.1\r\n"), "%s", s->request);
    cr_assert(has_header(s, "Authorization: Bearer sk_test_123"));
    cr_assert(has_header(s, "Stripe-Version: 2024-06-20"));
    cr_assert(has_header(s, "Idempotency-Key: billow:cus:cus_01J"));
    cr_assert(has_header(s, "Content-Type: application/x-www-form-urlencoded"));
    cr_assert(has_header(s, "User-Agent: Billow/1"));
    cr_assert_not(has_header_named(s, "Expect"));
    cr_assert_str_eq(request_body(s),
                     "email=a%2Bb%40example.com&metadata%5Bbillow_customer%5D=cus_01J");

    cr_assert_eq(out.outcome, STRIPE_OK);
    cr_assert_eq(out.status, 200);
    cr_assert_str_eq(json_string_value(json_object_get(out.body, "id")), "cus_1");
    cr_assert_str_eq(out.request_id, "req_abc123");
    cr_assert_str_eq(out.type, "");
    cr_assert_str_eq(out.message, "");
    stripe_response_dispose(&out);
    cr_assert_null(out.body);
    stripe_form_free(f);
    free(s);
    free(answer);
}

Test(stripe, get_after_post_on_one_client_sends_the_query_and_no_post_leftovers)
{
    char *ok = answer_with("200 OK", "", "{\"id\":\"pi_1\",\"object\":\"payment_intent\"}");
    test_server_t *first = server_start(ok);
    test_server_t *second = server_start(ok);
    stripe_client_t c;
    char base[64];
    base_of(first->port, base, sizeof base);
    cr_assert_eq(stripe_client_init(&c, base), 0);

    stripe_form_t *post_form = stripe_form_new();
    stripe_form_add_int(post_form, "amount", 1999);
    stripe_response_t out;
    stripe_call(&c, "sk_test_123", "POST", "/v1/payment_intents", post_form, "billow:pi:in_1:1",
                &out);
    cr_assert_eq(out.outcome, STRIPE_OK);
    stripe_response_dispose(&out);
    server_finish(first);

    /* The same handle, pointed at the second server. */
    base_of(second->port, c.base, sizeof c.base);
    stripe_form_t *query = stripe_form_new();
    stripe_form_add(query, "expand[]", "latest_charge");
    stripe_call(&c, "sk_test_456", "GET", "/v1/payment_intents/pi_1", query, NULL, &out);
    server_finish(second);

    cr_assert(starts_with(second->request,
                          "GET /v1/payment_intents/pi_1?expand%5B%5D=latest_charge HTTP/1.1\r\n"),
              "%s", second->request);
    cr_assert(has_header(second, "Authorization: Bearer sk_test_456"));
    cr_assert(has_header(second, "Stripe-Version: 2024-06-20"));
    cr_assert_not(has_header_named(second, "Idempotency-Key"));
    cr_assert_not(has_header_named(second, "Content-Length"));
    cr_assert_str_eq(request_body(second), "");
    cr_assert_eq(out.outcome, STRIPE_OK);
    cr_assert_str_eq(json_string_value(json_object_get(out.body, "id")), "pi_1");

    stripe_response_dispose(&out);
    stripe_client_dispose(&c);
    stripe_form_free(query);
    stripe_form_free(post_form);
    free(first);
    free(second);
    free(ok);
}

Test(stripe, card_error_402_is_declined_with_the_error_fields)
{
    char *answer = answer_with(
        "402 Payment Required", "Request-Id: req_decl\r\n",
        "{\"error\":{\"type\":\"card_error\",\"code\":\"card_declined\",\"decline_code\":"
        "\"insufficient_funds\",\"message\":\"Your card has insufficient funds.\","
        "\"payment_intent\":{\"id\":\"pi_1\",\"status\":\"requires_payment_method\"}}}");
    stripe_form_t *f = stripe_form_new();
    stripe_form_add(f, "confirm", "true");
    stripe_response_t out;
    test_server_t *s =
        call_against(answer, "POST", "/v1/payment_intents", f, "billow:pi:in_1:1", &out);

    cr_assert_eq(out.outcome, STRIPE_DECLINED);
    cr_assert_eq(out.status, 402);
    cr_assert_str_eq(out.type, "card_error");
    cr_assert_str_eq(out.code, "card_declined");
    cr_assert_str_eq(out.decline_code, "insufficient_funds");
    cr_assert_str_eq(out.message, "Your card has insufficient funds.");
    cr_assert_str_eq(out.request_id, "req_decl");
    json_t *pi = json_object_get(json_object_get(out.body, "error"), "payment_intent");
    cr_assert_str_eq(json_string_value(json_object_get(pi, "status")), "requires_payment_method");
    stripe_response_dispose(&out);
    stripe_form_free(f);
    free(s);
    free(answer);
}

Test(stripe, server_error_500_is_retry)
{
    char *answer = answer_with("500 Internal Server Error", "",
                               "{\"error\":{\"type\":\"api_error\",\"message\":\"Try again.\"}}");
    stripe_response_t out;
    test_server_t *s = call_against(answer, "GET", "/v1/payment_intents/pi_1", NULL, NULL, &out);
    cr_assert_eq(out.outcome, STRIPE_RETRY);
    cr_assert_eq(out.status, 500);
    cr_assert_str_eq(out.type, "api_error");
    cr_assert_str_eq(out.message, "Try again.");
    stripe_response_dispose(&out);
    free(s);
    free(answer);
}

Test(stripe, should_retry_header_is_read_from_the_answer)
{
    char *answer = answer_with(
        "400 Bad Request", "Stripe-Should-Retry: true\r\n",
        "{\"error\":{\"type\":\"invalid_request_error\",\"message\":\"Object is locked.\"}}");
    stripe_response_t out;
    test_server_t *s = call_against(answer, "GET", "/v1/payment_intents/pi_1", NULL, NULL, &out);
    cr_assert_eq(out.outcome, STRIPE_RETRY);
    cr_assert_eq(out.status, 400);
    stripe_response_dispose(&out);
    free(s);
    free(answer);
}

Test(stripe, error_without_a_message_gets_one)
{
    char *answer =
        answer_with("404 Not Found", "", "{\"error\":{\"type\":\"invalid_request_error\"}}");
    stripe_response_t out;
    test_server_t *s = call_against(answer, "GET", "/v1/payment_intents/pi_x", NULL, NULL, &out);
    cr_assert_eq(out.outcome, STRIPE_REJECTED);
    cr_assert_eq(out.status, 404);
    cr_assert(strstr(out.message, "404") != NULL, "%s", out.message);
    stripe_response_dispose(&out);
    free(s);
    free(answer);
}

Test(stripe, connection_refused_is_retry_with_curls_message)
{
    stripe_client_t c;
    char base[64];
    base_of(closed_port(), base, sizeof base);
    cr_assert_eq(stripe_client_init(&c, base), 0);
    stripe_response_t out;
    stripe_call(&c, "sk_test_123", "GET", "/v1/payment_intents/pi_1", NULL, NULL, &out);
    cr_assert_eq(out.outcome, STRIPE_RETRY);
    cr_assert_eq(out.status, 0);
    cr_assert_null(out.body);
    cr_assert(strstr(out.message, "no answer from Stripe") != NULL, "%s", out.message);
    cr_assert_gt(strlen(out.message), strlen("no answer from Stripe: "), "%s", out.message);
    stripe_response_dispose(&out);
    stripe_client_dispose(&c);
}

Test(stripe, answer_cut_short_is_retry_without_a_status)
{
    static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 "Content-Length: 100\r\n\r\n{\"id\":\"pi_";
    stripe_response_t out;
    test_server_t *s = call_against(answer, "POST", "/v1/payment_intents", NULL, "k1", &out);
    cr_assert_eq(out.outcome, STRIPE_RETRY);
    cr_assert_eq(out.status, 0);
    cr_assert_null(out.body);
    cr_assert_neq(out.message[0], '\0');
    stripe_response_dispose(&out);
    free(s);
}

Test(stripe, answer_that_is_not_json_is_rejected)
{
    char *answer = answer_with("200 OK", "", "<html>a proxy's login page</html>");
    stripe_response_t out;
    test_server_t *s = call_against(answer, "GET", "/v1/payment_intents/pi_1", NULL, NULL, &out);
    cr_assert_eq(out.outcome, STRIPE_REJECTED);
    cr_assert_eq(out.status, 200);
    cr_assert_null(out.body);
    cr_assert(strstr(out.message, "not a JSON object") != NULL, "%s", out.message);
    stripe_response_dispose(&out);
    free(s);
    free(answer);
}

Test(stripe, empty_2xx_answer_is_rejected)
{
    static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    stripe_response_t out;
    test_server_t *s = call_against(answer, "GET", "/v1/payment_intents/pi_1", NULL, NULL, &out);
    cr_assert_eq(out.outcome, STRIPE_REJECTED);
    cr_assert_null(out.body);
    stripe_response_dispose(&out);
    free(s);
}

Test(stripe, error_fields_of_the_wrong_type_are_left_empty)
{
    char *answer = answer_with("402 Payment Required", "",
                               "{\"error\":{\"type\":\"card_error\",\"code\":5,\"decline_code\":"
                               "null,\"message\":[\"x\"]}}");
    stripe_response_t out;
    test_server_t *s = call_against(answer, "GET", "/v1/payment_intents/pi_1", NULL, NULL, &out);
    cr_assert_eq(out.outcome, STRIPE_DECLINED);
    cr_assert_str_eq(out.code, "");
    cr_assert_str_eq(out.decline_code, "");
    cr_assert_neq(out.message[0], '\0');
    stripe_response_dispose(&out);
    free(s);
    free(answer);
}

Test(stripe, long_error_fields_are_cut_at_a_character_boundary)
{
    /* 400 two-byte characters: 800 bytes, more than message holds; a
     * code of 100 ASCII letters, more than code holds. */
    char message[801], code[101];
    for (int i = 0; i < 400; i++)
        memcpy(message + 2 * i, "\xc3\xa9", 2);
    message[800] = '\0';
    memset(code, 'c', 100);
    code[100] = '\0';
    char *body =
        mem_printf("{\"error\":{\"type\":\"invalid_request_error\",\"code\":\"%s\",\"message\":"
                   "\"%s\"}}",
                   code, message);
    char *answer = answer_with("400 Bad Request", "", body);
    stripe_response_t out;
    test_server_t *s = call_against(answer, "GET", "/v1/payment_intents/pi_1", NULL, NULL, &out);

    cr_assert_eq(out.outcome, STRIPE_REJECTED);
    size_t len = strlen(out.message);
    cr_assert_leq(len, sizeof out.message - 1);
    cr_assert_geq(len, sizeof out.message - 2);
    cr_assert_eq(len % 2, 0, "cut inside a character: %zu bytes", len);
    cr_assert_eq(strncmp(out.message, message, len), 0);
    cr_assert_eq(strlen(out.code), sizeof out.code - 1);
    stripe_response_dispose(&out);
    free(s);
    free(answer);
    free(body);
}

Test(stripe, request_id_longer_than_its_field_is_cut)
{
    char id[200];
    memset(id, 'r', sizeof id - 1);
    id[sizeof id - 1] = '\0';
    char *headers = mem_printf("Request-Id: %s\r\n", id);
    char *answer = answer_with("200 OK", headers, "{}");
    stripe_response_t out;
    test_server_t *s = call_against(answer, "GET", "/v1/customers/cus_1", NULL, NULL, &out);
    cr_assert_eq(out.outcome, STRIPE_OK);
    cr_assert_eq(strlen(out.request_id), sizeof out.request_id - 1);
    stripe_response_dispose(&out);
    free(s);
    free(answer);
    free(headers);
}

Test(stripe, answer_declared_larger_than_the_max_is_rejected)
{
    char *answer =
        mem_printf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n{}", STRIPE_RESPONSE_MAX + 1);
    stripe_response_t out;
    test_server_t *s = call_against(answer, "GET", "/v1/customers/cus_1", NULL, NULL, &out);
    cr_assert_eq(out.outcome, STRIPE_REJECTED);
    cr_assert_null(out.body);
    cr_assert(strstr(out.message, "larger than") != NULL, "%s", out.message);
    stripe_response_dispose(&out);
    free(s);
    free(answer);
}

Test(stripe, answer_growing_past_the_max_without_a_length_is_rejected)
{
    static const char head[] = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{\"pad\":\"";
    size_t len = sizeof head - 1 + STRIPE_RESPONSE_MAX + 16;
    char *answer = mem_alloc(len);
    memcpy(answer, head, sizeof head - 1);
    memset(answer + sizeof head - 1, 'x', len - (sizeof head - 1));
    test_server_t *s = server_start_len(answer, len);
    stripe_client_t c;
    char base[64];
    base_of(s->port, base, sizeof base);
    cr_assert_eq(stripe_client_init(&c, base), 0);
    stripe_response_t out;
    stripe_call(&c, "sk_test_123", "GET", "/v1/customers/cus_1", NULL, NULL, &out);
    server_finish(s);
    cr_assert_eq(out.outcome, STRIPE_REJECTED);
    cr_assert_null(out.body);
    cr_assert(strstr(out.message, "larger than") != NULL, "%s", out.message);
    stripe_response_dispose(&out);
    stripe_client_dispose(&c);
    free(s);
    free(answer);
}

/* A call that must be refused before any request: against a closed port,
 * a request that was sent would come back RETRY (connection refused). */
static void assert_refused_locally(const char *api_key, const char *method, const char *path,
                                   const stripe_form_t *form, const char *idempotency_key,
                                   const char *message_part)
{
    stripe_client_t c;
    char base[64];
    base_of(closed_port(), base, sizeof base);
    cr_assert_eq(stripe_client_init(&c, base), 0);
    stripe_response_t out;
    stripe_call(&c, api_key, method, path, form, idempotency_key, &out);
    cr_assert_eq(out.outcome, STRIPE_REJECTED, "%s", out.message);
    cr_assert_eq(out.status, 0);
    cr_assert_null(out.body);
    cr_assert(strstr(out.message, message_part) != NULL, "%s", out.message);
    stripe_response_dispose(&out);
    stripe_client_dispose(&c);
}

Test(stripe, post_without_an_idempotency_key_is_rejected_unsent)
{
    stripe_form_t *f = stripe_form_new();
    stripe_form_add_int(f, "amount", 100);
    assert_refused_locally("sk_test_123", "POST", "/v1/payment_intents", f, NULL,
                           "idempotency key");
    assert_refused_locally("sk_test_123", "POST", "/v1/payment_intents", f, "", "idempotency key");
    assert_refused_locally("sk_test_123", "POST", "/v1/payment_intents", f, "k\r\nX-Evil: 1",
                           "idempotency key");
    stripe_form_free(f);
}

Test(stripe, form_with_too_many_pairs_is_invalid_and_rejected_unsent)
{
    stripe_form_t *f = stripe_form_new();
    for (int i = 0; i < STRIPE_FORM_MAX; i++) {
        char key[32];
        snprintf(key, sizeof key, "k%d", i);
        stripe_form_add(f, key, "v");
    }
    stripe_form_add(f, "one_too_many", "v");
    char *text = stripe_form_encode(f);
    cr_assert(strstr(text, "k127=v") != NULL);
    cr_assert_null(strstr(text, "one_too_many"));
    free(text);
    assert_refused_locally("sk_test_123", "POST", "/v1/customers", f, "k1", "STRIPE_FORM_MAX");
    stripe_form_free(f);
}

Test(stripe, form_with_a_null_pair_is_rejected_unsent)
{
    stripe_form_t *f = stripe_form_new();
    stripe_form_add(f, "description", NULL);
    assert_refused_locally("sk_test_123", "POST", "/v1/customers", f, "k1", "form is invalid");
    stripe_form_free(f);
    f = stripe_form_new();
    stripe_form_add_metadata(f, NULL, "v");
    assert_refused_locally("sk_test_123", "GET", "/v1/customers", f, NULL, "form is invalid");
    stripe_form_free(f);
}

Test(stripe, bad_key_path_or_method_is_rejected_unsent)
{
    assert_refused_locally(NULL, "GET", "/v1/customers", NULL, NULL, "API key");
    assert_refused_locally("", "GET", "/v1/customers", NULL, NULL, "API key");
    assert_refused_locally("sk_test_1\r\nX-Evil: 1", "GET", "/v1/customers", NULL, NULL, "API key");
    assert_refused_locally("sk_test_123", "GET", "v1/customers", NULL, NULL, "path");
    assert_refused_locally("sk_test_123", "GET", "/v1/customers/cus 1", NULL, NULL, "path");
    assert_refused_locally("sk_test_123", "GET", NULL, NULL, NULL, "path");
    assert_refused_locally("sk_test_123", "DELETE", "/v1/customers/cus_1", NULL, NULL, "DELETE");
    assert_refused_locally("sk_test_123", NULL, "/v1/customers", NULL, NULL, "GET or POST");
}

Test(stripe, client_init_checks_and_trims_the_base)
{
    stripe_client_t c;
    cr_assert_eq(stripe_client_init(&c, NULL), 0);
    cr_assert_str_eq(c.base, STRIPE_DEFAULT_BASE);
    cr_assert_not_null(c.curl);
    stripe_client_dispose(&c);
    cr_assert_null(c.curl);

    cr_assert_eq(stripe_client_init(&c, ""), 0);
    cr_assert_str_eq(c.base, STRIPE_DEFAULT_BASE);
    stripe_client_dispose(&c);

    cr_assert_eq(stripe_client_init(&c, "http://127.0.0.1:12111//"), 0);
    cr_assert_str_eq(c.base, "http://127.0.0.1:12111");
    stripe_client_dispose(&c);

    const char *bad[] = {"ftp://stripe", "api.stripe.com", "http://",
                         "https:///",    "http://a b",     "HTTPS://api.stripe.com"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(stripe_client_init(&c, bad[i]), BILLOW_EPARAM_INVALID, "%s", bad[i]);
        cr_assert_null(c.curl);
    }
    char long_base[STRIPE_BASE_MAX + 8];
    memcpy(long_base, "https://", 8);
    memset(long_base + 8, 'a', sizeof long_base - 9);
    long_base[sizeof long_base - 1] = '\0';
    cr_assert_eq(stripe_client_init(&c, long_base), BILLOW_EPARAM_INVALID);
    stripe_client_dispose(&c);
}

/* ---- stripe_call_many against a server of many connections ------------- */

/* How long each answer is held back, so that calls overlap. */
#define MANY_HOLD_MS 150
/* Most connections the many-server serves. */
#define MANY_MAX 16

/* A test fixture: on 127.0.0.1, serves `expect` connections, one request
 * each, each on its own thread, answering 200 {"key": "<the request's
 * Idempotency-Key>"} (or a 402 card_error when the key ends in "-decline")
 * after MANY_HOLD_MS; it records the most connections open at once. */
typedef struct many_server_s many_server_t;
typedef struct {
    many_server_t *server;
    int conn;
} many_conn_t;
struct many_server_s {
    int fd, port, expect;
    pthread_t acceptor;
    pthread_t threads[MANY_MAX];
    many_conn_t conns[MANY_MAX];
    pthread_mutex_t lock;
    int open, most;
};

static void *many_serve(void *arg)
{
    many_conn_t *c = arg;
    many_server_t *s = c->server;
    pthread_mutex_lock(&s->lock);
    if (++s->open > s->most)
        s->most = s->open;
    pthread_mutex_unlock(&s->lock);
    char req[REQUEST_ROOM] = "";
    size_t len = 0;
    for (;;) {
        ssize_t n = recv(c->conn, req + len, sizeof req - 1 - len, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
        req[len] = '\0';
        const char *end = strstr(req, "\r\n\r\n");
        const char *cl = strcasestr(req, "\r\nContent-Length:");
        size_t body = cl != NULL && end != NULL && cl < end
                          ? strtoul(cl + strlen("\r\nContent-Length:"), NULL, 10)
                          : 0;
        if (end != NULL && len >= (size_t)(end + 4 - req) + body)
            break;
    }
    char key[128] = "";
    const char *k = strcasestr(req, "\r\nIdempotency-Key: ");
    if (k != NULL)
        sscanf(k + strlen("\r\nIdempotency-Key: "), "%127[^\r]", key);
    poll(NULL, 0, MANY_HOLD_MS);
    bool decline = strlen(key) > 8 && strcmp(key + strlen(key) - 8, "-decline") == 0;
    char *body = decline ? mem_printf("{\"error\": {\"type\": \"card_error\", \"code\": "
                                      "\"card_declined\", \"decline_code\": \"%s\", "
                                      "\"message\": \"Declined.\"}}",
                                      key)
                         : mem_printf("{\"key\": \"%s\"}", key);
    char *answer = answer_with(decline ? "402 Payment Required" : "200 OK", "", body);
    pthread_mutex_lock(&s->lock);
    s->open--;
    pthread_mutex_unlock(&s->lock);
    (void)!send(c->conn, answer, strlen(answer), MSG_NOSIGNAL);
    shutdown(c->conn, SHUT_WR);
    close(c->conn);
    free(answer);
    free(body);
    return NULL;
}

static void *many_accept(void *arg)
{
    many_server_t *s = arg;
    for (int i = 0; i < s->expect; i++) {
        struct pollfd p = {.fd = s->fd, .events = POLLIN};
        if (poll(&p, 1, ACCEPT_WAIT_MS) != 1)
            break;
        s->conns[i].server = s;
        s->conns[i].conn = accept(s->fd, NULL, NULL);
        if (s->conns[i].conn < 0 ||
            pthread_create(&s->threads[i], NULL, many_serve, &s->conns[i]) != 0) {
            s->expect = i;
            break;
        }
    }
    for (int i = 0; i < s->expect; i++)
        pthread_join(s->threads[i], NULL);
    return NULL;
}

static many_server_t *many_start(int expect)
{
    many_server_t *s = mem_calloc(1, sizeof *s);
    s->fd = listen_loopback(&s->port);
    cr_assert_eq(listen(s->fd, MANY_MAX), 0);
    s->expect = expect;
    pthread_mutex_init(&s->lock, NULL);
    cr_assert_eq(pthread_create(&s->acceptor, NULL, many_accept, s), 0);
    return s;
}

static void many_finish(many_server_t *s)
{
    pthread_join(s->acceptor, NULL);
    close(s->fd);
    pthread_mutex_destroy(&s->lock);
}

Test(stripe, many_calls_run_at_once_up_to_the_limit_each_with_its_own_answer)
{
    enum { N = 7, PARALLEL = 3 };
    many_server_t *s = many_start(N);
    char base[64], keys[N][32];
    base_of(s->port, base, sizeof base);
    stripe_client_t c;
    cr_assert_eq(stripe_client_init(&c, base), 0);
    stripe_form_t *form = stripe_form_new();
    stripe_form_add(form, "amount", "100");
    stripe_request_t reqs[N];
    stripe_response_t outs[N];
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "billow:pi:in_%d%s", i, i == 4 ? "-decline" : "");
        reqs[i] = (stripe_request_t){"sk_test_123", "POST",  "/v1/payment_intents",
                                     form,          keys[i], &outs[i]};
    }
    stripe_call_many(&c, reqs, N, PARALLEL);
    many_finish(s);
    for (int i = 0; i < N; i++) {
        if (i == 4) {
            cr_assert_eq(outs[i].outcome, STRIPE_DECLINED);
            cr_assert_str_eq(outs[i].decline_code, keys[i], "the answer of its own request");
        } else {
            cr_assert_eq(outs[i].outcome, STRIPE_OK, "call %d: %s", i, outs[i].message);
            cr_assert_str_eq(json_string_value(json_object_get(outs[i].body, "key")), keys[i],
                             "call %d got the answer of its own request", i);
        }
        stripe_response_dispose(&outs[i]);
    }
    cr_assert_eq(s->most, PARALLEL, "at most %d calls at once, and that many: %d", PARALLEL,
                 s->most);
    stripe_form_free(form);
    stripe_client_dispose(&c);
    free(s);
}

Test(stripe, many_calls_refuse_a_bad_one_unsent_and_make_the_others)
{
    many_server_t *s = many_start(2);
    char base[64];
    base_of(s->port, base, sizeof base);
    stripe_client_t c;
    cr_assert_eq(stripe_client_init(&c, base), 0);
    stripe_response_t outs[3];
    stripe_request_t reqs[3] = {
        {"sk_test_123", "POST", "/v1/refunds", NULL, "billow:re:1", &outs[0]},
        {"sk_test_123", "POST", "/v1/refunds", NULL, NULL, &outs[1]},
        {"sk_test_123", "GET", "/v1/payment_intents/pi_1", NULL, NULL, &outs[2]},
    };
    stripe_call_many(&c, reqs, 3, STRIPE_PARALLEL_MAX + 5);
    many_finish(s);
    cr_assert_eq(outs[0].outcome, STRIPE_OK);
    cr_assert_eq(outs[1].outcome, STRIPE_REJECTED);
    cr_assert(strstr(outs[1].message, "idempotency key") != NULL, "%s", outs[1].message);
    cr_assert_eq(outs[1].status, 0, "the bad call was never sent");
    cr_assert_eq(outs[2].outcome, STRIPE_OK);
    for (int i = 0; i < 3; i++)
        stripe_response_dispose(&outs[i]);
    stripe_client_dispose(&c);
    free(s);
}

Test(stripe, many_calls_to_a_closed_port_are_each_a_passing_fault)
{
    char base[64];
    base_of(closed_port(), base, sizeof base);
    stripe_client_t c;
    cr_assert_eq(stripe_client_init(&c, base), 0);
    stripe_response_t outs[2];
    stripe_request_t reqs[2] = {
        {"sk_test_123", "POST", "/v1/refunds", NULL, "billow:re:1", &outs[0]},
        {"sk_test_123", "POST", "/v1/refunds", NULL, "billow:re:2", &outs[1]},
    };
    stripe_call_many(&c, reqs, 2, 2);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(outs[i].outcome, STRIPE_RETRY);
        cr_assert_eq(outs[i].status, 0);
        cr_assert(strstr(outs[i].message, "no answer from Stripe") != NULL, "%s", outs[i].message);
        stripe_response_dispose(&outs[i]);
    }
    stripe_client_dispose(&c);
}

/* ---- on_wait: what a call runs while it waits ------------------------- */

/* What on_wait saw: calls in all, and calls made while the one-shot server
 * (when there is one) still held its answer, a second or more into the call. */
typedef struct {
    int calls;
    int late_waiting;
    uint64_t start_ns;
    const test_server_t *server;
} wait_seen_t;

static void count_wait(void *arg)
{
    wait_seen_t *w = arg;
    w->calls++;
    if (w->server != NULL && !atomic_load(&w->server->answered) &&
        timeutil_mono_ns() - w->start_ns >= 1000000000u)
        w->late_waiting++;
}

Test(stripe, on_wait_runs_again_and_again_while_stripe_holds_its_answer)
{
    char *answer = answer_with("200 OK", "", "{\"id\":\"cus_1\"}");
    test_server_t *s = mem_calloc(1, sizeof *s);
    s->fd = listen_loopback(&s->port);
    s->answer = answer;
    s->answer_len = strlen(answer);
    /* libcurl runs the progress callback at least once a second: three
     * seconds leave room for two calls in the wait on a busy machine. */
    s->hold_ms = 3000;
    cr_assert_eq(pthread_create(&s->thread, NULL, serve_one, s), 0);
    char base[64];
    base_of(s->port, base, sizeof base);
    stripe_client_t c;
    cr_assert_eq(stripe_client_init(&c, base), 0);
    wait_seen_t seen = {.start_ns = timeutil_mono_ns(), .server = s};
    stripe_client_on_wait(&c, count_wait, &seen);
    stripe_response_t out;
    stripe_call(&c, "sk_test_123", "GET", "/v1/customers/cus_1", NULL, NULL, &out);
    server_finish(s);
    cr_assert_eq(out.outcome, STRIPE_OK, "%s", out.message);
    cr_assert_geq(seen.late_waiting, 1,
                  "on_wait ran while the answer was held, a second into the call (%d calls)",
                  seen.calls);
    stripe_response_dispose(&out);
    stripe_client_dispose(&c);
    free(answer);
    free(s);
}

Test(stripe, on_wait_runs_while_many_calls_wait)
{
    many_server_t *s = many_start(2);
    char base[64];
    base_of(s->port, base, sizeof base);
    stripe_client_t c;
    cr_assert_eq(stripe_client_init(&c, base), 0);
    wait_seen_t seen = {.start_ns = timeutil_mono_ns(), .server = NULL};
    stripe_client_on_wait(&c, count_wait, &seen);
    stripe_response_t outs[2];
    stripe_request_t reqs[2] = {
        {"sk_test_123", "POST", "/v1/refunds", NULL, "billow:re:1", &outs[0]},
        {"sk_test_123", "POST", "/v1/refunds", NULL, "billow:re:2", &outs[1]},
    };
    /* Each answer is held MANY_HOLD_MS, longer than one wait of the loop. */
    stripe_call_many(&c, reqs, 2, 2);
    many_finish(s);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(outs[i].outcome, STRIPE_OK, "%s", outs[i].message);
        stripe_response_dispose(&outs[i]);
    }
    cr_assert_geq(seen.calls, 1, "on_wait ran while the calls waited");
    stripe_client_dispose(&c);
    free(s);
}

/* http_conn tests: a real server on 127.0.0.1 against plain blocking sockets.
 *
 * Each test starts a server on an ephemeral port with small limits, its loop
 * running in a background thread; the test thread is the client. Work that
 * must happen on the loop (stopping the server, answering a held request,
 * reading the connection count) is posted through a uv_async_t and waited
 * for. Responses are read with http-parser in response mode. Every test ends
 * by stopping the server, joining the loop thread and checking that the loop
 * closes cleanly; run under ASan and UBSan this also proves no handle or
 * request leaks and no use after free when clients vanish.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http_conn.h"
#include "mem.h"
#include "timeutil.h"

/* Under AddressSanitizer a leak is only reported at exit, which Criterion
 * does not count as a failure; checking at the end of each test does. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define assert_no_leaks() cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "memory leaked")
#else
#define assert_no_leaks() ((void)0)
#endif

#define MAX_LOGS 64
/* A client gives up on a read after this, so a broken server fails a test
 * instead of hanging it. */
#define CLIENT_RECV_TIMEOUT_S 5
/* How long /slow waits before answering. */
#define SLOW_DELAY_MS 100
/* Larger than loopback's socket buffers can hold, so a client that does not
 * read stalls the write. */
#define BIG_BODY (32u * 1024 * 1024)

/* One call of the log callback. */
typedef struct {
    int status;               /* Status logged. */
    size_t body_len;          /* Body bytes logged as sent. */
    char path[64];            /* req->path, truncated. */
    char request_id[IDS_MAX]; /* req->request_id. */
} log_entry_t;

/* The server and what its callbacks saw; fields the loop thread writes after
 * start are guarded by mu. */
static struct {
    uv_loop_t loop;               /* The server's loop, run by thread. */
    uv_async_t wake;              /* Runs call on the loop thread. */
    pthread_t thread;             /* Runs the loop. */
    pthread_mutex_t mu;           /* Guards everything below. */
    pthread_cond_t cv;            /* Signalled on every change below. */
    http_server_t *server;        /* The server under test. */
    int port;                     /* Its port. */
    void (*call)(void);           /* Pending work for the loop thread. */
    bool call_done;               /* call has run. */
    http_req_t *held;             /* A /hold request not yet answered. */
    int held_count;               /* /hold requests received. */
    int stopped;                  /* on_stopped calls. */
    bool answered_before_stopped; /* No request was held when on_stopped ran. */
    size_t connections;           /* Last http_server_connections() read. */
    log_entry_t logs[MAX_LOGS];   /* Log callback calls, in order. */
    int nlogs;                    /* Entries in logs. */
} F;

static const http_limits_t test_limits = {
    .max_header_bytes = 1024,
    .max_body_bytes = 4096,
    .header_timeout_ms = 300,
    .body_timeout_ms = 300,
    .idle_timeout_ms = 1000,
    .write_timeout_ms = 10000,
    .max_connections = 16,
};

/* ---- Server side, on the loop thread. ---- */

static void respond_echo(http_req_t *req)
{
    const char *probe = http_req_header(req, "X-Probe");
    char *body =
        mem_printf("%s %s q=%s probe=%s body=%.*s", http_method_str(req->method), req->path,
                   req->query != NULL ? req->query : "-", probe != NULL ? probe : "-",
                   (int)req->body_len, req->body != NULL ? req->body : "");
    const http_header_t extra[] = {
        {.name = "X-Extra", .value = "yes"},
        {.name = "X-Bad", .value = "a\r\nInjected: 1"},
        {.name = "Content-Length", .value = "1"},
    };
    http_respond(req, 200, extra, 3, "text/plain", body, strlen(body));
    free(body);
}

/* Answers with the url, path, query and every header, one "name=value" a
 * line, so a test can check that each arrived intact. */
static void respond_headers(http_req_t *req)
{
    char *body = mem_printf("%s %s %s\n", req->url, req->path, req->query ? req->query : "-");
    for (size_t i = 0; i < req->nheaders; i++) {
        char *more = mem_printf("%s%s=%s\n", body, req->headers[i].name, req->headers[i].value);
        free(body);
        body = more;
    }
    http_respond(req, 200, NULL, 0, "text/plain", body, strlen(body));
    free(body);
}

/* A response that comes later, from a timer. */
typedef struct {
    uv_timer_t timer; /* First, so the handle pointer is the struct's. */
    http_req_t *req;  /* Answered when the timer fires. */
} delayed_t;

static void on_delayed_close(uv_handle_t *h)
{
    free(h);
}

static void on_delay(uv_timer_t *t)
{
    delayed_t *d = (delayed_t *)t;
    respond_echo(d->req);
    uv_close((uv_handle_t *)t, on_delayed_close);
}

static void handler(http_req_t *req, void *ctx)
{
    if (strcmp(req->path, "/slow") == 0) {
        delayed_t *d = mem_calloc(1, sizeof *d);
        d->req = req;
        uv_timer_init(&F.loop, &d->timer);
        uv_timer_start(&d->timer, on_delay, SLOW_DELAY_MS, 0);
        return;
    }
    if (strcmp(req->path, "/hold") == 0) {
        pthread_mutex_lock(&F.mu);
        F.held = req;
        F.held_count++;
        pthread_cond_broadcast(&F.cv);
        pthread_mutex_unlock(&F.mu);
        return;
    }
    if (strcmp(req->path, "/headers") == 0) {
        respond_headers(req);
        return;
    }
    if (strcmp(req->path, "/big") == 0) {
        char *body = mem_alloc(BIG_BODY);
        memset(body, 'x', BIG_BODY);
        http_respond(req, 200, NULL, 0, "text/plain", body, BIG_BODY);
        free(body);
        return;
    }
    respond_echo(req);
}

static void log_cb(const http_req_t *req, int status, size_t body_len, uint64_t dur_ns, void *ctx)
{
    pthread_mutex_lock(&F.mu);
    if (F.nlogs < MAX_LOGS) {
        log_entry_t *e = &F.logs[F.nlogs];
        e->status = status;
        e->body_len = body_len;
        snprintf(e->path, sizeof e->path, "%s", req->path);
        snprintf(e->request_id, sizeof e->request_id, "%s", req->request_id);
    }
    F.nlogs++;
    pthread_cond_broadcast(&F.cv);
    pthread_mutex_unlock(&F.mu);
}

static void on_stopped(void *data)
{
    pthread_mutex_lock(&F.mu);
    F.stopped++;
    F.answered_before_stopped = F.held == NULL;
    pthread_mutex_unlock(&F.mu);
    uv_close((uv_handle_t *)&F.wake, NULL);
}

static void on_wake(uv_async_t *a)
{
    pthread_mutex_lock(&F.mu);
    void (*fn)(void) = F.call;
    pthread_mutex_unlock(&F.mu);
    if (fn == NULL)
        return;
    fn();
    pthread_mutex_lock(&F.mu);
    F.call = NULL;
    F.call_done = true;
    pthread_cond_broadcast(&F.cv);
    pthread_mutex_unlock(&F.mu);
}

static void do_stop(void)
{
    http_server_stop(F.server, on_stopped, NULL);
}

static void do_release(void)
{
    pthread_mutex_lock(&F.mu);
    http_req_t *req = F.held;
    F.held = NULL;
    pthread_mutex_unlock(&F.mu);
    respond_echo(req);
}

static void do_count(void)
{
    size_t n = http_server_connections(F.server);
    pthread_mutex_lock(&F.mu);
    F.connections = n;
    pthread_mutex_unlock(&F.mu);
}

static void *loop_main(void *arg)
{
    uv_run(&F.loop, UV_RUN_DEFAULT);
    return NULL;
}

/* ---- Test side. ---- */

static void server_start(const http_limits_t *limits)
{
    pthread_mutex_init(&F.mu, NULL);
    pthread_cond_init(&F.cv, NULL);
    cr_assert_eq(uv_loop_init(&F.loop), 0);
    cr_assert_eq(uv_async_init(&F.loop, &F.wake, on_wake), 0);
    cr_assert_eq(
        http_server_start(&F.loop, "127.0.0.1", 0, limits, handler, log_cb, NULL, &F.server), 0);
    F.port = http_server_port(F.server);
    cr_assert_gt(F.port, 0);
    cr_assert_eq(pthread_create(&F.thread, NULL, loop_main, NULL), 0);
}

/* Runs fn on the loop thread and waits until it has run. */
static void run_on_loop(void (*fn)(void))
{
    pthread_mutex_lock(&F.mu);
    F.call = fn;
    F.call_done = false;
    pthread_mutex_unlock(&F.mu);
    uv_async_send(&F.wake);
    pthread_mutex_lock(&F.mu);
    while (!F.call_done)
        pthread_cond_wait(&F.cv, &F.mu);
    pthread_mutex_unlock(&F.mu);
}

/* Stops the server, joins the loop and checks that everything closed. */
static void server_finish(void)
{
    run_on_loop(do_stop);
    pthread_join(F.thread, NULL);
    cr_assert_eq(F.stopped, 1, "on_stopped ran %d times", F.stopped);
    cr_assert_eq(uv_loop_close(&F.loop), 0, "the loop still has open handles");
    assert_no_leaks();
}

/* Waits (boundedly) until the server has open_connections connections. */
static bool wait_connections(size_t open_connections)
{
    for (int i = 0; i < 500; i++) {
        run_on_loop(do_count);
        pthread_mutex_lock(&F.mu);
        size_t n = F.connections;
        pthread_mutex_unlock(&F.mu);
        if (n == open_connections)
            return true;
        usleep(10 * 1000);
    }
    return false;
}

/* Waits until field (under mu) reaches at least n, or gives up. */
static int wait_count(const int *field, int n)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += CLIENT_RECV_TIMEOUT_S;
    pthread_mutex_lock(&F.mu);
    while (*field < n && pthread_cond_timedwait(&F.cv, &F.mu, &deadline) == 0) {
    }
    int v = *field;
    pthread_mutex_unlock(&F.mu);
    return v;
}

/* One response as the client saw it. */
typedef struct {
    int status;               /* Status code. */
    char request_id[IDS_MAX]; /* Request-Id header, or "". */
    char connection[32];      /* Connection header, or "". */
    char content_type[64];    /* Content-Type header, or "". */
    long content_length;      /* Content-Length header, or -1. */
    int content_length_count; /* Content-Length headers seen. */
    bool has_date;            /* A Date header came. */
    bool has_extra;           /* X-Extra: yes came. */
    bool has_injected;        /* A header named Injected came (must not). */
    char body[8192];          /* Body, truncated, NUL-terminated. */
    size_t body_len;          /* Body bytes received (not truncated). */
} resp_t;

/* A blocking client connection that parses responses. */
typedef struct {
    int fd;             /* The socket. */
    http_parser parser; /* Response parser. */
    char buf[16384];    /* Bytes received and not yet parsed: [off, len). */
    size_t off;         /* Start of the unparsed bytes. */
    size_t len;         /* End of the received bytes. */
    resp_t *cur;        /* Response being filled. */
    char field[64];     /* Header name being received. */
    char value[256];    /* Header value being received. */
    bool in_value;      /* The last callback was a value. */
    bool head_request;  /* The response answers HEAD: it has no body. */
} client_t;

static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void cat(char *dst, size_t cap, const char *at, size_t n)
{
    size_t len = strlen(dst);
    if (n > cap - 1 - len)
        n = cap - 1 - len;
    memcpy(dst + len, at, n);
    dst[len + n] = '\0';
}

static void commit_header(client_t *cl)
{
    resp_t *r = cl->cur;
    if (cl->field[0] == '\0')
        return;
    if (strcasecmp(cl->field, "Request-Id") == 0)
        copy_str(r->request_id, sizeof r->request_id, cl->value);
    else if (strcasecmp(cl->field, "Connection") == 0)
        copy_str(r->connection, sizeof r->connection, cl->value);
    else if (strcasecmp(cl->field, "Content-Type") == 0)
        copy_str(r->content_type, sizeof r->content_type, cl->value);
    else if (strcasecmp(cl->field, "Content-Length") == 0) {
        r->content_length = atol(cl->value);
        r->content_length_count++;
    } else if (strcasecmp(cl->field, "Date") == 0)
        r->has_date = true;
    else if (strcasecmp(cl->field, "X-Extra") == 0)
        r->has_extra = strcmp(cl->value, "yes") == 0;
    else if (strcasecmp(cl->field, "Injected") == 0)
        r->has_injected = true;
    cl->field[0] = '\0';
    cl->value[0] = '\0';
}

static int c_header_field(http_parser *p, const char *at, size_t n)
{
    client_t *cl = p->data;
    if (cl->in_value)
        commit_header(cl);
    cl->in_value = false;
    cat(cl->field, sizeof cl->field, at, n);
    return 0;
}

static int c_header_value(http_parser *p, const char *at, size_t n)
{
    client_t *cl = p->data;
    cl->in_value = true;
    cat(cl->value, sizeof cl->value, at, n);
    return 0;
}

static int c_headers_complete(http_parser *p)
{
    client_t *cl = p->data;
    commit_header(cl);
    cl->in_value = false;
    cl->cur->status = (int)p->status_code;
    return cl->head_request ? 1 : 0;
}

static int c_body(http_parser *p, const char *at, size_t n)
{
    client_t *cl = p->data;
    resp_t *r = cl->cur;
    size_t room = sizeof r->body - 1 - (r->body_len < sizeof r->body ? r->body_len : 0);
    if (r->body_len < sizeof r->body - 1)
        memcpy(r->body + r->body_len, at, n < room ? n : room);
    r->body_len += n;
    r->body[r->body_len < sizeof r->body - 1 ? r->body_len : sizeof r->body - 1] = '\0';
    return 0;
}

static int c_message_complete(http_parser *p)
{
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings client_settings = {
    .on_header_field = c_header_field,
    .on_header_value = c_header_value,
    .on_headers_complete = c_headers_complete,
    .on_body = c_body,
    .on_message_complete = c_message_complete,
};

static int connect_fd(int port, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct timeval tv = {.tv_sec = CLIENT_RECV_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static client_t *client_open_rcvbuf(int rcvbuf)
{
    client_t *cl = mem_calloc(1, sizeof *cl);
    cl->fd = connect_fd(F.port, rcvbuf);
    cr_assert_geq(cl->fd, 0, "connect: %s", strerror(errno));
    http_parser_init(&cl->parser, HTTP_RESPONSE);
    cl->parser.data = cl;
    return cl;
}

static client_t *client_open(void)
{
    return client_open_rcvbuf(0);
}

static void client_close(client_t *cl)
{
    close(cl->fd);
    free(cl);
}

/* Sends all of s; false if the server has closed the connection. */
static bool client_send_n(client_t *cl, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t k = send(cl->fd, s, n, MSG_NOSIGNAL);
        if (k <= 0)
            return false;
        s += k;
        n -= (size_t)k;
    }
    return true;
}

static bool client_send(client_t *cl, const char *s)
{
    return client_send_n(cl, s, strlen(s));
}

/* Reads the next response into r. False if the connection ended first. */
static bool client_read(client_t *cl, resp_t *r)
{
    memset(r, 0, sizeof *r);
    r->content_length = -1;
    cl->cur = r;
    cl->field[0] = '\0';
    cl->value[0] = '\0';
    cl->in_value = false;
    http_parser_pause(&cl->parser, 0);
    for (;;) {
        if (cl->off < cl->len) {
            size_t n = http_parser_execute(&cl->parser, &client_settings, cl->buf + cl->off,
                                           cl->len - cl->off);
            cl->off += n;
            enum http_errno e = HTTP_PARSER_ERRNO(&cl->parser);
            if (e == HPE_PAUSED)
                return true;
            if (e != HPE_OK)
                return false;
            continue;
        }
        ssize_t k = recv(cl->fd, cl->buf, sizeof cl->buf, 0);
        if (k <= 0)
            return false;
        cl->off = 0;
        cl->len = (size_t)k;
    }
}

/* True if the server closes the connection with no further bytes. */
static bool client_sees_close(client_t *cl)
{
    if (cl->off < cl->len)
        return false;
    char b[256];
    ssize_t k = recv(cl->fd, b, sizeof b, 0);
    return k == 0 || (k < 0 && errno == ECONNRESET);
}

/* Sends one request and reads its response. */
static bool exchange(client_t *cl, const char *request, resp_t *r)
{
    return client_send(cl, request) && client_read(cl, r);
}

/* A JSON error response: checks its shape and returns error.code (static). */
static const char *error_code_of(const resp_t *r, char *message, size_t message_cap)
{
    static char code[64];
    json_error_t jerr;
    json_t *root = json_loads(r->body, 0, &jerr);
    cr_assert_not_null(root, "error body is not JSON: %s", r->body);
    json_t *e = json_object_get(root, "error");
    cr_assert(json_is_object(e));
    cr_assert(json_is_string(json_object_get(e, "type")));
    cr_assert(json_is_string(json_object_get(e, "message")));
    cr_assert(json_is_null(json_object_get(e, "param")));
    cr_assert_str_eq(json_string_value(json_object_get(e, "request_id")), r->request_id);
    copy_str(code, sizeof code, json_string_value(json_object_get(e, "code")));
    if (message != NULL)
        copy_str(message, message_cap, json_string_value(json_object_get(e, "message")));
    json_decref(root);
    cr_assert_str_eq(r->content_type, "application/json");
    cr_assert_str_eq(r->connection, "close");
    return code;
}

static const char simple_get[] = "GET /hello?x=1 HTTP/1.1\r\nHost: t\r\nX-Probe: p1\r\n\r\n";

Test(http_conn, simple_get_is_200_with_request_id_and_content_length, .timeout = 30)
{
    server_start(&test_limits);
    client_t *cl = client_open();
    resp_t r;
    cr_assert(exchange(cl, simple_get, &r));
    cr_assert_eq(r.status, 200);
    cr_assert(ids_valid("req", r.request_id), "Request-Id %s", r.request_id);
    cr_assert_str_eq(r.body, "GET /hello q=x=1 probe=p1 body=");
    cr_assert_eq(r.content_length, (long)strlen(r.body));
    cr_assert_eq(r.content_length_count, 1, "a handler's Content-Length must not be sent");
    cr_assert_str_eq(r.content_type, "text/plain");
    cr_assert(r.has_date);
    cr_assert(r.has_extra);
    cr_assert_not(r.has_injected, "a header value with CRLF must not be sent");
    cr_assert_str_eq(r.connection, "");
    client_close(cl);
    server_finish();
    cr_assert_eq(F.nlogs, 1);
    cr_assert_eq(F.logs[0].status, 200);
    cr_assert_eq(F.logs[0].body_len, strlen(r.body));
    cr_assert_str_eq(F.logs[0].path, "/hello");
    cr_assert_str_eq(F.logs[0].request_id, r.request_id);
}

Test(http_conn, keep_alive_serves_two_requests_on_one_socket, .timeout = 30)
{
    server_start(&test_limits);
    client_t *cl = client_open();
    resp_t r1, r2;
    cr_assert(exchange(cl, "GET /one HTTP/1.1\r\nHost: t\r\n\r\n", &r1));
    cr_assert(exchange(cl, "GET /two HTTP/1.1\r\nHost: t\r\n\r\n", &r2));
    cr_assert_eq(r1.status, 200);
    cr_assert_eq(r2.status, 200);
    cr_assert_str_eq(r1.body, "GET /one q=- probe=- body=");
    cr_assert_str_eq(r2.body, "GET /two q=- probe=- body=");
    cr_assert_str_neq(r1.request_id, r2.request_id);
    cr_assert(wait_connections(1));
    client_close(cl);
    server_finish();
    cr_assert_eq(F.nlogs, 2);
    cr_assert_str_eq(F.logs[0].request_id, r1.request_id);
    cr_assert_str_eq(F.logs[1].request_id, r2.request_id);
}

Test(http_conn, pipelined_requests_are_answered_in_request_order, .timeout = 30)
{
    server_start(&test_limits);
    client_t *cl = client_open();
    /* The first is answered last by its handler, yet must come back first. */
    cr_assert(client_send(cl, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"
                              "GET /a HTTP/1.1\r\nHost: t\r\n\r\n"
                              "POST /b?y=2 HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"));
    resp_t r[3];
    for (int i = 0; i < 3; i++)
        cr_assert(client_read(cl, &r[i]), "response %d", i);
    cr_assert_str_eq(r[0].body, "GET /slow q=- probe=- body=");
    cr_assert_str_eq(r[1].body, "GET /a q=- probe=- body=");
    cr_assert_str_eq(r[2].body, "POST /b q=y=2 probe=- body=abc");
    cr_assert_str_neq(r[0].request_id, r[1].request_id);
    cr_assert_str_neq(r[1].request_id, r[2].request_id);
    client_close(cl);
    server_finish();
    cr_assert_eq(F.nlogs, 3);
}

Test(http_conn, content_length_body_is_delivered, .timeout = 30)
{
    server_start(&test_limits);
    client_t *cl = client_open();
    resp_t r;
    /* Head and body in separate writes, as a real client may send them. */
    cr_assert(client_send(cl, "PUT /b HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello"));
    cr_assert(client_send(cl, " world"));
    cr_assert(client_read(cl, &r));
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "PUT /b q=- probe=- body=hello world");
    client_close(cl);
    server_finish();
}

Test(http_conn, chunked_body_is_delivered_dechunked, .timeout = 30)
{
    server_start(&test_limits);
    client_t *cl = client_open();
    resp_t r;
    cr_assert(exchange(cl,
                       "POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
                       &r));
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "POST /c q=- probe=- body=hello world");
    /* The connection is still usable afterwards. */
    cr_assert(exchange(cl, "GET /after HTTP/1.1\r\nHost: t\r\n\r\n", &r));
    cr_assert_str_eq(r.body, "GET /after q=- probe=- body=");
    client_close(cl);
    server_finish();
}

Test(http_conn, expect_continue_gets_100_then_the_response, .timeout = 30)
{
    server_start(&test_limits);
    client_t *cl = client_open();
    resp_t r;
    cr_assert(exchange(cl,
                       "POST /e HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                       "Content-Length: 4\r\n\r\n",
                       &r));
    cr_assert_eq(r.status, 100);
    cr_assert(exchange(cl, "data", &r));
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "POST /e q=- probe=- body=data");
    client_close(cl);
    server_finish();
}

Test(http_conn, head_request_gets_length_but_no_body, .timeout = 30)
{
    server_start(&test_limits);
    client_t *cl = client_open();
    cl->head_request = true;
    resp_t r;
    cr_assert(exchange(cl, "HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n", &r));
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.content_length, (long)strlen("HEAD /h q=- probe=- body="));
    cr_assert_eq(r.body_len, 0);
    /* Had a body been sent, it would be parsed as the next response. */
    cl->head_request = false;
    cr_assert(exchange(cl, "GET /g HTTP/1.1\r\nHost: t\r\n\r\n", &r));
    cr_assert_str_eq(r.body, "GET /g q=- probe=- body=");
    client_close(cl);
    server_finish();
    cr_assert_eq(F.logs[0].body_len, 0);
}

Test(http_conn, connection_close_is_honoured, .timeout = 30)
{
    server_start(&test_limits);
    client_t *cl = client_open();
    resp_t r;
    cr_assert(exchange(cl, "GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", &r));
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.connection, "close");
    cr_assert(client_sees_close(cl));
    client_close(cl);
    server_finish();
}

Test(http_conn, http10_closes_unless_keep_alive_is_asked, .timeout = 30)
{
    server_start(&test_limits);
    client_t *cl = client_open();
    resp_t r;
    cr_assert(exchange(cl, "GET /k HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &r));
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.connection, "keep-alive");
    cr_assert(exchange(cl, "GET /plain HTTP/1.0\r\n\r\n", &r));
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "GET /plain q=- probe=- body=");
    cr_assert_str_eq(r.connection, "close");
    cr_assert(client_sees_close(cl));
    client_close(cl);
    server_finish();
}

Test(http_conn, head_over_limit_is_431_and_closes, .timeout = 30)
{
    server_start(&test_limits);
    client_t *cl = client_open();
    char req[2048];
    char big[1500];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    snprintf(req, sizeof req, "GET /big-head HTTP/1.1\r\nHost: t\r\nX-Big: %s\r\n\r\n", big);
    resp_t r;
    client_send(cl, req);
    cr_assert(client_read(cl, &r));
    cr_assert_eq(r.status, 431);
    cr_assert_str_eq(error_code_of(&r, NULL, 0), "headers_too_large");
    cr_assert(client_sees_close(cl));
    client_close(cl);
    server_finish();
    cr_assert_eq(F.nlogs, 1);
    cr_assert_eq(F.logs[0].status, 431);
    cr_assert_str_eq(F.logs[0].path, "/big-head");
    cr_assert_str_eq(F.logs[0].request_id, r.request_id);
}

Test(http_conn, head_exactly_at_limit_is_accepted, .timeout = 30)
{
    server_start(&test_limits);
    client_t *cl = client_open();
#define EDGE_HEAD "GET /edge HTTP/1.1\r\nX-Pad: %s\r\n\r\n"
    size_t pad = test_limits.max_header_bytes - (strlen(EDGE_HEAD) - 2);
    char *padding = mem_alloc(pad + 1);
    memset(padding, 'p', pad);
    padding[pad] = '\0';
    char *req = mem_printf(EDGE_HEAD, padding);
    cr_assert_eq(strlen(req), test_limits.max_header_bytes);
    resp_t r;
    cr_assert(exchange(cl, req, &r));
    cr_assert_eq(r.status, 200);
    free(req);
    free(padding);
    client_close(cl);

    /* One byte more is over. */
    cl = client_open();
    padding = mem_alloc(pad + 2);
    memset(padding, 'p', pad + 1);
    padding[pad + 1] = '\0';
    req = mem_printf(EDGE_HEAD, padding);
    cr_assert(exchange(cl, req, &r));
    cr_assert_eq(r.status, 431);
    free(req);
    free(padding);
    client_close(cl);
    server_finish();
}

Test(http_conn, too_many_headers_is_431, .timeout = 30)
{
    server_start(&test_limits);
    client_t *cl = client_open();
    char req[1024] = "GET /many HTTP/1.1\r\n";
    for (int i = 0; i < HTTP_MAX_HEADERS + 1; i++) {
        char h[32];
        snprintf(h, sizeof h, "H%d: v\r\n", i);
        strcat(req, h);
    }
    strcat(req, "\r\n");
    cr_assert_lt(strlen(req), test_limits.max_header_bytes, "must fail on count, not size");
    resp_t r;
    client_send(cl, req);
    cr_assert(client_read(cl, &r));
    cr_assert_eq(r.status, 431);
    char message[256];
    cr_assert_str_eq(error_code_of(&r, message, sizeof message), "headers_too_large");
    cr_assert(strstr(message, "64 headers") != NULL, "message: %s", message);
    cr_assert(client_sees_close(cl));
    client_close(cl);
    server_finish();
}

Test(http_conn, many_headers_split_across_many_small_writes_arrive_intact, .timeout = 30)
{
    /* Room for the longest head and time for it to trickle in. */
    http_limits_t limits = test_limits;
    limits.max_header_bytes = 16 * 1024;
    limits.header_timeout_ms = 10 * 1000;
    server_start(&limits);
    client_t *cl = client_open();
    int one = 1;
    setsockopt(cl->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

    /* The most headers allowed, of growing lengths and one empty, so that
     * names and values outgrow the server's first buffer mid-field. */
    char *req = mem_strdup("GET /headers?a=1&b=two HTTP/1.1\r\n");
    char *want = mem_strdup("/headers?a=1&b=two /headers a=1&b=two\n");
    for (int i = 0; i < HTTP_MAX_HEADERS; i++) {
        char value[128];
        int len = i == 7 ? 0 : 1 + i % 40;
        for (int k = 0; k < len; k++)
            value[k] = (char)('a' + (i + k) % 26);
        value[len] = '\0';
        char *r2 = mem_printf("%sX-Header-%02d-%.*s: %s\r\n", req, i, i % 5, "Nnnnn", value);
        char *w2 = mem_printf("%sX-Header-%02d-%.*s=%s\n", want, i, i % 5, "Nnnnn", value);
        free(req);
        free(want);
        req = r2;
        want = w2;
    }
    char *r2 = mem_printf("%s\r\n", req);
    free(req);
    req = r2;
    cr_assert_gt(strlen(req), 2048, "the head must outgrow the first arena");

    /* Pieces of 1 to 7 bytes with a pause after each, so the server reads
     * most of them separately and fields arrive in many callbacks. */
    size_t total = strlen(req);
    size_t sent = 0;
    for (size_t piece = 1; sent < total; piece = piece % 7 + 1) {
        size_t n = total - sent < piece ? total - sent : piece;
        cr_assert(client_send_n(cl, req + sent, n));
        sent += n;
        usleep(100);
    }
    resp_t r;
    cr_assert(client_read(cl, &r));
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.body_len, strlen(want));
    cr_assert_str_eq(r.body, want);
    free(req);
    free(want);
    client_close(cl);
    server_finish();
    cr_assert_eq(F.nlogs, 1);
    cr_assert_str_eq(F.logs[0].path, "/headers");
}

Test(http_conn, content_length_over_limit_is_413_before_the_body_is_sent, .timeout = 30)
{
    server_start(&test_limits);
    client_t *cl = client_open();
    resp_t r;
    /* Only the head is sent: the answer cannot depend on reading the body. */
    cr_assert(exchange(cl, "POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n", &r));
    cr_assert_eq(r.status, 413);
    cr_assert_str_eq(error_code_of(&r, NULL, 0), "body_too_large");
    cr_assert(client_sees_close(cl));
    client_close(cl);
    server_finish();
    cr_assert_eq(F.nlogs, 1);
    cr_assert_eq(F.logs[0].status, 413);
    cr_assert_str_eq(F.logs[0].path, "/up");
}

Test(http_conn, chunked_body_over_limit_is_413_and_closes, .timeout = 30)
{
    server_start(&test_limits);
    client_t *cl = client_open();
    cr_assert(
        client_send(cl, "POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"));
    char chunk[1100];
    memset(chunk, 'z', sizeof chunk);
    /* Five chunks of 1024 bytes exceed the 4096-byte limit in the fifth. */
    for (int i = 0; i < 5; i++) {
        client_send(cl, "400\r\n");
        client_send_n(cl, chunk, 1024);
        client_send(cl, "\r\n");
    }
    resp_t r;
    cr_assert(client_read(cl, &r));
    cr_assert_eq(r.status, 413);
    cr_assert_str_eq(error_code_of(&r, NULL, 0), "body_too_large");
    cr_assert(client_sees_close(cl));
    client_close(cl);
    server_finish();
}

Test(http_conn, chunked_body_at_limit_is_accepted, .timeout = 30)
{
    server_start(&test_limits);
    client_t *cl = client_open();
    cr_assert(
        client_send(cl, "POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"));
    char chunk[1024];
    memset(chunk, 'z', sizeof chunk);
    for (int i = 0; i < 4; i++) {
        client_send(cl, "400\r\n");
        client_send_n(cl, chunk, sizeof chunk);
        client_send(cl, "\r\n");
    }
    resp_t r;
    cr_assert(exchange(cl, "0\r\n\r\n", &r));
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.body_len, strlen("POST /up q=- probe=- body=") + 4096);
    client_close(cl);
    server_finish();
}

Test(http_conn, garbage_is_400_naming_the_parser_error_and_closes, .timeout = 30)
{
    server_start(&test_limits);
    client_t *cl = client_open();
    resp_t r;
    client_send(cl, "\x01\x02 garbage\r\n\r\n");
    cr_assert(client_read(cl, &r));
    cr_assert_eq(r.status, 400);
    char message[256];
    cr_assert_str_eq(error_code_of(&r, message, sizeof message), "malformed_request");
    cr_assert(strstr(message, "HPE_INVALID_METHOD") != NULL, "message: %s", message);
    cr_assert(client_sees_close(cl));
    client_close(cl);
    server_finish();
    cr_assert_eq(F.nlogs, 1);
    cr_assert_eq(F.logs[0].status, 400);
    cr_assert_str_eq(F.logs[0].path, "");
    cr_assert(ids_valid("req", F.logs[0].request_id));
}

Test(http_conn, malformed_header_after_good_request_still_answers_the_first, .timeout = 30)
{
    server_start(&test_limits);
    client_t *cl = client_open();
    cr_assert(client_send(cl, "GET /first HTTP/1.1\r\nHost: t\r\n\r\n"
                              "GET /second HTTP/1.1\r\nBad Header\r\n\r\n"));
    resp_t r;
    cr_assert(client_read(cl, &r));
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "GET /first q=- probe=- body=");
    cr_assert(client_read(cl, &r));
    cr_assert_eq(r.status, 400);
    cr_assert_str_eq(error_code_of(&r, NULL, 0), "malformed_request");
    cr_assert(client_sees_close(cl));
    client_close(cl);
    server_finish();
}

Test(http_conn, slowloris_is_cut_with_408_while_others_are_served, .timeout = 30)
{
    server_start(&test_limits);
    client_t *slow = client_open();
    char head[512] = "GET /slowloris HTTP/1.1\r\nX-Slow: ";
    size_t start = strlen(head);
    memset(head + start, 'a', 300);
    head[start + 300] = '\0';
    size_t total = strlen(head);
    size_t sent = 0;
    bool other_served = false;
    struct pollfd pfd = {.fd = slow->fd, .events = POLLIN};
    /* One byte every 20 ms: the whole head would take six seconds, far past
     * the 300 ms header timeout, though no gap comes near it. */
    while (sent < total && poll(&pfd, 1, 20) == 0) {
        if (!client_send_n(slow, head + sent, 1))
            break;
        sent++;
        if (sent == 5) {
            client_t *other = client_open();
            resp_t r;
            cr_assert(exchange(other, simple_get, &r));
            other_served = r.status == 200;
            client_close(other);
        }
    }
    cr_assert(other_served);
    cr_assert_lt(sent, total, "the trickling client was never cut off");
    resp_t r;
    cr_assert(client_read(slow, &r));
    cr_assert_eq(r.status, 408);
    cr_assert_str_eq(error_code_of(&r, NULL, 0), "request_timeout");
    cr_assert(client_sees_close(slow));
    client_close(slow);
    server_finish();
    cr_assert_eq(F.nlogs, 2);
}

Test(http_conn, body_that_stops_arriving_is_408, .timeout = 30)
{
    server_start(&test_limits);
    client_t *cl = client_open();
    resp_t r;
    cr_assert(exchange(cl, "POST /b HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc", &r));
    cr_assert_eq(r.status, 408);
    cr_assert_str_eq(error_code_of(&r, NULL, 0), "request_timeout");
    cr_assert(client_sees_close(cl));
    client_close(cl);
    server_finish();
    cr_assert_str_eq(F.logs[0].path, "/b");
}

Test(http_conn, idle_keep_alive_connection_is_closed_silently, .timeout = 30)
{
    http_limits_t limits = test_limits;
    limits.idle_timeout_ms = 300;
    server_start(&limits);
    client_t *cl = client_open();
    resp_t r;
    cr_assert(exchange(cl, simple_get, &r));
    cr_assert_eq(r.status, 200);
    cr_assert(client_sees_close(cl), "expected a close with no bytes after the idle timeout");
    cr_assert(wait_connections(0));
    client_close(cl);
    server_finish();
    cr_assert_eq(F.nlogs, 1);
}

Test(http_conn, silent_new_connection_is_closed_after_idle_timeout, .timeout = 30)
{
    http_limits_t limits = test_limits;
    limits.idle_timeout_ms = 300;
    server_start(&limits);
    client_t *cl = client_open();
    cr_assert(client_sees_close(cl));
    client_close(cl);
    server_finish();
    cr_assert_eq(F.nlogs, 0);
}

Test(http_conn, response_from_a_timer_is_delivered, .timeout = 30)
{
    server_start(&test_limits);
    client_t *cl = client_open();
    resp_t r;
    cr_assert(exchange(cl, "GET /slow?d=1 HTTP/1.1\r\nHost: t\r\n\r\n", &r));
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "GET /slow q=d=1 probe=- body=");
    client_close(cl);
    server_finish();
}

Test(http_conn, client_reset_before_the_response_drops_it_safely, .timeout = 30)
{
    server_start(&test_limits);
    client_t *cl = client_open();
    cr_assert(client_send(cl, "GET /hold HTTP/1.1\r\nHost: t\r\n\r\n"));
    cr_assert_eq(wait_count(&F.held_count, 1), 1);
    /* A zero linger turns close into a reset. */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(cl->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    client_close(cl);
    cr_assert(wait_connections(0));
    run_on_loop(do_release);
    server_finish();
    cr_assert_eq(F.nlogs, 1);
    cr_assert_eq(F.logs[0].status, 200);
    cr_assert_eq(F.logs[0].body_len, 0, "a dropped response sent no bytes");
}

Test(http_conn, half_closed_client_still_gets_its_response, .timeout = 30)
{
    server_start(&test_limits);
    client_t *cl = client_open();
    cr_assert(client_send(cl, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"));
    shutdown(cl->fd, SHUT_WR);
    resp_t r;
    cr_assert(client_read(cl, &r));
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "GET /slow q=- probe=- body=");
    cr_assert_str_eq(r.connection, "close");
    cr_assert(client_sees_close(cl));
    client_close(cl);
    server_finish();
}

Test(http_conn, stop_finishes_in_flight_request_then_calls_on_stopped, .timeout = 30)
{
    server_start(&test_limits);
    client_t *idle = client_open();
    resp_t r;
    cr_assert(exchange(idle, simple_get, &r));
    client_t *busy = client_open();
    cr_assert(client_send(busy, "GET /hold HTTP/1.1\r\nHost: t\r\n\r\n"));
    cr_assert_eq(wait_count(&F.held_count, 1), 1);

    run_on_loop(do_stop);
    /* Idle connections close at once; new ones are refused. */
    cr_assert(client_sees_close(idle));
    cr_assert_lt(connect_fd(F.port, 0), 0);
    cr_assert(wait_connections(1));
    pthread_mutex_lock(&F.mu);
    int stopped = F.stopped;
    pthread_mutex_unlock(&F.mu);
    cr_assert_eq(stopped, 0, "stopped with a request in flight");

    run_on_loop(do_release);
    cr_assert(client_read(busy, &r));
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "GET /hold q=- probe=- body=");
    cr_assert_str_eq(r.connection, "close");
    cr_assert(client_sees_close(busy));
    pthread_join(F.thread, NULL);
    cr_assert_eq(F.stopped, 1);
    cr_assert(F.answered_before_stopped);
    cr_assert_eq(uv_loop_close(&F.loop), 0);
    client_close(idle);
    client_close(busy);
    assert_no_leaks();
}

Test(http_conn, max_connections_closes_extra_connections_at_accept, .timeout = 30)
{
    http_limits_t limits = test_limits;
    limits.max_connections = 2;
    server_start(&limits);
    client_t *a = client_open();
    client_t *b = client_open();
    resp_t r;
    cr_assert(exchange(a, simple_get, &r));
    cr_assert(exchange(b, simple_get, &r));
    client_t *c = client_open();
    cr_assert(client_sees_close(c), "a third connection must be closed");
    client_close(c);
    client_close(a);
    cr_assert(wait_connections(1));
    client_t *d = client_open();
    cr_assert(exchange(d, simple_get, &r), "a freed slot is usable again");
    cr_assert_eq(r.status, 200);
    client_close(b);
    client_close(d);
    server_finish();
    cr_assert_eq(F.nlogs, 3);
}

Test(http_conn, client_that_stops_reading_a_response_is_dropped, .timeout = 60)
{
    http_limits_t limits = test_limits;
    limits.idle_timeout_ms = 300;
    server_start(&limits);
    client_t *cl = client_open_rcvbuf(4096);
    cr_assert(client_send(cl, "GET /big HTTP/1.1\r\nHost: t\r\n\r\n"));
    /* The log comes once the response is queued, so the connection exists. */
    cr_assert_eq(wait_count(&F.nlogs, 1), 1);
    cr_assert(wait_connections(0), "a stalled response kept its connection open");
    size_t total = 0;
    char b[65536];
    ssize_t k;
    while ((k = recv(cl->fd, b, sizeof b, 0)) > 0)
        total += (size_t)k;
    cr_assert_lt(total, BIG_BODY);
    client_close(cl);
    server_finish();
    cr_assert_eq(F.nlogs, 1);
}

Test(http_conn, client_that_reads_a_response_a_trickle_at_a_time_is_cut_off, .timeout = 60)
{
    /* The reads make progress within every idle period, which the stall
     * check alone accepts forever: the write deadline ends it, at the
     * deadline and not a check period later. */
    http_limits_t limits = test_limits;
    limits.idle_timeout_ms = 3000;
    limits.write_timeout_ms = 2000;
    server_start(&limits);
    client_t *cl = client_open();
    cr_assert(client_send(cl, "GET /big HTTP/1.1\r\nHost: t\r\n\r\n"));
    cr_assert_eq(wait_count(&F.nlogs, 1), 1);
    uint64_t start = timeutil_mono_ns(), closed_ms = 0;
    static char b[65536];
    /* Up to 64 KiB every 50 ms (BIG_BODY would take 25 s) for up to 6 s;
     * the kernel's buffers still hold data after the server lets go, so the
     * server's count says when it did. */
    while (closed_ms == 0 && timeutil_mono_ns() - start < 6000ull * 1000000u) {
        cr_assert_gt(recv(cl->fd, b, sizeof b, 0), 0);
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 50 * 1000000L};
        nanosleep(&ts, NULL);
        run_on_loop(do_count);
        pthread_mutex_lock(&F.mu);
        if (F.connections == 0)
            closed_ms = (timeutil_mono_ns() - start) / 1000000u;
        pthread_mutex_unlock(&F.mu);
    }
    cr_assert_gt(closed_ms, 0, "a trickling reader kept its response open for 6 s");
    cr_assert_geq(closed_ms, 1950, "not cut off before the deadline (%llu ms)",
                  (unsigned long long)closed_ms);
    /* The next check would come at 4 s (the deadline's, again) or 5 s (an
     * idle period after the first): well past 3.5 s. */
    cr_assert_lt(closed_ms, 3500, "cut off at the deadline, not a check later (%llu ms)",
                 (unsigned long long)closed_ms);
    client_close(cl);
    server_finish();
}

Test(http_conn, start_fails_on_a_bad_address_or_a_taken_port, .timeout = 30)
{
    server_start(&test_limits);
    uv_loop_t loop;
    cr_assert_eq(uv_loop_init(&loop), 0);
    http_server_t *other = NULL;
    cr_assert_eq(
        http_server_start(&loop, "not-an-address", 0, &test_limits, handler, NULL, NULL, &other),
        UV_EINVAL);
    cr_assert_eq(
        http_server_start(&loop, "127.0.0.1", F.port, &test_limits, handler, NULL, NULL, &other),
        UV_EADDRINUSE);
    cr_assert_null(other);
    http_limits_t zero = test_limits;
    zero.max_header_bytes = 0;
    cr_assert_eq(http_server_start(&loop, "127.0.0.1", 0, &zero, handler, NULL, NULL, &other),
                 UV_EINVAL);
    cr_assert_null(other);
    cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    cr_assert_eq(uv_loop_close(&loop), 0);
    server_finish();
}

Test(http_conn, error_body_has_the_documented_shape)
{
    char *s = http_error_body(BILLOW_EPARAM_INVALID, "amount", "Amount must be positive.",
                              "req_01ARYZ6S410000000000000000");
    json_t *root = json_loads(s, 0, NULL);
    cr_assert_not_null(root);
    json_t *e = json_object_get(root, "error");
    cr_assert_str_eq(json_string_value(json_object_get(e, "type")), "invalid_request_error");
    cr_assert_str_eq(json_string_value(json_object_get(e, "code")), "parameter_invalid");
    cr_assert_str_eq(json_string_value(json_object_get(e, "message")), "Amount must be positive.");
    cr_assert_str_eq(json_string_value(json_object_get(e, "param")), "amount");
    cr_assert_str_eq(json_string_value(json_object_get(e, "request_id")),
                     "req_01ARYZ6S410000000000000000");
    cr_assert_eq(json_object_size(root), 1);
    cr_assert_eq(json_object_size(e), 5);
    json_decref(root);
    free(s);

    s = http_error_body(BILLOW_ETIMEOUT, NULL, NULL, "req_x");
    root = json_loads(s, 0, NULL);
    e = json_object_get(root, "error");
    cr_assert_str_eq(json_string_value(json_object_get(e, "code")), "request_timeout");
    cr_assert_str_eq(json_string_value(json_object_get(e, "message")),
                     err_message(BILLOW_ETIMEOUT));
    cr_assert(json_is_null(json_object_get(e, "param")));
    json_decref(root);
    free(s);
}

Test(http_conn, status_text_gives_reason_phrases)
{
    cr_assert_str_eq(http_status_text(200), "OK");
    cr_assert_str_eq(http_status_text(404), "Not Found");
    cr_assert_str_eq(http_status_text(413), "Payload Too Large");
    cr_assert_str_eq(http_status_text(431), "Request Header Fields Too Large");
    cr_assert_str_eq(http_status_text(799), "Unknown");
}

/* http_fuzz: the HTTP front as a whole, fed arbitrary bytes over TCP.
 *
 * One server (http_conn) with a trivial handler that answers 200 listens on
 * 127.0.0.1 on an ephemeral port for the life of the process, on a loop this
 * thread drives. For each input a client connects, writes the input, shuts
 * down its write side and reads until the server has closed; the loop runs
 * meanwhile. The input is written in pieces whose size is derived from a
 * hash of the input (sometimes all at once), one piece per loop iteration, so
 * the server also meets requests split at arbitrary points, yet a replay of
 * the input splits it the same way. Small limits (1 KiB heads, 4 KiB bodies, 50 ms header and body
 * timeouts) put every limit within the fuzzer's reach.
 *
 * Checked for every input: the server closes the connection and frees it
 * within WATCHDOG_MS of the client's end of input (no hang, no leaked
 * connection); what it sent back parses as a sequence of HTTP/1.1 responses
 * ending at a message boundary, one final response per request the log
 * callback saw, in the same order and with the same status; every status is
 * 200 or one of the errors the module owns (400, 408, 413, 431), and an error
 * response closes the connection; and afterwards a well-formed request on a
 * new connection is still answered "HTTP/1.1 200", so no input can take the
 * server down. Everything runs on this thread, so a replay of an input takes
 * the same path through the server as the run that found it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "fuzz.h"
#include "http_conn.h"

/* Longest the server may take to close a connection after the client has
 * sent everything. The server closes at once on end of input, so reaching
 * this is a hang; it is generous so a slow sanitizer build never trips it. */
#define WATCHDOG_MS 5000

/* Most writes one input is split into: enough to cut a head in many places,
 * few enough that the pieces arrive well within the 50 ms timeouts. */
#define MAX_PIECES 64

/* The request that proves the server still serves after an input. */
static const char probe[] = "GET /probe HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n\r\n";

static const http_limits_t limits = {
    .max_header_bytes = 1024,
    .max_body_bytes = 4096,
    .header_timeout_ms = 50,
    .body_timeout_ms = 50,
    .idle_timeout_ms = 1000,
    .write_timeout_ms = 10000,
    .max_connections = 8,
};

/* One request the server answered, as its log callback saw it. */
typedef struct {
    enum http_method method; /* HEAD answers carry no body. */
    int status;              /* Status the server answered with. */
} logged_t;

/* A client connection driven by a uv_poll_t on the server's loop. */
typedef struct {
    int fd;           /* Non-blocking client socket. */
    uv_poll_t poll;   /* Watches fd; data points to this client. */
    bool poll_closed; /* poll's close callback ran. */
    const char *out;  /* Bytes to send. */
    size_t out_len;   /* Bytes in out. */
    size_t out_off;   /* Bytes of out sent so far. */
    size_t piece;     /* Most bytes sent per loop iteration. */
    bool shut;        /* Write side shut down (all of out sent, or reset). */
    bool eof;         /* The server closed: read returned 0 or failed. */
    bool reset;       /* A send or receive failed: some bytes may be lost. */
    char *in;         /* Everything received. */
    size_t in_len;    /* Bytes in in. */
} client_t;

/* The process-wide server; everything else is per input. */
static struct {
    uv_loop_t loop;        /* Driven by LLVMFuzzerTestOneInput only. */
    http_server_t *server; /* Listening on 127.0.0.1:port. */
    int port;              /* Its ephemeral port. */
    uv_timer_t watchdog;   /* Ends a hung exchange. */
    bool timed_out;        /* The watchdog fired. */
    logged_t *logs;        /* Log callback calls for the current exchange. */
    size_t nlogs;          /* Entries used in logs. */
    size_t logs_cap;       /* Entries allocated in logs. */
} S;

static void handler(http_req_t *req, void *ctx)
{
    http_respond(req, 200, NULL, 0, "text/plain", "ok", 2);
}

static void on_log(const http_req_t *req, int status, size_t body_len, uint64_t dur_ns, void *ctx)
{
    if (S.nlogs == S.logs_cap) {
        S.logs_cap = S.logs_cap == 0 ? 64 : S.logs_cap * 2;
        S.logs = mem_realloc(S.logs, S.logs_cap * sizeof *S.logs);
    }
    S.logs[S.nlogs++] = (logged_t){.method = req->method, .status = status};
}

static void on_watchdog(uv_timer_t *t)
{
    S.timed_out = true;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    /* libuv writes with write(2): a client gone mid-response must be an
     * EPIPE error for the server, not a signal that ends the fuzzer. */
    signal(SIGPIPE, SIG_IGN);
    FUZZ_CHECK(uv_loop_init(&S.loop) == 0, "uv_loop_init failed");
    FUZZ_CHECK(uv_timer_init(&S.loop, &S.watchdog) == 0, "uv_timer_init failed");
    int rc = http_server_start(&S.loop, "127.0.0.1", 0, &limits, handler, on_log, NULL, &S.server);
    FUZZ_CHECK(rc == 0, "http_server_start: %s", uv_strerror(rc));
    S.port = http_server_port(S.server);
    return 0;
}

static void client_update(client_t *cl);

/* How many bytes to write per loop iteration for this input: a function of
 * its bytes alone (FNV-1a), so every run of it splits it alike. */
static size_t piece_size(const char *out, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)out[i]) * 16777619u;
    if (h % 4 == 0 || len == 0)
        return len > 0 ? len : 1;
    size_t piece = 1 + (h >> 8) % 97;
    size_t least = (len + MAX_PIECES - 1) / MAX_PIECES;
    return piece > least ? piece : least;
}

/* Sends the next piece; shuts the write side once everything is sent. */
static void client_send(client_t *cl)
{
    if (cl->out_off < cl->out_len) {
        size_t n = cl->out_len - cl->out_off;
        ssize_t sent =
            send(cl->fd, cl->out + cl->out_off, n < cl->piece ? n : cl->piece, MSG_NOSIGNAL);
        if (sent < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (sent >= 0) {
            cl->out_off += (size_t)sent;
            if (cl->out_off < cl->out_len)
                return;
        } else {
            /* The server closed before taking everything (EPIPE, ECONNRESET). */
            cl->reset = true;
        }
    }
    shutdown(cl->fd, SHUT_WR);
    cl->shut = true;
}

static void client_recv(client_t *cl)
{
    for (;;) {
        char buf[16 * 1024];
        ssize_t n = recv(cl->fd, buf, sizeof buf, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            cl->reset = cl->reset || n < 0;
            cl->eof = true;
            return;
        }
        cl->in = mem_realloc(cl->in, cl->in_len + (size_t)n);
        memcpy(cl->in + cl->in_len, buf, (size_t)n);
        cl->in_len += (size_t)n;
    }
}

static void on_poll(uv_poll_t *poll, int status, int events)
{
    client_t *cl = poll->data;
    if (status < 0) {
        cl->reset = true;
        cl->eof = true;
    } else {
        if ((events & UV_WRITABLE) && !cl->shut)
            client_send(cl);
        if (events & UV_READABLE)
            client_recv(cl);
    }
    client_update(cl);
}

/* Watches for what the client still waits on: writability until all is
 * sent, readability until the server closes. */
static void client_update(client_t *cl)
{
    int events = (cl->shut ? 0 : UV_WRITABLE) | (cl->eof ? 0 : UV_READABLE);
    if (events == 0)
        uv_poll_stop(&cl->poll);
    else
        FUZZ_CHECK(uv_poll_start(&cl->poll, events, on_poll) == 0, "uv_poll_start failed");
}

static void on_poll_close(uv_handle_t *h)
{
    client_t *cl = h->data;
    cl->poll_closed = true;
}

/* Sends len bytes on a new connection and reads everything the server sends
 * back until it has closed the connection and freed it. The caller frees
 * cl->in. */
static void exchange(const char *out, size_t len, client_t *cl)
{
    memset(cl, 0, sizeof *cl);
    cl->out = out;
    cl->out_len = len;
    cl->piece = piece_size(out, len);
    S.nlogs = 0;
    S.timed_out = false;

    struct sockaddr_in addr;
    FUZZ_CHECK(uv_ip4_addr("127.0.0.1", S.port, &addr) == 0, "uv_ip4_addr failed");
    cl->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    FUZZ_CHECK(cl->fd >= 0, "socket: %s", strerror(errno));
    /* A loopback connect completes in the kernel's backlog, before the
     * server accepts, so it may block. */
    FUZZ_CHECK(connect(cl->fd, (struct sockaddr *)&addr, sizeof addr) == 0, "connect: %s",
               strerror(errno));
    /* Then non-blocking, so reads and writes happen only as far as the loop
     * lets the server go. */
    FUZZ_CHECK(fcntl(cl->fd, F_SETFL, fcntl(cl->fd, F_GETFL) | O_NONBLOCK) == 0, "fcntl: %s",
               strerror(errno));
    FUZZ_CHECK(uv_poll_init_socket(&S.loop, &cl->poll, cl->fd) == 0, "uv_poll_init_socket failed");
    cl->poll.data = cl;
    if (len == 0) {
        shutdown(cl->fd, SHUT_WR);
        cl->shut = true;
    }
    client_update(cl);

    uv_timer_start(&S.watchdog, on_watchdog, WATCHDOG_MS, 0);
    while (!S.timed_out && !(cl->eof && http_server_connections(S.server) == 0))
        uv_run(&S.loop, UV_RUN_ONCE);
    uv_timer_stop(&S.watchdog);
    FUZZ_CHECK(!S.timed_out,
               "the connection was not closed within %d ms (sent %zu of %zu bytes, %s, %zu "
               "bytes received, %zu connections open)",
               WATCHDOG_MS, cl->out_off, cl->out_len,
               cl->eof ? "server closed" : "server still open", cl->in_len,
               http_server_connections(S.server));

    uv_close((uv_handle_t *)&cl->poll, on_poll_close);
    while (!cl->poll_closed)
        uv_run(&S.loop, UV_RUN_ONCE);
    close(cl->fd);
}

/* State of parsing the server's answers, for the response callbacks. */
typedef struct {
    size_t finals;   /* Final (non-1xx) responses completed so far. */
    int status;      /* Status of the response being parsed. */
    bool final_open; /* A final response has begun and not completed. */
    bool mismatch;   /* A response did not match its log entry. */
    char why[160];   /* What mismatched. */
} responses_t;

static int on_resp_headers(http_parser *p)
{
    responses_t *r = p->data;
    r->status = (int)p->status_code;
    if (r->status / 100 == 1)
        return 0;
    if (r->finals >= S.nlogs) {
        r->mismatch = true;
        snprintf(r->why, sizeof r->why, "response %zu (status %d) answers no logged request",
                 r->finals + 1, r->status);
        return 0;
    }
    const logged_t *l = &S.logs[r->finals];
    if (l->status != r->status) {
        r->mismatch = true;
        snprintf(r->why, sizeof r->why, "response %zu has status %d but %d was logged",
                 r->finals + 1, r->status, l->status);
    }
    r->final_open = true;
    /* An answer to HEAD has a Content-Length but no body. */
    return l->method == HTTP_HEAD ? 1 : 0;
}

static int on_resp_complete(http_parser *p)
{
    responses_t *r = p->data;
    if (r->status / 100 == 1)
        return 0;
    r->final_open = false;
    r->finals++;
    if (r->status != 200 && http_should_keep_alive(p)) {
        r->mismatch = true;
        snprintf(r->why, sizeof r->why, "error response %zu (%d) keeps the connection open",
                 r->finals, r->status);
    }
    return 0;
}

static void check_responses(const client_t *cl)
{
    for (size_t i = 0; i < S.nlogs; i++) {
        int st = S.logs[i].status;
        FUZZ_CHECK(st == 200 || st == 400 || st == 408 || st == 413 || st == 431,
                   "request %zu was answered %d", i + 1, st);
    }
    /* After a failed send or a reset, bytes the server wrote may be lost:
     * the statuses above still hold, the byte stream need not. */
    if (cl->reset)
        return;

    static const http_parser_settings settings = {
        .on_headers_complete = on_resp_headers,
        .on_message_complete = on_resp_complete,
    };
    http_parser p;
    responses_t r = {0};
    http_parser_init(&p, HTTP_RESPONSE);
    p.data = &r;
    size_t n = http_parser_execute(&p, &settings, cl->in, cl->in_len);
    enum http_errno e = HTTP_PARSER_ERRNO(&p);
    FUZZ_CHECK(e == HPE_OK && n == cl->in_len, "the server's bytes are not HTTP at %zu of %zu: %s",
               n, cl->in_len, http_errno_description(e));
    /* Tells the parser the stream ended: a cut-off response is an error. */
    http_parser_execute(&p, &settings, NULL, 0);
    e = HTTP_PARSER_ERRNO(&p);
    FUZZ_CHECK(e == HPE_OK && !r.final_open, "the server's last response is cut off: %s",
               http_errno_description(e));
    FUZZ_CHECK(!r.mismatch, "%s", r.why);
    FUZZ_CHECK(r.finals == S.nlogs, "%zu responses were sent for %zu logged requests", r.finals,
               S.nlogs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    client_t cl;
    exchange((const char *)data, size, &cl);
    check_responses(&cl);
    free(cl.in);

    exchange(probe, sizeof probe - 1, &cl);
    FUZZ_CHECK(cl.in_len >= 12 && memcmp(cl.in, "HTTP/1.1 200", 12) == 0,
               "after the input, a well-formed request got \"%.*s\"",
               (int)(cl.in_len < 40 ? cl.in_len : 40), cl.in != NULL ? cl.in : "");
    free(cl.in);
    return 0;
}

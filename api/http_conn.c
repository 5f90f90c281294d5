/* http_conn: HTTP/1.1 server connections on libuv, parsed by http-parser.
 *
 * This is the first stop of every request: it accepts TCP connections, turns
 * their bytes into http_req_t values for the handler (the router), enforces
 * the limits that protect the process from slow or oversized clients, and
 * writes the handler's responses back in order.
 *
 * Design: each connection owns one read buffer, one parser, one timer and at
 * most one request at a time. Bytes are read into the buffer and parsed in
 * place; when a message completes, the parser is paused, the unparsed rest of
 * the buffer waits, and the request goes to the handler. When its response
 * has been written the parser resumes on the waiting bytes, so pipelined
 * requests are answered in order without a queue. What the timer measures and
 * what a read does depend on the connection's state (conn_state_t); every
 * transition happens in this file. A connection that must close after a
 * response shuts down its write side and reads and drops the client's
 * leftovers for a moment first (a lingering close), so the kernel does not
 * answer unread bytes with a reset that could destroy the response before
 * the client reads it. A request's url and header strings share one growing
 * buffer (req_priv_t), so reading a head costs one allocation, not several
 * per header.
 */
#include "http_conn.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "mem.h"
#include "timeutil.h"
#include "validate.h"

/* Connections the kernel queues before we accept them. Past it, new clients
 * are refused by the kernel instead of piling up during a connection flood;
 * 511 is also Redis's default. */
#define LISTEN_BACKLOG 511

/* First size of a connection's read buffer; it grows from here only while
 * pipelined requests wait for a handler. */
#define READ_CHUNK (16 * 1024)

/* Most bytes read ahead and not yet parsed per connection. Reading stops at
 * this mark while a handler runs, so a client pipelining without pause
 * cannot make the server buffer without bound. */
#define INBUF_MAX (64 * 1024)

/* How long a closing connection keeps reading and dropping the client's
 * leftover bytes after the last response. Bounded so a client cannot hold a
 * closed connection open by trickling bytes. */
#define LINGER_MS 2000

/* First size of a request's string arena. Most request heads fit, so a
 * typical request costs one allocation for all its strings; larger heads
 * double it. The arena needs no limit of its own: it holds only bytes of the
 * head, already capped by max_header_bytes, plus one NUL per string and a
 * copy of the path and query. */
#define ARENA_FIRST 1024

/* A header's value offset before any byte of the value arrived. */
#define NO_VALUE SIZE_MAX

/* Room for an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") and its NUL. */
#define HTTP_DATE_MAX 64

/* What a connection is doing; also decides what its timer measures. */
typedef enum {
    CONN_IDLE,     /* Waiting for the first byte of a request; the idle timer runs. */
    CONN_HEAD,     /* Reading a request line and headers; the header timer runs. */
    CONN_BODY,     /* Reading a request body; the body timer runs. */
    CONN_HANDLING, /* A complete request is with the handler; the parser is paused. */
    CONN_WRITING,  /* A response is being written; the timer watches for a stalled client. */
    CONN_DRAINING, /* Last response sent and write side shut; leftovers are read and dropped. */
    CONN_CLOSING,  /* uv_close was called; memory goes in the last close callback. */
} conn_state_t;

typedef struct http_conn_s http_conn_t;

struct http_conn_s {
    uv_tcp_t tcp;               /* The client socket; data points to this connection. */
    uv_timer_t timer;           /* Idle, header, body, stall or linger deadline, by state. */
    uv_write_t write_req;       /* The response being written. */
    uv_write_t continue_req;    /* An interim "100 Continue" being written. */
    uv_shutdown_t shutdown_req; /* Half-close that starts a lingering close. */
    http_server_t *server;      /* The server that accepted it. */
    http_conn_t *prev;          /* Previous in the server's list of connections. */
    http_conn_t *next;          /* Next in the server's list of connections. */
    conn_state_t state;         /* See conn_state_t. */
    int open_handles;           /* Of tcp and timer, those not yet closed. */
    http_parser parser;         /* This connection's request parser; data points here. */
    char *in;                   /* Read buffer; unparsed bytes are [in_off, in_len). */
    size_t in_off;              /* Start of the unparsed bytes in in. */
    size_t in_len;              /* End of the bytes read into in. */
    size_t in_cap;              /* Bytes allocated for in. */
    bool reading;               /* uv_read_start is in effect. */
    bool peer_eof;              /* The client half-closed: no more bytes will come. */
    bool close_after;           /* Close once the current response is written. */
    bool http10;                /* The current request is HTTP/1.0. */
    size_t head_bytes;          /* Bytes of the current request's head read so far. */
    http_req_t *req;            /* The request being read, or NULL. */
    http_req_t *inflight;       /* The request with the handler, or NULL. */
    size_t url_len;             /* Bytes of the url, which starts the request's arena. */
    size_t nfields;             /* Headers begun in the arena (req->nheaders is 0 until fixed). */
    size_t name_off[HTTP_MAX_HEADERS];  /* Arena offset of each header's name. */
    size_t value_off[HTTP_MAX_HEADERS]; /* Arena offset of each header's value, or NO_VALUE. */
    bool in_value;                      /* The last header callback was for a value. */
    bool strings_fixed;      /* req's strings point into its arena (see req_fix_strings). */
    size_t body_cap;         /* Bytes allocated for req->body. */
    int fail;                /* A limit a parser callback hit (BILLOW_E*), or 0. */
    char *fail_msg;          /* Message for fail, or NULL for the default; owned. */
    char *out;               /* The response being written; owned until written. */
    size_t stall_queue;      /* Write queue size at the last stall check. */
    uint64_t write_deadline; /* Loop time (uv_now, ms) the response must be written by. */
    char client_addr[64];    /* Peer IP address as text. */
};

struct http_server_s {
    uv_tcp_t listener;              /* The listening socket; data points to the server. */
    uv_loop_t *loop;                /* The loop everything runs on. */
    http_limits_t limits;           /* Copied at start. */
    http_handler_cb handler;        /* Called once per complete request. */
    http_log_cb log;                /* Called once per response, or NULL. */
    void *ctx;                      /* Passed to handler and log. */
    int port;                       /* The port actually bound. */
    http_conn_t *conns;             /* Open connections, a doubly linked list. */
    size_t nconns;                  /* Entries in conns. */
    size_t nrejects;                /* Rejected sockets whose close is pending. */
    size_t nreqs;                   /* Requests allocated and not yet freed. */
    bool listening;                 /* The listener handle is not yet closed. */
    bool stopping;                  /* http_server_stop was called. */
    void (*on_stopped)(void *data); /* Called once everything above is gone. */
    void *stopped_data;             /* Passed to on_stopped. */
};

static const char continue_line[] = "HTTP/1.1 100 Continue\r\n\r\n";

static void conn_process(http_conn_t *c);
static void conn_close(http_conn_t *c);

static void server_maybe_stopped(http_server_t *s)
{
    if (!s->stopping || s->listening || s->nconns > 0 || s->nrejects > 0 || s->nreqs > 0)
        return;
    void (*cb)(void *) = s->on_stopped;
    void *data = s->stopped_data;
    free(s);
    if (cb != NULL)
        cb(data);
}

/* A request and the one buffer (its arena) behind all its strings: the url,
 * each header's name and value, then the path and query, each NUL-terminated,
 * appended as http-parser delivers them. The arena moves when it grows, so
 * while the head is read its strings are kept as offsets (in the connection)
 * and become pointers only in req_fix_strings. The public part comes first,
 * so the http_req_t pointer handed out is also a pointer to this. */
typedef struct {
    http_req_t pub;   /* What the handler and the log callback see. */
    char *arena;      /* The request's strings, or NULL before the first byte. */
    size_t arena_len; /* Bytes used, not counting the last string's NUL. */
    size_t arena_cap; /* Bytes allocated for arena. */
} req_priv_t;

/* What url and path point to until the request's strings are fixed, so a
 * request answered half-read (431, 400, 408) still has readable ones. */
static char empty_string[1];

static req_priv_t *req_priv(http_req_t *req)
{
    return (req_priv_t *)req;
}

/* Makes room for need bytes in r's arena; pointers into it become stale. */
static void arena_reserve(req_priv_t *r, size_t need)
{
    if (r->arena_cap >= need)
        return;
    size_t cap = r->arena_cap == 0 ? ARENA_FIRST : r->arena_cap * 2;
    if (cap < need)
        cap = need;
    r->arena = mem_realloc(r->arena, cap);
    r->arena_cap = cap;
}

/* Ends the arena's last string and starts an empty one; returns its offset. */
static size_t arena_begin(req_priv_t *r)
{
    size_t off = r->arena_len + 1;
    arena_reserve(r, off + 1);
    r->arena[off - 1] = '\0';
    r->arena[off] = '\0';
    r->arena_len = off;
    return off;
}

/* Appends n bytes at `at` to the arena's last string, keeping its NUL. `at`
 * must not point into the arena (it may move); see arena_append_own. */
static void arena_append(req_priv_t *r, const char *at, size_t n)
{
    arena_reserve(r, r->arena_len + n + 1);
    memcpy(r->arena + r->arena_len, at, n);
    r->arena_len += n;
    r->arena[r->arena_len] = '\0';
}

/* Appends the arena's own bytes [off, off + n) to its last string. */
static void arena_append_own(req_priv_t *r, size_t off, size_t n)
{
    arena_reserve(r, r->arena_len + n + 1);
    memcpy(r->arena + r->arena_len, r->arena + off, n);
    r->arena_len += n;
    r->arena[r->arena_len] = '\0';
}

/* A new request on c with the per-request parse state reset. Its url and
 * path are "" and it has no headers until req_fix_strings runs. */
static http_req_t *req_create(http_conn_t *c)
{
    req_priv_t *r = mem_calloc(1, sizeof *r);
    http_req_t *req = &r->pub;
    req->server = c->server;
    req->conn_ = c;
    req->method = HTTP_GET;
    req->url = empty_string;
    req->path = empty_string;
    ids_generate("req", req->request_id);
    memcpy(req->client_addr, c->client_addr, sizeof req->client_addr);
    req->start_ns = timeutil_mono_ns();
    c->url_len = 0;
    c->nfields = 0;
    c->in_value = false;
    c->strings_fixed = false;
    c->body_cap = 0;
    c->server->nreqs++;
    return req;
}

static void req_free(http_req_t *req)
{
    req_priv_t *r = req_priv(req);
    free(r->arena);
    free(req->body);
    req->server->nreqs--;
    free(r);
}

/* Points c->req's url, path, query and (if with_headers) headers into its
 * arena, which does not move again: nothing is appended afterwards. The path
 * and query are copied to the arena's end, because inside the url they are
 * not NUL-terminated. False if the url is not a request target; path then
 * stays "". Runs once per request, when its head completes or when it is
 * answered half-read (then with no headers: the last may be incomplete). */
static bool req_fix_strings(http_conn_t *c, bool is_connect, bool with_headers)
{
    http_req_t *req = c->req;
    req_priv_t *r = req_priv(req);
    size_t path_off = NO_VALUE;
    size_t query_off = NO_VALUE;
    struct http_parser_url u;
    http_parser_url_init(&u);
    bool ok = c->url_len > 0 && http_parser_parse_url(r->arena, c->url_len, is_connect, &u) == 0;
    if (ok) {
        path_off = arena_begin(r);
        if (u.field_set & (1 << UF_PATH))
            arena_append_own(r, u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
        else if (!is_connect)
            arena_append(r, "/", 1);
        if (u.field_set & (1 << UF_QUERY)) {
            query_off = arena_begin(r);
            arena_append_own(r, u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len);
        }
    }
    if (c->url_len > 0)
        req->url = r->arena;
    if (path_off != NO_VALUE)
        req->path = r->arena + path_off;
    req->query = query_off != NO_VALUE ? r->arena + query_off : NULL;
    if (with_headers) {
        for (size_t i = 0; i < c->nfields; i++) {
            req->headers[i].name = r->arena + c->name_off[i];
            req->headers[i].value =
                c->value_off[i] != NO_VALUE ? r->arena + c->value_off[i] : empty_string;
        }
        req->nheaders = c->nfields;
    }
    c->strings_fixed = true;
    return ok;
}

static void on_timer(uv_timer_t *timer);

static void conn_timer_start(http_conn_t *c, uint64_t timeout_ms, uint64_t repeat_ms)
{
    /* uv_timer_start only fails on a closing handle or a NULL callback. */
    (void)uv_timer_start(&c->timer, on_timer, timeout_ms, repeat_ms);
}

/* Arms the next check of a response being written: one idle period on, or
 * at the write deadline if that comes first. The deadline is kept in loop
 * time, as the timer counts, so the check made at the deadline always finds
 * it reached (a monotonic clock read later in the turn could find it a
 * millisecond short and wait a whole period more). */
static void conn_timer_write_check(http_conn_t *c)
{
    uint64_t now = uv_now(c->server->loop);
    uint64_t left = c->write_deadline > now ? c->write_deadline - now : 0;
    uint64_t idle = c->server->limits.idle_timeout_ms;
    conn_timer_start(c, left < idle ? left : idle, 0);
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    http_conn_t *c = handle->data;
    if (c->state == CONN_DRAINING) {
        c->in_off = 0;
        c->in_len = 0;
    }
    if (c->in_off > 0) {
        memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
        c->in_len -= c->in_off;
        c->in_off = 0;
    }
    if (c->in_cap - c->in_len < READ_CHUNK && c->in_cap < INBUF_MAX) {
        size_t cap = c->in_cap == 0 ? READ_CHUNK : c->in_cap * 2;
        if (cap > INBUF_MAX)
            cap = INBUF_MAX;
        c->in = mem_realloc(c->in, cap);
        c->in_cap = cap;
    }
    *buf = uv_buf_init(c->in + c->in_len, (unsigned int)(c->in_cap - c->in_len));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void conn_read_start(http_conn_t *c)
{
    if (c->reading || c->peer_eof)
        return;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        conn_close(c);
        return;
    }
    c->reading = true;
}

static void conn_read_stop(http_conn_t *c)
{
    if (!c->reading)
        return;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
}

static void on_close(uv_handle_t *handle)
{
    http_conn_t *c = handle->data;
    if (--c->open_handles > 0)
        return;
    http_server_t *s = c->server;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    s->nconns--;
    free(c->in);
    free(c->out);
    free(c->fail_msg);
    free(c);
    server_maybe_stopped(s);
}

/* Closes c at once. A request being read is freed; one with the handler is
 * detached (its conn_ becomes NULL) so http_respond drops the answer. */
static void conn_close(http_conn_t *c)
{
    if (c->state == CONN_CLOSING)
        return;
    c->state = CONN_CLOSING;
    c->reading = false;
    if (c->req != NULL) {
        req_free(c->req);
        c->req = NULL;
    }
    if (c->inflight != NULL) {
        c->inflight->conn_ = NULL;
        c->inflight = NULL;
    }
    uv_close((uv_handle_t *)&c->timer, on_close);
    uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void on_shutdown(uv_shutdown_t *sreq, int status)
{
    http_conn_t *c = sreq->data;
    if (status < 0 && c->state != CONN_CLOSING)
        conn_close(c);
}

/* Starts the lingering close after the last response was written. */
static void conn_linger(http_conn_t *c)
{
    c->state = CONN_DRAINING;
    if (c->peer_eof) {
        conn_close(c);
        return;
    }
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        conn_close(c);
        return;
    }
    c->in_off = 0;
    c->in_len = 0;
    conn_timer_start(c, LINGER_MS, 0);
    conn_read_start(c);
}

static void on_write(uv_write_t *wreq, int status)
{
    http_conn_t *c = wreq->data;
    free(c->out);
    c->out = NULL;
    if (c->state == CONN_CLOSING)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->close_after) {
        conn_linger(c);
        return;
    }
    c->state = CONN_IDLE;
    conn_timer_start(c, c->server->limits.idle_timeout_ms, 0);
    http_parser_pause(&c->parser, 0);
    conn_process(c);
}

static void on_continue_written(uv_write_t *wreq, int status)
{
    http_conn_t *c = wreq->data;
    if (status < 0 && c->state != CONN_CLOSING)
        conn_close(c);
}

/* Answers the request being read with err's JSON error and closes after it.
 * Takes ownership of msg (NULL for err's default message). */
static void conn_respond_error(http_conn_t *c, int err, char *msg)
{
    if (c->req == NULL)
        c->req = req_create(c);
    http_req_t *req = c->req;
    if (!c->strings_fixed) {
        /* The method is complete once the url has begun; a half-read target is
         * still worth a path in the access log. */
        if (c->url_len > 0)
            req->method = (enum http_method)c->parser.method;
        (void)req_fix_strings(c, req->method == HTTP_CONNECT, false);
    }
    c->req = NULL;
    uv_timer_stop(&c->timer);
    conn_read_stop(c);
    c->state = CONN_HANDLING;
    c->close_after = true;
    c->inflight = req;
    char *body = http_error_body(err, NULL, msg, req->request_id);
    http_respond(req, err_http_status(err), NULL, 0, "application/json", body, strlen(body));
    free(body);
    free(msg);
}

static void conn_respond_parse_error(http_conn_t *c, enum http_errno e)
{
    if (e == HPE_HEADER_OVERFLOW) {
        conn_respond_error(c, BILLOW_EHEADERS_TOO_LARGE, NULL);
        return;
    }
    conn_respond_error(c, BILLOW_EMALFORMED,
                       mem_printf("%s (%s: %s)", err_message(BILLOW_EMALFORMED), http_errno_name(e),
                                  http_errno_description(e)));
}

/* Hands the complete request to the handler. */
static void conn_dispatch(http_conn_t *c)
{
    http_req_t *req = c->req;
    c->req = NULL;
    c->inflight = req;
    c->head_bytes = 0;
    c->url_len = 0;
    /* Bytes after an upgrade or CONNECT request are another protocol. */
    if (c->parser.upgrade)
        c->close_after = true;
    c->server->handler(req, c->server->ctx);
}

static bool reading_head(const http_conn_t *c)
{
    return c->state == CONN_IDLE || c->state == CONN_HEAD;
}

static int on_message_begin(http_parser *p);
static int on_url(http_parser *p, const char *at, size_t n);
static int on_header_field(http_parser *p, const char *at, size_t n);
static int on_header_value(http_parser *p, const char *at, size_t n);
static int on_headers_complete(http_parser *p);
static int on_body(http_parser *p, const char *at, size_t n);
static int on_message_complete(http_parser *p);

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* Parses buffered bytes until a request completes, a limit or error ends the
 * connection, or the buffer is empty; then decides whether to keep reading. */
static void conn_process(http_conn_t *c)
{
    const http_limits_t *lim = &c->server->limits;
    while ((reading_head(c) || c->state == CONN_BODY) && c->in_off < c->in_len) {
        size_t len = c->in_len - c->in_off;
        /* Feed a head no more than its allowance, so the limit is exact. */
        if (reading_head(c) && len > lim->max_header_bytes - c->head_bytes)
            len = lim->max_header_bytes - c->head_bytes;
        size_t n = http_parser_execute(&c->parser, &parser_settings, c->in + c->in_off, len);
        c->in_off += n;
        if (reading_head(c))
            c->head_bytes += n;
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (c->fail != 0) {
            int err = c->fail;
            char *msg = c->fail_msg;
            c->fail = 0;
            c->fail_msg = NULL;
            conn_respond_error(c, err, msg);
            return;
        }
        if (e == HPE_PAUSED) {
            conn_dispatch(c);
            break;
        }
        if (e != HPE_OK) {
            conn_respond_parse_error(c, e);
            return;
        }
        if (reading_head(c) && c->head_bytes >= lim->max_header_bytes) {
            conn_respond_error(c, BILLOW_EHEADERS_TOO_LARGE, NULL);
            return;
        }
        if (n < len) {
            /* The parser stopped without an error or a complete message; it
             * has nothing more to give on this connection. */
            conn_close(c);
            return;
        }
    }
    switch (c->state) {
    case CONN_IDLE:
    case CONN_HEAD:
    case CONN_BODY:
        if (c->peer_eof)
            conn_close(c);
        else
            conn_read_start(c);
        break;
    case CONN_HANDLING:
    case CONN_WRITING:
        /* Reading on while the handler runs notices a client that resets the
         * connection, but only up to the read-ahead limit. */
        if (c->in_len - c->in_off >= INBUF_MAX)
            conn_read_stop(c);
        else
            conn_read_start(c);
        break;
    case CONN_DRAINING:
    case CONN_CLOSING:
        break;
    }
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    http_conn_t *c = stream->data;
    if (nread == 0 || c->state == CONN_CLOSING)
        return;
    if (nread == UV_ENOBUFS) {
        conn_read_stop(c);
        return;
    }
    if (nread == UV_EOF) {
        c->reading = false;
        c->peer_eof = true;
        if (c->state == CONN_DRAINING)
            conn_close(c);
        else
            conn_process(c);
        return;
    }
    if (nread < 0) {
        conn_close(c);
        return;
    }
    if (c->state == CONN_DRAINING)
        return;
    c->in_len += (size_t)nread;
    conn_process(c);
}

static void on_timer(uv_timer_t *timer)
{
    http_conn_t *c = timer->data;
    switch (c->state) {
    case CONN_IDLE:
    case CONN_DRAINING:
        conn_close(c);
        break;
    case CONN_HEAD:
    case CONN_BODY:
        conn_respond_error(c, BILLOW_ETIMEOUT, NULL);
        break;
    case CONN_WRITING: {
        /* A client that stops reading would hold the connection and the
         * response buffer forever: one full idle period without progress
         * ends it, and so does the write deadline, which a client reading a
         * byte at a time cannot stretch. */
        size_t queued = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
        if (queued == c->stall_queue || uv_now(c->server->loop) >= c->write_deadline) {
            conn_close(c);
        } else {
            c->stall_queue = queued;
            conn_timer_write_check(c);
        }
        break;
    }
    case CONN_HANDLING:
    case CONN_CLOSING:
        break;
    }
}

static int on_message_begin(http_parser *p)
{
    http_conn_t *c = p->data;
    c->req = req_create(c);
    c->state = CONN_HEAD;
    conn_timer_start(c, c->server->limits.header_timeout_ms, 0);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    http_conn_t *c = p->data;
    /* The url is the arena's first string, so no arena_begin. */
    arena_append(req_priv(c->req), at, n);
    c->url_len += n;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    http_conn_t *c = p->data;
    req_priv_t *r = req_priv(c->req);
    /* Trailers of a chunked body are not kept: nothing in Billow reads them. */
    if (c->state == CONN_BODY)
        return 0;
    if (c->nfields == 0 || c->in_value) {
        if (c->nfields == HTTP_MAX_HEADERS) {
            c->fail = BILLOW_EHEADERS_TOO_LARGE;
            c->fail_msg = mem_printf("The request has more than %d headers.", HTTP_MAX_HEADERS);
            return -1;
        }
        c->name_off[c->nfields] = arena_begin(r);
        c->value_off[c->nfields] = NO_VALUE;
        c->nfields++;
        c->in_value = false;
    }
    arena_append(r, at, n);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    http_conn_t *c = p->data;
    req_priv_t *r = req_priv(c->req);
    if (c->state == CONN_BODY || c->nfields == 0)
        return 0;
    if (!c->in_value)
        c->value_off[c->nfields - 1] = arena_begin(r);
    arena_append(r, at, n);
    c->in_value = true;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    http_conn_t *c = p->data;
    http_req_t *req = c->req;
    const http_limits_t *lim = &c->server->limits;
    c->state = CONN_BODY;
    req->method = (enum http_method)p->method;
    req->start_ns = timeutil_mono_ns();
    /* Before anything reads the head: the 413 below and the 400 logs too. */
    if (!req_fix_strings(c, p->method == HTTP_CONNECT, true)) {
        c->fail = BILLOW_EMALFORMED;
        c->fail_msg = mem_strdup("The request target could not be parsed.");
        return -1;
    }
    bool has_length = (p->flags & F_CONTENTLENGTH) != 0;
    if (has_length && p->content_length > lim->max_body_bytes) {
        c->fail = BILLOW_EBODY_TOO_LARGE;
        return -1;
    }
    if (has_length && p->content_length > 0) {
        c->body_cap = (size_t)p->content_length + 1;
        req->body = mem_alloc(c->body_cap);
    }
    bool has_body = (p->flags & F_CHUNKED) || (has_length && p->content_length > 0);
    const char *expect = http_req_header(req, "Expect");
    if (has_body && p->http_major == 1 && p->http_minor >= 1 && expect != NULL &&
        strcasecmp(expect, "100-continue") == 0) {
        uv_buf_t b = uv_buf_init((char *)continue_line, sizeof continue_line - 1);
        c->continue_req.data = c;
        /* A failure here means a dead socket; the next read or the response
         * write reports it and closes the connection. */
        (void)uv_write(&c->continue_req, (uv_stream_t *)&c->tcp, &b, 1, on_continue_written);
    }
    conn_timer_start(c, lim->body_timeout_ms, 0);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    http_conn_t *c = p->data;
    http_req_t *req = c->req;
    size_t max = c->server->limits.max_body_bytes;
    if (n > max - req->body_len) {
        c->fail = BILLOW_EBODY_TOO_LARGE;
        return -1;
    }
    size_t need = req->body_len + n + 1;
    if (c->body_cap < need) {
        size_t cap = c->body_cap * 2 > need ? c->body_cap * 2 : need;
        if (cap > max + 1)
            cap = max + 1;
        req->body = mem_realloc(req->body, cap);
        c->body_cap = cap;
    }
    memcpy(req->body + req->body_len, at, n);
    req->body_len += n;
    req->body[req->body_len] = '\0';
    return 0;
}

static int on_message_complete(http_parser *p)
{
    http_conn_t *c = p->data;
    c->state = CONN_HANDLING;
    uv_timer_stop(&c->timer);
    c->http10 = p->http_major == 1 && p->http_minor == 0;
    if (!http_should_keep_alive(p))
        c->close_after = true;
    http_parser_pause(p, 1);
    return 0;
}

static void on_reject_close(uv_handle_t *handle)
{
    http_server_t *s = handle->data;
    free(handle);
    s->nrejects--;
    server_maybe_stopped(s);
}

/* Accepts and at once closes a connection over max_connections. It must be
 * accepted: libuv stops watching the listener while one is left pending. */
static void reject(http_server_t *s)
{
    uv_tcp_t *tcp = mem_alloc(sizeof *tcp);
    if (uv_tcp_init(s->loop, tcp) != 0) {
        free(tcp);
        return;
    }
    tcp->data = s;
    s->nrejects++;
    (void)uv_accept((uv_stream_t *)&s->listener, (uv_stream_t *)tcp);
    uv_close((uv_handle_t *)tcp, on_reject_close);
}

static void peer_name(uv_tcp_t *tcp, char out[64])
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    out[0] = '\0';
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET)
        (void)uv_ip4_name((const struct sockaddr_in *)&ss, out, 64);
    else if (ss.ss_family == AF_INET6)
        (void)uv_ip6_name((const struct sockaddr_in6 *)&ss, out, 64);
}

static void on_connection(uv_stream_t *listener, int status)
{
    http_server_t *s = listener->data;
    /* Accept errors (EMFILE and the like) are per attempt; libuv keeps
     * listening, and the client sees its connection refused or retried. */
    if (status < 0)
        return;
    if (s->nconns >= (size_t)s->limits.max_connections) {
        reject(s);
        return;
    }
    http_conn_t *c = mem_calloc(1, sizeof *c);
    if (uv_tcp_init(s->loop, &c->tcp) != 0) {
        free(c);
        return;
    }
    (void)uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->write_req.data = c;
    c->open_handles = 2;
    c->server = s;
    c->next = s->conns;
    if (s->conns != NULL)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    c->state = CONN_IDLE;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    /* Responses go out as one write each; Nagle would hold back the second
     * of two pipelined responses until the first is acknowledged. */
    (void)uv_tcp_nodelay(&c->tcp, 1);
    peer_name(&c->tcp, c->client_addr);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    conn_timer_start(c, s->limits.idle_timeout_ms, 0);
    conn_read_start(c);
}

static void on_listener_close(uv_handle_t *handle)
{
    http_server_t *s = handle->data;
    s->listening = false;
    server_maybe_stopped(s);
}

static void on_failed_listener_close(uv_handle_t *handle)
{
    free(handle->data);
}

static bool limits_valid(const http_limits_t *l)
{
    return l->max_header_bytes > 0 && l->max_body_bytes > 0 && l->header_timeout_ms > 0 &&
           l->body_timeout_ms > 0 && l->idle_timeout_ms > 0 && l->write_timeout_ms > 0 &&
           l->max_connections > 0;
}

int http_server_start(uv_loop_t *loop, const char *host, int port, const http_limits_t *limits,
                      http_handler_cb handler, http_log_cb log, void *ctx, http_server_t **out)
{
    struct sockaddr_storage addr;
    struct sockaddr_storage bound;
    int len = sizeof bound;
    http_server_t *s = NULL;
    int rc;

    if (loop == NULL || host == NULL || limits == NULL || handler == NULL || out == NULL ||
        !limits_valid(limits) || port < 0 || port > 65535)
        return UV_EINVAL;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&addr) != 0) {
        rc = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr);
        if (rc != 0)
            return rc;
    }
    s = mem_calloc(1, sizeof *s);
    s->loop = loop;
    s->limits = *limits;
    s->handler = handler;
    s->log = log;
    s->ctx = ctx;
    rc = uv_tcp_init(loop, &s->listener);
    if (rc != 0) {
        free(s);
        return rc;
    }
    s->listener.data = s;
    s->listening = true;
    rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&addr, 0);
    if (rc != 0)
        goto fail;
    rc = uv_listen((uv_stream_t *)&s->listener, LISTEN_BACKLOG, on_connection);
    if (rc != 0)
        goto fail;
    rc = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &len);
    if (rc != 0)
        goto fail;
    s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                : ((struct sockaddr_in *)&bound)->sin_port);
    *out = s;
    return 0;

fail:
    /* The handle is initialised, so only its close callback may free it. */
    uv_close((uv_handle_t *)&s->listener, on_failed_listener_close);
    return rc;
}

int http_server_port(const http_server_t *server)
{
    return server->port;
}

size_t http_server_connections(const http_server_t *server)
{
    return server->nconns;
}

void http_server_stop(http_server_t *server, void (*on_stopped)(void *data), void *data)
{
    if (server->stopping)
        return;
    server->stopping = true;
    server->on_stopped = on_stopped;
    server->stopped_data = data;
    uv_close((uv_handle_t *)&server->listener, on_listener_close);
    /* Connections between requests are closed now; the others finish the
     * request they are reading or answering and close after its response. */
    for (http_conn_t *c = server->conns; c != NULL; c = c->next) {
        if (c->state == CONN_IDLE)
            conn_close(c);
    }
}

const char *http_req_header(const http_req_t *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++) {
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    }
    return NULL;
}

static void http_date(char out[HTTP_DATE_MAX])
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    snprintf(out, HTTP_DATE_MAX, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday],
             tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* An extra header the handler may send: no CR or LF anywhere (they would let
 * whoever controls the value write headers of their own), and none of the
 * framing headers this module owns. */
static bool extra_header_ok(const http_header_t *h)
{
    if (h->name == NULL || h->value == NULL || h->name[0] == '\0' ||
        strpbrk(h->name, "\r\n: ") != NULL || strpbrk(h->value, "\r\n") != NULL)
        return false;
    return strcasecmp(h->name, "Content-Length") != 0 &&
           strcasecmp(h->name, "Transfer-Encoding") != 0 && strcasecmp(h->name, "Connection") != 0;
}

/* Appends formatted text to out (cap bytes, *n used); cap is sized by the
 * caller so this never truncates. */
static void put(char *out, size_t cap, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void put(char *out, size_t cap, size_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(out + *n, cap - *n, fmt, ap);
    va_end(ap);
    if (k > 0)
        *n += (size_t)k < cap - *n ? (size_t)k : cap - *n - 1;
}

/* The whole response as one buffer (caller frees) of *out_len bytes. */
static char *build_response(const http_conn_t *c, const http_req_t *req, int status,
                            const http_header_t *extra, size_t nextra, const char *content_type,
                            const char *body, size_t len, bool send_body, size_t *out_len)
{
    const char *reason = http_status_text(status);
    char date[HTTP_DATE_MAX];
    http_date(date);
    size_t cap = 256 + strlen(reason) + (content_type != NULL ? strlen(content_type) : 0) +
                 strlen(req->request_id) + (send_body ? len : 0);
    for (size_t i = 0; i < nextra; i++) {
        if (extra_header_ok(&extra[i]))
            cap += strlen(extra[i].name) + strlen(extra[i].value) + 4;
    }
    char *out = mem_alloc(cap);
    size_t n = 0;
    put(out, cap, &n, "HTTP/1.1 %d %s\r\nDate: %s\r\n", status, reason, date);
    if (content_type != NULL)
        put(out, cap, &n, "Content-Type: %s\r\n", content_type);
    /* 1xx, 204 and 304 responses carry no body and no length (RFC 9110). */
    if (status >= 200 && status != 204 && status != 304)
        put(out, cap, &n, "Content-Length: %zu\r\n", len);
    put(out, cap, &n, "Request-Id: %s\r\n", req->request_id);
    if (c->close_after)
        put(out, cap, &n, "Connection: close\r\n");
    else if (c->http10)
        put(out, cap, &n, "Connection: keep-alive\r\n");
    for (size_t i = 0; i < nextra; i++) {
        if (extra_header_ok(&extra[i]))
            put(out, cap, &n, "%s: %s\r\n", extra[i].name, extra[i].value);
    }
    put(out, cap, &n, "\r\n");
    if (send_body && len > 0) {
        memcpy(out + n, body, len);
        n += len;
    }
    *out_len = n;
    return out;
}

void http_respond(http_req_t *req, int status, const http_header_t *extra, size_t nextra,
                  const char *content_type, const char *body, size_t len)
{
    http_server_t *s = req->server;
    http_conn_t *c = req->conn_;
    bool send_body = req->method != HTTP_HEAD && status >= 200 && status != 204 && status != 304;
    size_t sent = 0;
    uint64_t dur_ns = timeutil_mono_ns() - req->start_ns;

    if (c != NULL) {
        c->inflight = NULL;
        if (s->stopping || (c->peer_eof && c->in_off == c->in_len))
            c->close_after = true;
        size_t out_len;
        c->out = build_response(c, req, status, extra, nextra, content_type, body, len, send_body,
                                &out_len);
        uv_buf_t buf = uv_buf_init(c->out, (unsigned int)out_len);
        c->state = CONN_WRITING;
        if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &buf, 1, on_write) != 0) {
            free(c->out);
            c->out = NULL;
            conn_close(c);
        } else {
            sent = send_body ? len : 0;
            c->stall_queue = SIZE_MAX;
            c->write_deadline = uv_now(s->loop) + s->limits.write_timeout_ms;
            conn_timer_write_check(c);
        }
    }
    if (s->log != NULL)
        s->log(req, status, sent, dur_ns, s->ctx);
    req_free(req);
    if (c == NULL)
        server_maybe_stopped(s);
}

const char *http_status_text(int status)
{
    switch (status) {
#define XX(num, name, string)                                                                      \
    case num:                                                                                      \
        return #string;
        HTTP_STATUS_MAP(XX)
#undef XX
    default:
        return "Unknown";
    }
}

/* s as a JSON string (client bytes that are not UTF-8 repaired), or null. */
static json_t *string_or_null(const char *s)
{
    if (s == NULL)
        return json_null();
    char *text = validate_utf8_repair(s);
    json_t *j = json_string(text ? text : s);
    free(text);
    return j;
}

char *http_error_body(int err, const char *param, const char *message, const char *request_id)
{
    json_t *e = json_object();
    json_object_set_new(e, "type", json_string(err_type(err)));
    json_object_set_new(e, "code", json_string(err_code(err)));
    json_object_set_new(e, "message", string_or_null(message != NULL ? message : err_message(err)));
    json_object_set_new(e, "param", string_or_null(param));
    json_object_set_new(e, "request_id", string_or_null(request_id));
    json_t *root = json_object();
    json_object_set_new(root, "error", e);
    char *text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    /* Like mem_alloc: out of memory is not recoverable half-way through. */
    if (text == NULL)
        abort();
    return text;
}

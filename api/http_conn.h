/* http_conn: HTTP/1.1 connections on libuv, parsed by Debian's http-parser.
 *
 * API: http_server_start() listens and calls one handler per complete
 * request. The handler (or anything it starts) must call http_respond()
 * exactly once for each request, at any later time on the loop thread; the
 * request stays valid until then even if the client has gone away (the
 * response is then dropped).
 *
 * Design: a connection handles one request at a time. Pipelined requests are
 * read ahead but the parser is paused after each complete message, so
 * responses go out in request order without a queue of in-flight handlers.
 * Every limit below is enforced here, before any handler runs, and answered
 * with its own JSON error: a head over max_header_bytes is 431, a body over
 * max_body_bytes is 413 (decided from Content-Length before reading it, or
 * while reading a chunked body), malformed HTTP is 400, a head or body that
 * does not arrive in time is 408; after each of these the connection closes.
 * An idle keep-alive connection is closed silently after idle_timeout_ms.
 * A response the client reads too slowly is cut off: after idle_timeout_ms
 * without progress, or write_timeout_ms after it began however it trickles
 * (one byte a minute would otherwise hold the connection and the response
 * buffer for good). Connections beyond max_connections are closed on accept.
 */
#ifndef BILLOW_HTTP_CONN_H
#define BILLOW_HTTP_CONN_H

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "err.h"
#include "ids.h"

/* Most headers one request may carry; more is 431 (stops hash-flooding and
 * memory abuse by many tiny headers). */
#define HTTP_MAX_HEADERS 64

typedef struct {
    size_t max_header_bytes;    /* Request line + headers; beyond: 431. */
    size_t max_body_bytes;      /* Body after de-chunking; beyond: 413. */
    uint64_t header_timeout_ms; /* From first byte (or keep-alive reuse) to end of head; 408. */
    uint64_t body_timeout_ms;   /* From end of head to end of body; 408. */
    uint64_t idle_timeout_ms;   /* Keep-alive idle connections are closed after this. */
    uint64_t write_timeout_ms;  /* Longest a response may take to hand to the kernel. */
    int max_connections;        /* Open connections; extra accepts are closed at once. */
} http_limits_t;

typedef struct {
    char *name;  /* As received (case preserved). */
    char *value; /* Owned by the request. */
} http_header_t;

typedef struct http_server_s http_server_t;
typedef struct http_req_s http_req_t;

struct http_req_s {
    http_server_t *server;                   /* The server that read it. */
    enum http_method method;                 /* HTTP_GET, HTTP_POST, ... */
    char *url;                               /* Request target as received. */
    char *path;                              /* Path part of url (percent-decoding not applied). */
    char *query;                             /* Query part without "?", or NULL. */
    http_header_t headers[HTTP_MAX_HEADERS]; /* Received headers. */
    size_t nheaders;                         /* Entries used in headers. */
    char *body;                              /* NUL-terminated body (may contain NULs), or NULL. */
    size_t body_len;                         /* Bytes in body. */
    char request_id[IDS_MAX];                /* "req_…", sent back as Request-Id. */
    char client_addr[64];                    /* Peer IP address as text. */
    uint64_t start_ns;                       /* Monotonic time the head completed. */
    void *user;                              /* Free for the handler. */
    struct http_conn_s *conn_;               /* Private: the connection, NULL once it closed. */
};

/* Called for each complete request; must lead to exactly one http_respond(). */
typedef void (*http_handler_cb)(http_req_t *req, void *ctx);
/* Called once per answered request after the response is queued (for access
 * logs and metrics): status, bytes of body sent, duration. Also called for the
 * errors this module answers itself (400, 408, 413, 431); a request rejected
 * before its target began has url and path "" and method HTTP_GET, and one
 * rejected before its head was complete has no headers (nheaders 0).
 * A response dropped because the client had gone is logged with 0 bytes. */
typedef void (*http_log_cb)(const http_req_t *req, int status, size_t body_len, uint64_t dur_ns,
                            void *ctx);

/* Starts listening on host:port. The handler runs on loop's thread. On
 * success *out is the server (owned by the module until http_server_stop's
 * callback); on failure returns a negative libuv error and *out is untouched. */
int http_server_start(uv_loop_t *loop, const char *host, int port, const http_limits_t *limits,
                      http_handler_cb handler, http_log_cb log, void *ctx,
                      http_server_t **out) BILLOW_MUSTCHECK;
/* The port actually bound (useful with port 0 in tests). */
int http_server_port(const http_server_t *server);
/* Number of open client connections. */
size_t http_server_connections(const http_server_t *server);
/* Stops accepting, closes idle connections, lets in-flight requests finish
 * (their connections close after the response), then frees the server and
 * calls on_stopped(data) once. */
void http_server_stop(http_server_t *server, void (*on_stopped)(void *data), void *data);

/* Case-insensitive lookup of a request header; NULL if absent. */
const char *http_req_header(const http_req_t *req, const char *name);
/* Answers req: status, extra headers (may be NULL/0), a body of len bytes
 * (copied; may be NULL/0) with content_type (NULL for none). Adds Date,
 * Content-Length, Request-Id and Connection as needed. Frees req afterwards:
 * the pointer is invalid after the call. */
void http_respond(http_req_t *req, int status, const http_header_t *extra, size_t nextra,
                  const char *content_type, const char *body, size_t len);
/* The reason phrase of an HTTP status ("Not Found"). */
const char *http_status_text(int status);
/* Writes the JSON error body for a BILLOW_E* code with request_id into a
 * newly allocated string (caller frees); message NULL uses the default. */
char *http_error_body(int err, const char *param, const char *message, const char *request_id);

#endif

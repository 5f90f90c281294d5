/* redis_conn: one asynchronous hiredis connection on the loop, kept alive.
 *
 * hiredis's libuv adapter does the I/O; this module adds what the front
 * needs around it: parsing REDIS_URL, selecting the database, loading the
 * job library (jobq.h) on every (re)connect, reconnecting with a backoff
 * after a failure, and, for the subscriber connection, re-subscribing.
 * Commands sent while disconnected fail at once, so a request never hangs
 * on a dead Redis.
 */
#ifndef BILLOW_REDIS_CONN_H
#define BILLOW_REDIS_CONN_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "err.h"

typedef struct redis_conn_s redis_conn_t;

/* reply is NULL when the connection failed before answering; an error
 * reply is REDIS_REPLY_ERROR. Owned by hiredis; valid during the call. */
typedef void (*redis_reply_cb)(void *data, redisReply *reply);
/* A message published on a subscribed channel. */
typedef void (*redis_message_cb)(void *data, const char *channel, const char *message, size_t len);

/* Connects to url ("redis://host:port/db"). With channel non-NULL the
 * connection is a subscriber to channel and calls on_message per message.
 * Returns 0 (connecting continues in the background) or BILLOW_EPARAM_INVALID
 * for a bad URL. */
int redis_conn_create(uv_loop_t *loop, const char *url, const char *channel,
                      redis_message_cb on_message, void *data, redis_conn_t **out) BILLOW_MUSTCHECK;
/* Sends one command. Returns 0 and calls cb exactly once later, or returns
 * BILLOW_EUNAVAILABLE (not connected) and never calls cb. */
int redis_conn_command(redis_conn_t *rc, redis_reply_cb cb, void *data, int argc, const char **argv,
                       const size_t *argvlen) BILLOW_MUSTCHECK;
/* Most arguments redis_conn_commandv takes. */
#define REDIS_CONN_ARGS_MAX 16
/* As redis_conn_command, for NUL-terminated arguments (at most
 * REDIS_CONN_ARGS_MAX; more is BILLOW_EPARAM_INVALID). */
int redis_conn_commandv(redis_conn_t *rc, redis_reply_cb cb, void *data, int argc,
                        const char **argv) BILLOW_MUSTCHECK;
/* Sends a command whose answer nobody waits for: what matters is its place
 * on the connection (it runs before anything sent after it). A failure to
 * send is logged. */
void redis_conn_fire(redis_conn_t *rc, int argc, const char **argv);
/* Writes the commands sent since the last call now, rather than when the
 * loop next polls the socket: called once per turn of the loop, before it
 * waits, so a turn's commands leave together and without waiting behind the
 * next turn's callbacks. */
void redis_conn_flush(redis_conn_t *rc);
/* Disconnects (pending commands get NULL replies) and frees the connection
 * once hiredis has let go of it. */
void redis_conn_destroy(redis_conn_t *rc);

#endif

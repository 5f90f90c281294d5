/* redis_conn: an asynchronous Redis connection that heals itself.
 *
 * States: DOWN (no context; a timer will reconnect), CONNECTING (TCP and the
 * set-up commands in flight), READY (commands accepted). Any failure goes
 * back to DOWN and the timer retries with a doubling delay capped at
 * RECONNECT_MAX_MS, so a restarted Redis is picked up within seconds while a
 * dead one is not hammered.
 */
#include "redis_conn.h"

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobq.h"
#include "log.h"
#include "mem.h"
#include "redis_url.h"

/* First and longest pause between reconnection attempts. */
#define RECONNECT_MIN_MS 100
#define RECONNECT_MAX_MS 2000

typedef enum {
    RC_DOWN,       /* No connection; the timer will try again. */
    RC_CONNECTING, /* Connected or connecting, set-up not finished. */
    RC_READY,      /* Set up; commands accepted. */
} rc_state_t;

struct redis_conn_s {
    uv_loop_t *loop;                   /* The loop. */
    char host[256];                    /* From the URL. */
    int port;                          /* From the URL. */
    int db;                            /* Database number. */
    char user[REDIS_URL_CRED_MAX];     /* AUTH user, "" for the default user. */
    char password[REDIS_URL_CRED_MAX]; /* AUTH password, "" for no AUTH. */
    char *channel;                     /* Subscriber channel, or NULL. */
    redis_message_cb on_message;       /* Subscriber callback. */
    void *data;                        /* For on_message. */
    redisAsyncContext *ac;             /* Current context, or NULL when DOWN. */
    rc_state_t state;                  /* See above. */
    uint64_t delay_ms;                 /* Next reconnect delay. */
    uv_timer_t timer;                  /* Reconnect timer; its close frees the struct. */
    int destroying;                    /* redis_conn_destroy() was called. */
    bool setup_failed;                 /* A set-up command was refused on this connection. */
    bool unflushed;                    /* Commands sent since the last redis_conn_flush. */
};

typedef struct {
    redis_reply_cb cb; /* Caller's callback. */
    void *data;        /* Caller's data. */
} pending_t;

static void schedule_reconnect(redis_conn_t *rc);

static void on_command(redisAsyncContext *ac, void *reply, void *privdata)
{
    pending_t *p = privdata;
    p->cb(p->data, reply);
    free(p);
}

static void on_message(redisAsyncContext *ac, void *reply, void *privdata)
{
    redis_conn_t *rc = privdata;
    redisReply *r = reply;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 3)
        return;
    if (strcmp(r->element[0]->str, "subscribe") == 0) {
        rc->state = RC_READY;
        rc->delay_ms = RECONNECT_MIN_MS;
        log_write(LOG_INFO, "redis_subscribed", "{s:s}", "channel", rc->channel);
        return;
    }
    if (strcmp(r->element[0]->str, "message") == 0 && r->element[2]->type == REDIS_REPLY_STRING)
        rc->on_message(rc->data, r->element[1]->str, r->element[2]->str, r->element[2]->len);
}

/* The answer to a set-up command (AUTH, SELECT, FUNCTION LOAD): an error
 * ends the connection, logged once (the commands sent behind a refused
 * AUTH only repeat it as NOAUTH); the last command's success makes the
 * connection ready. */
static void setup_reply(redisAsyncContext *ac, redisReply *r, redis_conn_t *rc, bool last)
{
    if (r == NULL || rc->setup_failed)
        return; /* Disconnected: the disconnect callback reconnects. */
    if (r->type == REDIS_REPLY_ERROR) {
        rc->setup_failed = true;
        log_write(LOG_ERROR, "redis_setup_failed", "{s:s}", "error", r->str);
        redisAsyncDisconnect(ac);
        return;
    }
    if (last) {
        rc->state = RC_READY;
        rc->delay_ms = RECONNECT_MIN_MS;
        log_write(LOG_INFO, "redis_ready", NULL);
    }
}

static void on_setup(redisAsyncContext *ac, void *reply, void *privdata)
{
    setup_reply(ac, reply, privdata, false);
}

static void on_setup_done(redisAsyncContext *ac, void *reply, void *privdata)
{
    setup_reply(ac, reply, privdata, true);
}

static void on_connect(const redisAsyncContext *cac, int status)
{
    redis_conn_t *rc = cac->data;
    redisAsyncContext *ac = rc->ac;
    if (status != REDIS_OK) {
        log_write(LOG_WARN, "redis_connect_failed", "{s:s}", "error", cac->errstr);
        rc->ac = NULL; /* hiredis frees the context after this callback. */
        rc->state = RC_DOWN;
        schedule_reconnect(rc);
        return;
    }
    const char *auth[3];
    int auth_argc = redis_url_auth_argv(rc->user, rc->password, auth);
    if (auth_argc > 0) /* First: nothing else is allowed before it. */
        redisAsyncCommandArgv(ac, on_setup, rc, auth_argc, auth, NULL);
    if (rc->db != 0) {
        char db[8];
        snprintf(db, sizeof(db), "%d", rc->db);
        redisAsyncCommand(ac, on_setup, rc, "SELECT %s", db);
    }
    if (rc->channel) {
        redisAsyncCommand(ac, on_message, rc, "SUBSCRIBE %s", rc->channel);
    } else {
        jobq_cmd_t cmd;
        jobq_load_library_cmd(&cmd);
        redisAsyncCommandArgv(ac, on_setup_done, rc, cmd.argc, cmd.argv, cmd.argvlen);
    }
}

static void on_disconnect(const redisAsyncContext *cac, int status)
{
    redis_conn_t *rc = cac->data;
    rc->ac = NULL;
    rc->state = RC_DOWN;
    if (rc->destroying)
        return;
    log_write(LOG_WARN, "redis_disconnected", "{s:s}", "error",
              status == REDIS_OK ? "closed" : cac->errstr);
    schedule_reconnect(rc);
}

static void connect_now(redis_conn_t *rc)
{
    redisAsyncContext *ac = redisAsyncConnect(rc->host, rc->port);
    if (ac == NULL || ac->err) {
        log_write(LOG_WARN, "redis_connect_failed", "{s:s}", "error",
                  ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        schedule_reconnect(rc);
        return;
    }
    ac->data = rc;
    rc->ac = ac;
    rc->state = RC_CONNECTING;
    rc->setup_failed = false;
    redisLibuvAttach(ac, rc->loop);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
}

static void on_timer(uv_timer_t *t)
{
    connect_now(t->data);
}

static void schedule_reconnect(redis_conn_t *rc)
{
    if (rc->destroying)
        return;
    uv_timer_start(&rc->timer, on_timer, rc->delay_ms, 0);
    rc->delay_ms = rc->delay_ms * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : rc->delay_ms * 2;
}

int redis_conn_create(uv_loop_t *loop, const char *url, const char *channel,
                      redis_message_cb on_msg, void *data, redis_conn_t **out)
{
    redis_conn_t *rc = mem_calloc(1, sizeof(*rc));
    if (redis_url_parse(url, rc->host, sizeof(rc->host), &rc->port, &rc->db) != 0 ||
        redis_url_credentials(url, rc->user, rc->password) != 0) {
        free(rc);
        return BILLOW_EPARAM_INVALID;
    }
    rc->loop = loop;
    rc->channel = mem_strdup(channel);
    rc->on_message = on_msg;
    rc->data = data;
    rc->delay_ms = RECONNECT_MIN_MS;
    uv_timer_init(loop, &rc->timer);
    rc->timer.data = rc;
    connect_now(rc);
    *out = rc;
    return 0;
}

int redis_conn_command(redis_conn_t *rc, redis_reply_cb cb, void *data, int argc, const char **argv,
                       const size_t *argvlen)
{
    if (rc->state != RC_READY || rc->ac == NULL)
        return BILLOW_EUNAVAILABLE;
    pending_t *p = mem_alloc(sizeof(*p));
    p->cb = cb;
    p->data = data;
    if (redisAsyncCommandArgv(rc->ac, on_command, p, argc, argv, argvlen) != REDIS_OK) {
        free(p);
        return BILLOW_EUNAVAILABLE;
    }
    rc->unflushed = true;
    return 0;
}

void redis_conn_flush(redis_conn_t *rc)
{
    if (!rc->unflushed)
        return;
    rc->unflushed = false;
    if (rc->state == RC_READY && rc->ac)
        redisAsyncHandleWrite(rc->ac); /* A failed write disconnects, as from the poll. */
}

int redis_conn_commandv(redis_conn_t *rc, redis_reply_cb cb, void *data, int argc,
                        const char **argv)
{
    size_t lens[REDIS_CONN_ARGS_MAX];
    if (argc > REDIS_CONN_ARGS_MAX)
        return BILLOW_EPARAM_INVALID;
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    return redis_conn_command(rc, cb, data, argc, argv, lens);
}

static void ignore_reply(void *data, redisReply *reply)
{
}

void redis_conn_fire(redis_conn_t *rc, int argc, const char **argv)
{
    if (redis_conn_commandv(rc, ignore_reply, NULL, argc, argv) != 0)
        log_write(LOG_WARN, "redis_fire_failed", "{s:s}", "command", argv[0]);
}

static void on_timer_closed(uv_handle_t *h)
{
    redis_conn_t *rc = h->data;
    free(rc->channel);
    free(rc);
}

void redis_conn_destroy(redis_conn_t *rc)
{
    if (rc == NULL)
        return;
    rc->destroying = 1;
    if (rc->ac) {
        redisAsyncContext *ac = rc->ac;
        rc->ac = NULL;
        redisAsyncFree(ac); /* Pending callbacks run now with NULL replies. */
    }
    uv_timer_stop(&rc->timer);
    uv_close((uv_handle_t *)&rc->timer, on_timer_closed);
}

/* routes_system: health, readiness, metrics and the API document.
 *
 * /readyz asks both backing services for real (SELECT 1 and PING), so a
 * load balancer stops sending traffic to a front that could only answer
 * 503s; /healthz only says the process is alive, so a restart is not
 * triggered by a database outage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "docs_page.h"
#include "jobq.h"
#include "mem.h"
#include "routes.h"

void routes_healthz(api_req_t *ar)
{
    respond_json(ar, 200, json_pack("{s:s}", "status", "ok"));
}

typedef struct {
    api_req_t *ar; /* The request. */
    int pending;   /* Checks still running. */
    int pg_ok;     /* SELECT 1 answered. */
    int redis_ok;  /* PING answered. */
} ready_t;

static void ready_answer(ready_t *r)
{
    int ok = r->pg_ok && r->redis_ok;
    api_req_t *ar = r->ar;
    json_t *body = json_pack("{s:s,s:s,s:s}", "status", ok ? "ready" : "unready", "postgres",
                             r->pg_ok ? "ok" : "down", "redis", r->redis_ok ? "ok" : "down");
    free(r);
    respond_json(ar, ok ? 200 : 503, body);
}

static void on_pg(void *data, int err, const PGresult *res)
{
    ready_t *r = data;
    r->pg_ok = err == 0;
    if (--r->pending == 0)
        ready_answer(r);
}

static void on_ping(void *data, redisReply *reply)
{
    ready_t *r = data;
    r->redis_ok = reply && reply->type == REDIS_REPLY_STATUS;
    if (--r->pending == 0)
        ready_answer(r);
}

void routes_readyz(api_req_t *ar)
{
    ready_t *r = mem_calloc(1, sizeof(*r));
    r->ar = ar;
    r->pending = 3; /* One for each check, one for this function. */
    if (pg_pool_query(ar->app->pg, NULL, "SELECT 1", 0, NULL, on_pg, r) != 0)
        r->pending--;
    const char *argv[1] = {"PING"};
    size_t lens[1] = {4};
    if (redis_conn_command(ar->app->redis, on_ping, r, 1, argv, lens) != 0)
        r->pending--;
    if (--r->pending == 0)
        ready_answer(r);
}

typedef struct {
    api_req_t *ar;       /* The request. */
    int pending;         /* Replies still due. */
    long long depth[16]; /* XLEN per kind. */
    long long dead[16];  /* ZCARD per kind. */
} scrape_t;

typedef struct {
    scrape_t *s;     /* The scrape. */
    long long *slot; /* Where the number goes. */
} scrape_slot_t;

static void scrape_answer(scrape_t *s)
{
    size_t cap = 8192, len = 0;
    char *extra = mem_alloc(cap);
    len += (size_t)snprintf(extra + len, cap - len,
                            "# HELP billow_queue_depth Jobs waiting or in flight in each stream.\n"
                            "# TYPE billow_queue_depth gauge\n");
    for (size_t i = 0; JOBQ_KINDS[i]; i++)
        len += (size_t)snprintf(extra + len, cap - len,
                                "billow_queue_depth{stream=\"jobs:%s\"} %lld\n", JOBQ_KINDS[i],
                                s->depth[i]);
    len += (size_t)snprintf(extra + len, cap - len,
                            "# HELP billow_dead_jobs Jobs waiting for a replay in each dead set.\n"
                            "# TYPE billow_dead_jobs gauge\n");
    for (size_t i = 0; JOBQ_KINDS[i]; i++)
        len +=
            (size_t)snprintf(extra + len, cap - len, "billow_dead_jobs{stream=\"dead:%s\"} %lld\n",
                             JOBQ_KINDS[i], s->dead[i]);
    size_t n;
    char *text = metrics_render(s->ar->app->metrics, extra, &n);
    http_respond(s->ar->http, 200, NULL, 0, "text/plain; version=0.0.4", text, n);
    api_req_free(s->ar);
    free(text);
    free(extra);
    free(s);
}

static void on_count(void *data, redisReply *r)
{
    scrape_slot_t *slot = data;
    scrape_t *s = slot->s;
    *slot->slot = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    free(slot);
    if (--s->pending == 0)
        scrape_answer(s);
}

static void count(scrape_t *s, const char *cmd, const char *key, long long *slot)
{
    scrape_slot_t *ss = mem_alloc(sizeof(*ss));
    ss->s = s;
    ss->slot = slot;
    const char *argv[2] = {cmd, key};
    size_t lens[2] = {strlen(cmd), strlen(key)};
    s->pending++;
    if (redis_conn_command(s->ar->app->redis, on_count, ss, 2, argv, lens) != 0) {
        *slot = -1;
        s->pending--;
        free(ss);
    }
}

void routes_metrics(api_req_t *ar)
{
    scrape_t *s = mem_calloc(1, sizeof(*s));
    s->ar = ar;
    s->pending = 1;
    for (size_t i = 0; JOBQ_KINDS[i] && i < 16; i++) {
        char key[JOBQ_KEY_MAX];
        jobq_stream_key(JOBQ_KINDS[i], key);
        count(s, "XLEN", key, &s->depth[i]);
        jobq_dead_key(JOBQ_KINDS[i], key);
        count(s, "ZCARD", key, &s->dead[i]);
    }
    if (--s->pending == 0)
        scrape_answer(s);
}

void routes_openapi(api_req_t *ar)
{
    respond_raw_json(ar, 200, ar->app->openapi_json, ar->app->openapi_len);
}

void routes_docs(api_req_t *ar)
{
    http_respond(ar->http, 200, NULL, 0, "text/html; charset=utf-8", DOCS_PAGE_HTML,
                 DOCS_PAGE_HTML_LEN);
    api_req_free(ar);
}

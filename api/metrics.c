/* metrics: in-memory counters rendered as Prometheus text (see metrics.h).
 *
 * The label sets are small and bounded (routes come from the route table,
 * statuses from the code, job types from the routing table), so plain
 * arrays with a linear search are enough and need no locking: everything
 * runs on the loop thread.
 */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

/* Latency buckets in seconds (upper bounds; +Inf is implicit). */
static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                 0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))
/* Distinct (route, method, status) and job type series kept at most; more
 * are folded into the last one so a bug cannot grow memory without bound. */
#define METRICS_MAX_SERIES 512
#define METRICS_MAX_TYPES  128

typedef struct {
    int route;       /* Index in the route table, -1 unmatched. */
    char method[12]; /* HTTP method. */
    int status;      /* HTTP status. */
    uint64_t count;  /* Requests. */
} req_series_t;

typedef struct {
    uint64_t counts[NBUCKETS + 1]; /* Per bucket (not cumulative); last is +Inf. */
    double sum;                    /* Seconds. */
    uint64_t count;                /* Observations. */
} histogram_t;

typedef struct {
    char type[64];  /* Job type. */
    uint64_t count; /* Enqueued. */
} type_series_t;

struct metrics_s {
    const char *const *route_names; /* Labels, from the route table. */
    size_t nroutes;                 /* Entries in route_names. */
    req_series_t *reqs;             /* METRICS_MAX_SERIES entries. */
    size_t nreqs;                   /* Used. */
    histogram_t *latency;           /* nroutes + 1 (last: unmatched). */
    type_series_t *types;           /* METRICS_MAX_TYPES entries. */
    size_t ntypes;                  /* Used. */
};

metrics_t *metrics_create(const char *const *route_names, size_t nroutes)
{
    metrics_t *m = mem_calloc(1, sizeof(*m));
    m->route_names = route_names;
    m->nroutes = nroutes;
    m->reqs = mem_calloc(METRICS_MAX_SERIES, sizeof(req_series_t));
    m->latency = mem_calloc(nroutes + 1, sizeof(histogram_t));
    m->types = mem_calloc(METRICS_MAX_TYPES, sizeof(type_series_t));
    return m;
}

void metrics_destroy(metrics_t *m)
{
    if (m == NULL)
        return;
    free(m->reqs);
    free(m->latency);
    free(m->types);
    free(m);
}

void metrics_observe_request(metrics_t *m, int route, const char *method, int status,
                             uint64_t dur_ns)
{
    if (route < -1 || route >= (int)m->nroutes)
        route = -1;
    req_series_t *s = NULL;
    for (size_t i = 0; i < m->nreqs; i++) {
        if (m->reqs[i].route == route && m->reqs[i].status == status &&
            strcmp(m->reqs[i].method, method) == 0) {
            s = &m->reqs[i];
            break;
        }
    }
    if (s == NULL) {
        s = &m->reqs[m->nreqs < METRICS_MAX_SERIES ? m->nreqs++ : METRICS_MAX_SERIES - 1];
        s->route = route;
        snprintf(s->method, sizeof(s->method), "%s", method);
        s->status = status;
    }
    s->count++;

    histogram_t *h = &m->latency[route < 0 ? m->nroutes : (size_t)route];
    double secs = (double)dur_ns / 1e9;
    size_t b = 0;
    while (b < NBUCKETS && secs > buckets[b])
        b++;
    h->counts[b]++;
    h->sum += secs;
    h->count++;
}

void metrics_job_enqueued(metrics_t *m, const char *type)
{
    for (size_t i = 0; i < m->ntypes; i++) {
        if (strcmp(m->types[i].type, type) == 0) {
            m->types[i].count++;
            return;
        }
    }
    type_series_t *t =
        &m->types[m->ntypes < METRICS_MAX_TYPES ? m->ntypes++ : METRICS_MAX_TYPES - 1];
    snprintf(t->type, sizeof(t->type), "%s", type);
    t->count++;
}

/* A growing text buffer. */
typedef struct {
    char *s;
    size_t len, cap;
} buf_t;

static void put(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(buf_t *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = (b->cap + (size_t)n) * 2;
        b->s = mem_realloc(b->s, b->cap);
    }
}

static const char *route_name(const metrics_t *m, int route)
{
    return route < 0 ? "unmatched" : m->route_names[route];
}

char *metrics_render(const metrics_t *m, const char *extra, size_t *len)
{
    buf_t b = {mem_alloc(4096), 0, 4096};
    b.s[0] = '\0';
    put(&b, "# HELP billow_http_requests_total HTTP requests answered, by route, method and "
            "status.\n# TYPE billow_http_requests_total counter\n");
    for (size_t i = 0; i < m->nreqs; i++)
        put(&b, "billow_http_requests_total{route=\"%s\",method=\"%s\",status=\"%d\"} %llu\n",
            route_name(m, m->reqs[i].route), m->reqs[i].method, m->reqs[i].status,
            (unsigned long long)m->reqs[i].count);

    put(&b, "# HELP billow_http_request_duration_seconds Time from a complete request head to "
            "its answer.\n# TYPE billow_http_request_duration_seconds histogram\n");
    for (size_t r = 0; r <= m->nroutes; r++) {
        const histogram_t *h = &m->latency[r];
        if (h->count == 0)
            continue;
        const char *name = route_name(m, r == m->nroutes ? -1 : (int)r);
        uint64_t cum = 0;
        for (size_t i = 0; i < NBUCKETS; i++) {
            cum += h->counts[i];
            put(&b, "billow_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                name, buckets[i], (unsigned long long)cum);
        }
        cum += h->counts[NBUCKETS];
        put(&b, "billow_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n",
            name, (unsigned long long)cum);
        put(&b, "billow_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", name, h->sum);
        put(&b, "billow_http_request_duration_seconds_count{route=\"%s\"} %llu\n", name,
            (unsigned long long)h->count);
    }

    put(&b, "# HELP billow_jobs_enqueued_total Jobs this process enqueued, by type.\n"
            "# TYPE billow_jobs_enqueued_total counter\n");
    for (size_t i = 0; i < m->ntypes; i++)
        put(&b, "billow_jobs_enqueued_total{type=\"%s\"} %llu\n", m->types[i].type,
            (unsigned long long)m->types[i].count);
    if (extra)
        put(&b, "%s", extra);
    *len = b.len;
    return b.s;
}

/* metrics: counters and histograms of the front, in Prometheus text.
 *
 * Per process, in memory: requests by route, method and status; a latency
 * histogram; jobs enqueued by type. Queue depths and dead-job counts are
 * Redis facts, read when /metrics is scraped and passed in as text.
 */
#ifndef BILLOW_METRICS_H
#define BILLOW_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct metrics_s metrics_t;

/* route_names[i] labels route i; route -1 is "unmatched". */
metrics_t *metrics_create(const char *const *route_names, size_t nroutes);
void metrics_destroy(metrics_t *m);
/* Counts one answered request. */
void metrics_observe_request(metrics_t *m, int route, const char *method, int status,
                             uint64_t dur_ns);
/* Counts one enqueued job of type. */
void metrics_job_enqueued(metrics_t *m, const char *type);
/* The Prometheus text of everything counted, followed by extra (gauges
 * gathered by the caller; may be NULL). Caller frees. */
char *metrics_render(const metrics_t *m, const char *extra, size_t *len);

#endif

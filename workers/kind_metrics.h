/* kind_metrics: the handlers of the `metrics` worker kind.
 *
 * metrics.refresh recounts a tenant's customers into metrics_daily for one
 * day. Other jobs ask for it as a follow-up whenever they change what is
 * counted; recounting (rather than adding deltas) makes a repeated or
 * reordered refresh harmless.
 */
#ifndef BILLOW_KIND_METRICS_H
#define BILLOW_KIND_METRICS_H

#include "runtime.h"

/* The metrics kind's handler table (NULL-terminated), for runtime_run(). */
extern const worker_handler_t kind_metrics_handlers[];

#endif

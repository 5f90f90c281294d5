/* billow-worker: runs one worker kind, named on the command line.
 *
 * `billow-worker <kind>` consumes jobs:<kind> with that kind's handler
 * table until SIGTERM or SIGINT. Scaling a kind is starting more of these
 * processes. Exit status: 0 after a graceful stop, 1 when the configuration
 * is bad or Postgres or Redis cannot be reached at start, 2 for a usage
 * error (unknown kind, or a kind with no handlers yet).
 */
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "fault.h"
#include "jobq.h"
#include "kind_access.h"
#include "kind_charger.h"
#include "kind_domain.h"
#include "kind_dunning.h"
#include "kind_invoice.h"
#include "kind_metrics.h"
#include "kind_renewal.h"
#include "kind_webhook.h"
#include "log.h"
#include "payments.h"
#include "runtime.h"

/* The kinds this build can run. The other JOBQ_KINDS are planned. */
static const struct {
    const char *kind;                 /* A name from JOBQ_KINDS. */
    const worker_handler_t *handlers; /* Its handler table. */
} kinds[] = {
    {"domain", kind_domain_handlers},   {"access", kind_access_handlers},
    {"metrics", kind_metrics_handlers}, {"invoice", kind_invoice_handlers},
    {"renewal", kind_renewal_handlers}, {"charger", kind_charger_handlers},
    {"webhook", kind_webhook_handlers}, {"dunning", kind_dunning_handlers},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: billow-worker <kind>\nkinds:");
    for (size_t i = 0; JOBQ_KINDS[i] != NULL; i++)
        fprintf(out, " %s", JOBQ_KINDS[i]);
    fprintf(out, "\n");
}

int main(int argc, char **argv)
{
    runtime_install_signals();
    if (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc != 2) {
        usage(stderr);
        return 2;
    }
    const char *kind = argv[1];
    if (!jobq_kind_valid(kind)) {
        fprintf(stderr, "billow-worker: unknown kind \"%s\"\n", kind);
        usage(stderr);
        return 2;
    }
    const worker_handler_t *handlers = NULL;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(kinds[i].kind, kind) == 0)
            handlers = kinds[i].handlers;
    if (handlers == NULL) {
        fprintf(stderr, "billow-worker: kind \"%s\" has no handlers yet\n", kind);
        return 2;
    }

    config_t cfg;
    char err[256];
    if (config_load(&cfg, err, sizeof err) != 0) {
        fprintf(stderr, "billow-worker: %s\n", err);
        return 1;
    }
    char service[64];
    snprintf(service, sizeof service, "worker-%s", kind);
    log_init(service, cfg.log_level);
    fault_init(cfg.faults);

    /* Renewals are written set-based, a batch at a time: the invoice kind
     * reads larger batches than the others (docs/performance.md). */
    if (strcmp(kind, "invoice") == 0)
        cfg.worker_batch = cfg.invoice_worker_batch;
    /* The charger calls Stripe inside its batch's transaction: smaller
     * batches hold their locks for less time. */
    if (strcmp(kind, "charger") == 0)
        cfg.worker_batch = cfg.charger_worker_batch;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (payments_init(&cfg) != 0) {
        config_dispose(&cfg);
        curl_global_cleanup();
        return 1;
    }
    /* The renewal kind also runs the scheduler between its jobs; the
     * dunning kind its scan for due retries. */
    kind_renewal_state_t renewal;
    kind_renewal_state_init(&renewal);
    runtime_tick_t scheduler = {kind_renewal_tick, cfg.renewal_scan_ms, &renewal};
    runtime_tick_t dunning = {kind_dunning_tick, cfg.dunning_scan_ms, NULL};
    const runtime_tick_t *tick = strcmp(kind, "renewal") == 0   ? &scheduler
                                 : strcmp(kind, "dunning") == 0 ? &dunning
                                                                : NULL;
    int rc = runtime_run(&cfg, kind, handlers, tick);
    payments_dispose();
    curl_global_cleanup();
    config_dispose(&cfg);
    return rc == 0 ? 0 : 1;
}

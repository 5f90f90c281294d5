/* kind_domain: the handlers of the `domain` worker kind.
 *
 * Plain entity changes that no specialised kind owns: creating a tenant with
 * its first API key, creating and updating customers (with their billing
 * details and closing rules), products and prices, and system.noop (a job
 * that does nothing, for the drain benchmark and the tests). Each handler
 * runs in the runtime's batch transaction under its job's savepoint, with
 * app.tenant_id set to the job's tenant, and returns the API's JSON object
 * as the job's result, built by the schema's *_object() functions so the
 * api reads back the same bytes.
 */
#ifndef BILLOW_KIND_DOMAIN_H
#define BILLOW_KIND_DOMAIN_H

#include "runtime.h"

/* The domain kind's handler table (NULL-terminated), for runtime_run(). */
extern const worker_handler_t kind_domain_handlers[];

#endif

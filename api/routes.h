/* routes: every route handler, by resource. Each is registered in router.c. */
#ifndef BILLOW_ROUTES_H
#define BILLOW_ROUTES_H

#include "respond.h"

/* routes_system.c */
void routes_healthz(api_req_t *ar);
void routes_readyz(api_req_t *ar);
void routes_metrics(api_req_t *ar);
void routes_openapi(api_req_t *ar);
void routes_docs(api_req_t *ar);

/* routes_tenants.c */
void routes_tenants_create(api_req_t *ar);

/* routes_customers.c */
void routes_customers_create(api_req_t *ar);
void routes_customers_get(api_req_t *ar);
void routes_customers_update(api_req_t *ar);
void routes_customers_list(api_req_t *ar);

/* routes_jobs.c */
void routes_jobs_get(api_req_t *ar);
void routes_jobs_list(api_req_t *ar);
void routes_jobs_replay(api_req_t *ar);
void routes_jobs_replay_many(api_req_t *ar);

#endif

/* kind_access: the handlers of staff access, run by the `access` kind.
 *
 * Users (create, update, passwords, TOTP), their sessions, API keys
 * (create, rotate, revoke) and a tenant's security settings. Like
 * kind_domain, each handler runs in the runtime's batch transaction with
 * app.tenant_id set to the job's tenant, and returns the API's object as
 * built by the schema's *_object() functions. The rules only the database
 * can judge (an address already taken, the last owner, a token already
 * used, a TOTP step already seen) are checked there, under row locks, in
 * the same transaction as the change. Audit events are written by the
 * schema's triggers, not here.
 */
#ifndef BILLOW_KIND_ACCESS_H
#define BILLOW_KIND_ACCESS_H

#include <jansson.h>

#include "runtime.h"

/* The access handlers (NULL-terminated), served by the access kind;
 * kind_domain's tenant.create calls kind_access_user_insert for the owner. */
extern const worker_handler_t kind_access_handlers[];

/* Creates a user of `role` in the job's tenant from spec, an object
 * {"id","email","name","password_hash": str|null,"invite": null|{"id",
 * "token_hash","expires_at","sealed_token"}} with exactly one of
 * password_hash (the user is active) and invite (the user is invited: the
 * invitation token is recorded and a 'user.invitation' notification
 * written). For user.create and tenant.create's owner. Returns HANDLER_OK
 * with *user set to the user_object (caller frees with json_decref), or
 * another outcome with the error recorded on job (409 email_taken when the
 * address is in use in the tenant). */
handler_outcome_t kind_access_user_insert(worker_job_t *job, const json_t *spec, const char *role,
                                          json_t **user);

#endif

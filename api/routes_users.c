/* routes_users: a tenant's staff users.
 *
 * Reads come from Postgres as the tenant. A creation or an update is
 * validated here and becomes a user.create or user.update job carrying the
 * caller's role ("actor_role"), so the worker can apply the owner rules
 * against the rows it locks; the front checks the one rule it can judge from
 * the request alone (only an owner may give the owner role) so that such a
 * request fails at once.
 *
 * Design: a password never enters a job. It is checked against the policy
 * here, hashed with scrypt on libuv's thread pool (pwhash), and only the
 * encoded hash goes into the payload. A user created without a password is
 * invited instead: an invitation token is drawn (tokens.c), its hash goes
 * into the job and the token itself travels sealed to the notifier.
 */
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "ids.h"
#include "log.h"
#include "password.h"
#include "permissions.h"
#include "pwhash.h"
#include "query.h"
#include "reads.h"
#include "routes.h"
#include "submit.h"
#include "tokens.h"
#include "validate.h"

/* Longest status filter value ("disabled"); longer cannot be a status. */
#define USERS_STATUS_MAX 16
/* Longest query parameter name echoed back in a parameter_unknown error. */
#define USERS_PARAM_NAME_MAX 64

static const char *const create_keys[] = {"email", "name", "role", "password", NULL};
static const char *const update_keys[] = {"name", "role", "status", NULL};

/* The statuses a user can be given by an update (an invited user becomes
 * active only by accepting the invitation). */
static bool is_settable_status(const char *s)
{
    return strcmp(s, "active") == 0 || strcmp(s, "disabled") == 0;
}

static bool is_status(const char *s)
{
    return strcmp(s, "invited") == 0 || is_settable_status(s);
}

/* Checks that role names a role. */
static int check_role(const char *role, validate_error_t *e)
{
    if (permissions_role_parse(role) < 0)
        return validate_fail(e, BILLOW_EPARAM_INVALID, "role", "role must be one of %s.",
                             permissions_role_list());
    return 0;
}

/* True when the caller may give role; otherwise answers 403 (param role). */
static bool may_grant_or_respond(api_req_t *ar, const char *role)
{
    if (permissions_may_act_on(ar->auth.role, role))
        return true;
    respond_error(ar, BILLOW_EFORBIDDEN, "role",
                  "Only an owner may give the role %s; these credentials have the role %s.", role,
                  ar->auth.role);
    return false;
}

void routes_users_list(api_req_t *ar)
{
    static const char *const allowed[] = {"limit", "starting_after", "role", "status", NULL};
    char after[IDS_MAX], role[PERMISSIONS_ROLE_MAX], status[USERS_STATUS_MAX];
    int limit;
    if (reads_page_params(ar, allowed, "usr", &limit, after) != 0)
        return;
    int rc = query_get(ar->http->query, "role", role, sizeof(role));
    if (rc < 0 || (rc == 1 && permissions_role_parse(role) < 0)) {
        respond_error(ar, BILLOW_EPARAM_INVALID, "role", "role must be one of %s.",
                      permissions_role_list());
        return;
    }
    if (rc == 0)
        role[0] = '\0';
    rc = query_get(ar->http->query, "status", status, sizeof(status));
    if (rc < 0 || (rc == 1 && !is_status(status))) {
        respond_error(ar, BILLOW_EPARAM_INVALID, "status",
                      "status must be invited, active or disabled.");
        return;
    }
    if (rc == 0)
        status[0] = '\0';
    char lim[16];
    snprintf(lim, sizeof(lim), "%d", limit + 1);
    const char *params[4] = {after, role, status, lim};
    reads_list(ar, "/v1/users", limit,
               "SELECT user_object(u)::text FROM users u"
               " WHERE ($1 = '' OR u.id < $1) AND ($2 = '' OR u.role = $2)"
               " AND ($3 = '' OR u.status = $3)"
               " ORDER BY u.id DESC LIMIT $4::int",
               4, params);
}

void routes_users_get(api_req_t *ar)
{
    static const char *const none[] = {NULL};
    char unknown[USERS_PARAM_NAME_MAX];
    if (query_unknown(ar->http->query, none, unknown, sizeof(unknown))) {
        respond_error(ar, BILLOW_EPARAM_UNKNOWN, unknown, "Unknown query parameter '%s'.", unknown);
        return;
    }
    if (!ids_valid("usr", ar->params[0])) {
        respond_error(ar, BILLOW_ENOT_FOUND, "id", "No such user: '%s'.", ar->params[0]);
        return;
    }
    const char *params[1] = {ar->params[0]};
    reads_object(ar, "user", "SELECT user_object(u)::text FROM users u WHERE u.id = $1", 1, params);
}

/* Enqueues user.create with payload (stolen) under a new user id. */
static void submit_create(api_req_t *ar, json_t *payload)
{
    char id[IDS_MAX];
    ids_generate("usr", id);
    json_object_set_new(payload, "id", json_string(id));
    submit_t s = {.type = "user.create",
                  .tenant_id = ar->auth.tenant_id,
                  .payload = payload,
                  .created_status = 201};
    submit_job_or_respond(ar, &s);
}

/* The password is hashed: the payload waiting in ar->state is complete. */
static void on_hashed(void *data, int err, const char *encoded)
{
    api_req_t *ar = data;
    json_t *payload = ar->state;
    ar->state = NULL;
    if (err) {
        json_decref(payload);
        log_write(LOG_ERROR, "password_hash_failed", "{s:s,s:i}", "request_id",
                  ar->http->request_id, "error", err);
        respond_error(ar, BILLOW_EINTERNAL, NULL, NULL);
        return;
    }
    json_object_set_new(payload, "password_hash", json_string(encoded));
    submit_create(ar, payload);
}

void routes_users_create(api_req_t *ar)
{
    validate_error_t e;
    const char *email, *name, *role, *password;
    json_t *payload = NULL;
    if (validate_known_keys(ar->body, create_keys, &e) != 0)
        goto invalid;
    if (validate_string_member(ar->body, "email", true, VALIDATE_EMAIL_MAX, &email, &e) != 0 ||
        validate_email("email", email, &e) != 0)
        goto invalid;
    if (validate_string_member(ar->body, "name", true, VALIDATE_NAME_MAX, &name, &e) != 0 ||
        validate_text("name", name, VALIDATE_NAME_MAX, &e) != 0)
        goto invalid;
    if (validate_string_member(ar->body, "role", true, PERMISSIONS_ROLE_MAX, &role, &e) != 0 ||
        check_role(role, &e) != 0)
        goto invalid;
    if (validate_string_member(ar->body, "password", false, 4 * PASSWORD_MAX_BYTES, &password,
                               &e) != 0)
        goto invalid;
    if (password && password_check_policy("password", password, &e) != 0)
        goto invalid;
    if (!may_grant_or_respond(ar, role))
        return;

    payload = json_pack("{s:s,s:s,s:s,s:n,s:n,s:s}", "email", email, "name", name, "role", role,
                        "password_hash", "invite", "actor_role", ar->auth.role);
    if (password == NULL) {
        json_object_set_new(payload, "invite",
                            tokens_issue(ar->app, "bit", ar->app->cfg->invite_token_ttl_s));
        submit_create(ar, payload);
        return;
    }
    ar->state = payload;
    int rc = pwhash_hash(ar->app, password, on_hashed, ar);
    if (rc != 0) {
        ar->state = NULL;
        json_decref(payload);
        respond_error(ar, rc, NULL, "%s", PWHASH_BUSY);
    }
    return;
invalid:
    respond_invalid(ar, &e);
}

/* The user exists: submit the update. */
static void on_user_exists(void *data, int err, const PGresult *res)
{
    api_req_t *ar = data;
    if (err) {
        reads_failed(ar, err, res);
        return;
    }
    if (PQntuples(res) == 0) {
        respond_error(ar, BILLOW_ENOT_FOUND, "id", "No such user: '%s'.", ar->params[0]);
        return;
    }
    /* A copy, so the idempotency fingerprint stays that of the body sent. */
    json_t *payload = json_copy(ar->body);
    json_object_set_new(payload, "actor_role", json_string(ar->auth.role));
    submit_t s = {.type = "user.update",
                  .tenant_id = ar->auth.tenant_id,
                  .payload = payload,
                  .object_id = ar->params[0],
                  .created_status = 200};
    submit_job_or_respond(ar, &s);
}

void routes_users_update(api_req_t *ar)
{
    validate_error_t e;
    const char *name, *role, *status;
    if (!ids_valid("usr", ar->params[0])) {
        respond_error(ar, BILLOW_ENOT_FOUND, "id", "No such user: '%s'.", ar->params[0]);
        return;
    }
    if (validate_known_keys(ar->body, update_keys, &e) != 0)
        goto invalid;
    if (validate_string_member(ar->body, "name", false, VALIDATE_NAME_MAX, &name, &e) != 0 ||
        (name && validate_text("name", name, VALIDATE_NAME_MAX, &e) != 0))
        goto invalid;
    if (validate_string_member(ar->body, "role", false, PERMISSIONS_ROLE_MAX, &role, &e) != 0 ||
        (role && check_role(role, &e) != 0))
        goto invalid;
    if (validate_string_member(ar->body, "status", false, USERS_STATUS_MAX, &status, &e) != 0)
        goto invalid;
    if (status && !is_settable_status(status)) {
        validate_fail(&e, BILLOW_EPARAM_INVALID, "status", "status must be active or disabled.");
        goto invalid;
    }
    if (json_object_size(ar->body) == 0) {
        validate_fail(&e, BILLOW_EPARAM_MISSING, NULL,
                      "Send at least one of name, role or status.");
        goto invalid;
    }
    if (role && !may_grant_or_respond(ar, role))
        return;
    const char *params[1] = {ar->params[0]};
    if (pg_pool_query(ar->app->pg, ar->auth.tenant_id, "SELECT 1 FROM users WHERE id = $1", 1,
                      params, on_user_exists, ar) != 0)
        respond_error(ar, BILLOW_EUNAVAILABLE, NULL, "The database is unavailable; retry later.");
    return;
invalid:
    respond_invalid(ar, &e);
}

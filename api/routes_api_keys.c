/* routes_api_keys: a tenant's secret API keys — list, create, rotate, revoke.
 *
 * A list never shows a secret: the table holds only hashes, and
 * api_key_object() shows the prefix. A new secret (creation, rotation) is
 * drawn here (apikeys.c); only its hash and prefix go into the job, and the
 * secret is shown once, in the answer of the request that made it.
 *
 * Design: rotation and revocation read the key first, for an immediate 404
 * and to learn its role. Rotating a key mints a new key of the same role, so
 * it is a grant: only an owner may rotate an owner's key, and, since an
 * admin may do everything but act on owners, only an owner may revoke one.
 */
#include <stdio.h>
#include <string.h>

#include "apikeys.h"
#include "app.h"
#include "ids.h"
#include "permissions.h"
#include "reads.h"
#include "routes.h"
#include "submit.h"
#include "validate.h"

/* Longest key name: a label for people, not storage. */
#define API_KEYS_NAME_MAX 100
/* Longest rotation grace, in seconds (a week): long enough to roll a key out
 * to every client, short enough that a leaked old key does not live on. */
#define API_KEYS_GRACE_MAX 604800
/* Grace of a rotation when none is asked for: a day. */
#define API_KEYS_GRACE_DEFAULT 86400

static const char *const create_keys[] = {"name", "role", NULL};
static const char *const rotate_keys[] = {"grace_period_seconds", NULL};
static const char *const revoke_keys[] = {NULL};

/* Draws a new key of role and name, lets payload_of build the job's
 * payload from its id and its hash and prefix (only those enter the job),
 * and submits the job of type, whose answer shows the secret once under
 * "api_key". */
static void submit_new_key(api_req_t *ar, const char *type, int created_status, const char *role,
                           const char *name,
                           json_t *(*payload_of)(api_req_t *ar, const char *id,
                                                 const apikeys_drawn_t *key, const char *role,
                                                 const char *name))
{
    char id[IDS_MAX];
    ids_generate("key", id);
    apikeys_drawn_t key;
    apikeys_draw(ar->auth.livemode, &key);
    json_t *payload = payload_of(ar, id, &key, role, name);
    json_t *reveal =
        json_pack("{s:{s:s,s:s,s:s,s:s,s:s,s:s}}", "api_key", "id", id, "object", "api_key",
                  "secret", key.secret, "prefix", key.prefix, "role", role, "name", name);
    explicit_bzero(&key, sizeof(key));
    submit_t s = {.type = type,
                  .tenant_id = ar->auth.tenant_id,
                  .payload = payload,
                  .created_status = created_status,
                  .reveal = reveal,
                  .reveal_at = "api_key"};
    submit_job_or_respond(ar, &s);
}

static json_t *create_payload(api_req_t *ar, const char *id, const apikeys_drawn_t *key,
                              const char *role, const char *name)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:s}", "id", id, "name", name, "role", role, "secret_hash",
                     key->hash, "prefix", key->prefix);
}

void routes_api_keys_list(api_req_t *ar)
{
    static const char *const allowed[] = {"limit", "starting_after", NULL};
    char after[IDS_MAX];
    int limit;
    if (reads_page_params(ar, allowed, "key", &limit, after) != 0)
        return;
    char lim[16];
    snprintf(lim, sizeof(lim), "%d", limit + 1);
    const char *params[2] = {after, lim};
    reads_list(ar, "/v1/api_keys", limit,
               "SELECT api_key_object(k)::text FROM api_keys k"
               " WHERE ($1 = '' OR k.id < $1) ORDER BY k.id DESC LIMIT $2::int",
               2, params);
}

void routes_api_keys_create(api_req_t *ar)
{
    validate_error_t e;
    if (validate_known_keys(ar->body, create_keys, &e) != 0)
        goto invalid;
    const char *name = "default", *role = "admin";
    json_t *v = json_object_get(ar->body, "name");
    if (v) {
        if (!json_is_string(v)) {
            validate_fail(&e, BILLOW_EPARAM_INVALID, "name", "name must be a string.");
            goto invalid;
        }
        name = json_string_value(v);
        if (validate_text("name", name, API_KEYS_NAME_MAX, &e) != 0)
            goto invalid;
    }
    v = json_object_get(ar->body, "role");
    if (v) {
        if (!json_is_string(v) || permissions_role_parse(json_string_value(v)) < 0) {
            validate_fail(&e, BILLOW_EPARAM_INVALID, "role", "role must be one of %s.",
                          permissions_role_list());
            goto invalid;
        }
        role = json_string_value(v);
    }
    if (!permissions_may_act_on(ar->auth.role, role)) {
        respond_error(ar, BILLOW_EFORBIDDEN, "role",
                      "Only an owner may create a key with the role %s; these credentials have "
                      "the role %s.",
                      role, ar->auth.role);
        return;
    }

    submit_new_key(ar, "api_key.create", 201, role, name, create_payload);
    return;
invalid:
    respond_invalid(ar, &e);
}

/* True when the key read by res exists and the caller may act on it (its
 * role is one the caller may grant); otherwise answers 404 or 403. */
static bool key_usable_or_respond(api_req_t *ar, int err, const PGresult *res, const char *verb)
{
    if (err) {
        reads_failed(ar, err, res);
        return false;
    }
    if (PQntuples(res) == 0) {
        respond_error(ar, BILLOW_ENOT_FOUND, "id", "No such API key: '%s'.", ar->params[0]);
        return false;
    }
    const char *role = PQgetvalue(res, 0, 0);
    if (!permissions_may_act_on(ar->auth.role, role)) {
        respond_error(ar, BILLOW_EFORBIDDEN, "id",
                      "Only an owner may %s a key with the role %s; these credentials have the "
                      "role %s.",
                      verb, role, ar->auth.role);
        return false;
    }
    return true;
}

/* True when the path's id can be a key id; otherwise answers 404. */
static bool key_id_or_respond(api_req_t *ar)
{
    if (ids_valid("key", ar->params[0]))
        return true;
    respond_error(ar, BILLOW_ENOT_FOUND, "id", "No such API key: '%s'.", ar->params[0]);
    return false;
}

/* Reads the key of the path (its role, then its name) and calls cb, or
 * answers 503. */
static void read_key(api_req_t *ar, pg_query_cb cb)
{
    const char *params[1] = {ar->params[0]};
    if (pg_pool_query(ar->app->pg, ar->auth.tenant_id,
                      "SELECT k.role, k.name FROM api_keys k WHERE k.id = $1", 1, params, cb,
                      ar) != 0)
        respond_error(ar, BILLOW_EUNAVAILABLE, NULL, "The database is unavailable; retry later.");
}

/* The grace of a rotation body already validated. */
static int grace_of(const json_t *body)
{
    json_t *v = json_object_get(body, "grace_period_seconds");
    return v ? (int)json_integer_value(v) : API_KEYS_GRACE_DEFAULT;
}

static json_t *rotate_payload(api_req_t *ar, const char *id, const apikeys_drawn_t *key,
                              const char *role, const char *name)
{
    return json_pack("{s:s,s:{s:s,s:s,s:s},s:i}", "id", ar->params[0], "new", "id", id,
                     "secret_hash", key->hash, "prefix", key->prefix, "grace_seconds",
                     grace_of(ar->body));
}

static void on_rotate_key(void *data, int err, const PGresult *res)
{
    api_req_t *ar = data;
    if (!key_usable_or_respond(ar, err, res, "rotate"))
        return;
    /* The new key inherits the old one's name and role (the worker copies
     * them under the row lock; these are what the read saw). */
    submit_new_key(ar, "api_key.rotate", 200, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
                   rotate_payload);
}

void routes_api_keys_rotate(api_req_t *ar)
{
    validate_error_t e;
    if (!key_id_or_respond(ar))
        return;
    if (validate_known_keys(ar->body, rotate_keys, &e) != 0)
        goto invalid;
    json_t *v = json_object_get(ar->body, "grace_period_seconds");
    if (v && (!json_is_integer(v) || json_integer_value(v) < 0 ||
              json_integer_value(v) > API_KEYS_GRACE_MAX)) {
        validate_fail(&e, BILLOW_EPARAM_INVALID, "grace_period_seconds",
                      "grace_period_seconds must be an integer from 0 to %d.", API_KEYS_GRACE_MAX);
        goto invalid;
    }
    read_key(ar, on_rotate_key);
    return;
invalid:
    respond_invalid(ar, &e);
}

static void on_revoke_key(void *data, int err, const PGresult *res)
{
    api_req_t *ar = data;
    if (!key_usable_or_respond(ar, err, res, "revoke"))
        return;
    submit_t s = {.type = "api_key.revoke",
                  .tenant_id = ar->auth.tenant_id,
                  .payload = json_object(),
                  .object_id = ar->params[0],
                  .created_status = 200};
    submit_job_or_respond(ar, &s);
}

void routes_api_keys_revoke(api_req_t *ar)
{
    validate_error_t e;
    if (!key_id_or_respond(ar))
        return;
    if (validate_known_keys(ar->body, revoke_keys, &e) != 0) {
        respond_invalid(ar, &e);
        return;
    }
    read_key(ar, on_revoke_key);
}

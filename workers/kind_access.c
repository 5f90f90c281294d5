/* kind_access: staff users, sessions, API keys and security settings (see
 * kind_access.h).
 *
 * The api has validated every payload and hashed or sealed every secret in
 * it, so a payload that does not read is a permanent fault
 * ("invalid_payload"), and no secret in clear ever reaches this file.
 *
 * Design: a handler whose rule depends on rows it is about to change first
 * locks them (SELECT … FOR UPDATE), judges in C, then writes in one
 * statement; a handler with no such rule is that one statement. The
 * statements put a row and its consequences together with data-modifying
 * CTEs (a disabled user and the revocation of the user's sessions; a token
 * and its notification). A rejection after a write is safe: the runtime
 * rolls the job's effects back. "Open" sessions are those neither revoked
 * nor past expires_at, as the api lists them.
 */
#include "kind_access.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "dunning.h"
#include "handler_util.h"
#include "ids.h"
#include "permissions.h"

/* Longest rotation grace period (7 days): an old key that outlives its
 * replacement by more is a leaked key nobody remembers to revoke. */
#define ACCESS_GRACE_MAX_S 604800
/* Recovery codes issued when TOTP is confirmed. */
#define ACCESS_RECOVERY_CODES 10
/* Room for a decimal json_int_t, sign and NUL included. */
#define ACCESS_INT_TEXT 24

/* True when role is one of the roles of shared/permissions.c (NULL is not). */
static bool role_valid(const char *role)
{
    return permissions_role_parse(role) >= 0;
}

/* True when s (which may be NULL: an absent member) is want. */
static bool is(const char *s, const char *want)
{
    return s != NULL && strcmp(s, want) == 0;
}

/* The optional integer member key of obj as decimal text in buf, *text
 * NULL when absent or null; false when present with another type or
 * outside [min, max]. */
static bool opt_int_text(const json_t *obj, const char *key, json_int_t min, json_int_t max,
                         char buf[ACCESS_INT_TEXT], const char **text)
{
    const json_t *v = json_object_get(obj, key);
    *text = NULL;
    if (v == NULL || json_is_null(v))
        return true;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return false;
    snprintf(buf, ACCESS_INT_TEXT, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    *text = buf;
    return true;
}

/* A token the api minted, as a payload carries it. */
typedef struct {
    const char *id;           /* "utk_…". */
    const char *token_hash;   /* SHA-256 (hex) of the token. */
    const char *expires_at;   /* RFC 3339. */
    const char *sealed_token; /* The token sealed for the notifier. */
} token_spec_t;

/* Reads obj into *out; false when a member is missing. */
static bool read_token(const json_t *obj, token_spec_t *out)
{
    out->id = handler_util_req_string(obj, "id");
    out->token_hash = handler_util_req_string(obj, "token_hash");
    out->expires_at = handler_util_req_string(obj, "expires_at");
    out->sealed_token = handler_util_req_string(obj, "sealed_token");
    return out->id && out->token_hash && out->expires_at && out->sealed_token;
}

/* A user with a password is active from the start; one without is invited,
 * with the token recorded and the invitation waiting for the notifier. A
 * taken address inserts nothing (ON CONFLICT on users_email), so no row
 * comes back; any other conflict is an error. */
static const char USER_INSERT_SQL[] =
    "WITH u AS ("
    "  INSERT INTO users (tenant_id, id, email, name, role, status, password_hash,"
    "                     password_changed_at)"
    "  VALUES (current_setting('app.tenant_id'), $1, $2, $3, $4,"
    "          CASE WHEN $5::text IS NULL THEN 'invited' ELSE 'active' END, $5::text,"
    "          CASE WHEN $5::text IS NULL THEN NULL ELSE now() END)"
    "  ON CONFLICT (tenant_id, lower(email)) DO NOTHING"
    "  RETURNING id, email, name, user_object(users) AS obj"
    "), t AS ("
    "  INSERT INTO user_tokens (tenant_id, id, user_id, purpose, token_hash, expires_at)"
    "  SELECT current_setting('app.tenant_id'), $6::text, u.id, 'invite', $7, $8::timestamptz"
    "    FROM u WHERE $6::text IS NOT NULL"
    "), n AS ("
    "  INSERT INTO notifications (tenant_id, id, channel, template, recipient, data)"
    "  SELECT tn.id, $9, 'email', 'user.invitation', u.email,"
    "         jsonb_build_object('sealed_token', $10::text, 'user_name', u.name,"
    "                            'tenant_name', tn.name)"
    "    FROM u JOIN tenants tn ON tn.id = current_setting('app.tenant_id')"
    "   WHERE $6::text IS NOT NULL"
    ") "
    "SELECT obj::text FROM u";

handler_outcome_t kind_access_user_insert(worker_job_t *job, const json_t *spec, const char *role,
                                          json_t **user)
{
    const json_t *invite = json_object_get(spec, "invite");
    const char *id = handler_util_req_string(spec, "id");
    const char *email = handler_util_req_string(spec, "email");
    const char *name = handler_util_req_string(spec, "name");
    const char *password_hash = NULL;
    token_spec_t token = {0};
    char notification_id[IDS_MAX] = "";
    PGresult *res = NULL;
    handler_outcome_t out;

    if (!id || !email || !name || !role_valid(role) ||
        !handler_util_opt_string(spec, "password_hash", &password_hash)) {
        out = handler_util_bad_payload(job, "a user needs id, email, name and a valid role");
        goto done;
    }
    bool invited = json_is_object(invite);
    if (invited ? !read_token(invite, &token) : (invite != NULL && !json_is_null(invite))) {
        out = handler_util_bad_payload(job, "invite must be null or a complete token");
        goto done;
    }
    if ((password_hash != NULL) == invited) {
        out = handler_util_bad_payload(job, "exactly one of password_hash and invite is needed");
        goto done;
    }
    if (invited)
        ids_generate("ntf", notification_id);
    const char *params[] = {id,
                            email,
                            name,
                            role,
                            password_hash,
                            token.id,
                            token.token_hash,
                            token.expires_at,
                            invited ? notification_id : NULL,
                            token.sealed_token};
    out = handler_util_exec(job, USER_INSERT_SQL, 10, params, PGRES_TUPLES_OK, &res);
    if (out != HANDLER_OK)
        goto done;
    if (PQntuples(res) == 0) {
        out = runtime_reject(job, 409, "email_taken", "email",
                             "A user with the email '%s' already exists.", email);
        goto done;
    }
    *user = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    if (!json_is_object(*user)) {
        json_decref(*user);
        *user = NULL;
        out = runtime_fault(job, HANDLER_PERMANENT, "internal_error",
                            "The database returned an unreadable user.");
        goto done;
    }
    out = HANDLER_OK;

done:
    PQclear(res);
    return out;
}

/* user.create: a staff user, active or invited. Only an owner makes owners. */
static handler_outcome_t user_create(worker_job_t *job)
{
    const json_t *p = job->env->payload;
    const char *role = handler_util_req_string(p, "role");
    const char *actor_role = handler_util_req_string(p, "actor_role");
    json_t *user = NULL;

    if (!role_valid(role) || !role_valid(actor_role))
        return handler_util_bad_payload(job, "role and actor_role must be roles");
    if (is(role, "owner") && !is(actor_role, "owner"))
        return runtime_reject(job, 403, "forbidden", "role",
                              "Only an owner may create a user with the role 'owner'.");
    handler_outcome_t out = kind_access_user_insert(job, p, role, &user);
    if (out == HANDLER_OK) {
        json_decref(job->result);
        job->result = user;
    }
    return out;
}

/* The target and every active owner of the tenant, locked in id order (so
 * two changes to owners cannot deadlock), before the last-owner rule is
 * judged: a concurrent demotion waits here and then sees this one's result. */
static const char USER_LOCK_SQL[] =
    "SELECT id, role, status, password_hash IS NULL FROM users "
    " WHERE id = $1 OR (role = 'owner' AND status = 'active') ORDER BY id FOR UPDATE";

/* The change (updated_at moves only if something did), and for a disabled
 * user the end of every open session. */
static const char USER_UPDATE_SQL[] =
    "WITH u AS ("
    "  UPDATE users SET name = coalesce($2, name), role = coalesce($3, role),"
    "                   status = coalesce($4, status),"
    "                   updated_at = CASE WHEN (name, role, status) IS DISTINCT FROM"
    "                     (coalesce($2, name), coalesce($3, role), coalesce($4, status))"
    "                     THEN now() ELSE updated_at END"
    "   WHERE id = $1 RETURNING id, status, user_object(users) AS obj"
    "), s AS ("
    "  UPDATE sessions SET revoked_at = now(), revoked_reason = 'user_disabled' FROM u"
    "   WHERE u.status = 'disabled' AND sessions.user_id = u.id"
    "     AND sessions.revoked_at IS NULL AND sessions.expires_at > now()"
    ") "
    "SELECT obj::text FROM u";

/* user.update: name, role and status, under the owner rules. */
static handler_outcome_t user_update(worker_job_t *job)
{
    const json_t *p = job->env->payload;
    const char *id = handler_util_req_string(p, "id");
    const char *actor_role = handler_util_req_string(p, "actor_role");
    const char *name = NULL, *role = NULL, *status = NULL;
    PGresult *res = NULL;
    handler_outcome_t out;

    if (!id || !role_valid(actor_role) || !handler_util_opt_string(p, "name", &name) ||
        !handler_util_opt_string(p, "role", &role) ||
        !handler_util_opt_string(p, "status", &status) || (name && name[0] == '\0') ||
        (role && !role_valid(role)) ||
        (status && !is(status, "active") && !is(status, "disabled"))) {
        out = handler_util_bad_payload(job, "id and actor_role are required; name, role and "
                                            "status must be valid when given");
        goto done;
    }
    const char *lock_params[] = {id};
    out = handler_util_exec(job, USER_LOCK_SQL, 1, lock_params, PGRES_TUPLES_OK, &res);
    if (out != HANDLER_OK)
        goto done;
    int target = -1, other_owners = 0;
    for (int i = 0; i < PQntuples(res); i++) {
        if (strcmp(PQgetvalue(res, i, 0), id) == 0)
            target = i;
        else
            other_owners++;
    }
    if (target < 0) {
        out = runtime_reject(job, 404, "resource_missing", "id", "No such user: '%s'.", id);
        goto done;
    }
    bool target_owner = is(PQgetvalue(res, target, 1), "owner");
    bool target_active = is(PQgetvalue(res, target, 2), "active");
    bool no_password = is(PQgetvalue(res, target, 3), "t");
    if (!is(actor_role, "owner") && (target_owner || is(role, "owner"))) {
        out = runtime_reject(job, 403, "forbidden", is(role, "owner") ? "role" : "id",
                             "Only an owner may change an owner or make one.");
        goto done;
    }
    if (is(status, "active") && no_password) {
        out = runtime_reject(job, 409, "user_invited", "status",
                             "The user has not accepted the invitation yet, so cannot be "
                             "made active.");
        goto done;
    }
    bool demoted = role != NULL && !is(role, "owner");
    bool disabled = is(status, "disabled");
    if (target_owner && target_active && (demoted || disabled) && other_owners == 0) {
        out = runtime_reject(job, 409, "last_owner", demoted ? "role" : "status",
                             "The tenant must keep at least one active owner.");
        goto done;
    }
    const char *params[] = {id, name, role, status};
    out = handler_util_exec(job, USER_UPDATE_SQL, 4, params, PGRES_TUPLES_OK, &res);
    if (out == HANDLER_OK)
        out = handler_util_take_result(job, res);

done:
    PQclear(res);
    return out;
}

/* Spends a token: it must be the user's, of the purpose, unused and
 * unexpired, and the UPDATE's row lock makes a second use find it used. */
static const char TOKEN_CONSUME_SQL[] =
    "UPDATE user_tokens SET used_at = now() "
    " WHERE id = $1 AND user_id = $2 AND purpose = $3 AND used_at IS NULL AND expires_at > now() "
    "RETURNING id";

/* The new password; an invitation makes the user active. Every open
 * session ends, and every other unspent token of the user is spent: a
 * reset link mailed before this change must not undo it. */
static const char PASSWORD_SET_SQL[] =
    "WITH u AS ("
    "  UPDATE users SET password_hash = $2, password_changed_at = now(), updated_at = now(),"
    "                   status = CASE WHEN $3 = 'invite' THEN 'active' ELSE status END,"
    "                   name = coalesce($4, name)"
    "   WHERE id = $1 AND status = CASE WHEN $3 = 'invite' THEN 'invited' ELSE 'active' END"
    "  RETURNING id, user_object(users) AS obj"
    "), s AS ("
    "  UPDATE sessions SET revoked_at = now(), revoked_reason = 'password_changed' FROM u"
    "   WHERE sessions.user_id = u.id AND sessions.revoked_at IS NULL"
    "     AND sessions.expires_at > now()"
    "), t AS ("
    "  UPDATE user_tokens SET used_at = now() FROM u"
    "   WHERE user_tokens.user_id = u.id AND user_tokens.used_at IS NULL"
    ") "
    "SELECT obj::text FROM u";

/* user.password_set: a change by the signed-in user, a reset by token, or
 * an accepted invitation (which may also carry the user's chosen name). */
static handler_outcome_t password_set(worker_job_t *job)
{
    const json_t *p = job->env->payload;
    const char *id = handler_util_req_string(p, "id");
    const char *hash = handler_util_req_string(p, "password_hash");
    const char *reason = handler_util_req_string(p, "reason");
    const char *token_id = handler_util_req_string(p, "token_id");
    const char *name = NULL;
    PGresult *res = NULL;
    handler_outcome_t out;

    bool by_token = is(reason, "reset") || is(reason, "invite");
    if (!id || !hash || !(by_token || is(reason, "change")) || (by_token && !token_id) ||
        !handler_util_opt_string(p, "name", &name) || (name && name[0] == '\0')) {
        out = handler_util_bad_payload(job, "id, password_hash, a reason and (for a reset or an "
                                            "invitation) token_id are required");
        goto done;
    }
    if (by_token) {
        const char *token_params[] = {token_id, id, reason};
        out = handler_util_exec(job, TOKEN_CONSUME_SQL, 3, token_params, PGRES_TUPLES_OK, &res);
        if (out != HANDLER_OK)
            goto done;
        if (PQntuples(res) == 0) {
            out = runtime_reject(job, 400, "token_invalid", "token",
                                 "The token is unknown, used or expired.");
            goto done;
        }
    }
    const char *params[] = {id, hash, reason, is(reason, "invite") ? name : NULL};
    out = handler_util_exec(job, PASSWORD_SET_SQL, 4, params, PGRES_TUPLES_OK, &res);
    if (out != HANDLER_OK)
        goto done;
    if (PQntuples(res) == 0) {
        /* The token was good but its user is no longer in the state it
         * was issued for (disabled since, or already accepted). */
        out = by_token ? runtime_reject(job, 400, "token_invalid", "token",
                                        "The token is unknown, used or expired.")
                       : runtime_reject(job, 404, "resource_missing", "id",
                                        "No such active user: '%s'.", id);
        goto done;
    }
    out = handler_util_take_result(job, res);

done:
    PQclear(res);
    return out;
}

/* Records the token and its message only for an active user; for anyone
 * else nothing happens, and the result does not say so. */
static const char RESET_REQUEST_SQL[] =
    "WITH u AS ("
    "  SELECT id, email, name FROM users WHERE id = $1 AND status = 'active'"
    "), t AS ("
    "  INSERT INTO user_tokens (tenant_id, id, user_id, purpose, token_hash, expires_at)"
    "  SELECT current_setting('app.tenant_id'), $2, u.id, 'reset', $3, $4::timestamptz FROM u"
    "), n AS ("
    "  INSERT INTO notifications (tenant_id, id, channel, template, recipient, data)"
    "  SELECT tn.id, $5, 'email', 'user.password_reset', u.email,"
    "         jsonb_build_object('sealed_token', $6::text, 'user_name', u.name,"
    "                            'tenant_name', tn.name)"
    "    FROM u JOIN tenants tn ON tn.id = current_setting('app.tenant_id')"
    ") "
    "SELECT count(*) FROM u";

/* user.password_reset_request: a reset token and its email. */
static handler_outcome_t password_reset_request(worker_job_t *job)
{
    const json_t *p = job->env->payload;
    const char *user_id = handler_util_req_string(p, "user_id");
    token_spec_t token;
    char notification_id[IDS_MAX];
    PGresult *res = NULL;
    handler_outcome_t out;

    if (!user_id || !read_token(json_object_get(p, "token"), &token)) {
        out = handler_util_bad_payload(job, "user_id and a complete token are required");
        goto done;
    }
    ids_generate("ntf", notification_id);
    const char *params[] = {user_id,          token.id,        token.token_hash,
                            token.expires_at, notification_id, token.sealed_token};
    out = handler_util_exec(job, RESET_REQUEST_SQL, 6, params, PGRES_TUPLES_OK, &res);
    if (out != HANDLER_OK)
        goto done;
    json_decref(job->result);
    job->result = json_pack("{s:s, s:s}", "object", "password_reset", "user_id", user_id);
    out = HANDLER_OK;

done:
    PQclear(res);
    return out;
}

/* The signing-in user, locked so that two logins with the same TOTP code
 * (or recovery code) are judged one after the other. */
static const char SESSION_USER_SQL[] =
    "SELECT status, totp_enabled, totp_last_step,"
    "       floor(extract(epoch FROM password_changed_at) * 1000)::bigint"
    "  FROM users WHERE id = $1 FOR UPDATE";

static const char RECOVERY_USE_SQL[] =
    "UPDATE recovery_codes SET used_at = now() "
    " WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL RETURNING 1";

/* The session, and the user's sign-in time and spent TOTP step. */
static const char SESSION_CREATE_SQL[] =
    "WITH u AS ("
    "  UPDATE users SET last_sign_in_at = now(),"
    "                   totp_last_step = greatest(totp_last_step, coalesce($7::bigint, 0))"
    "   WHERE id = $2 RETURNING user_object(users) AS obj"
    "), s AS ("
    "  INSERT INTO sessions (tenant_id, id, user_id, token_hash, expires_at, client_addr,"
    "                        user_agent)"
    "  VALUES (current_setting('app.tenant_id'), $1, $2, $3, $4::timestamptz, $5, $6)"
    "  RETURNING session_object(sessions) AS obj"
    ") "
    "SELECT jsonb_build_object('session', s.obj, 'user', u.obj)::text FROM s, u";

/* session.create: a sign-in whose password (and TOTP code) the api has
 * checked; here the rules that need the row: the user is still active, a
 * TOTP step is not replayed, a recovery code is spent once. */
static handler_outcome_t session_create(worker_job_t *job)
{
    const json_t *p = job->env->payload;
    const char *id = handler_util_req_string(p, "id");
    const char *user_id = handler_util_req_string(p, "user_id");
    const char *token_hash = handler_util_req_string(p, "token_hash");
    const char *expires_at = handler_util_req_string(p, "expires_at");
    const char *client_addr = handler_util_req_string(p, "client_addr");
    const char *user_agent = NULL, *step = NULL, *code_hash = NULL, *changed = NULL;
    char step_text[ACCESS_INT_TEXT], changed_text[ACCESS_INT_TEXT];
    PGresult *res = NULL;
    handler_outcome_t out;

    if (!id || !user_id || !token_hash || !expires_at || !client_addr ||
        !handler_util_opt_string(p, "user_agent", &user_agent) ||
        !opt_int_text(p, "totp_step", 0, INT64_MAX, step_text, &step) ||
        !opt_int_text(p, "password_changed_ms", 0, INT64_MAX, changed_text, &changed) ||
        !handler_util_opt_string(p, "recovery_code_hash", &code_hash)) {
        out = handler_util_bad_payload(job, "id, user_id, token_hash, expires_at and client_addr "
                                            "are required; totp_step must be a step");
        goto done;
    }
    const char *user_params[] = {user_id};
    out = handler_util_exec(job, SESSION_USER_SQL, 1, user_params, PGRES_TUPLES_OK, &res);
    if (out != HANDLER_OK)
        goto done;
    /* The api checked the password that was current when it read the user;
     * a change or reset committed since then makes this sign-in void. */
    if (PQntuples(res) == 0 || !is(PQgetvalue(res, 0, 0), "active") ||
        (changed != NULL && !is(PQgetvalue(res, 0, 3), changed))) {
        /* The api's own answer, word for word: a user disabled between
         * the api's check and this job must not be told apart. */
        out = runtime_reject(job, 401, "invalid_credentials", NULL, "%s",
                             err_message(BILLOW_EINVALID_CREDENTIALS));
        goto done;
    }
    /* TOTP may have been enabled after the api read the user. */
    if (is(PQgetvalue(res, 0, 1), "t") && step == NULL && code_hash == NULL) {
        out = runtime_reject(job, 401, "totp_required", "totp_code",
                             "This account needs a TOTP code to sign in.");
        goto done;
    }
    if (step != NULL && strtoll(step, NULL, 10) <= strtoll(PQgetvalue(res, 0, 2), NULL, 10)) {
        out = runtime_reject(job, 401, "totp_invalid", "totp_code",
                             "The TOTP code is not valid (each code works once).");
        goto done;
    }
    if (code_hash != NULL) {
        const char *code_params[] = {user_id, code_hash};
        out = handler_util_exec(job, RECOVERY_USE_SQL, 2, code_params, PGRES_TUPLES_OK, &res);
        if (out != HANDLER_OK)
            goto done;
        if (PQntuples(res) == 0) {
            out = runtime_reject(job, 401, "totp_invalid", "recovery_code",
                                 "The recovery code is not valid or was used.");
            goto done;
        }
    }
    const char *params[] = {id, user_id, token_hash, expires_at, client_addr, user_agent, step};
    out = handler_util_exec(job, SESSION_CREATE_SQL, 7, params, PGRES_TUPLES_OK, &res);
    if (out == HANDLER_OK)
        out = handler_util_take_result(job, res);

done:
    PQclear(res);
    return out;
}

/* Runs the one-row write `sql`; when it touches no row (the change was
 * made before), the row as it stands, read by `read_sql` with the same
 * first parameter: revocations are idempotent. No row at all is 404
 * resource_missing naming `what`. */
static handler_outcome_t write_or_read(worker_job_t *job, const char *sql, int n,
                                       const char *const *params, const char *read_sql,
                                       const char *what)
{
    PGresult *res = NULL;
    handler_outcome_t out;

    out = handler_util_exec(job, sql, n, params, PGRES_TUPLES_OK, &res);
    if (out != HANDLER_OK)
        goto done;
    /* A fresh statement: its snapshot sees a revocation that committed
     * while the write waited for the row. */
    if (PQntuples(res) == 0 &&
        (out = handler_util_exec(job, read_sql, 1, params, PGRES_TUPLES_OK, &res)) != HANDLER_OK)
        goto done;
    if (PQntuples(res) == 0) {
        out = runtime_reject(job, 404, "resource_missing", "id", "No such %s: '%s'.", what,
                             params[0]);
        goto done;
    }
    out = handler_util_take_result(job, res);

done:
    PQclear(res);
    return out;
}

static const char SESSION_REVOKE_SQL[] =
    "UPDATE sessions SET revoked_at = now(), revoked_reason = $2 "
    " WHERE id = $1 AND revoked_at IS NULL RETURNING session_object(sessions)::text";
static const char SESSION_READ_SQL[] =
    "SELECT session_object(s)::text FROM sessions s WHERE id = $1";

/* session.revoke: a logout, or a revocation by the user or an admin. */
static handler_outcome_t session_revoke(worker_job_t *job)
{
    const json_t *p = job->env->payload;
    const char *id = handler_util_req_string(p, "id");
    const char *reason = handler_util_req_string(p, "reason");

    if (!id || !(is(reason, "logout") || is(reason, "revoked")))
        return handler_util_bad_payload(job, "id and a reason (logout or revoked) are required");
    const char *params[] = {id, reason};
    return write_or_read(job, SESSION_REVOKE_SQL, 2, params, SESSION_READ_SQL, "session");
}

static const char API_KEY_CREATE_SQL[] =
    "INSERT INTO api_keys (tenant_id, id, name, secret_hash, prefix, role, created_by) "
    "VALUES (current_setting('app.tenant_id'), $1, $2, $3, $4, $5, nullif($6, '')) "
    "RETURNING api_key_object(api_keys)::text";

/* api_key.create: a key whose secret the api showed once. */
static handler_outcome_t api_key_create(worker_job_t *job)
{
    const json_t *p = job->env->payload;
    const char *params[] = {
        handler_util_req_string(p, "id"),          handler_util_req_string(p, "name"),
        handler_util_req_string(p, "secret_hash"), handler_util_req_string(p, "prefix"),
        handler_util_req_string(p, "role"),        job->env->actor};
    PGresult *res = NULL;
    handler_outcome_t out;

    if (!params[0] || !params[1] || !params[2] || !params[3] || !role_valid(params[4])) {
        out = handler_util_bad_payload(job, "id, name, secret_hash, prefix and a role are needed");
        goto done;
    }
    out = handler_util_exec(job, API_KEY_CREATE_SQL, 6, params, PGRES_TUPLES_OK, &res);
    if (out == HANDLER_OK)
        out = handler_util_take_result(job, res);

done:
    PQclear(res);
    return out;
}

/* The old key, locked: two rotations of one key are judged in turn, and
 * the second finds the key inactive (when the first had no grace) or in
 * its grace period. */
static const char API_KEY_LOCK_SQL[] =
    "SELECT revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()) "
    "  FROM api_keys WHERE id = $1 FOR UPDATE";

/* The old key ends after the grace period (never later than it already
 * would: a key rotated twice keeps the earlier end), or at once without
 * one; the new key takes its name and role. */
static const char API_KEY_ROTATE_SQL[] =
    "WITH prev AS ("
    "  UPDATE api_keys SET"
    "    revoked_at = CASE WHEN $5::integer = 0 THEN now() END,"
    "    expires_at = CASE WHEN $5::integer = 0 THEN expires_at"
    "                      ELSE least(expires_at, now() + $5::integer * interval '1 second') END"
    "   WHERE id = $1 RETURNING tenant_id, name, role, api_key_object(api_keys) AS obj"
    "), next AS ("
    "  INSERT INTO api_keys (tenant_id, id, name, secret_hash, prefix, role, created_by)"
    "  SELECT tenant_id, $2, name, $3, $4, role, nullif($6, '') FROM prev"
    "  RETURNING api_key_object(api_keys) AS obj"
    ") "
    "SELECT jsonb_build_object('api_key', next.obj, 'previous', prev.obj)::text FROM prev, next";

/* api_key.rotate: a new secret for a key, the old one kept for a grace
 * period so deployments can switch over. */
static handler_outcome_t api_key_rotate(worker_job_t *job)
{
    const json_t *p = job->env->payload;
    const json_t *next = json_object_get(p, "new");
    const char *id = handler_util_req_string(p, "id");
    const char *new_id = handler_util_req_string(next, "id");
    const char *hash = handler_util_req_string(next, "secret_hash");
    const char *prefix = handler_util_req_string(next, "prefix");
    const char *grace = NULL;
    char grace_text[ACCESS_INT_TEXT];
    PGresult *res = NULL;
    handler_outcome_t out;

    if (!id || !new_id || !hash || !prefix ||
        !opt_int_text(p, "grace_seconds", 0, ACCESS_GRACE_MAX_S, grace_text, &grace) || !grace) {
        out = handler_util_bad_payload(job, "id, new {id, secret_hash, prefix} and grace_seconds "
                                            "(0..604800) are required");
        goto done;
    }
    const char *lock_params[] = {id};
    out = handler_util_exec(job, API_KEY_LOCK_SQL, 1, lock_params, PGRES_TUPLES_OK, &res);
    if (out != HANDLER_OK)
        goto done;
    if (PQntuples(res) == 0) {
        out = runtime_reject(job, 404, "resource_missing", "id", "No such API key: '%s'.", id);
        goto done;
    }
    if (!is(PQgetvalue(res, 0, 0), "t")) {
        out = runtime_reject(job, 409, "api_key_inactive", "id",
                             "The API key '%s' is revoked or expired.", id);
        goto done;
    }
    const char *params[] = {id, new_id, hash, prefix, grace, job->env->actor};
    out = handler_util_exec(job, API_KEY_ROTATE_SQL, 6, params, PGRES_TUPLES_OK, &res);
    if (out == HANDLER_OK)
        out = handler_util_take_result(job, res);

done:
    PQclear(res);
    return out;
}

static const char API_KEY_REVOKE_SQL[] =
    "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL "
    "RETURNING api_key_object(api_keys)::text";
static const char API_KEY_READ_SQL[] =
    "SELECT api_key_object(k)::text FROM api_keys k WHERE id = $1";

/* api_key.revoke: the key stops working now, grace period or not. */
static handler_outcome_t api_key_revoke(worker_job_t *job)
{
    const char *params[] = {handler_util_req_string(job->env->payload, "id")};

    if (params[0] == NULL)
        return handler_util_bad_payload(job, "id is required");
    return write_or_read(job, API_KEY_REVOKE_SQL, 1, params, API_KEY_READ_SQL, "API key");
}

/* A pending secret replaces any earlier pending one; an enabled one stays. */
static const char TOTP_ENROLL_SQL[] =
    "UPDATE users SET totp_secret_sealed = $2, updated_at = now() "
    " WHERE id = $1 AND NOT totp_enabled RETURNING user_object(users)::text";
static const char TOTP_STATE_SQL[] =
    "SELECT totp_secret_sealed IS NOT NULL, totp_enabled, coalesce(totp_secret_sealed, '')"
    "  FROM users WHERE id = $1 FOR UPDATE";

/* user.totp_enroll: stores the sealed secret until a code confirms it. */
static handler_outcome_t totp_enroll(worker_job_t *job)
{
    const json_t *p = job->env->payload;
    const char *id = handler_util_req_string(p, "id");
    const char *secret = handler_util_req_string(p, "secret_sealed");
    PGresult *res = NULL;
    handler_outcome_t out;

    if (!id || !secret) {
        out = handler_util_bad_payload(job, "id and secret_sealed are required");
        goto done;
    }
    const char *params[] = {id, secret};
    out = handler_util_exec(job, TOTP_ENROLL_SQL, 2, params, PGRES_TUPLES_OK, &res);
    if (out != HANDLER_OK)
        goto done;
    if (PQntuples(res) == 1) {
        out = handler_util_take_result(job, res);
        goto done;
    }
    out = handler_util_exec(job, TOTP_STATE_SQL, 1, params, PGRES_TUPLES_OK, &res);
    if (out != HANDLER_OK)
        goto done;
    out = PQntuples(res) == 0
              ? runtime_reject(job, 404, "resource_missing", "id", "No such user: '%s'.", id)
              : runtime_reject(job, 409, "totp_enabled", NULL,
                               "TOTP is already enabled; disable it before enrolling again.");

done:
    PQclear(res);
    return out;
}

static const char RECOVERY_CLEAR_SQL[] = "DELETE FROM recovery_codes WHERE user_id = $1";

/* The new codes, and TOTP on from the confirming step. Separate from the
 * DELETE above: within one statement an insert would not see the rows the
 * delete removed. */
static const char TOTP_CONFIRM_SQL[] =
    "WITH c AS ("
    "  INSERT INTO recovery_codes (tenant_id, user_id, code_hash)"
    "  SELECT current_setting('app.tenant_id'), $1, h FROM unnest($3::text[]) AS h"
    ") "
    "UPDATE users SET totp_enabled = true, totp_last_step = greatest(totp_last_step, $2::bigint),"
    "                 updated_at = now() "
    " WHERE id = $1 RETURNING jsonb_build_object('user', user_object(users))::text";

/* user.totp_confirm: the first good code turns TOTP on. The result is
 * {"user": …}, beside which the api shows the recovery codes once. */
static handler_outcome_t totp_confirm(worker_job_t *job)
{
    const json_t *p = job->env->payload;
    const json_t *codes = json_object_get(p, "recovery_code_hashes");
    const char *id = handler_util_req_string(p, "id");
    const char *sealed = handler_util_req_string(p, "secret_sealed");
    const char *step = NULL;
    const char *hashes[ACCESS_RECOVERY_CODES];
    char step_text[ACCESS_INT_TEXT];
    char *array = NULL;
    PGresult *res = NULL;
    handler_outcome_t out;

    bool readable = id != NULL && opt_int_text(p, "step", 0, INT64_MAX, step_text, &step) &&
                    step != NULL && json_array_size(codes) == ACCESS_RECOVERY_CODES;
    for (size_t i = 0; readable && i < ACCESS_RECOVERY_CODES; i++) {
        hashes[i] = json_string_value(json_array_get(codes, i));
        readable = hashes[i] != NULL;
    }
    if (!readable) {
        out = handler_util_bad_payload(job, "id, step and 10 recovery_code_hashes are required");
        goto done;
    }
    const char *state_params[] = {id};
    out = handler_util_exec(job, TOTP_STATE_SQL, 1, state_params, PGRES_TUPLES_OK, &res);
    if (out != HANDLER_OK)
        goto done;
    if (PQntuples(res) == 0) {
        out = runtime_reject(job, 404, "resource_missing", "id", "No such user: '%s'.", id);
        goto done;
    }
    if (is(PQgetvalue(res, 0, 1), "t")) {
        out = runtime_reject(job, 409, "totp_enabled", NULL, "TOTP is already enabled.");
        goto done;
    }
    if (!is(PQgetvalue(res, 0, 0), "t")) {
        out = runtime_reject(job, 409, "totp_not_enrolled", NULL,
                             "There is no TOTP enrolment to confirm; start one first.");
        goto done;
    }
    /* The api checked the code against the secret it read; a new enrolment
     * committed since then must not be switched on unconfirmed. */
    if (sealed != NULL && !is(PQgetvalue(res, 0, 2), sealed)) {
        out = runtime_reject(job, 409, "totp_not_enrolled", NULL,
                             "The enrolment changed while the code was checked; confirm a code "
                             "from the newest secret.");
        goto done;
    }
    out = handler_util_exec(job, RECOVERY_CLEAR_SQL, 1, state_params, PGRES_COMMAND_OK, NULL);
    if (out != HANDLER_OK)
        goto done;
    array = runtime_pg_array(hashes, ACCESS_RECOVERY_CODES);
    const char *params[] = {id, step, array};
    out = handler_util_exec(job, TOTP_CONFIRM_SQL, 3, params, PGRES_TUPLES_OK, &res);
    if (out == HANDLER_OK)
        out = handler_util_take_result(job, res);

done:
    PQclear(res);
    free(array);
    return out;
}

static const char TOTP_DISABLE_SQL[] =
    "WITH c AS (DELETE FROM recovery_codes WHERE user_id = $1) "
    "UPDATE users SET totp_secret_sealed = NULL, totp_enabled = false, updated_at = now() "
    " WHERE id = $1 RETURNING user_object(users)::text";

/* user.totp_disable: no second factor, no recovery codes. The last step
 * stays, so a code seen before cannot come back after a new enrolment. */
static handler_outcome_t totp_disable(worker_job_t *job)
{
    const char *params[] = {handler_util_req_string(job->env->payload, "id")};
    PGresult *res = NULL;
    handler_outcome_t out;

    if (params[0] == NULL) {
        out = handler_util_bad_payload(job, "id is required");
        goto done;
    }
    out = handler_util_exec(job, TOTP_DISABLE_SQL, 1, params, PGRES_TUPLES_OK, &res);
    if (out != HANDLER_OK)
        goto done;
    if (PQntuples(res) == 0) {
        out = runtime_reject(job, 404, "resource_missing", "id", "No such user: '%s'.", params[0]);
        goto done;
    }
    out = handler_util_take_result(job, res);

done:
    PQclear(res);
    return out;
}

static const char SETTINGS_UPDATE_SQL[] =
    "UPDATE tenants SET require_totp = $1::boolean WHERE id = current_setting('app.tenant_id') "
    "RETURNING jsonb_build_object('object', 'security_settings',"
    "                             'require_totp', require_totp)::text";

/* tenant.settings_update: the tenant's security settings; the result is
 * the settings object GET /v1/settings/security reads. */
static handler_outcome_t settings_update(worker_job_t *job)
{
    const json_t *require_totp = json_object_get(job->env->payload, "require_totp");
    PGresult *res = NULL;
    handler_outcome_t out;

    if (!json_is_boolean(require_totp)) {
        out = handler_util_bad_payload(job, "require_totp must be a boolean");
        goto done;
    }
    const char *params[] = {json_is_true(require_totp) ? "true" : "false"};
    out = handler_util_exec(job, SETTINGS_UPDATE_SQL, 1, params, PGRES_TUPLES_OK, &res);
    if (out != HANDLER_OK)
        goto done;
    if (PQntuples(res) == 0) {
        out = runtime_reject(job, 404, "resource_missing", NULL, "No such tenant: '%s'.",
                             job->env->tenant_id);
        goto done;
    }
    out = handler_util_take_result(job, res);

done:
    PQclear(res);
    return out;
}

/* tenant.settings_billing: the tenant's invoice number prefix; numbers
 * already given keep theirs, the sequence goes on. */
static handler_outcome_t settings_billing(worker_job_t *job)
{
    const char *prefix = handler_util_req_string(job->env->payload, "invoice_prefix");
    PGresult *res = NULL;
    handler_outcome_t out;
    if (prefix == NULL) {
        out = handler_util_bad_payload(job, "invoice_prefix is required");
        goto done;
    }
    const char *params[] = {prefix};
    out = handler_util_exec(
        job,
        "UPDATE tenants t SET invoice_prefix = $1 WHERE id = current_setting('app.tenant_id') "
        "RETURNING billing_settings_object(t)::text",
        1, params, PGRES_TUPLES_OK, &res);
    if (out == HANDLER_OK)
        out = handler_util_take_result(job, res);
done:
    PQclear(res);
    return out;
}

/* tenant.settings_stripe {secret_key?: {sealed, hint, livemode},
 * webhook_secrets?: [{sealed, hint}]}: the tenant's Stripe account. The api
 * sealed every secret before it entered the job; only sealed text and
 * hints are stored. The key is needed before webhook secrets alone can be
 * set (an account starts with its key). */
static handler_outcome_t settings_stripe(worker_job_t *job)
{
    const json_t *p = job->env->payload;
    const json_t *key = json_object_get(p, "secret_key");
    const json_t *hooks = json_object_get(p, "webhook_secrets");
    const char *sealed = json_string_value(json_object_get(key, "sealed"));
    const char *hint = json_string_value(json_object_get(key, "hint"));
    const json_t *live = json_object_get(key, "livemode");
    PGresult *res = NULL;
    char *hooks_text = NULL;
    handler_outcome_t out;
    if ((key && (!sealed || !hint || !json_is_boolean(live))) || (hooks && !json_is_array(hooks)) ||
        (!key && !hooks)) {
        out = handler_util_bad_payload(job, "secret_key {sealed, hint, livemode} or "
                                            "webhook_secrets [{sealed, hint}] is required");
        goto done;
    }
    if (hooks)
        hooks_text = json_dumps(hooks, JSON_COMPACT);
    const char *params[] = {sealed, hint, key ? (json_is_true(live) ? "true" : "false") : NULL,
                            hooks_text};
    out = handler_util_exec(
        job,
        "WITH hooks AS ("
        "  SELECT jsonb_agg(CASE WHEN old.h IS NOT NULL THEN old.h"
        "   ELSE n.h || jsonb_build_object('added_at', api_time(now())) END ORDER BY n.ord) AS list"
        "  FROM jsonb_array_elements($4::jsonb) WITH ORDINALITY n(h, ord)"
        "  LEFT JOIN LATERAL (SELECT o AS h FROM stripe_accounts a,"
        "   jsonb_array_elements(a.webhook_secrets) o"
        "   WHERE a.tenant_id = current_setting('app.tenant_id') AND o ->> 'hint' = n.h ->> 'hint'"
        "   LIMIT 1) old ON true"
        "), up AS ("
        "  INSERT INTO stripe_accounts AS a (tenant_id, secret_key_sealed, secret_key_hint,"
        "   livemode, webhook_secrets)"
        "  SELECT current_setting('app.tenant_id'), $1, $2, $3::boolean,"
        "   coalesce((SELECT list FROM hooks), '[]'::jsonb)"
        "  WHERE $1::text IS NOT NULL"
        "  ON CONFLICT (tenant_id) DO UPDATE SET"
        "   secret_key_sealed = excluded.secret_key_sealed,"
        "   secret_key_hint = excluded.secret_key_hint, livemode = excluded.livemode,"
        "   webhook_secrets = CASE WHEN $4::jsonb IS NULL THEN a.webhook_secrets"
        "    ELSE excluded.webhook_secrets END, updated_at = now()"
        "  RETURNING a.tenant_id"
        "), hooks_only AS ("
        "  UPDATE stripe_accounts a SET webhook_secrets = (SELECT list FROM hooks),"
        "   updated_at = now()"
        "  WHERE $1::text IS NULL AND a.tenant_id = current_setting('app.tenant_id')"
        "  RETURNING a.tenant_id"
        ") SELECT (SELECT count(*) FROM up) + (SELECT count(*) FROM hooks_only)",
        4, params, PGRES_TUPLES_OK, &res);
    if (out != HANDLER_OK)
        goto done;
    if (strcmp(PQgetvalue(res, 0, 0), "0") == 0) {
        out = runtime_reject(job, 409, "stripe_not_configured", "secret_key",
                             "Set the Stripe secret key first: webhook secrets belong to a "
                             "connected account.");
        goto done;
    }
    PQclear(res);
    res = NULL;
    /* Read after the statement above: its changes are visible only now. */
    out = handler_util_exec(job,
                            "SELECT stripe_settings_object(current_setting('app.tenant_id'))::text",
                            0, NULL, PGRES_TUPLES_OK, &res);
    if (out == HANDLER_OK)
        out = handler_util_take_result(job, res);
done:
    PQclear(res);
    free(hooks_text);
    return out;
}

/* tenant.settings_dunning {retry_days?, end_action?, notify?}: merged over
 * the stored policy (the api validated it; shared/dunning.c reads it again
 * so only a policy it can read is stored). */
static handler_outcome_t settings_dunning(worker_job_t *job)
{
    PGresult *res = NULL;
    dunning_policy_t policy;
    char param[DUNNING_PARAM_MAX], why[160];
    handler_outcome_t out = handler_util_exec(
        job,
        "SELECT dunning_policy::text FROM tenants WHERE id = current_setting('app.tenant_id')"
        " FOR UPDATE",
        0, NULL, PGRES_TUPLES_OK, &res);
    if (out != HANDLER_OK)
        goto done;
    dunning_policy_default(&policy);
    json_t *stored = PQntuples(res) == 1 ? json_loads(PQgetvalue(res, 0, 0), 0, NULL) : NULL;
    if (stored && dunning_policy_read(stored, &policy, param, why, sizeof why) != 0)
        dunning_policy_default(&policy);
    json_decref(stored);
    if (dunning_policy_read(job->env->payload, &policy, param, why, sizeof why) != 0) {
        out = runtime_reject(job, 400, "parameter_invalid", param, "%s", why);
        goto done;
    }
    PQclear(res);
    res = NULL;
    json_t *j = dunning_policy_json(&policy);
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    const char *params[] = {text};
    out = handler_util_exec(job,
                            "UPDATE tenants t SET dunning_policy = $1::jsonb "
                            "WHERE id = current_setting('app.tenant_id') "
                            "RETURNING dunning_settings_object(t)::text",
                            1, params, PGRES_TUPLES_OK, &res);
    free(text);
    if (out == HANDLER_OK)
        out = handler_util_take_result(job, res);
done:
    PQclear(res);
    return out;
}

const worker_handler_t kind_access_handlers[] = {
    {"tenant.settings_billing", settings_billing, false, NULL},
    {"tenant.settings_stripe", settings_stripe, false, NULL},
    {"tenant.settings_dunning", settings_dunning, false, NULL},
    {"user.create", user_create, false, NULL},
    {"user.update", user_update, false, NULL},
    {"user.password_set", password_set, false, NULL},
    {"user.password_reset_request", password_reset_request, false, NULL},
    {"session.create", session_create, false, NULL},
    {"session.revoke", session_revoke, false, NULL},
    {"api_key.create", api_key_create, false, NULL},
    {"api_key.rotate", api_key_rotate, false, NULL},
    {"api_key.revoke", api_key_revoke, false, NULL},
    {"user.totp_enroll", totp_enroll, false, NULL},
    {"user.totp_confirm", totp_confirm, false, NULL},
    {"user.totp_disable", totp_disable, false, NULL},
    {"tenant.settings_update", settings_update, false, NULL},
    {NULL, NULL, false, NULL},
};

/* routes_auth: staff sign-in, sessions, passwords and two-factor sign-in.
 *
 * Sign-in is the one place the front does slow work: the password check
 * (scrypt, on libuv's thread pool through pwhash.c). Everything it decides
 * is then recorded by a job like any other change: session.create,
 * session.revoke, user.password_set, user.totp_*. These routes wait for
 * their job (AUTH_WAIT_S) because their answer is its outcome — a token
 * that works, a session that has ended.
 *
 * Sign-in attempts are counted in Redis per account (tenant + email) and
 * per client address (billow_attempt), atomically and before they are
 * judged, so a burst of simultaneous guesses cannot all pass one check;
 * past a limit the attempt is refused with 429 before the password is
 * looked at, and an attempt that succeeds is taken back out.
 * A wrong password, an unknown email, an unknown tenant and a disabled
 * user get the same answer, and an unknown user's attempt still runs
 * scrypt (on a dummy hash), so neither the answer nor its timing tells
 * which it was.
 */
#include <ctype.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "crypto.h"
#include "ids.h"
#include "jobq.h"
#include "log.h"
#include "mem.h"
#include "netaddr.h"
#include "password.h"
#include "pwhash.h"
#include "query.h"
#include "reads.h"
#include "router.h"
#include "routes.h"
#include "seal.h"
#include "submit.h"
#include "timeutil.h"
#include "tokens.h"
#include "totp.h"
#include "validate.h"

/* How long these routes wait for their job before answering 202 with it:
 * long enough for a busy worker, short enough for a sign-in form. */
#define AUTH_WAIT_S 10
/* Longest tenant reference (an id or a slug). */
#define AUTH_TENANT_REF_MAX 64
/* Random characters of a session token (about 256 bits). */
#define AUTH_SESSION_RANDOM_CHARS 43
/* Longest User-Agent kept with a session. */
#define AUTH_USER_AGENT_MAX 256
/* Context strings of sealed values. */
#define SEAL_CONTEXT_TOTP "totp_secret"
/* Room for an otpauth:// URI: the fixed parts, the secret, and an email of
 * VALIDATE_EMAIL_MAX bytes percent-encoded (each byte up to three). */
#define AUTH_TOTP_URI_MAX (3 * VALIDATE_EMAIL_MAX + 256)

/* Redis key sizes ("login:fail:acct:" + 64 hex, "login:fail:addr:" + address). */
#define AUTH_COUNTER_KEY_MAX 128

/* --- small helpers ----------------------------------------------------- */

static void respond_db_down(api_req_t *ar)
{
    respond_error(ar, BILLOW_EUNAVAILABLE, NULL, "The database is unavailable; retry later.");
}

static void respond_redis_down(api_req_t *ar)
{
    respond_error(ar, BILLOW_EUNAVAILABLE, NULL, "The session store is unavailable; retry later.");
}

/* Copies a column of row 0 (NULL stays "") into a fresh string. */
static char *col_dup(const PGresult *res, int col)
{
    return mem_strdup(PQgetisnull(res, 0, col) ? "" : PQgetvalue(res, 0, col));
}

/* Acts for the user from here on: the tenant of the job and its actor
 * (the user, or "system" when nobody known asked: a reset request). */
static void act_as(api_req_t *ar, const char *tenant_id, const char *user_id, const char *actor)
{
    snprintf(ar->auth.tenant_id, sizeof ar->auth.tenant_id, "%s", tenant_id);
    snprintf(ar->auth.user_id, sizeof ar->auth.user_id, "%s", user_id);
    snprintf(ar->auth.actor, sizeof ar->auth.actor, "%s", actor);
}

/* The key of an account's counter: prefix and the SHA-256 of the tenant
 * and the email (the address need not be stored plain). email should come
 * folded by Postgres's lower(), as accounts are matched, so every spelling
 * of one address counts alike; ASCII is folded here too for the case of an
 * unknown tenant, where there is no account to match. */
static void account_key(const char *prefix, const char *tenant, const char *email,
                        char out[AUTH_COUNTER_KEY_MAX])
{
    char *material = mem_printf("%s\n%s", tenant, email);
    for (char *p = material; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    char hash[CRYPTO_SHA256_HEX];
    crypto_sha256_hex(material, strlen(material), hash);
    free(material);
    snprintf(out, AUTH_COUNTER_KEY_MAX, "%s%s", prefix, hash);
}

/* The failure counters of a sign-in: per account and per client address
 * (an IPv6 client's /64, netaddr_limit_key). */
static void counter_keys(const char *tenant, const char *email, const char *addr,
                         char acct[AUTH_COUNTER_KEY_MAX], char addr_key[AUTH_COUNTER_KEY_MAX])
{
    account_key("login:fail:acct:", tenant, email, acct);
    char bucket[NETADDR_TEXT_MAX];
    netaddr_limit_key(addr, bucket);
    snprintf(addr_key, AUTH_COUNTER_KEY_MAX, "login:fail:addr:%s", bucket);
}

/* Counts an attempt in one or two counters with their limits, atomically
 * and before it is judged (billow_attempt); the reply goes to cb (see
 * locked_or_respond). k2 may be NULL. */
static int attempt_start(app_t *app, const char *k1, int limit1, const char *k2, int limit2,
                         redis_reply_cb cb, void *data)
{
    char l1[16], l2[16], window[24];
    snprintf(l1, sizeof l1, "%d", limit1);
    snprintf(l2, sizeof l2, "%d", limit2);
    snprintf(window, sizeof window, "%lld", (long long)app->cfg->login_lockout_s * 1000);
    if (k2 == NULL) {
        const char *argv[] = {"FCALL", "billow_attempt", "1", k1, l1, window};
        return redis_conn_commandv(app->redis, cb, data, 6, argv);
    }
    const char *argv[] = {"FCALL", "billow_attempt", "2", k1, k2, l1, l2, window};
    return redis_conn_commandv(app->redis, cb, data, 8, argv);
}

/* A sign-in's two counters for a password check. */
static int sign_in_attempt(app_t *app, const char *acct, const char *addr, redis_reply_cb cb,
                           void *data)
{
    return attempt_start(app, acct, app->cfg->login_max_failures, addr,
                         app->cfg->login_max_failures_address, cb, data);
}

/* The attempt was no failure after all: takes it back from the address
 * counter, and clears the account's (a success ends its run of failures)
 * or takes it back too (reset_account false: the check was not finished). */
static void attempt_not_failed(app_t *app, const char *acct, const char *addr, bool reset_account)
{
    if (reset_account) {
        const char *del[] = {"DEL", acct};
        redis_conn_fire(app->redis, 2, del);
        const char *undo[] = {"FCALL", "billow_attempt_undo", "1", addr};
        redis_conn_fire(app->redis, 4, undo);
        return;
    }
    const char *undo[] = {"FCALL", "billow_attempt_undo", "2", acct, addr};
    redis_conn_fire(app->redis, 5, undo);
}

/* Reads a billow_attempt reply: 0 when the attempt may go on;
 * otherwise answers (503 without Redis, 429 with Retry-After when a
 * counter is past its limit) and returns -1. */
static int locked_or_respond(api_req_t *ar, const redisReply *r)
{
    if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
        respond_redis_down(ar);
        return -1;
    }
    if (r->integer <= 0)
        return 0;
    char retry[24];
    snprintf(retry, sizeof retry, "%lld", (r->integer + 999) / 1000);
    respond_header(ar, "Retry-After", retry);
    respond_error(ar, BILLOW_ETOO_MANY_ATTEMPTS, NULL,
                  "Too many failed attempts for this account or address; try again in %s "
                  "seconds.",
                  retry);
    return -1;
}

/* --- POST /v1/auth/login ----------------------------------------------- */

typedef struct {
    api_req_t *ar;
    char *password;      /* Copy; wiped. */
    char *totp_code;     /* Or NULL. */
    char *recovery_code; /* Or NULL. */
    char acct_key[AUTH_COUNTER_KEY_MAX];
    char addr_key[AUTH_COUNTER_KEY_MAX];
    bool found; /* The user exists and may sign in. */
    char *tenant_id, *user_id, *password_hash, *totp_sealed;
    char *password_changed_ms; /* When the checked password was set (for the job). */
    bool totp_enabled;
    uint64_t last_step;
    char recovery_hash[CRYPTO_SHA256_HEX]; /* Of recovery_code, once checked. */
} login_t;

static void login_free(login_t *l)
{
    if (l->password) {
        OPENSSL_cleanse(l->password, strlen(l->password));
        free(l->password);
    }
    free(l->totp_code);
    free(l->recovery_code);
    free(l->tenant_id);
    free(l->user_id);
    free(l->password_hash);
    free(l->totp_sealed);
    free(l->password_changed_ms);
    free(l);
}

/* Answers a failed attempt with err; it was counted when it began. */
static void login_fail(login_t *l, int err, const char *param)
{
    api_req_t *ar = l->ar;
    login_free(l);
    respond_error(ar, err, param, NULL);
}

/* The User-Agent kept with a session: printable UTF-8, cut to at most
 * AUTH_USER_AGENT_MAX bytes on a character boundary; "" when unusable. */
static void user_agent_of(const http_req_t *req, char out[AUTH_USER_AGENT_MAX + 1])
{
    const char *ua = http_req_header(req, "User-Agent");
    out[0] = '\0';
    if (ua == NULL || !validate_utf8_printable(ua, strlen(ua)))
        return;
    size_t n = strlen(ua);
    if (n > AUTH_USER_AGENT_MAX) {
        n = AUTH_USER_AGENT_MAX;
        while (n > 0 && ((unsigned char)ua[n] & 0xC0) == 0x80)
            n--; /* ua[n] continues a character: cut before that character. */
    }
    memcpy(out, ua, n);
    out[n] = '\0';
}

/* Everything checked out: draw the token and record the session. The
 * account's failure counter is reset only here, after every check. */
static void login_succeed(login_t *l, uint64_t totp_step)
{
    api_req_t *ar = l->ar;
    app_t *app = ar->app;
    attempt_not_failed(app, l->acct_key, l->addr_key, true);

    char session_id[IDS_MAX], random[AUTH_SESSION_RANDOM_CHARS + 1];
    ids_generate("ses", session_id);
    crypto_random_token(random, AUTH_SESSION_RANDOM_CHARS);
    char token[sizeof AUTH_SESSION_PREFIX + AUTH_SESSION_RANDOM_CHARS];
    snprintf(token, sizeof token, "%s%s", AUTH_SESSION_PREFIX, random);
    char hash[CRYPTO_SHA256_HEX];
    crypto_sha256_hex(token, strlen(token), hash);
    int64_t now = timeutil_now_ms();
    char expires[TIMEUTIL_RFC3339_MAX];
    timeutil_format_rfc3339_s(now + (int64_t)app->cfg->session_ttl_s * 1000, expires);

    /* The session's last use, for the idle expiry. It grants nothing by
     * itself (the Postgres row does), and it is on the connection before
     * the job, so it exists when the token is first used. */
    char key[AUTH_SESSION_KEY_MAX], now_s[24], idle[24];
    auth_session_key(session_id, key);
    snprintf(now_s, sizeof now_s, "%lld", (long long)now);
    snprintf(idle, sizeof idle, "%lld", (long long)app->cfg->session_idle_s * 1000);
    const char *set[] = {"SET", key, now_s, "PX", idle};
    redis_conn_fire(app->redis, 5, set);

    char user_agent[AUTH_USER_AGENT_MAX + 1];
    user_agent_of(ar->http, user_agent);
    json_t *payload =
        json_pack("{s:s,s:s,s:s,s:s,s:s,s:s?,s:o,s:s?,s:I}", "id", session_id, "user_id",
                  l->user_id, "token_hash", hash, "expires_at", expires, "client_addr",
                  ar->http->client_addr, "user_agent", user_agent[0] ? user_agent : NULL,
                  "totp_step", totp_step ? json_integer((json_int_t)totp_step) : json_null(),
                  "recovery_code_hash", l->recovery_hash[0] ? l->recovery_hash : NULL,
                  "password_changed_ms", (json_int_t)strtoll(l->password_changed_ms, NULL, 10));
    json_t *reveal = json_pack("{s:s,s:s}", "token", token, "expires_at", expires);
    OPENSSL_cleanse(token, sizeof token);
    OPENSSL_cleanse(random, sizeof random);
    if (payload == NULL || reveal == NULL)
        abort(); /* Every string here is ASCII or checked UTF-8: only memory can fail. */
    act_as(ar, l->tenant_id, l->user_id, l->user_id);
    login_free(l);
    submit_t s = {.type = "session.create",
                  .tenant_id = ar->auth.tenant_id,
                  .payload = payload,
                  .created_status = 200,
                  .reveal = reveal,
                  .wait_s = AUTH_WAIT_S,
                  .no_idempotency = true};
    submit_job_or_respond(ar, &s);
}

static void on_recovery_code(void *data, int err, const PGresult *res)
{
    login_t *l = data;
    if (err) {
        api_req_t *ar = l->ar;
        login_free(l);
        respond_db_down(ar);
        return;
    }
    /* An unknown or spent code is a failure like a wrong password: it is
     * counted, and it never resets the account's counter. */
    if (PQntuples(res) != 1 || PQgetvalue(res, 0, 0)[0] != 't') {
        login_fail(l, BILLOW_ETOTP_INVALID, "recovery_code");
        return;
    }
    login_succeed(l, 0);
}

/* The second factor of a user with TOTP on. */
static void login_second_factor(login_t *l)
{
    api_req_t *ar = l->ar;
    if (l->recovery_code) {
        if (totp_recovery_hash(ar->app->recovery_key, sizeof ar->app->recovery_key,
                               l->recovery_code, l->recovery_hash) != 0) {
            login_fail(l, BILLOW_ETOTP_INVALID, "recovery_code");
            return;
        }
        /* Checked here so a wrong code counts; the job spends it. */
        const char *params[2] = {l->user_id, l->recovery_hash};
        if (pg_pool_query(ar->app->pg, l->tenant_id, "SELECT recovery_code_unused($1, $2)", 2,
                          params, on_recovery_code, l) != 0) {
            login_free(l);
            respond_db_down(ar);
        }
        return;
    }
    if (l->totp_code == NULL) {
        /* The password was right: not a failure, but no session yet. */
        attempt_not_failed(ar->app, l->acct_key, l->addr_key, false);
        login_free(l);
        respond_error(ar, BILLOW_ETOTP_REQUIRED, "totp_code",
                      "This account uses two-factor sign-in: send totp_code (or recovery_code) "
                      "with the password.");
        return;
    }
    char *secret = NULL;
    size_t len = 0;
    uint64_t step = 0;
    int rc = seal_decrypt(&ar->app->seal_key, SEAL_CONTEXT_TOTP, l->totp_sealed, &secret, &len);
    if (rc == 0)
        rc = totp_verify(secret, timeutil_now_ms() / 1000, l->totp_code, l->last_step, &step);
    if (secret) {
        OPENSSL_cleanse(secret, len);
        free(secret);
    }
    if (rc != 0) {
        login_fail(l, BILLOW_ETOTP_INVALID, "totp_code");
        return;
    }
    login_succeed(l, step);
}

static void login_verified(void *data, bool ok)
{
    login_t *l = data;
    if (!ok || !l->found) {
        login_fail(l, BILLOW_EINVALID_CREDENTIALS, NULL);
        return;
    }
    if (l->totp_enabled) {
        login_second_factor(l);
        return;
    }
    login_succeed(l, 0);
}

static void login_checked(void *data, redisReply *r)
{
    login_t *l = data;
    api_req_t *ar = l->ar;
    if (locked_or_respond(ar, r) != 0) {
        login_free(l);
        return;
    }
    int rc =
        pwhash_verify(ar->app, l->found ? l->password_hash : NULL, l->password, login_verified, l);
    if (rc != 0) {
        login_free(l);
        respond_error(ar, rc, NULL, "%s", PWHASH_BUSY);
    }
}

static void login_looked_up(void *data, int err, const PGresult *res)
{
    login_t *l = data;
    api_req_t *ar = l->ar;
    if (err) {
        login_free(l);
        respond_db_down(ar);
        return;
    }
    const char *tenant_ref = json_string_value(json_object_get(ar->body, "tenant"));
    const char *email = json_string_value(json_object_get(ar->body, "email"));
    if (PQntuples(res) == 1) {
        /* tenant_id, user_id (null: no such user), status, password_hash,
         * totp_enabled, totp_secret_sealed, totp_last_step, role,
         * password_changed_ms */
        l->tenant_id = col_dup(res, 0);
        l->user_id = col_dup(res, 1);
        l->found = !PQgetisnull(res, 0, 1) && strcmp(PQgetvalue(res, 0, 2), "active") == 0 &&
                   !PQgetisnull(res, 0, 3);
        l->password_hash = col_dup(res, 3);
        l->totp_enabled = PQgetvalue(res, 0, 4)[0] == 't';
        l->totp_sealed = col_dup(res, 5);
        l->last_step = strtoull(PQgetvalue(res, 0, 6), NULL, 10);
        l->password_changed_ms = col_dup(res, 8);
        email = PQgetvalue(res, 0, 9); /* lower(email), as accounts are matched. */
    }
    /* The account counter is keyed by the resolved tenant when there is
     * one, so naming it by id or by slug counts alike. */
    counter_keys(l->tenant_id ? l->tenant_id : tenant_ref, email, ar->http->client_addr,
                 l->acct_key, l->addr_key);
    if (sign_in_attempt(ar->app, l->acct_key, l->addr_key, login_checked, l) != 0) {
        login_free(l);
        respond_redis_down(ar);
    }
}

void routes_auth_login(api_req_t *ar)
{
    static const char *const allowed[] = {"tenant",    "email",         "password",
                                          "totp_code", "recovery_code", NULL};
    validate_error_t e;
    const char *tenant, *email, *password, *code, *recovery;
    if (validate_known_keys(ar->body, allowed, &e) != 0 ||
        validate_string_member(ar->body, "tenant", true, AUTH_TENANT_REF_MAX, &tenant, &e) != 0 ||
        validate_string_member(ar->body, "email", true, VALIDATE_EMAIL_MAX, &email, &e) != 0 ||
        validate_string_member(ar->body, "password", true, PASSWORD_MAX_BYTES, &password, &e) !=
            0 ||
        validate_string_member(ar->body, "totp_code", false, TOTP_DIGITS, &code, &e) != 0 ||
        validate_string_member(ar->body, "recovery_code", false, 32, &recovery, &e) != 0) {
        respond_invalid(ar, &e);
        return;
    }
    login_t *l = mem_calloc(1, sizeof(*l));
    l->ar = ar;
    l->password = mem_strdup(password);
    l->totp_code = mem_strdup(code);
    l->recovery_code = mem_strdup(recovery);
    const char *params[2] = {tenant, email};
    if (pg_pool_query(ar->app->pg, NULL,
                      "SELECT tenant_id, user_id, status, password_hash, totp_enabled,"
                      " totp_secret_sealed, totp_last_step, role, password_changed_ms,"
                      " email_folded FROM login_user($1, $2)",
                      2, params, login_looked_up, l) != 0) {
        login_free(l);
        respond_db_down(ar);
    }
}

/* --- sessions ------------------------------------------------------------ */

/* Ends a session: forgets its last use at once, and records the end. */
static void revoke_session(api_req_t *ar, const char *session_id, const char *reason)
{
    char key[AUTH_SESSION_KEY_MAX];
    auth_session_key(session_id, key);
    const char *del[] = {"DEL", key};
    redis_conn_fire(ar->app->redis, 2, del);
    submit_t s = {.type = "session.revoke",
                  .tenant_id = ar->auth.tenant_id,
                  .payload = json_pack("{s:s,s:s}", "id", session_id, "reason", reason),
                  .created_status = 200,
                  .wait_s = AUTH_WAIT_S,
                  .no_idempotency = true};
    submit_job_or_respond(ar, &s);
}

void routes_auth_logout(api_req_t *ar)
{
    if (json_object_size(ar->body) != 0) {
        respond_error(ar, BILLOW_EPARAM_UNKNOWN, json_object_iter_key(json_object_iter(ar->body)),
                      "POST /v1/auth/logout takes no parameters.");
        return;
    }
    char session_id[IDS_MAX];
    snprintf(session_id, sizeof session_id, "%s", ar->auth.session_id);
    revoke_session(ar, session_id, "logout");
}

void routes_auth_session_get(api_req_t *ar)
{
    static const char *const none[] = {NULL};
    char unknown[64];
    if (query_unknown(ar->http->query, none, unknown, sizeof unknown)) {
        respond_error(ar, BILLOW_EPARAM_UNKNOWN, unknown, "Unknown query parameter '%s'.", unknown);
        return;
    }
    /* Who the token is: what a dashboard needs on every page load. */
    const char *params[2] = {ar->auth.session_id, ar->auth.user_id};
    reads_object(ar, "session",
                 "SELECT jsonb_build_object('session', session_object(s) || "
                 "'{\"current\":true}'::jsonb, 'user', user_object(u))::text"
                 " FROM sessions s JOIN users u ON u.tenant_id = s.tenant_id AND u.id = s.user_id"
                 " WHERE s.id = $1 AND u.id = $2",
                 2, params);
}

void routes_auth_sessions_list(api_req_t *ar)
{
    static const char *const allowed[] = {"limit", "starting_after", "user", NULL};
    int limit;
    char after[IDS_MAX], user[ROUTE_PARAM_MAX];
    if (reads_page_params(ar, allowed, "ses", &limit, after) != 0)
        return;
    int rc = query_get(ar->http->query, "user", user, sizeof user);
    if (rc < 0 || (rc == 1 && !ids_valid("usr", user))) {
        respond_error(ar, BILLOW_EPARAM_INVALID, "user", "user must be a user id (usr_…).");
        return;
    }
    if (rc == 0)
        snprintf(user, sizeof user, "%s", ar->auth.user_id);
    if (strcmp(user, ar->auth.user_id) != 0) {
        if (!permissions_allows(ar->auth.role, "sessions:manage")) {
            respond_error(ar, BILLOW_EFORBIDDEN, "user",
                          "Listing another user's sessions needs the permission "
                          "'sessions:manage'.");
            return;
        }
        if (router_unenrolled_refused(ar))
            return;
    }
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit + 1);
    const char *params[4] = {user, after, lim, ar->auth.session_id};
    reads_list(ar, "/v1/auth/sessions", limit,
               "SELECT (session_object(s) || jsonb_build_object('current', s.id = $4))::text"
               " FROM sessions s WHERE s.user_id = $1 AND s.revoked_at IS NULL"
               " AND s.expires_at > now() AND ($2 = '' OR s.id < $2)"
               " ORDER BY s.id DESC LIMIT $3::int",
               4, params);
}

static void on_session_owner(void *data, int err, const PGresult *res)
{
    api_req_t *ar = data;
    if (err) {
        reads_failed(ar, err, res);
        return;
    }
    /* Another user's session is not revealed to whoever may not end it. */
    if (PQntuples(res) == 0 || (strcmp(PQgetvalue(res, 0, 0), ar->auth.user_id) != 0 &&
                                !permissions_allows(ar->auth.role, "sessions:manage"))) {
        respond_error(ar, BILLOW_ENOT_FOUND, "id", "No such session: '%s'.", ar->params[0]);
        return;
    }
    if (strcmp(PQgetvalue(res, 0, 0), ar->auth.user_id) != 0) {
        if (router_unenrolled_refused(ar))
            return;
        if (!permissions_may_act_on(ar->auth.role, PQgetvalue(res, 0, 1))) {
            respond_error(ar, BILLOW_EFORBIDDEN, "id",
                          "Only an owner may end an owner's sessions; these credentials have "
                          "the role %s.",
                          ar->auth.role);
            return;
        }
    }
    revoke_session(ar, ar->params[0], "revoked");
}

void routes_auth_sessions_delete(api_req_t *ar)
{
    if (!ids_valid("ses", ar->params[0])) {
        respond_error(ar, BILLOW_ENOT_FOUND, "id", "No such session: '%s'.", ar->params[0]);
        return;
    }
    const char *params[1] = {ar->params[0]};
    if (pg_pool_query(ar->app->pg, ar->auth.tenant_id,
                      "SELECT s.user_id, u.role FROM sessions s JOIN users u"
                      " ON u.tenant_id = s.tenant_id AND u.id = s.user_id WHERE s.id = $1",
                      1, params, on_session_owner, ar) != 0)
        respond_db_down(ar);
}

/* --- the caller's own account: password and TOTP ------------------------ */

typedef struct self_s self_t;
typedef void (*self_step_fn)(self_t *s);

/* What a self-service request carries between its steps. */
struct self_s {
    api_req_t *ar;
    self_step_fn next;                   /* The step after the one in flight. */
    char *password;                      /* A password to check (copy; wiped), or NULL. */
    char *new_password;                  /* A password to set (copy; wiped), or NULL. */
    char *code;                          /* A TOTP code, or NULL. */
    const char *param;                   /* The parameter a wrong password is blamed on. */
    char acct_key[AUTH_COUNTER_KEY_MAX]; /* Failure counters of a password check. */
    char addr_key[AUTH_COUNTER_KEY_MAX];
    /* The user's row. */
    char *password_hash, *totp_sealed, *email, *email_folded;
    bool totp_enabled;
    uint64_t last_step;
};

static void self_free(self_t *s)
{
    if (s->password) {
        OPENSSL_cleanse(s->password, strlen(s->password));
        free(s->password);
    }
    if (s->new_password) {
        OPENSSL_cleanse(s->new_password, strlen(s->new_password));
        free(s->new_password);
    }
    free(s->code);
    free(s->password_hash);
    free(s->totp_sealed);
    free(s->email);
    free(s->email_folded);
    free(s);
}

/* Ends a self-service request with an error (frees s first). */
static void self_respond_error(self_t *s, int err, const char *param, const char *msg)
{
    api_req_t *ar = s->ar;
    self_free(s);
    respond_error(ar, err, param, msg ? "%s" : NULL, msg);
}

static void on_self_row(void *data, int err, const PGresult *res)
{
    self_t *s = data;
    if (err || PQntuples(res) != 1) {
        api_req_t *ar = s->ar;
        self_free(s);
        if (err)
            reads_failed(ar, err, res);
        else
            respond_error(ar, BILLOW_EUNAUTHENTICATED, NULL,
                          "The signed-in user no longer exists.");
        return;
    }
    s->password_hash = col_dup(res, 0);
    s->totp_enabled = PQgetvalue(res, 0, 1)[0] == 't';
    s->totp_sealed = col_dup(res, 2);
    s->last_step = strtoull(PQgetvalue(res, 0, 3), NULL, 10);
    s->email = col_dup(res, 4);
    s->email_folded = col_dup(res, 5);
    s->next(s);
}

/* Reads the caller's user row, then runs next. */
static void self_read(self_t *s, self_step_fn next)
{
    s->next = next;
    const char *params[1] = {s->ar->auth.user_id};
    if (pg_pool_query(
            s->ar->app->pg, s->ar->auth.tenant_id,
            "SELECT password_hash, totp_enabled, totp_secret_sealed, totp_last_step, email,"
            " lower(email) FROM users WHERE id = $1",
            1, params, on_self_row, s) != 0)
        self_respond_error(s, BILLOW_EUNAVAILABLE, NULL,
                           "The database is unavailable; retry later.");
}

static self_t *self_new(api_req_t *ar)
{
    self_t *s = mem_calloc(1, sizeof(*s));
    s->ar = ar;
    return s;
}

/* Submits a job about the caller's own user, waiting for its outcome. */
static void self_submit(self_t *s, const char *type, json_t *payload, json_t *reveal,
                        bool reveal_only)
{
    api_req_t *ar = s->ar;
    self_free(s);
    submit_t sub = {.type = type,
                    .tenant_id = ar->auth.tenant_id,
                    .payload = payload,
                    .created_status = 200,
                    .reveal = reveal,
                    .reveal_only = reveal_only,
                    .wait_s = AUTH_WAIT_S,
                    .no_idempotency = true};
    submit_job_or_respond(ar, &sub);
}

static void on_self_verified(void *data, bool ok)
{
    self_t *s = data;
    if (ok) {
        attempt_not_failed(s->ar->app, s->acct_key, s->addr_key, true);
        s->next(s);
        return;
    }
    /* Counted (when it began) like a failed sign-in: a stolen session must
     * not become a way to guess the password without the sign-in's limits. */
    self_respond_error(s, BILLOW_EINVALID_CREDENTIALS, s->param, "The password is not correct.");
}

static void on_self_counters(void *data, redisReply *r)
{
    self_t *s = data;
    api_req_t *ar = s->ar;
    if (locked_or_respond(ar, r) != 0) {
        s->ar = NULL;
        self_free(s);
        return;
    }
    const char *hash = s->password_hash[0] ? s->password_hash : NULL;
    int rc = pwhash_verify(ar->app, hash, s->password, on_self_verified, s);
    if (rc != 0)
        self_respond_error(s, rc, NULL, PWHASH_BUSY);
}

/* Checks s->password against the caller's hash under the sign-in's
 * failure counters (the account is the caller's tenant and email), then
 * runs next. */
static void self_check_password(self_t *s, self_step_fn next)
{
    api_req_t *ar = s->ar;
    s->next = next;
    counter_keys(ar->auth.tenant_id, s->email_folded, ar->http->client_addr, s->acct_key,
                 s->addr_key);
    if (sign_in_attempt(ar->app, s->acct_key, s->addr_key, on_self_counters, s) != 0)
        self_respond_error(s, BILLOW_EUNAVAILABLE, NULL,
                           "The session store is unavailable; retry later.");
}

/* A new password being hashed for a user.password_set job. */
typedef struct {
    api_req_t *ar;
    char *user_id;  /* Whose password. */
    char *reason;   /* "change", "reset" or "invite". */
    char *token_id; /* The consumed token (reset, invite), or NULL. */
    char *name;     /* A name the invited user chose, or NULL. */
} set_password_t;

static void set_password_free(set_password_t *sp)
{
    free(sp->user_id);
    free(sp->reason);
    free(sp->token_id);
    free(sp->name);
    free(sp);
}

static void on_new_hash(void *data, int err, const char *encoded)
{
    set_password_t *sp = data;
    api_req_t *ar = sp->ar;
    if (err) {
        set_password_free(sp);
        respond_error(ar, BILLOW_EINTERNAL, NULL, NULL);
        return;
    }
    json_t *payload =
        json_pack("{s:s,s:s,s:s,s:s?,s:s?}", "id", sp->user_id, "password_hash", encoded, "reason",
                  sp->reason, "token_id", sp->token_id, "name", sp->name);
    set_password_free(sp);
    submit_t s = {.type = "user.password_set",
                  .tenant_id = ar->auth.tenant_id,
                  .payload = payload,
                  .created_status = 200,
                  .wait_s = AUTH_WAIT_S,
                  .no_idempotency = true};
    submit_job_or_respond(ar, &s);
}

static void set_password(api_req_t *ar, const char *user_id, const char *password,
                         const char *reason, const char *token_id, const char *name)
{
    set_password_t *sp = mem_calloc(1, sizeof(*sp));
    sp->ar = ar;
    sp->user_id = mem_strdup(user_id);
    sp->reason = mem_strdup(reason);
    sp->token_id = mem_strdup(token_id);
    sp->name = mem_strdup(name);
    int rc = pwhash_hash(ar->app, password, on_new_hash, sp);
    if (rc != 0) {
        set_password_free(sp);
        respond_error(ar, rc, NULL, "%s", PWHASH_BUSY);
    }
}

static void password_change_checked(self_t *s)
{
    api_req_t *ar = s->ar;
    char *new_password = mem_strdup(s->new_password);
    self_free(s);
    set_password(ar, ar->auth.user_id, new_password, "change", NULL, NULL);
    OPENSSL_cleanse(new_password, strlen(new_password));
    free(new_password);
}

static void password_change_read(self_t *s)
{
    self_check_password(s, password_change_checked);
}

void routes_auth_password_change(api_req_t *ar)
{
    static const char *const allowed[] = {"current_password", "new_password", NULL};
    validate_error_t e;
    const char *current, *next;
    if (validate_known_keys(ar->body, allowed, &e) != 0 ||
        validate_string_member(ar->body, "current_password", true, PASSWORD_MAX_BYTES, &current,
                               &e) != 0 ||
        validate_string_member(ar->body, "new_password", true, PASSWORD_MAX_BYTES * 4, &next, &e) !=
            0 ||
        password_check_policy("new_password", next, &e) != 0) {
        respond_invalid(ar, &e);
        return;
    }
    self_t *s = self_new(ar);
    s->password = mem_strdup(current);
    s->new_password = mem_strdup(next);
    s->param = "current_password";
    self_read(s, password_change_read);
}

/* --- password reset and invitations (public) ---------------------------- */

/* Reset requests are counted within LOGIN_LOCKOUT_S in their own counters
 * (they are not failed sign-ins): per client address, with the address
 * limit of sign-ins, so resets cannot probe for accounts fast; and per
 * account (tenant and email, whether or not the account exists, so the
 * count tells nothing), with the account limit, so nobody can flood one
 * mailbox from many addresses. */
#define RESET_ADDR_PREFIX "reset:addr:"
#define RESET_ACCT_PREFIX "reset:acct:"

typedef struct {
    api_req_t *ar;
    char addr_key[AUTH_COUNTER_KEY_MAX]; /* This address's reset counter. */
    char acct_key[AUTH_COUNTER_KEY_MAX]; /* This account's reset counter. */
    bool known;                          /* An active user with a password. */
    char tenant_id[IDS_MAX], user_id[IDS_MAX];
} reset_t;

static json_t *reset_answer(void)
{
    return json_pack("{s:s,s:s}", "object", "password_reset", "status", "requested");
}

/* No token for this address: the same answer, after the same number of
 * Redis round trips a real request spends (it enqueues its job; this one
 * reads the account's counter back), and the same 503 if Redis fails. */
static void on_reset_parity(void *data, redisReply *r)
{
    api_req_t *ar = data;
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        respond_error(ar, BILLOW_EUNAVAILABLE, NULL, "The job queue is unavailable.");
        return;
    }
    respond_json(ar, 202, reset_answer());
}

static void on_reset_account_checked(void *data, redisReply *r)
{
    reset_t *rs = data;
    api_req_t *ar = rs->ar;
    if (locked_or_respond(ar, r) != 0) {
        free(rs);
        return;
    }
    /* Only an active user with a password gets a token; everyone gets the
     * same answer, and Idempotency-Key is ignored on both paths. */
    if (!rs->known) {
        const char *argv[] = {"EXISTS", rs->acct_key};
        if (redis_conn_commandv(ar->app->redis, on_reset_parity, ar, 2, argv) != 0)
            respond_redis_down(ar);
        free(rs);
        return;
    }
    /* Anyone may ask for a reset: the request is not the user's doing. */
    act_as(ar, rs->tenant_id, rs->user_id, "system");
    json_t *token = tokens_issue(ar->app, "brt", ar->app->cfg->reset_token_ttl_s);
    submit_t s = {.type = "user.password_reset_request",
                  .tenant_id = ar->auth.tenant_id,
                  .payload = json_pack("{s:s,s:o}", "user_id", rs->user_id, "token", token),
                  .created_status = 200,
                  .answer = reset_answer(),
                  .answer_status = 202,
                  .no_idempotency = true};
    free(rs);
    submit_job_or_respond(ar, &s);
}

static void on_reset_user(void *data, int err, const PGresult *res)
{
    reset_t *rs = data;
    api_req_t *ar = rs->ar;
    if (err) {
        free(rs);
        respond_db_down(ar);
        return;
    }
    const char *tenant = json_string_value(json_object_get(ar->body, "tenant"));
    const char *email = json_string_value(json_object_get(ar->body, "email"));
    if (PQntuples(res) == 1) {
        snprintf(rs->tenant_id, sizeof rs->tenant_id, "%s", PQgetvalue(res, 0, 0));
        tenant = rs->tenant_id; /* Slug or id: one counter. */
        email = PQgetvalue(res, 0, 3);
        rs->known = !PQgetisnull(res, 0, 1) && strcmp(PQgetvalue(res, 0, 2), "active") == 0;
        snprintf(rs->user_id, sizeof rs->user_id, "%s", PQgetvalue(res, 0, 1));
    }
    account_key(RESET_ACCT_PREFIX, tenant, email, rs->acct_key);
    if (attempt_start(ar->app, rs->acct_key, ar->app->cfg->login_max_failures, NULL, 0,
                      on_reset_account_checked, rs) != 0) {
        free(rs);
        respond_redis_down(ar);
    }
}

static void on_reset_checked(void *data, redisReply *r)
{
    reset_t *rs = data;
    api_req_t *ar = rs->ar;
    if (locked_or_respond(ar, r) != 0) {
        free(rs);
        return;
    }
    const char *params[2] = {json_string_value(json_object_get(ar->body, "tenant")),
                             json_string_value(json_object_get(ar->body, "email"))};
    if (pg_pool_query(ar->app->pg, NULL,
                      "SELECT tenant_id, user_id, status, email_folded FROM login_user($1, $2)", 2,
                      params, on_reset_user, rs) != 0) {
        free(rs);
        respond_db_down(ar);
    }
}

void routes_auth_password_reset(api_req_t *ar)
{
    static const char *const allowed[] = {"tenant", "email", NULL};
    validate_error_t e;
    const char *tenant, *email;
    if (validate_known_keys(ar->body, allowed, &e) != 0 ||
        validate_string_member(ar->body, "tenant", true, AUTH_TENANT_REF_MAX, &tenant, &e) != 0 ||
        validate_string_member(ar->body, "email", true, VALIDATE_EMAIL_MAX, &email, &e) != 0) {
        respond_invalid(ar, &e);
        return;
    }
    reset_t *rs = mem_calloc(1, sizeof(*rs));
    rs->ar = ar;
    char bucket[NETADDR_TEXT_MAX];
    netaddr_limit_key(ar->http->client_addr, bucket);
    snprintf(rs->addr_key, sizeof rs->addr_key, RESET_ADDR_PREFIX "%s", bucket);
    if (attempt_start(ar->app, rs->addr_key, ar->app->cfg->login_max_failures_address, NULL, 0,
                      on_reset_checked, rs) != 0) {
        free(rs);
        respond_redis_down(ar);
    }
}

typedef struct {
    api_req_t *ar;
    const char *purpose; /* "reset" or "invite". */
    char *password;      /* Copy; wiped. */
    char *name;          /* The invited user's chosen name, or NULL. */
} redeem_t;

static void redeem_free(redeem_t *rd)
{
    OPENSSL_cleanse(rd->password, strlen(rd->password));
    free(rd->password);
    free(rd->name);
    free(rd);
}

static void on_token(void *data, int err, const PGresult *res)
{
    redeem_t *rd = data;
    api_req_t *ar = rd->ar;
    if (err) {
        redeem_free(rd);
        respond_db_down(ar);
        return;
    }
    /* tenant_id, token_id, user_id, purpose, expires_ms, used */
    if (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 3), rd->purpose) != 0 ||
        PQgetvalue(res, 0, 5)[0] == 't' ||
        strtoll(PQgetvalue(res, 0, 4), NULL, 10) <= timeutil_now_ms()) {
        redeem_free(rd);
        respond_error(ar, BILLOW_ETOKEN_INVALID, "token",
                      "This token is unknown, already used or expired; ask for a new one.");
        return;
    }
    act_as(ar, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 2));
    char token_id[IDS_MAX];
    snprintf(token_id, sizeof token_id, "%s", PQgetvalue(res, 0, 1));
    set_password(ar, ar->auth.user_id, rd->password, rd->purpose, token_id, rd->name);
    redeem_free(rd);
}

/* Redeems a reset or invitation token ("brt_"/"bit_") for a new password. */
static void redeem(api_req_t *ar, const char *purpose, const char *prefix)
{
    /* An invited user may also choose how their name reads. */
    static const char *const reset_keys[] = {"token", "password", NULL};
    static const char *const invite_keys[] = {"token", "password", "name", NULL};
    bool invite = strcmp(purpose, "invite") == 0;
    validate_error_t e;
    const char *token, *password, *name = NULL;
    if (validate_known_keys(ar->body, invite ? invite_keys : reset_keys, &e) != 0 ||
        validate_string_member(ar->body, "token", true, 128, &token, &e) != 0 ||
        validate_string_member(ar->body, "password", true, PASSWORD_MAX_BYTES * 4, &password, &e) !=
            0 ||
        (invite &&
         validate_string_member(ar->body, "name", false, VALIDATE_NAME_MAX, &name, &e) != 0) ||
        (name && validate_text("name", name, VALIDATE_NAME_MAX, &e) != 0) ||
        password_check_policy("password", password, &e) != 0) {
        respond_invalid(ar, &e);
        return;
    }
    if (strncmp(token, prefix, strlen(prefix)) != 0) {
        respond_error(ar, BILLOW_ETOKEN_INVALID, "token",
                      "This token is unknown, already used or expired; ask for a new one.");
        return;
    }
    redeem_t *rd = mem_calloc(1, sizeof(*rd));
    rd->ar = ar;
    rd->purpose = purpose;
    rd->password = mem_strdup(password);
    rd->name = mem_strdup(name);
    char hash[CRYPTO_SHA256_HEX];
    crypto_sha256_hex(token, strlen(token), hash);
    const char *params[1] = {hash};
    if (pg_pool_query(ar->app->pg, NULL,
                      "SELECT tenant_id, token_id, user_id, purpose, expires_ms, used"
                      " FROM user_token_lookup($1)",
                      1, params, on_token, rd) != 0) {
        redeem_free(rd);
        respond_db_down(ar);
    }
}

void routes_auth_password_reset_confirm(api_req_t *ar)
{
    redeem(ar, "reset", "brt_");
}

void routes_auth_invitation_accept(api_req_t *ar)
{
    redeem(ar, "invite", "bit_");
}

/* --- TOTP ---------------------------------------------------------------- */

static void totp_enroll_read(self_t *s)
{
    api_req_t *ar = s->ar;
    if (s->totp_enabled) {
        self_respond_error(s, BILLOW_ETOTP_ENABLED, NULL,
                           "Two-factor sign-in is already on; disable it first to enrol "
                           "another authenticator.");
        return;
    }
    char secret[TOTP_SECRET_B32_LEN + 1], uri[AUTH_TOTP_URI_MAX];
    totp_new_secret(secret);
    if (totp_uri("Billow", s->email, secret, uri, sizeof uri) != 0) {
        self_free(s);
        respond_error(ar, BILLOW_EINTERNAL, NULL, NULL);
        return;
    }
    char *sealed = seal_encrypt(&ar->app->seal_key, SEAL_CONTEXT_TOTP, secret, strlen(secret));
    json_t *payload = json_pack("{s:s,s:s}", "id", ar->auth.user_id, "secret_sealed", sealed);
    json_t *reveal = json_pack("{s:s,s:s,s:s}", "object", "totp_enrollment", "secret", secret,
                               "otpauth_uri", uri);
    free(sealed);
    OPENSSL_cleanse(secret, sizeof secret);
    self_submit(s, "user.totp_enroll", payload, reveal, true);
}

void routes_auth_totp_enroll(api_req_t *ar)
{
    if (json_object_size(ar->body) != 0) {
        respond_error(ar, BILLOW_EPARAM_UNKNOWN, json_object_iter_key(json_object_iter(ar->body)),
                      "POST /v1/auth/totp takes no parameters.");
        return;
    }
    self_read(self_new(ar), totp_enroll_read);
}

static void totp_confirm_read(self_t *s)
{
    api_req_t *ar = s->ar;
    if (s->totp_enabled) {
        self_respond_error(s, BILLOW_ETOTP_ENABLED, NULL, "Two-factor sign-in is already on.");
        return;
    }
    if (s->totp_sealed[0] == '\0') {
        self_respond_error(s, BILLOW_ETOTP_NOT_ENROLLED, NULL,
                           "Start with POST /v1/auth/totp to get a secret, then confirm a "
                           "code from it.");
        return;
    }
    char *secret = NULL;
    size_t len = 0;
    uint64_t step = 0;
    int rc = seal_decrypt(&ar->app->seal_key, SEAL_CONTEXT_TOTP, s->totp_sealed, &secret, &len);
    if (rc == 0)
        rc = totp_verify(secret, timeutil_now_ms() / 1000, s->code, s->last_step, &step);
    if (secret) {
        OPENSSL_cleanse(secret, len);
        free(secret);
    }
    if (rc != 0) {
        self_free(s);
        respond_error_custom(ar, 400, "invalid_request_error", "totp_invalid", "code",
                             "The code does not match the authenticator's current code.");
        return;
    }
    json_t *codes = json_array(), *hashes = json_array();
    for (int i = 0; i < TOTP_RECOVERY_CODES; i++) {
        char code[TOTP_RECOVERY_CODE_LEN + 1], hash[CRYPTO_SHA256_HEX];
        totp_recovery_code(code);
        if (totp_recovery_hash(ar->app->recovery_key, sizeof ar->app->recovery_key, code, hash) !=
            0)
            abort(); /* A code this module made always reads back. */
        json_array_append_new(codes, json_string(code));
        json_array_append_new(hashes, json_string(hash));
    }
    /* secret_sealed names the enrolment this code confirmed: the job turns
     * on that one or none. */
    json_t *payload =
        json_pack("{s:s,s:I,s:o,s:s}", "id", ar->auth.user_id, "step", (json_int_t)step,
                  "recovery_code_hashes", hashes, "secret_sealed", s->totp_sealed);
    json_t *reveal = json_pack("{s:o}", "recovery_codes", codes);
    self_submit(s, "user.totp_confirm", payload, reveal, false);
}

void routes_auth_totp_confirm(api_req_t *ar)
{
    static const char *const allowed[] = {"code", NULL};
    validate_error_t e;
    const char *code;
    if (validate_known_keys(ar->body, allowed, &e) != 0 ||
        validate_string_member(ar->body, "code", true, TOTP_DIGITS, &code, &e) != 0) {
        respond_invalid(ar, &e);
        return;
    }
    self_t *s = self_new(ar);
    s->code = mem_strdup(code);
    self_read(s, totp_confirm_read);
}

static void totp_disable_checked(self_t *s)
{
    json_t *payload = json_pack("{s:s}", "id", s->ar->auth.user_id);
    self_submit(s, "user.totp_disable", payload, NULL, false);
}

static void totp_disable_read(self_t *s)
{
    self_check_password(s, totp_disable_checked);
}

void routes_auth_totp_disable(api_req_t *ar)
{
    static const char *const allowed[] = {"password", NULL};
    validate_error_t e;
    const char *password;
    if (validate_known_keys(ar->body, allowed, &e) != 0 ||
        validate_string_member(ar->body, "password", true, PASSWORD_MAX_BYTES, &password, &e) !=
            0) {
        respond_invalid(ar, &e);
        return;
    }
    self_t *s = self_new(ar);
    s->password = mem_strdup(password);
    s->param = "password";
    self_read(s, totp_disable_read);
}

/* routes_tenants: the platform operator creates tenants.
 *
 * The front makes the tenant's first secret API key: it draws the secret,
 * puts only its SHA-256 into the tenant.create job, and shows the secret
 * once, in this response. An idempotent replay cannot show it again (it was
 * never stored), so it answers without it.
 *
 * The tenant's first staff owner comes with it: with a password (hashed
 * here, on the thread pool) the owner can sign in at once; without one an
 * invitation token is recorded for the notifier to email.
 */
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "apikeys.h"
#include "app.h"
#include "ids.h"
#include "mem.h"
#include "password.h"
#include "permissions.h"
#include "pwhash.h"
#include "routes.h"
#include "submit.h"
#include "tokens.h"
#include "validate.h"

/* A tenant.create waiting for its owner's password hash. */
typedef struct {
    api_req_t *ar;
    submit_t submit; /* Ready but for owner.password_hash. */
    char tenant_id[IDS_MAX];
} pending_t;

static void on_owner_hash(void *data, int err, const char *encoded)
{
    pending_t *p = data;
    api_req_t *ar = p->ar;
    submit_t s = p->submit;
    s.tenant_id = p->tenant_id;
    if (err) {
        json_decref(s.payload);
        json_decref(s.reveal);
        free(p);
        respond_error(ar, BILLOW_EINTERNAL, NULL, NULL);
        return;
    }
    json_object_set_new(json_object_get(s.payload, "owner"), "password_hash", json_string(encoded));
    submit_job_or_respond(ar, &s);
    free(p);
}

/* Checks the owner object; answers and returns -1 when it is not usable. */
static int check_owner(json_t *owner, validate_error_t *e)
{
    static const char *const allowed[] = {"email", "name", "password", NULL};
    if (owner == NULL)
        return validate_fail(e, BILLOW_EPARAM_MISSING, "owner",
                             "owner is required: the tenant's first staff owner {email, name, "
                             "password?}.");
    if (!json_is_object(owner))
        return validate_fail(e, BILLOW_EPARAM_INVALID, "owner", "owner must be an object.");
    if (validate_known_keys(owner, allowed, e) != 0)
        return -1;
    static const char *const fields[] = {"email", "name"};
    for (size_t i = 0; i < 2; i++) {
        json_t *v = json_object_get(owner, fields[i]);
        char param[32];
        snprintf(param, sizeof param, "owner[%s]", fields[i]);
        if (v == NULL)
            return validate_fail(e, BILLOW_EPARAM_MISSING, param, "%s is required.", param);
        if (!json_is_string(v))
            return validate_fail(e, BILLOW_EPARAM_INVALID, param, "%s must be a string.", param);
        int rc = i == 0 ? validate_email(param, json_string_value(v), e)
                        : validate_text(param, json_string_value(v), VALIDATE_NAME_MAX, e);
        if (rc)
            return rc;
    }
    json_t *pw = json_object_get(owner, "password");
    if (pw && !json_is_string(pw))
        return validate_fail(e, BILLOW_EPARAM_INVALID, "owner[password]",
                             "owner[password] must be a string.");
    if (pw && password_check_policy("owner[password]", json_string_value(pw), e) != 0)
        return -1;
    return 0;
}

void routes_tenants_create(api_req_t *ar)
{
    static const char *const allowed[] = {"name", "slug", "livemode", "owner", NULL};
    validate_error_t e;
    json_t *body = ar->body;
    json_t *name = json_object_get(body, "name");
    json_t *slug = json_object_get(body, "slug");
    json_t *live = json_object_get(body, "livemode");
    if (validate_known_keys(body, allowed, &e) != 0)
        goto fail;
    if (name == NULL || slug == NULL) {
        validate_fail(&e, BILLOW_EPARAM_MISSING, name ? "slug" : "name", "%s is required.",
                      name ? "slug" : "name");
        goto fail;
    }
    if (!json_is_string(name)) {
        validate_fail(&e, BILLOW_EPARAM_INVALID, "name", "name must be a string.");
        goto fail;
    }
    if (validate_text("name", json_string_value(name), VALIDATE_NAME_MAX, &e) != 0)
        goto fail;
    if (!json_is_string(slug)) {
        validate_fail(&e, BILLOW_EPARAM_INVALID, "slug", "slug must be a string.");
        goto fail;
    }
    if (validate_slug("slug", json_string_value(slug), &e) != 0)
        goto fail;
    if (live && !json_is_boolean(live)) {
        validate_fail(&e, BILLOW_EPARAM_INVALID, "livemode", "livemode must be true or false.");
        goto fail;
    }
    int livemode = live && json_is_true(live);
    json_t *owner = json_object_get(body, "owner");
    if (check_owner(owner, &e) != 0)
        goto fail;

    char tenant_id[IDS_MAX], key_id[IDS_MAX];
    ids_generate("ten", tenant_id);
    ids_generate("key", key_id);
    apikeys_drawn_t key;
    apikeys_draw(livemode, &key);

    char owner_id[IDS_MAX];
    ids_generate("usr", owner_id);
    json_t *password = json_object_get(owner, "password");
    json_t *payload = json_pack(
        "{s:s,s:O,s:O,s:b,s:{s:s,s:s,s:s},s:{s:s,s:O,s:O,s:n,s:o}}", "id", tenant_id, "name", name,
        "slug", slug, "livemode", livemode, "api_key", "id", key_id, "secret_hash", key.hash,
        "prefix", key.prefix, "owner", "id", owner_id, "email", json_object_get(owner, "email"),
        "name", json_object_get(owner, "name"), "password_hash", "invite",
        password ? json_null() : tokens_issue(ar->app, "bit", ar->app->cfg->invite_token_ttl_s));
    json_t *reveal =
        json_pack("{s:{s:s,s:s,s:s,s:s,s:s}}", "api_key", "id", key_id, "object", "api_key",
                  "secret", key.secret, "prefix", key.prefix, "role", "owner");
    OPENSSL_cleanse(key.secret, sizeof key.secret);
    submit_t s = {.type = "tenant.create",
                  .tenant_id = tenant_id,
                  .payload = payload,
                  .created_status = 201,
                  .reveal = reveal,
                  .reveal_at = "api_key"};
    if (password == NULL) {
        submit_job_or_respond(ar, &s);
        return;
    }
    pending_t *p = mem_calloc(1, sizeof(*p));
    p->ar = ar;
    p->submit = s;
    memcpy(p->tenant_id, tenant_id, sizeof tenant_id);
    int rc = pwhash_hash(ar->app, json_string_value(password), on_owner_hash, p);
    if (rc != 0) {
        json_decref(payload);
        json_decref(reveal);
        free(p);
        respond_error(ar, rc, NULL, "%s", PWHASH_BUSY);
    }
    return;
fail:
    respond_invalid(ar, &e);
}

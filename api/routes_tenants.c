/* routes_tenants: the platform operator creates tenants.
 *
 * The front makes the tenant's first secret API key: it draws the secret,
 * puts only its SHA-256 into the tenant.create job, and shows the secret
 * once, in this response. An idempotent replay cannot show it again (it was
 * never stored), so it answers without it.
 */
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "crypto.h"
#include "ids.h"
#include "routes.h"
#include "submit.h"
#include "validate.h"

/* Random characters of a generated secret key: 32 of 62 symbols, about 190
 * bits, beyond any guessing. */
#define TENANT_KEY_RANDOM_CHARS 32
/* Characters of the secret kept as its displayable prefix. */
#define TENANT_KEY_PREFIX_CHARS 12

void routes_tenants_create(api_req_t *ar)
{
    static const char *const allowed[] = {"name", "slug", "livemode", NULL};
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

    char tenant_id[IDS_MAX], key_id[IDS_MAX];
    ids_generate("ten", tenant_id);
    ids_generate("key", key_id);
    char random[TENANT_KEY_RANDOM_CHARS + 1];
    crypto_random_token(random, TENANT_KEY_RANDOM_CHARS);
    char secret[64];
    snprintf(secret, sizeof(secret), "sk_%s_%s", livemode ? "live" : "test", random);
    char hash[CRYPTO_SHA256_HEX];
    crypto_sha256_hex(secret, strlen(secret), hash);
    char prefix[TENANT_KEY_PREFIX_CHARS + 1];
    memcpy(prefix, secret, TENANT_KEY_PREFIX_CHARS);
    prefix[TENANT_KEY_PREFIX_CHARS] = '\0';

    json_t *payload = json_pack("{s:s,s:O,s:O,s:b,s:{s:s,s:s,s:s}}", "id", tenant_id, "name", name,
                                "slug", slug, "livemode", livemode, "api_key", "id", key_id,
                                "secret_hash", hash, "prefix", prefix);
    json_t *reveal = json_pack("{s:{s:s,s:s,s:s,s:s,s:s}}", "api_key", "id", key_id, "object",
                               "api_key", "secret", secret, "prefix", prefix, "role", "owner");
    submit_t s = {.type = "tenant.create",
                  .tenant_id = tenant_id,
                  .payload = payload,
                  .created_status = 201,
                  .reveal = reveal,
                  .reveal_at = "api_key"};
    submit_job_or_respond(ar, &s);
    return;
fail:
    respond_error(ar, e.code, e.param[0] ? e.param : NULL, "%s", e.message);
}

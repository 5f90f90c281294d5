/* permissions: the role × permission matrix (see permissions.h).
 *
 * Design: one row per permission with a bit per role, so the whole policy
 * reads as the table below and docs/permissions.md is printed from it. A
 * permission missing from the table is held by nobody; the router refuses
 * to start with a route whose permission is not here.
 */
#include "permissions.h"

#include <string.h>

#define OWNER   (1u << ROLE_OWNER)
#define ADMIN   (1u << ROLE_ADMIN)
#define BILLING (1u << ROLE_BILLING)
#define SUPPORT (1u << ROLE_SUPPORT)
#define ANALYST (1u << ROLE_ANALYST)
#define ALL     (OWNER | ADMIN | BILLING | SUPPORT | ANALYST)

static const char *const role_names[ROLE_COUNT_] = {
    [ROLE_OWNER] = "owner",     [ROLE_ADMIN] = "admin",     [ROLE_BILLING] = "billing",
    [ROLE_SUPPORT] = "support", [ROLE_ANALYST] = "analyst",
};

static const struct {
    const char *name;    /* "resource:action". */
    unsigned roles;      /* Bits of the roles holding it. */
    const char *meaning; /* What it allows, for the docs. */
} matrix[] = {
    {"customers:read", OWNER | ADMIN | BILLING | SUPPORT,
     "Read customers and their balance transactions."},
    {"customers:write", OWNER | ADMIN | BILLING, "Create and change customers."},
    {"catalog:read", ALL, "Read products and prices."},
    {"catalog:write", OWNER | ADMIN | BILLING, "Create, change and archive products and prices."},
    {"subscriptions:read", ALL, "Read subscriptions."},
    {"subscriptions:write", OWNER | ADMIN | BILLING,
     "Create, change, pause, resume and cancel subscriptions."},
    {"invoices:read", ALL, "Read invoices."},
    {"invoices:write", OWNER | ADMIN | BILLING,
     "Void invoices, mark them uncollectible or paid out of band."},
    {"test_clocks:read", ALL, "Read test clocks (test mode only)."},
    {"test_clocks:write", OWNER | ADMIN | BILLING,
     "Create and advance test clocks (test mode only)."},
    {"jobs:read", ALL, "Read the status of the tenant's jobs and list its dead jobs."},
    {"jobs:replay", OWNER | ADMIN, "Replay the tenant's dead jobs."},
    {"users:read", OWNER | ADMIN, "List and read staff users."},
    {"users:write", OWNER | ADMIN,
     "Invite and create staff users, change their role and status (owners only by owners)."},
    {"api_keys:read", OWNER | ADMIN, "List API keys (never their secrets)."},
    {"api_keys:write", OWNER | ADMIN, "Create, rotate and revoke API keys."},
    {"sessions:manage", OWNER | ADMIN, "List and end other staff users' sessions."},
    {"audit:read", OWNER | ADMIN, "Read the audit log."},
    {"settings:read", OWNER | ADMIN, "Read the tenant's security settings."},
    {"settings:write", OWNER, "Change the tenant's security settings (require TOTP)."},
    {"billing_settings:read", OWNER | ADMIN | BILLING,
     "Read the tenant's billing settings and dunning policy."},
    {"billing_settings:write", OWNER | ADMIN,
     "Change the tenant's billing settings (the invoice number prefix) and dunning policy."},
    {"payments:read", ALL, "Read payments, refunds and invoices' payment attempts."},
    {"payments:write", OWNER | ADMIN | BILLING,
     "Charge one-time payments, refund payments, collect payment methods."},
    {"stripe_settings:read", OWNER | ADMIN,
     "Read the tenant's Stripe settings (hints of its keys, never the keys)."},
    {"stripe_settings:write", OWNER | ADMIN,
     "Connect the tenant's Stripe account: its secret key and webhook signing secrets."},
    {"account:self", ALL,
     "Manage one's own sign-in: sessions, password, two-factor authentication (staff only)."},
};

#define MATRIX_ROWS (sizeof matrix / sizeof matrix[0])

int permissions_role_parse(const char *name)
{
    for (int r = 0; r < ROLE_COUNT_; r++)
        if (name && strcmp(name, role_names[r]) == 0)
            return r;
    return -1;
}

const char *permissions_role_name(role_t role)
{
    return role < ROLE_COUNT_ ? role_names[role] : "";
}

static int row_of(const char *permission)
{
    for (size_t i = 0; i < MATRIX_ROWS; i++)
        if (strcmp(matrix[i].name, permission) == 0)
            return (int)i;
    return -1;
}

bool permissions_allows(const char *role, const char *permission)
{
    int r = permissions_role_parse(role);
    int row = row_of(permission);
    return r >= 0 && row >= 0 && (matrix[row].roles & (1u << r)) != 0;
}

bool permissions_known(const char *permission)
{
    return row_of(permission) >= 0;
}

bool permissions_may_act_on(const char *actor, const char *target)
{
    int g = permissions_role_parse(actor);
    int r = permissions_role_parse(target);
    if (g < 0 || r < 0)
        return false;
    return r != ROLE_OWNER || g == ROLE_OWNER;
}

const char *permissions_role_list(void)
{
    return "owner, admin, billing, support, analyst";
}

void permissions_print_markdown(FILE *out)
{
    fprintf(out, "| Permission |");
    for (int r = 0; r < ROLE_COUNT_; r++)
        fprintf(out, " %s |", role_names[r]);
    fprintf(out, " Allows |\n|---|");
    for (int r = 0; r < ROLE_COUNT_; r++)
        fprintf(out, ":-:|");
    fprintf(out, "---|\n");
    for (size_t i = 0; i < MATRIX_ROWS; i++) {
        fprintf(out, "| `%s` |", matrix[i].name);
        for (int r = 0; r < ROLE_COUNT_; r++)
            fprintf(out, " %s |", (matrix[i].roles & (1u << r)) ? "✓" : " ");
        fprintf(out, " %s |\n", matrix[i].meaning);
    }
}

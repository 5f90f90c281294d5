/* permissions: the roles of staff and API keys, and what each may do.
 *
 * One table (permissions.c) maps every `resource:action` permission to the
 * roles that hold it (`invoice:adjust` style names). Routes
 * name the permission they need where they are registered (api/router.c);
 * `billow-api --permissions-markdown` renders the table into
 * docs/permissions.md, and the test command checks the two agree.
 */
#ifndef BILLOW_PERMISSIONS_H
#define BILLOW_PERMISSIONS_H

#include <stdbool.h>
#include <stdio.h>

#include "err.h"

/* Longest role name plus NUL ("analyst"). */
#define PERMISSIONS_ROLE_MAX 16

/* The roles, most powerful first. */
typedef enum {
    ROLE_OWNER,   /* Everything, including owners, security settings and keys. */
    ROLE_ADMIN,   /* Everything but owners and tenant security settings. */
    ROLE_BILLING, /* Plans, subscriptions, invoices, payments, coupons, customers. */
    ROLE_SUPPORT, /* Customers (read), tickets, notes; no money movement. */
    ROLE_ANALYST, /* Read-only metrics and reports. */
    ROLE_COUNT_
} role_t;

/* The role named name, or -1 when name is not a role. */
int permissions_role_parse(const char *name);
/* The name of role ("owner"). */
const char *permissions_role_name(role_t role);
/* True when role (a name) holds permission. Unknown roles hold nothing. */
bool permissions_allows(const char *role, const char *permission);
/* True when permission is in the table. */
bool permissions_known(const char *permission);
/* True when a caller of role actor may act on a user or key of role
 * target: give that role, change or revoke its holder, end its sessions.
 * Anyone who may manage users, keys or sessions reaches every role but
 * owner, which only an owner reaches. */
bool permissions_may_act_on(const char *actor, const char *target);
/* The roles, comma-separated, for messages ("owner, admin, billing, support, analyst"). */
const char *permissions_role_list(void);
/* Prints the matrix as Markdown (docs/permissions.md). */
void permissions_print_markdown(FILE *out);

#endif

/* permissions_test: the role table answers as docs/permissions.md says. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "permissions.h"

Test(permissions, roles_parse_and_print_back)
{
    static const char *const names[] = {"owner", "admin", "billing", "support", "analyst"};
    for (int r = 0; r < ROLE_COUNT_; r++) {
        cr_assert_eq(permissions_role_parse(names[r]), r);
        cr_assert_str_eq(permissions_role_name((role_t)r), names[r]);
    }
    cr_assert_eq(permissions_role_parse("Owner"), -1);
    cr_assert_eq(permissions_role_parse("root"), -1);
    cr_assert_eq(permissions_role_parse(""), -1);
    cr_assert_eq(permissions_role_parse(NULL), -1);
}

Test(permissions, money_and_reading_roles_hold_what_their_job_needs)
{
    cr_assert(permissions_allows("billing", "customers:write"));
    cr_assert(permissions_allows("support", "customers:read"));
    cr_assert_not(permissions_allows("support", "customers:write"));
    cr_assert_not(permissions_allows("analyst", "customers:read"));
    cr_assert(permissions_allows("analyst", "jobs:read"));
    cr_assert_not(permissions_allows("analyst", "jobs:replay"));
}

Test(permissions, only_owners_change_security_settings_and_owners_and_admins_manage_staff)
{
    cr_assert(permissions_allows("owner", "settings:write"));
    cr_assert_not(permissions_allows("admin", "settings:write"));
    static const char *const staff[] = {"users:write", "api_keys:write", "audit:read",
                                        "sessions:manage"};
    for (size_t i = 0; i < sizeof staff / sizeof staff[0]; i++) {
        cr_assert(permissions_allows("owner", staff[i]), "%s", staff[i]);
        cr_assert(permissions_allows("admin", staff[i]), "%s", staff[i]);
        cr_assert_not(permissions_allows("billing", staff[i]), "%s", staff[i]);
        cr_assert_not(permissions_allows("support", staff[i]), "%s", staff[i]);
        cr_assert_not(permissions_allows("analyst", staff[i]), "%s", staff[i]);
    }
}

Test(permissions, unknown_roles_and_permissions_hold_nothing)
{
    cr_assert_not(permissions_allows("root", "customers:read"));
    cr_assert_not(permissions_allows("", "account:self"));
    cr_assert_not(permissions_allows("owner", "customers:delete"));
    cr_assert_not(permissions_known("customers:delete"));
    cr_assert(permissions_known("account:self"));
    /* The platform's own permission is not a role's. */
    cr_assert_not(permissions_known("tenants:write"));
}

Test(permissions, only_an_owner_grants_owner)
{
    cr_assert(permissions_may_act_on("owner", "owner"));
    cr_assert(permissions_may_act_on("owner", "analyst"));
    cr_assert_not(permissions_may_act_on("admin", "owner"));
    cr_assert(permissions_may_act_on("admin", "admin"));
    cr_assert(permissions_may_act_on("admin", "billing"));
    cr_assert_not(permissions_may_act_on("admin", "superuser"));
    cr_assert_not(permissions_may_act_on("root", "analyst"));
}

Test(permissions, markdown_has_a_row_per_permission_and_a_column_per_role)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    permissions_print_markdown(out);
    fclose(out);
    cr_assert_not_null(
        strstr(text, "| Permission | owner | admin | billing | support | analyst |"));
    cr_assert_not_null(strstr(text, "| `settings:write` | ✓ |   |   |   |   |"));
    cr_assert_not_null(strstr(text, "| `account:self` | ✓ | ✓ | ✓ | ✓ | ✓ |"));
    free(text);
}

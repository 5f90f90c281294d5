/* err_test: every error code has a complete row in the table. */
#include <criterion/criterion.h>
#include <string.h>

#include "err.h"

Test(err, every_code_has_a_status_and_texts)
{
    int count = 0;
    for (int e = BILLOW_ERR_FIRST_ + 1; e < BILLOW_ERR_LAST_; e++) {
        cr_assert(err_http_status(e) >= 400 && err_http_status(e) <= 599, "code %d", e);
        cr_assert_gt(strlen(err_code(e)), 0, "code %d", e);
        cr_assert_gt(strlen(err_type(e)), 0, "code %d", e);
        cr_assert_gt(strlen(err_message(e)), 0, "code %d", e);
        count++;
    }
    cr_assert_gt(count, 0);
}

Test(err, codes_map_to_their_rows)
{
    cr_assert_str_eq(err_code(BILLOW_EPARAM_INVALID), "parameter_invalid");
    cr_assert_eq(err_http_status(BILLOW_EPARAM_INVALID), 400);
    cr_assert_str_eq(err_code(BILLOW_EINVALID_JSON), "invalid_json");
    cr_assert_eq(err_http_status(BILLOW_EUNAUTHENTICATED), 401);
    cr_assert_str_eq(err_type(BILLOW_EUNAUTHENTICATED), "authentication_error");
    cr_assert_eq(err_http_status(BILLOW_EIDEMPOTENCY_REUSED), 409);
    cr_assert_eq(err_http_status(BILLOW_EHEADERS_TOO_LARGE), 431);
    cr_assert_str_eq(err_code(BILLOW_EINTERNAL), "internal_error");
    cr_assert_eq(err_http_status(BILLOW_EINTERNAL), 500);
}

Test(err, codes_are_distinct)
{
    for (int a = BILLOW_ERR_FIRST_ + 1; a < BILLOW_ERR_LAST_; a++) {
        for (int b = a + 1; b < BILLOW_ERR_LAST_; b++)
            cr_assert_str_neq(err_code(a), err_code(b));
    }
}

Test(err, unknown_codes_are_internal_errors)
{
    const int unknown[] = {0, -1, -4095, BILLOW_ERR_FIRST_, BILLOW_ERR_LAST_, 12345};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        cr_assert_eq(err_http_status(unknown[i]), 500);
        cr_assert_str_eq(err_code(unknown[i]), "internal_error");
        cr_assert_str_eq(err_type(unknown[i]), "api_error");
        cr_assert_gt(strlen(err_message(unknown[i])), 0);
    }
}

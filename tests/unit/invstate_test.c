/* invstate_test: the invoice status machine's rules. */
#include <criterion/criterion.h>
#include <string.h>

#include "invstate.h"

static int move(invstate_t from, invstate_event_t ev, long long due, invstate_t *to)
{
    char why[160];
    return invstate_next(from, ev, due, to, why);
}

Test(invstate, finalizing_a_draft_opens_it_or_pays_it_at_zero)
{
    invstate_t to;
    cr_assert_eq(move(INVSTATE_DRAFT, INVSTATE_EV_FINALIZE, 100, &to), 0);
    cr_assert_eq(to, INVSTATE_OPEN);
    cr_assert_eq(move(INVSTATE_DRAFT, INVSTATE_EV_FINALIZE, 0, &to), 0);
    cr_assert_eq(to, INVSTATE_PAID);
    cr_assert_eq(move(INVSTATE_OPEN, INVSTATE_EV_FINALIZE, 100, &to), BILLOW_ECONFLICT);
}

Test(invstate, open_invoices_can_be_paid_voided_or_written_off)
{
    invstate_t to;
    cr_assert_eq(move(INVSTATE_OPEN, INVSTATE_EV_PAY, 0, &to), 0);
    cr_assert_eq(to, INVSTATE_PAID);
    cr_assert_eq(move(INVSTATE_OPEN, INVSTATE_EV_VOID, 0, &to), 0);
    cr_assert_eq(to, INVSTATE_VOID);
    cr_assert_eq(move(INVSTATE_OPEN, INVSTATE_EV_MARK_UNCOLLECTIBLE, 0, &to), 0);
    cr_assert_eq(to, INVSTATE_UNCOLLECTIBLE);
    cr_assert_eq(move(INVSTATE_UNCOLLECTIBLE, INVSTATE_EV_PAY, 0, &to), 0);
    cr_assert_eq(to, INVSTATE_PAID);
    cr_assert_eq(move(INVSTATE_UNCOLLECTIBLE, INVSTATE_EV_VOID, 0, &to), 0);
    cr_assert_eq(to, INVSTATE_VOID);
}

Test(invstate, paid_and_void_are_final_with_a_clear_sentence)
{
    char why[160];
    invstate_t to = INVSTATE_COUNT_;
    for (int ev = 0; ev < INVSTATE_EV_COUNT_; ev++) {
        cr_assert_eq(invstate_next(INVSTATE_PAID, (invstate_event_t)ev, 0, &to, why),
                     BILLOW_ECONFLICT);
        cr_assert(strstr(why, "An invoice that is paid cannot be") == why, "%s", why);
        cr_assert_eq(invstate_next(INVSTATE_VOID, (invstate_event_t)ev, 0, &to, why),
                     BILLOW_ECONFLICT);
    }
    cr_assert_eq(to, INVSTATE_COUNT_);
    cr_assert_eq(invstate_next(INVSTATE_DRAFT, INVSTATE_EV_VOID, 0, &to, why), BILLOW_ECONFLICT);
    cr_assert_str_eq(why, "An invoice that is draft cannot be voided.");
}

Test(invstate, names_round_trip)
{
    for (int s = 0; s < INVSTATE_COUNT_; s++)
        cr_assert_eq(invstate_parse(invstate_name((invstate_t)s)), s);
    cr_assert_eq(invstate_parse("deleted"), -1);
}

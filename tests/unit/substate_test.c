/* substate_test: the subscription status machine's rules. */
#include <criterion/criterion.h>
#include <string.h>

#include "substate.h"

static substate_t next_ok(substate_t from, substate_event_t ev)
{
    substate_t to = SUBSTATE_COUNT_;
    char why[160];
    cr_assert_eq(substate_next(from, ev, &to, why), 0, "%s on %s: %s", substate_event_name(ev),
                 substate_name(from), why);
    return to;
}

static void refused(substate_t from, substate_event_t ev, const char *phrase)
{
    substate_t to = SUBSTATE_COUNT_;
    char why[160] = "";
    cr_assert_eq(substate_next(from, ev, &to, why), BILLOW_ECONFLICT);
    cr_assert_eq(to, SUBSTATE_COUNT_, "*to must be untouched on refusal");
    cr_assert(strstr(why, phrase) != NULL, "\"%s\" should contain \"%s\"", why, phrase);
}

Test(substate, names_round_trip)
{
    for (int s = 0; s < SUBSTATE_COUNT_; s++)
        cr_assert_eq(substate_parse(substate_name((substate_t)s)), s);
    cr_assert_eq(substate_parse("incomplete_expired"), -1);
    cr_assert_eq(substate_parse(NULL), -1);
}

Test(substate, trial_end_makes_a_trialing_subscription_active)
{
    cr_assert_eq(next_ok(SUBSTATE_TRIALING, SUBSTATE_EV_TRIAL_END), SUBSTATE_ACTIVE);
    refused(SUBSTATE_ACTIVE, SUBSTATE_EV_TRIAL_END, "active");
}

Test(substate, paying_the_first_invoice_activates_an_incomplete_subscription)
{
    cr_assert_eq(next_ok(SUBSTATE_INCOMPLETE, SUBSTATE_EV_INVOICE_PAID), SUBSTATE_ACTIVE);
    cr_assert_eq(next_ok(SUBSTATE_PAST_DUE, SUBSTATE_EV_INVOICE_PAID), SUBSTATE_ACTIVE);
    cr_assert_eq(next_ok(SUBSTATE_UNPAID, SUBSTATE_EV_INVOICE_PAID), SUBSTATE_ACTIVE);
    cr_assert_eq(next_ok(SUBSTATE_ACTIVE, SUBSTATE_EV_INVOICE_PAID), SUBSTATE_ACTIVE);
    cr_assert_eq(next_ok(SUBSTATE_CANCELED, SUBSTATE_EV_INVOICE_PAID), SUBSTATE_CANCELED);
}

Test(substate, a_failed_payment_makes_active_past_due_and_exhaustion_unpaid)
{
    cr_assert_eq(next_ok(SUBSTATE_ACTIVE, SUBSTATE_EV_PAYMENT_FAILED), SUBSTATE_PAST_DUE);
    cr_assert_eq(next_ok(SUBSTATE_PAST_DUE, SUBSTATE_EV_RETRIES_EXHAUSTED), SUBSTATE_UNPAID);
    refused(SUBSTATE_ACTIVE, SUBSTATE_EV_RETRIES_EXHAUSTED, "active");
}

Test(substate, an_unpaid_subscription_stays_unpaid_while_its_renewals_fail)
{
    /* Its renewals are still charged; their failures and their own ends
     * leave it unpaid, and only paying (all of) them makes it active. */
    cr_assert_eq(next_ok(SUBSTATE_UNPAID, SUBSTATE_EV_PAYMENT_FAILED), SUBSTATE_UNPAID);
    cr_assert_eq(next_ok(SUBSTATE_UNPAID, SUBSTATE_EV_RETRIES_EXHAUSTED), SUBSTATE_UNPAID);
    cr_assert_eq(next_ok(SUBSTATE_PAST_DUE, SUBSTATE_EV_PAYMENT_FAILED), SUBSTATE_PAST_DUE);
}

Test(substate, a_paid_invoice_leaves_trialing_paused_and_canceled_as_they_are)
{
    /* A canceled subscription's final invoice is made after it became
     * canceled, and may close paid at once (a credit): it stays canceled. */
    cr_assert_eq(next_ok(SUBSTATE_CANCELED, SUBSTATE_EV_INVOICE_PAID), SUBSTATE_CANCELED);
    cr_assert_eq(next_ok(SUBSTATE_PAUSED, SUBSTATE_EV_INVOICE_PAID), SUBSTATE_PAUSED);
    cr_assert_eq(next_ok(SUBSTATE_TRIALING, SUBSTATE_EV_INVOICE_PAID), SUBSTATE_TRIALING);
}

Test(substate, pause_and_resume)
{
    cr_assert_eq(next_ok(SUBSTATE_ACTIVE, SUBSTATE_EV_PAUSE), SUBSTATE_PAUSED);
    cr_assert_eq(next_ok(SUBSTATE_TRIALING, SUBSTATE_EV_PAUSE), SUBSTATE_PAUSED);
    cr_assert_eq(next_ok(SUBSTATE_PAUSED, SUBSTATE_EV_RESUME), SUBSTATE_ACTIVE);
    refused(SUBSTATE_PAUSED, SUBSTATE_EV_PAUSE, "cannot be paused");
    refused(SUBSTATE_ACTIVE, SUBSTATE_EV_RESUME, "Only a paused subscription");
    refused(SUBSTATE_PAST_DUE, SUBSTATE_EV_RESUME_OWING, "Only a paused subscription");
    refused(SUBSTATE_INCOMPLETE, SUBSTATE_EV_PAUSE, "incomplete");
}

Test(substate, a_resume_while_an_invoice_is_open_is_past_due_not_active)
{
    /* An invoice from before the pause still owed: resuming does not make
     * it active, as paying the newest invoice alone does not. */
    cr_assert_eq(next_ok(SUBSTATE_PAUSED, SUBSTATE_EV_RESUME_OWING), SUBSTATE_PAST_DUE);
}

Test(substate, canceled_is_final)
{
    for (int ev = 0; ev < SUBSTATE_EV_COUNT_; ev++) {
        if (ev == SUBSTATE_EV_INVOICE_PAID || ev == SUBSTATE_EV_PAYMENT_FAILED)
            continue; /* Late payment news is recorded without reviving it. */
        refused(SUBSTATE_CANCELED, (substate_event_t)ev, "canceled");
    }
    for (int s = 0; s < SUBSTATE_COUNT_; s++)
        if (s != SUBSTATE_CANCELED)
            cr_assert_eq(next_ok((substate_t)s, SUBSTATE_EV_CANCEL), SUBSTATE_CANCELED);
}

Test(substate, updates_need_a_running_subscription)
{
    cr_assert_eq(next_ok(SUBSTATE_ACTIVE, SUBSTATE_EV_UPDATE), SUBSTATE_ACTIVE);
    cr_assert_eq(next_ok(SUBSTATE_TRIALING, SUBSTATE_EV_UPDATE), SUBSTATE_TRIALING);
    refused(SUBSTATE_PAUSED, SUBSTATE_EV_UPDATE, "resume it first");
    refused(SUBSTATE_INCOMPLETE, SUBSTATE_EV_UPDATE, "pay its first invoice");
}

Test(substate, an_incomplete_first_period_expires_into_canceled)
{
    cr_assert_eq(next_ok(SUBSTATE_INCOMPLETE, SUBSTATE_EV_INCOMPLETE_EXPIRED), SUBSTATE_CANCELED);
    refused(SUBSTATE_ACTIVE, SUBSTATE_EV_INCOMPLETE_EXPIRED, "active");
}

Test(substate, only_paused_and_canceled_do_not_renew)
{
    for (int s = 0; s < SUBSTATE_COUNT_; s++)
        cr_assert_eq(substate_renews((substate_t)s) != 0,
                     s != SUBSTATE_PAUSED && s != SUBSTATE_CANCELED, "%s",
                     substate_name((substate_t)s));
}

/* substate: a subscription's status and every legal move between them.
 *
 * All of a subscription's status changes go through substate_next(), so
 * the rules live here and nowhere else: a handler says what happened (an
 * event) and learns the new status, or that the event is not allowed in
 * the current status, with a sentence for the client.
 *
 *   incomplete ──first invoice paid──▶ active
 *   incomplete ──period ends unpaid──▶ canceled
 *   trialing ──trial ends──▶ active
 *   active ──payment fails──▶ past_due ──invoice paid──▶ active
 *   past_due ──retries exhausted──▶ unpaid (or canceled) ──invoice paid──▶ active
 *   trialing / active / past_due ──pause──▶ paused ──resume──▶ active
 *   paused ──resume while an invoice of it is open──▶ past_due
 *   any but canceled ──cancel──▶ canceled (final)
 *
 * "Payment fails" and "retries exhausted" are about any open invoice of
 * the subscription, not only its latest; "invoice paid" moves it only when
 * that leaves none of its invoices open (workers/billing.c decides that,
 * this table which moves are allowed). A void or a write-off of the last
 * open invoice moves nothing: only a payment makes it active again.
 */
#ifndef BILLOW_SUBSTATE_H
#define BILLOW_SUBSTATE_H

#include <stddef.h>

#include "err.h"

typedef enum {
    SUBSTATE_INCOMPLETE, /* Created; its first invoice is not paid yet. */
    SUBSTATE_TRIALING,   /* In a free trial; billing starts when it ends. */
    SUBSTATE_ACTIVE,     /* Billed every period; its invoices are paid or being charged. */
    SUBSTATE_PAST_DUE,   /* One of its invoices is open after a failed charge. */
    SUBSTATE_PAUSED,     /* Billing stopped; no period runs until it is resumed. */
    SUBSTATE_CANCELED,   /* Ended for good. */
    SUBSTATE_UNPAID,     /* An invoice's retries ran out; it stays until all are paid. */
    SUBSTATE_COUNT_
} substate_t;

typedef enum {
    SUBSTATE_EV_INVOICE_PAID,       /* An invoice was paid (or closed at zero), none is open. */
    SUBSTATE_EV_TRIAL_END,          /* The trial's end was reached. */
    SUBSTATE_EV_PAYMENT_FAILED,     /* A charge of one of its open invoices failed. */
    SUBSTATE_EV_RETRIES_EXHAUSTED,  /* Dunning gave up on one and leaves it unpaid. */
    SUBSTATE_EV_INCOMPLETE_EXPIRED, /* The first period ended with its invoice unpaid. */
    SUBSTATE_EV_PAUSE,              /* Staff paused it. */
    SUBSTATE_EV_RESUME,             /* Staff resumed it, and none of its invoices is open. */
    SUBSTATE_EV_RESUME_OWING,       /* Staff resumed it while one of its invoices is open. */
    SUBSTATE_EV_CANCEL, /* Staff canceled it, or its period ended with a cancel pending. */
    SUBSTATE_EV_UPDATE, /* Staff changed its items, anchor or pending cancel. */
    SUBSTATE_EV_COUNT_
} substate_event_t;

/* The API name of s ("past_due"). */
const char *substate_name(substate_t s);

/* The status named name, or -1. */
int substate_parse(const char *name);

/* The API name of ev ("pause"), for messages and logs. */
const char *substate_event_name(substate_event_t ev);

/* *to = the status after ev happens in status `from` (an event that
 * changes nothing, such as a payment of an active subscription's invoice,
 * leaves *to = from). Returns 0, or BILLOW_ECONFLICT when ev is not allowed
 * in `from`; then why[160] says so in a sentence for the client ("A
 * canceled subscription cannot be resumed."). */
int substate_next(substate_t from, substate_event_t ev, substate_t *to,
                  char why[160]) BILLOW_MUSTCHECK;

/* True when a subscription in s has a running period that renews (it is
 * neither paused nor ended). */
int substate_renews(substate_t s);

#endif

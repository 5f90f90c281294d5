/* substate: a subscription's status machine (see substate.h).
 *
 * Design: one table, event × status → status, with NONE for a move that is
 * not allowed and SAME for an event that leaves the status as it is. The
 * table is the whole policy; substate_next() only reads it.
 */
#include "substate.h"

#include <stdio.h>
#include <string.h>

static const char *const names[SUBSTATE_COUNT_] = {
    [SUBSTATE_INCOMPLETE] = "incomplete", [SUBSTATE_TRIALING] = "trialing",
    [SUBSTATE_ACTIVE] = "active",         [SUBSTATE_PAST_DUE] = "past_due",
    [SUBSTATE_PAUSED] = "paused",         [SUBSTATE_CANCELED] = "canceled",
    [SUBSTATE_UNPAID] = "unpaid",
};

static const char *const event_names[SUBSTATE_EV_COUNT_] = {
    [SUBSTATE_EV_INVOICE_PAID] = "invoice_paid",
    [SUBSTATE_EV_TRIAL_END] = "trial_end",
    [SUBSTATE_EV_PAYMENT_FAILED] = "payment_failed",
    [SUBSTATE_EV_RETRIES_EXHAUSTED] = "retries_exhausted",
    [SUBSTATE_EV_INCOMPLETE_EXPIRED] = "incomplete_expired",
    [SUBSTATE_EV_PAUSE] = "pause",
    [SUBSTATE_EV_RESUME] = "resume",
    [SUBSTATE_EV_RESUME_OWING] = "resume_owing",
    [SUBSTATE_EV_CANCEL] = "cancel",
    [SUBSTATE_EV_UPDATE] = "update",
};

enum { NONE = -1, SAME = -2 };

#define INC SUBSTATE_INCOMPLETE
#define TRI SUBSTATE_TRIALING
#define ACT SUBSTATE_ACTIVE
#define PDU SUBSTATE_PAST_DUE
#define PAU SUBSTATE_PAUSED
#define CAN SUBSTATE_CANCELED
#define UNP SUBSTATE_UNPAID

/* moves[event][from]: the status after event, NONE or SAME. Columns in
 * substate_t order: incomplete, trialing, active, past_due, paused,
 * canceled, unpaid. */
static const int moves[SUBSTATE_EV_COUNT_][SUBSTATE_COUNT_] = {
    [SUBSTATE_EV_INVOICE_PAID] = {ACT, SAME, SAME, ACT, SAME, SAME, ACT},
    [SUBSTATE_EV_TRIAL_END] = {NONE, ACT, NONE, NONE, NONE, NONE, NONE},
    [SUBSTATE_EV_PAYMENT_FAILED] = {SAME, NONE, PDU, SAME, NONE, SAME, SAME},
    [SUBSTATE_EV_RETRIES_EXHAUSTED] = {NONE, NONE, NONE, UNP, NONE, NONE, SAME},
    [SUBSTATE_EV_INCOMPLETE_EXPIRED] = {CAN, NONE, NONE, NONE, NONE, NONE, NONE},
    [SUBSTATE_EV_PAUSE] = {NONE, PAU, PAU, PAU, NONE, NONE, NONE},
    [SUBSTATE_EV_RESUME] = {NONE, NONE, NONE, NONE, ACT, NONE, NONE},
    [SUBSTATE_EV_RESUME_OWING] = {NONE, NONE, NONE, NONE, PDU, NONE, NONE},
    [SUBSTATE_EV_CANCEL] = {CAN, CAN, CAN, CAN, CAN, NONE, CAN},
    [SUBSTATE_EV_UPDATE] = {NONE, SAME, SAME, SAME, NONE, NONE, SAME},
};

const char *substate_name(substate_t s)
{
    return s < SUBSTATE_COUNT_ ? names[s] : "";
}

int substate_parse(const char *name)
{
    for (int s = 0; s < SUBSTATE_COUNT_; s++)
        if (name && strcmp(name, names[s]) == 0)
            return s;
    return -1;
}

const char *substate_event_name(substate_event_t ev)
{
    return ev < SUBSTATE_EV_COUNT_ ? event_names[ev] : "";
}

/* The sentence for a refused move; specific where a client is likely to
 * meet it. */
static void explain(substate_t from, substate_event_t ev, char why[160])
{
    if (from == SUBSTATE_CANCELED) {
        snprintf(why, 160, "This subscription is canceled; it cannot be changed any more.");
        return;
    }
    switch (ev) {
    case SUBSTATE_EV_RESUME:
    case SUBSTATE_EV_RESUME_OWING:
        snprintf(why, 160, "Only a paused subscription can be resumed; this one is %s.",
                 names[from]);
        return;
    case SUBSTATE_EV_PAUSE:
        snprintf(why, 160, "A subscription that is %s cannot be paused.", names[from]);
        return;
    case SUBSTATE_EV_UPDATE:
        snprintf(why, 160, "A subscription that is %s cannot be changed; %s.", names[from],
                 from == SUBSTATE_PAUSED ? "resume it first"
                                         : "pay its first invoice or cancel it");
        return;
    default:
        snprintf(why, 160, "A subscription that is %s cannot take the event %s.", names[from],
                 event_names[ev]);
    }
}

int substate_next(substate_t from, substate_event_t ev, substate_t *to, char why[160])
{
    if (from >= SUBSTATE_COUNT_ || ev >= SUBSTATE_EV_COUNT_) {
        snprintf(why, 160, "Unknown status or event.");
        return BILLOW_ECONFLICT;
    }
    int next = moves[ev][from];
    if (next == NONE) {
        explain(from, ev, why);
        return BILLOW_ECONFLICT;
    }
    *to = next == SAME ? from : (substate_t)next;
    return 0;
}

int substate_renews(substate_t s)
{
    return s != SUBSTATE_PAUSED && s != SUBSTATE_CANCELED;
}

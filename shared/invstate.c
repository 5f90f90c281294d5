/* invstate: an invoice's status machine (see invstate.h). */
#include "invstate.h"

#include <stdio.h>
#include <string.h>

static const char *const names[INVSTATE_COUNT_] = {
    [INVSTATE_DRAFT] = "draft",
    [INVSTATE_OPEN] = "open",
    [INVSTATE_PAID] = "paid",
    [INVSTATE_VOID] = "void",
    [INVSTATE_UNCOLLECTIBLE] = "uncollectible",
};

static const char *const verbs[INVSTATE_EV_COUNT_] = {
    [INVSTATE_EV_FINALIZE] = "finalized",
    [INVSTATE_EV_PAY] = "paid",
    [INVSTATE_EV_VOID] = "voided",
    [INVSTATE_EV_MARK_UNCOLLECTIBLE] = "marked uncollectible",
};

const char *invstate_name(invstate_t s)
{
    return s < INVSTATE_COUNT_ ? names[s] : "";
}

int invstate_parse(const char *name)
{
    for (int s = 0; s < INVSTATE_COUNT_; s++)
        if (name && strcmp(name, names[s]) == 0)
            return s;
    return -1;
}

int invstate_next(invstate_t from, invstate_event_t ev, long long amount_due, invstate_t *to,
                  char why[160])
{
    int next = -1;
    switch (ev) {
    case INVSTATE_EV_FINALIZE:
        if (from == INVSTATE_DRAFT)
            next = amount_due > 0 ? INVSTATE_OPEN : INVSTATE_PAID;
        break;
    case INVSTATE_EV_PAY:
        if (from == INVSTATE_OPEN || from == INVSTATE_UNCOLLECTIBLE)
            next = INVSTATE_PAID;
        break;
    case INVSTATE_EV_VOID:
        if (from == INVSTATE_OPEN || from == INVSTATE_UNCOLLECTIBLE)
            next = INVSTATE_VOID;
        break;
    case INVSTATE_EV_MARK_UNCOLLECTIBLE:
        if (from == INVSTATE_OPEN)
            next = INVSTATE_UNCOLLECTIBLE;
        break;
    default:
        break;
    }
    if (next < 0 || from >= INVSTATE_COUNT_) {
        snprintf(why, 160, "An invoice that is %s cannot be %s.", invstate_name(from),
                 ev < INVSTATE_EV_COUNT_ ? verbs[ev] : "changed");
        return BILLOW_ECONFLICT;
    }
    *to = (invstate_t)next;
    return 0;
}

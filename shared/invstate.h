/* invstate: an invoice's status and every legal move between them.
 *
 *   draft ──finalize──▶ open ──pay──▶ paid
 *   draft ──finalize at zero──▶ paid
 *   open ──void──▶ void           open ──mark_uncollectible──▶ uncollectible
 *   uncollectible ──pay──▶ paid   uncollectible ──void──▶ void
 *
 * paid and void are final. As with substate, a handler names the event and
 * this module answers with the new status or a sentence saying why not.
 */
#ifndef BILLOW_INVSTATE_H
#define BILLOW_INVSTATE_H

#include "err.h"

typedef enum {
    INVSTATE_DRAFT,         /* Being built; lines may still change; no number yet. */
    INVSTATE_OPEN,          /* Finalized and numbered; amount_due is owed. */
    INVSTATE_PAID,          /* Settled (charged, paid out of band, or zero). Final. */
    INVSTATE_VOID,          /* Cancelled by staff; nothing is owed. Final. */
    INVSTATE_UNCOLLECTIBLE, /* Written off as unlikely to be paid; can still be paid. */
    INVSTATE_COUNT_
} invstate_t;

typedef enum {
    INVSTATE_EV_FINALIZE,           /* Lines are complete and a number is given. */
    INVSTATE_EV_PAY,                /* The amount due was paid. */
    INVSTATE_EV_VOID,               /* Staff voided it. */
    INVSTATE_EV_MARK_UNCOLLECTIBLE, /* Staff wrote it off. */
    INVSTATE_EV_COUNT_
} invstate_event_t;

/* The API name of s ("uncollectible"). */
const char *invstate_name(invstate_t s);

/* The status named name, or -1. */
int invstate_parse(const char *name);

/* *to = the status after ev in `from`. A finalized invoice with nothing due
 * is paid at once: pass amount_due so FINALIZE can say which. Returns 0, or
 * BILLOW_ECONFLICT with a sentence in why[160]. */
int invstate_next(invstate_t from, invstate_event_t ev, long long amount_due, invstate_t *to,
                  char why[160]) BILLOW_MUSTCHECK;

#endif

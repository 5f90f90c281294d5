/* deadscan: where a read of one dead set resumes (see deadscan.h). */
#include "deadscan.h"

#include <stdio.h>
#include <string.h>

bool deadscan_comes_after(int64_t ms, const char *id, const deadscan_pos_t *p)
{
    return ms < p->ms || (ms == p->ms && strcmp(id, p->id) < 0);
}

int deadscan_compare(const deadscan_pos_t *a, const deadscan_pos_t *b)
{
    if (a->ms != b->ms)
        return a->ms < b->ms ? 1 : -1;
    return strcmp(b->id, a->id);
}

bool deadscan_next(deadscan_t *d, long slack, int64_t *hi_ms, long *offset)
{
    if (!d->has_hi)
        return false;
    /* The read starts `slack` entries early; at_hi becomes that position,
     * so the entries it returns count on from there, not from the end of
     * the previous read. */
    d->at_hi = d->at_hi > slack ? d->at_hi - slack : 0;
    *hi_ms = d->hi_ms;
    *offset = d->at_hi;
    return true;
}

bool deadscan_take(deadscan_t *d, const deadscan_pos_t *cursor, int64_t ms, const char *id)
{
    if (d->has_hi && ms == d->hi_ms) {
        d->at_hi++;
    } else {
        d->has_hi = true;
        d->hi_ms = ms;
        d->at_hi = 1;
    }
    const deadscan_pos_t *last = d->positioned ? &d->pos : cursor;
    if ((last && !deadscan_comes_after(ms, id, last)) || strlen(id) >= IDS_MAX)
        return false;
    d->positioned = true;
    d->pos.ms = ms;
    snprintf(d->pos.id, sizeof d->pos.id, "%s", id);
    return true;
}

/* deadscan: where a read of one dead set resumes (routes_jobs.c).
 *
 * A dead set (dead:<kind>, score = time of death in ms) is read newest
 * first, a batch at a time, with ZREVRANGEBYSCORE <hi> <lo> LIMIT <offset>
 * <count>. Many deaths share a millisecond (a worker records a batch's
 * deaths at one time), so a read resumes in the millisecond of the last
 * entry returned, past the entries of it already returned less `slack`;
 * and an entry is taken only when it comes after the last one taken (or
 * the cursor). Up to `slack` entries of that millisecond replayed (removed)
 * or added between two reads then neither hide an entry nor show one twice.
 *
 * The order: newest death first; in one millisecond by id, highest first
 * (as Redis orders equal scores, backwards). Pure: no Redis, no clock.
 */
#ifndef BILLOW_DEADSCAN_H
#define BILLOW_DEADSCAN_H

#include <stdbool.h>
#include <stdint.h>

#include "ids.h"

/* A place in the order of deaths. */
typedef struct {
    int64_t ms;       /* Death. */
    char id[IDS_MAX]; /* Job id. */
} deadscan_pos_t;

/* Where one set's reading stands. Zero it to start. */
typedef struct {
    bool positioned;    /* pos holds the last entry taken. */
    deadscan_pos_t pos; /* The last entry taken. */
    bool has_hi;        /* A read has returned entries: the next starts at hi_ms… */
    int64_t hi_ms;      /* …(inclusive), the millisecond of the last entry returned… */
    long at_hi;         /* …this many of its entries in (the position, not a count of returns). */
} deadscan_t;

/* True when (ms, id) comes after p in the order: it died earlier, or in the
 * same millisecond with a lower id. */
bool deadscan_comes_after(int64_t ms, const char *id, const deadscan_pos_t *p);

/* For qsort: a before b in the order (negative), after (positive), or the
 * same place (0). */
int deadscan_compare(const deadscan_pos_t *a, const deadscan_pos_t *b);

/* The next read after an earlier one: true with *hi_ms (inclusive) and
 * *offset set; false before any read returned entries (the caller starts
 * from the cursor's millisecond or its upper bound, offset 0). slack must
 * be smaller than the reads' count, or a read may take nothing new. */
bool deadscan_next(deadscan_t *d, long slack, int64_t *hi_ms, long *offset);

/* One entry of a read's answer, in the order returned. True when it is new
 * (after the last entry taken, else after cursor when not NULL), and then it
 * is the last entry taken. */
bool deadscan_take(deadscan_t *d, const deadscan_pos_t *cursor, int64_t ms, const char *id);

#endif

/* deadscan_test: reading a dead set a batch at a time, through many deaths
 * in one millisecond, while other requests replay (remove) and workers add
 * entries between the reads, as ZREVRANGEBYSCORE ... LIMIT would answer. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "deadscan.h"
#include "prop.h"

#define MAX_ENTRIES 128

/* A sorted set of (ms, id): kept in the order of deaths. */
typedef struct {
    deadscan_pos_t e[MAX_ENTRIES];
    int n;
    int taken[MAX_ENTRIES]; /* By entry: times taken (indexed by serial). */
    int serial[MAX_ENTRIES];
    int next_serial;
    int gone[MAX_ENTRIES * 2]; /* By serial: removed at some point. */
} zset_t;

/* Redis's order of a sorted set read backwards: score (ms) descending,
 * equal scores by member descending (byte order). The specification the
 * module is held to, written here on its own. */
static int order(const deadscan_pos_t *x, const deadscan_pos_t *y)
{
    if (x->ms != y->ms)
        return x->ms < y->ms ? 1 : -1;
    return -strcmp(x->id, y->id);
}

static void zset_add(zset_t *z, int64_t ms, long idnum)
{
    cr_assert_lt(z->n, MAX_ENTRIES);
    deadscan_pos_t p = {.ms = ms};
    snprintf(p.id, sizeof p.id, "job_%016ld", idnum);
    /* Insert in order, carrying the serials along. */
    int at = 0;
    while (at < z->n && order(&z->e[at], &p) < 0)
        at++;
    memmove(&z->e[at + 1], &z->e[at], (size_t)(z->n - at) * sizeof p);
    memmove(&z->serial[at + 1], &z->serial[at], (size_t)(z->n - at) * sizeof(int));
    z->e[at] = p;
    z->serial[at] = z->next_serial++;
    z->n++;
}

static void zset_remove(zset_t *z, int at)
{
    z->gone[z->serial[at]] = 1;
    memmove(&z->e[at], &z->e[at + 1], (size_t)(z->n - at - 1) * sizeof(deadscan_pos_t));
    memmove(&z->serial[at], &z->serial[at + 1], (size_t)(z->n - at - 1) * sizeof(int));
    z->n--;
}

/* ZREVRANGEBYSCORE key hi -inf LIMIT offset count (hi inclusive; no hi:
 * +inf): indexes into z->e written to out, count returned. */
static int zset_range(const zset_t *z, bool has_hi, int64_t hi, long offset, int count, int *out)
{
    int n = 0;
    long skipped = 0;
    for (int i = 0; i < z->n && n < count; i++) {
        if (has_hi && z->e[i].ms > hi)
            continue;
        if (skipped++ < offset)
            continue;
        out[n++] = i;
    }
    return n;
}

/* Reads z to its end in batches of `batch` with `slack`, after `cursor`
 * when not NULL, letting mutate() change z between reads. Counts what
 * each serial was taken, and checks the order of what is taken. */
typedef void (*mutate_fn)(zset_t *z, prop_t *p, long slack);

static void read_all(zset_t *z, const deadscan_pos_t *cursor, int batch, long slack,
                     mutate_fn mutate, prop_t *p, int by_serial[MAX_ENTRIES * 2])
{
    deadscan_t d;
    memset(&d, 0, sizeof d);
    deadscan_pos_t last = {0};
    bool any = false;
    for (int reads = 0; reads < 10000; reads++) {
        int64_t hi = 0;
        long offset = 0;
        bool has_hi = deadscan_next(&d, slack, &hi, &offset);
        if (!has_hi && cursor) {
            has_hi = true;
            hi = cursor->ms;
        }
        int got[MAX_ENTRIES];
        int n = zset_range(z, has_hi, hi, offset, batch, got);
        for (int k = 0; k < n; k++) {
            const deadscan_pos_t *e = &z->e[got[k]];
            if (!deadscan_take(&d, cursor, e->ms, e->id))
                continue;
            if (any)
                cr_assert(deadscan_comes_after(e->ms, e->id, &last), "taken out of order: %s",
                          e->id);
            last = *e;
            any = true;
            by_serial[z->serial[got[k]]]++;
        }
        if (n < batch)
            return;
        if (mutate)
            mutate(z, p, slack);
    }
    cr_assert_fail("the reads never came to an end");
}

/* Fills z with entries over a few milliseconds: long runs of ties. */
static void fill(zset_t *z, prop_t *p, int n)
{
    memset(z, 0, sizeof *z);
    for (int i = 0; i < n; i++)
        zset_add(z, 1000 + prop_range(p, 0, 3), (long)prop_range(p, 0, 1000000) * 1000 + i);
}

/* Between two reads: up to `slack` entries replayed, anywhere, and a few
 * deaths added, some in the milliseconds being read. */
static void churn(zset_t *z, prop_t *p, long slack)
{
    long removals = prop_range(p, 0, slack);
    for (long r = 0; r < removals && z->n > 0; r++)
        zset_remove(z, (int)prop_range(p, 0, z->n - 1));
    long adds = prop_range(p, 0, 2);
    for (long a = 0; a < adds && z->n < MAX_ENTRIES && z->next_serial < MAX_ENTRIES * 2; a++)
        zset_add(z, 1000 + prop_range(p, 0, 3), (long)prop_range(p, 0, 1000000) * 1000 + 999);
}

Test(deadscan, a_still_set_is_read_once_in_order_through_ties)
{
    prop_t p;
    cr_assert_eq(prop_begin(&p, "deadscan/a_still_set_is_read_once_in_order_through_ties"), 0);
    for (long c = 0; c < p.cases; c++) {
        zset_t z;
        fill(&z, &p, (int)prop_range(&p, 0, 60));
        long slack = prop_range(&p, 0, 3);
        int batch = (int)(slack + prop_range(&p, 1, 8));
        int by_serial[MAX_ENTRIES * 2] = {0};
        read_all(&z, NULL, batch, slack, NULL, &p, by_serial);
        for (int i = 0; i < z.n; i++)
            cr_assert_eq(by_serial[z.serial[i]], 1, "seed %lu case %ld: %s taken %d times",
                         (unsigned long)p.seed, c, z.e[i].id, by_serial[z.serial[i]]);
    }
}

Test(deadscan, replays_and_deaths_between_reads_hide_nothing_and_show_nothing_twice)
{
    prop_t p;
    cr_assert_eq(
        prop_begin(&p,
                   "deadscan/replays_and_deaths_between_reads_hide_nothing_and_show_nothing_twice"),
        0);
    for (long c = 0; c < p.cases; c++) {
        zset_t z;
        fill(&z, &p, (int)prop_range(&p, 0, 60));
        /* Resume after a cursor sometimes: an entry of the set, or a place
         * between entries. */
        deadscan_pos_t cursor, *cur = NULL;
        if (z.n > 0 && prop_one_in(&p, 2)) {
            cursor = z.e[prop_range(&p, 0, z.n - 1)];
            cur = &cursor;
        }
        long slack = prop_range(&p, 1, 3);
        int batch = (int)(slack + prop_range(&p, 1, 8));
        int start_n = z.n, start_serial[MAX_ENTRIES];
        deadscan_pos_t start[MAX_ENTRIES];
        memcpy(start, z.e, sizeof start);
        memcpy(start_serial, z.serial, sizeof start_serial);
        int by_serial[MAX_ENTRIES * 2] = {0};
        read_all(&z, cur, batch, slack, churn, &p, by_serial);
        for (int s = 0; s < z.next_serial; s++)
            cr_assert_leq(by_serial[s], 1, "seed %lu case %ld: an entry taken twice",
                          (unsigned long)p.seed, c);
        /* Every entry there from start to end, after the cursor, once. */
        for (int i = 0; i < start_n; i++) {
            if (z.gone[start_serial[i]] ||
                (cur && !deadscan_comes_after(start[i].ms, start[i].id, cur)))
                continue;
            cr_assert_eq(by_serial[start_serial[i]], 1,
                         "seed %lu case %ld: %s (ms %lld) taken %d times", (unsigned long)p.seed, c,
                         start[i].id, (long long)start[i].ms, by_serial[start_serial[i]]);
        }
    }
}

/* Three reads inside one millisecond, an entry already read replayed
 * before the third: the third still starts early enough. */
static void remove_first_before_third(zset_t *z, prop_t *p, long slack)
{
    (void)p;
    (void)slack;
    static int reads;
    if (++reads == 2)
        zset_remove(z, 0);
}

Test(deadscan, a_replay_before_a_third_read_in_one_millisecond_hides_nothing)
{
    zset_t z;
    memset(&z, 0, sizeof z);
    for (long i = 0; i < 30; i++)
        zset_add(&z, 1000, i);
    int start_serial[MAX_ENTRIES];
    memcpy(start_serial, z.serial, sizeof start_serial);
    int by_serial[MAX_ENTRIES * 2] = {0};
    read_all(&z, NULL, 10, 3, remove_first_before_third, NULL, by_serial);
    for (int i = 0; i < 30; i++)
        if (!z.gone[start_serial[i]])
            cr_assert_eq(by_serial[start_serial[i]], 1, "entry %d taken %d times", i,
                         by_serial[start_serial[i]]);
}

Test(deadscan, compare_and_comes_after_follow_redis_order)
{
    prop_t p;
    cr_assert_eq(prop_begin(&p, "deadscan/compare_and_comes_after_follow_redis_order"), 0);
    for (long c = 0; c < p.cases; c++) {
        deadscan_pos_t a = {.ms = prop_range(&p, 0, 3)}, b = {.ms = prop_range(&p, 0, 3)};
        snprintf(a.id, sizeof a.id, "job_%016ld", (long)prop_range(&p, 0, 5));
        snprintf(b.id, sizeof b.id, "job_%016ld", (long)prop_range(&p, 0, 5));
        int want = order(&a, &b);
        int got = deadscan_compare(&a, &b);
        cr_assert_eq(got < 0, want < 0, "%lld %s vs %lld %s", (long long)a.ms, a.id,
                     (long long)b.ms, b.id);
        cr_assert_eq(got > 0, want > 0);
        cr_assert_eq(deadscan_comes_after(a.ms, a.id, &b), want > 0);
    }
}

Test(deadscan, the_next_read_starts_slack_entries_early_in_the_millisecond)
{
    deadscan_t d;
    memset(&d, 0, sizeof d);
    int64_t hi;
    long offset;
    cr_assert_not(deadscan_next(&d, 100, &hi, &offset), "no read yet");
    char id[IDS_MAX];
    for (int i = 0; i < 1000; i++) {
        snprintf(id, sizeof id, "job_%016d", 5000 - i);
        cr_assert(deadscan_take(&d, NULL, 7, id));
    }
    cr_assert(deadscan_next(&d, 100, &hi, &offset));
    cr_assert_eq(hi, 7);
    cr_assert_eq(offset, 900);
    /* The next read returns entries 900..1899: 100 again, 900 new. */
    int fresh = 0;
    for (int i = 900; i < 1900; i++) {
        snprintf(id, sizeof id, "job_%016d", 5000 - i);
        fresh += deadscan_take(&d, NULL, 7, id);
    }
    cr_assert_eq(fresh, 900);
    cr_assert(deadscan_next(&d, 100, &hi, &offset));
    cr_assert_eq(offset, 1800, "counted from where the read started, not from what it returned");
    /* A cursor: entries up to it are not taken. */
    deadscan_t e;
    memset(&e, 0, sizeof e);
    deadscan_pos_t cur = {.ms = 7};
    snprintf(cur.id, sizeof cur.id, "job_%016d", 4990);
    snprintf(id, sizeof id, "job_%016d", 4995);
    cr_assert_not(deadscan_take(&e, &cur, 7, id));
    cr_assert_not(deadscan_take(&e, &cur, 7, cur.id));
    snprintf(id, sizeof id, "job_%016d", 4989);
    cr_assert(deadscan_take(&e, &cur, 7, id));
    cr_assert(deadscan_take(&e, &cur, 6, "job_9999999999999999"));
}

/* fault: named crash points for the crash-safety tests.
 *
 * Design: fault_init parses BILLOW_FAULTS once into a small table of armed
 * points, each with the arrival that should crash and a counter. An unarmed
 * process has an empty table, so fault_point returns after one test. The
 * counters are atomic because a worker may reach a point from several
 * threads; each arrival then has exactly one number and only one crashes.
 * The table is process-wide by nature (the kill is), so it is a static
 * written only at start-up.
 */
#include "fault.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    char name[FAULT_NAME_MAX + 1]; /* Point name, as passed to fault_point. */
    long fire_at;                  /* The arrival that crashes (1 = the first). */
    atomic_long hits;              /* Arrivals so far. */
} fault_entry_t;

static fault_entry_t entries[FAULT_MAX_POINTS];
static int entry_count;

__attribute__((noreturn, format(printf, 2, 3))) static void bad_spec(const char *spec,
                                                                     const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "billow: BILLOW_FAULTS=\"%s\" is invalid: ", spec);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(EXIT_FAILURE);
}

/* Parses one "name" or "name:N" item of len bytes into e. */
static void parse_item(const char *spec, const char *item, size_t len, fault_entry_t *e)
{
    const char *colon = memchr(item, ':', len);
    size_t name_len = colon != NULL ? (size_t)(colon - item) : len;
    if (name_len == 0)
        bad_spec(spec, "a point has an empty name");
    if (name_len > FAULT_NAME_MAX)
        bad_spec(spec, "a point name is longer than %d characters", FAULT_NAME_MAX);
    memcpy(e->name, item, name_len);
    e->name[name_len] = '\0';
    e->fire_at = 1;
    atomic_store(&e->hits, 0);
    if (colon == NULL)
        return;

    const char *num = colon + 1;
    size_t num_len = len - name_len - 1;
    char digits[24];
    if (num_len == 0 || num_len >= sizeof digits)
        bad_spec(spec, "N in point:N must be a positive integer");
    memcpy(digits, num, num_len);
    digits[num_len] = '\0';
    for (size_t i = 0; i < num_len; i++) {
        if (digits[i] < '0' || digits[i] > '9')
            bad_spec(spec, "N in point:N must be a positive integer");
    }
    errno = 0;
    long n = strtol(digits, NULL, 10);
    if (errno != 0 || n < 1)
        bad_spec(spec, "N in point:N must be a positive integer");
    e->fire_at = n;
}

void fault_init(const char *spec)
{
    entry_count = 0;
    if (spec == NULL || spec[0] == '\0')
        return;
    const char *item = spec;
    for (;;) {
        const char *end = strchr(item, ',');
        size_t len = end != NULL ? (size_t)(end - item) : strlen(item);
        if (entry_count == FAULT_MAX_POINTS)
            bad_spec(spec, "more than %d points", FAULT_MAX_POINTS);
        parse_item(spec, item, len, &entries[entry_count]);
        entry_count++;
        if (end == NULL)
            break;
        item = end + 1;
    }
}

bool fault_hit(const char *point)
{
    for (int i = 0; i < entry_count; i++) {
        if (strcmp(entries[i].name, point) == 0)
            return atomic_fetch_add(&entries[i].hits, 1) + 1 == entries[i].fire_at;
    }
    return false;
}

void fault_point(const char *point)
{
    if (entry_count == 0)
        return;
    if (fault_hit(point)) {
        /* SIGKILL, not abort(): nothing may run after the point, no atexit
         * handler, no flush, exactly as when the machine loses power. */
        kill(getpid(), SIGKILL);
        _exit(EXIT_FAILURE);
    }
}

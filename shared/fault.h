/* fault: named crash points for the crash-safety tests.
 *
 * BILLOW_FAULTS holds a comma-separated list of "point" or "point:N" items.
 * fault_point("worker.after_commit") kills the process with SIGKILL the Nth
 * time (default the first) that point is reached, so the tests can crash a
 * worker exactly between two steps (after the commit, before the outbox is
 * relayed) instead of hoping a timed kill lands there. Unset, it costs one
 * branch.
 */
#ifndef BILLOW_FAULT_H
#define BILLOW_FAULT_H

#include <stdbool.h>

/* Points one process may arm: a crash test needs one or two, and a fixed
 * table keeps fault_point allocation-free and its scan short. */
#define FAULT_MAX_POINTS 16
/* Longest point name ("worker.after_commit"), sized for the fixed table. */
#define FAULT_NAME_MAX 64

/* Parses the list (NULL or "" for none). Call once at start-up. A list that
 * does not parse (an empty name, N not a positive integer, too many points
 * or too long a name) is bad configuration: it is reported on stderr and the
 * process exits with status 1, because a crash test whose fault silently
 * never fires would pass without testing anything. */
void fault_init(const char *spec);
/* Kills the process if `point` is armed and its count is reached. */
void fault_point(const char *point);
/* Counts one arrival at `point` and returns true if this arrival is the one
 * that should crash (the Nth, once). fault_point is this plus the kill; the
 * unit tests call it directly to check the counting without dying. */
bool fault_hit(const char *point);

#endif

/* hl_deadline.h -- many deadlines behind one timer.
 *
 * Deadlines are kept in one list per duration (whole seconds). Entries of
 * one duration armed in time order are also in deadline order, so arming
 * and cancelling are O(1) and the next deadline is the earliest head of
 * the lists in use. A waiter costs two pointers here instead of a libevent
 * timer of its own and a heap insert.
 *
 * Pure: no I/O and no clock of its own. The caller passes `now` (ms on any
 * monotonic clock) and owns the timer: `watch` is called whenever the
 * next deadline becomes sooner than what the timer was last set for, and
 * hl_deadlines_run fires what is due. Not thread-safe (one set per worker). */
#ifndef HL_DEADLINE_H
#define HL_DEADLINE_H

#include <stddef.h>

typedef struct hl_deadline hl_deadline;

/* Called when d falls due; d is disarmed first, so fire may arm it again,
 * and may arm or cancel any other entry. */
typedef void (*hl_deadline_fn)(hl_deadline *d);

struct hl_deadline {
    hl_deadline_fn fire;      /* set by the owner before arming */
    long long at;             /* when it falls due; 0 while not armed */
    unsigned secs;            /* the list it is on */
    hl_deadline *prev, *next; /* that list */
};

typedef struct hl_deadline_list {
    hl_deadline *head, *tail;
    struct hl_deadline_list *act_prev, *act_next; /* the set's lists in use */
} hl_deadline_list;

typedef struct hl_deadlines {
    hl_deadline_list *lists; /* index: duration in seconds, 1..max_secs */
    unsigned max_secs;
    hl_deadline_list *active; /* non-empty lists */
    long long watch_at;       /* what the timer was last set for (0: nothing) */
    void (*watch)(void *ud, long long at);
    void *ud;
} hl_deadlines;

/* Durations of 1 to max_secs seconds. watch(ud, at) asks the owner's
 * timer to fire at `at` (it may be NULL, for tests that only run).
 * Returns 0, or -1 when out of memory. */
int hl_deadlines_init(hl_deadlines *s, unsigned max_secs, void (*watch)(void *ud, long long at),
                      void *ud);
/* Frees the lists (not the entries, which are the callers'). A no-op on a
 * zeroed or freed set. */
void hl_deadlines_free(hl_deadlines *s);

/* Arms d to fall due secs seconds after now (secs is clamped to
 * 1..max_secs), disarming it first if it was armed. */
void hl_deadline_arm(hl_deadlines *s, hl_deadline *d, unsigned secs, long long now);
/* Disarms d; a no-op if it is not armed. */
void hl_deadline_cancel(hl_deadlines *s, hl_deadline *d);
static inline int hl_deadline_armed(const hl_deadline *d) {
    return d->at != 0;
}

/* The earliest deadline armed, or 0 if none. */
long long hl_deadlines_next(const hl_deadlines *s);

/* Fires every entry due by now, earliest first (ties: shorter duration
 * first), then watches the next. Returns how many fired. */
size_t hl_deadlines_run(hl_deadlines *s, long long now);

#endif

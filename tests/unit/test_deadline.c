/* Unit tests for core/hl_deadline.c: many deadlines behind one timer, with
 * the clock passed in. Each entry counts its firings and records their
 * order, and the owner's timer is a recorder of what watch asked for. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hl_common.h"
#include "hl_deadline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Helpers ----------------------------------------------------------- */

typedef struct entry entry;

/* What a firing does besides being counted. */
typedef void (*entry_fn)(entry *e);

struct entry {
    hl_deadline d; /* first, so a deadline is its entry */
    int id;
    int fired;
    long long fired_at_deadline; /* d.at when it last fired */
    entry_fn then;
    entry *other;   /* for `then` */
    unsigned secs;  /* for `then` */
    long long *now; /* for `then`: the run's clock */
};

/* The order of firings, across entries. */
static int order[20000];
static size_t norder;

/* What watch asked for, in order (the first 64), and how often. */
static long long watched[64];
static size_t nwatched;

static void watch(void *ud, long long at) {
    assert_ptr_equal(ud, &nwatched);
    if (nwatched < HL_ARRAY_LEN(watched)) watched[nwatched] = at;
    nwatched++;
}

static void fire(hl_deadline *d) {
    entry *e = (entry *)d;
    /* An entry is disarmed before it fires. */
    assert_false(hl_deadline_armed(d));
    e->fired++;
    if (norder < HL_ARRAY_LEN(order)) order[norder++] = e->id;
    if (e->then) e->then(e);
}

static void entry_init(entry *e, int id) {
    memset(e, 0, sizeof(*e));
    e->d.fire = fire;
    e->id = id;
}

static int reset(void **state) {
    (void)state;
    norder = 0;
    nwatched = 0;
    return 0;
}

static void set_init(hl_deadlines *s, unsigned max_secs) {
    assert_int_equal(hl_deadlines_init(s, max_secs, watch, &nwatched), 0);
}

static void assert_order(const int *want, size_t n) {
    if (norder != n) fail_msg("%zu firings, want %zu", norder, n);
    for (size_t i = 0; i < n; i++)
        if (order[i] != want[i]) fail_msg("firing %zu is entry %d, want %d", i, order[i], want[i]);
}

/* ---- Arm, cancel, next --------------------------------------------------- */

static void test_deadline_arm_sets_at_and_next(void **state) {
    (void)state;
    hl_deadlines s;
    set_init(&s, 60);
    entry a;
    entry_init(&a, 1);
    assert_false(hl_deadline_armed(&a.d));
    assert_int_equal(hl_deadlines_next(&s), 0);
    hl_deadline_arm(&s, &a.d, 5, 1000);
    assert_true(hl_deadline_armed(&a.d));
    assert_int_equal(a.d.at, 6000);
    assert_int_equal(a.d.secs, 5);
    assert_int_equal(hl_deadlines_next(&s), 6000);
    hl_deadlines_free(&s);
}

static void test_deadline_cancel_disarms_and_is_idempotent(void **state) {
    (void)state;
    hl_deadlines s;
    set_init(&s, 60);
    entry a, b;
    entry_init(&a, 1);
    entry_init(&b, 2);
    hl_deadline_cancel(&s, &a.d); /* never armed: a no-op */
    hl_deadline_arm(&s, &a.d, 1, 0);
    hl_deadline_arm(&s, &b.d, 2, 0);
    hl_deadline_cancel(&s, &a.d);
    assert_false(hl_deadline_armed(&a.d));
    hl_deadline_cancel(&s, &a.d);
    assert_int_equal(hl_deadlines_next(&s), 2000);
    hl_deadline_cancel(&s, &b.d);
    assert_int_equal(hl_deadlines_next(&s), 0);
    assert_int_equal(hl_deadlines_run(&s, 1000000), 0);
    assert_int_equal(a.fired + b.fired, 0);
    hl_deadlines_free(&s);
}

/* Cancelling the head, the middle and the tail of one list keeps the
 * rest in order. */
static void test_deadline_cancel_anywhere_in_a_list_keeps_the_rest(void **state) {
    (void)state;
    hl_deadlines s;
    set_init(&s, 60);
    entry e[6];
    for (int i = 0; i < 6; i++) {
        entry_init(&e[i], i);
        hl_deadline_arm(&s, &e[i].d, 3, i * 10);
    }
    hl_deadline_cancel(&s, &e[0].d);
    hl_deadline_cancel(&s, &e[3].d);
    hl_deadline_cancel(&s, &e[5].d);
    assert_int_equal(hl_deadlines_next(&s), 3010);
    assert_int_equal(hl_deadlines_run(&s, 10000), 3);
    static const int want[] = {1, 2, 4};
    assert_order(want, HL_ARRAY_LEN(want));
    hl_deadlines_free(&s);
}

static void test_deadline_rearm_moves_the_entry(void **state) {
    (void)state;
    hl_deadlines s;
    set_init(&s, 60);
    entry a, b;
    entry_init(&a, 1);
    entry_init(&b, 2);
    hl_deadline_arm(&s, &a.d, 1, 0);
    hl_deadline_arm(&s, &b.d, 2, 0);
    hl_deadline_arm(&s, &a.d, 10, 0); /* re-armed: from list 1 to list 10 */
    assert_int_equal(a.d.secs, 10);
    assert_int_equal(hl_deadlines_next(&s), 2000);
    assert_int_equal(hl_deadlines_run(&s, 5000), 1);
    assert_int_equal(a.fired, 0);
    assert_int_equal(b.fired, 1);
    assert_int_equal(hl_deadlines_run(&s, 10000), 1);
    assert_int_equal(a.fired, 1);
    hl_deadlines_free(&s);
}

/* ---- Clamping ---------------------------------------------------------- */

static const struct {
    unsigned max, secs, want;
} clamp_cases[] = {
    {60, 0, 1},           {60, 1, 1}, {60, 59, 59}, {60, 60, 60}, {60, 61, 60},
    {60, UINT32_MAX, 60}, {1, 0, 1},  {1, 5, 1},    {0, 0, 1},    {0, 7, 1}, /* max 0 means 1 */
};

static void test_deadline_arm_clamps_secs_to_one_to_max(void **state) {
    (void)state;
    for (size_t i = 0; i < HL_ARRAY_LEN(clamp_cases); i++) {
        hl_deadlines s;
        set_init(&s, clamp_cases[i].max);
        entry a;
        entry_init(&a, 1);
        hl_deadline_arm(&s, &a.d, clamp_cases[i].secs, 100);
        if (a.d.secs != clamp_cases[i].want || a.d.at != 100 + 1000LL * clamp_cases[i].want)
            fail_msg("max %u, secs %u: armed for %u s at %lld, want %u s", clamp_cases[i].max,
                     clamp_cases[i].secs, a.d.secs, a.d.at, clamp_cases[i].want);
        assert_int_equal(hl_deadlines_run(&s, 100 + 1000LL * clamp_cases[i].want - 1), 0);
        assert_int_equal(hl_deadlines_run(&s, 100 + 1000LL * clamp_cases[i].want), 1);
        hl_deadlines_free(&s);
    }
}

/* A deadline that would land on 0 ("not armed") is still armed. */
static void test_deadline_arm_at_zero_is_still_armed(void **state) {
    (void)state;
    hl_deadlines s;
    set_init(&s, 60);
    entry a;
    entry_init(&a, 1);
    hl_deadline_arm(&s, &a.d, 1, -1000);
    assert_true(hl_deadline_armed(&a.d));
    assert_int_equal(hl_deadlines_run(&s, 0), 0);
    assert_int_equal(hl_deadlines_run(&s, 1), 1);
    assert_int_equal(a.fired, 1);
    hl_deadlines_free(&s);
}

/* ---- Ordering ----------------------------------------------------------- */

typedef struct arm_step {
    int id;
    unsigned secs;
    long long now;
} arm_step;

static const struct {
    const char *name;
    arm_step arms[6];
    size_t n;
    int want[6];
} order_cases[] = {
    {"one list, in arming order", {{0, 5, 0}, {1, 5, 10}, {2, 5, 20}}, 3, {0, 1, 2}},
    {"mixed durations, earliest first",
     {{0, 3, 0}, {1, 1, 500}, {2, 2, 0}, {3, 1, 1800}},
     4,
     {1, 2, 3, 0}},
    {"ties: shorter duration first", {{0, 2, 0}, {1, 1, 1000}, {2, 3, -1000}}, 3, {1, 0, 2}},
    {"ties in one list: arming order", {{0, 1, 0}, {1, 1, 0}, {2, 1, 0}}, 3, {0, 1, 2}},
    {"long armed first, short armed later",
     {{0, 60, 0}, {1, 30, 1000}, {2, 10, 2000}, {3, 1, 3000}},
     4,
     {3, 2, 1, 0}},
    {"ties across three lists",
     {{0, 3, 0}, {1, 2, 1000}, {2, 1, 2000}, {3, 2, 1000}},
     4,
     {2, 1, 3, 0}},
};

static void test_deadline_run_fires_earliest_first(void **state) {
    (void)state;
    for (size_t c = 0; c < HL_ARRAY_LEN(order_cases); c++) {
        hl_deadlines s;
        set_init(&s, 60);
        entry e[6];
        norder = 0;
        for (size_t i = 0; i < order_cases[c].n; i++) {
            const arm_step *a = &order_cases[c].arms[i];
            entry_init(&e[a->id], a->id);
            hl_deadline_arm(&s, &e[a->id].d, a->secs, a->now);
        }
        size_t fired = hl_deadlines_run(&s, 1000000);
        if (fired != order_cases[c].n)
            fail_msg("%s: %zu fired, want %zu", order_cases[c].name, fired, order_cases[c].n);
        for (size_t i = 0; i < order_cases[c].n; i++)
            if (order[i] != order_cases[c].want[i])
                fail_msg("%s: firing %zu is %d, want %d", order_cases[c].name, i, order[i],
                         order_cases[c].want[i]);
        hl_deadlines_free(&s);
    }
}

static void test_deadline_run_fires_only_what_is_due_and_counts_it(void **state) {
    (void)state;
    hl_deadlines s;
    set_init(&s, 60);
    entry e[5];
    for (int i = 0; i < 5; i++) {
        entry_init(&e[i], i);
        hl_deadline_arm(&s, &e[i].d, (unsigned)(i + 1), 0); /* due at 1000, 2000, ... */
    }
    assert_int_equal(hl_deadlines_run(&s, 999), 0);
    assert_int_equal(hl_deadlines_run(&s, 1000), 1);
    assert_int_equal(hl_deadlines_run(&s, 1000), 0);
    assert_int_equal(hl_deadlines_run(&s, 3500), 2);
    assert_int_equal(hl_deadlines_next(&s), 4000);
    assert_int_equal(hl_deadlines_run(&s, 99999), 2);
    assert_int_equal(hl_deadlines_next(&s), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(e[i].fired, 1);
    hl_deadlines_free(&s);
}

/* ---- Arming and cancelling from inside fire --------------------------------- */

/* hl_deadline_arm needs the set; the entries that act in fire keep it. */
static hl_deadlines *the_set;

static void then_rearm_self(entry *e) {
    if (e->fired < 3) hl_deadline_arm(the_set, &e->d, e->secs, *e->now);
}

static void then_cancel_other(entry *e) {
    hl_deadline_cancel(the_set, &e->other->d);
}

static void then_arm_other(entry *e) {
    hl_deadline_arm(the_set, &e->other->d, e->secs, *e->now);
}

static void test_deadline_fire_may_rearm_its_own_entry(void **state) {
    (void)state;
    hl_deadlines s;
    set_init(&s, 60);
    the_set = &s;
    long long now = 0;
    entry a;
    entry_init(&a, 1);
    a.then = then_rearm_self;
    a.secs = 2;
    a.now = &now;
    hl_deadline_arm(&s, &a.d, 2, now);
    /* One run fires it once, even though it is armed again inside. */
    now = 2000;
    assert_int_equal(hl_deadlines_run(&s, now), 1);
    assert_true(hl_deadline_armed(&a.d));
    assert_int_equal(a.d.at, 4000);
    assert_int_equal(hl_deadlines_next(&s), 4000);
    now = 4000;
    assert_int_equal(hl_deadlines_run(&s, now), 1);
    now = 6000;
    assert_int_equal(hl_deadlines_run(&s, now), 1);
    assert_false(hl_deadline_armed(&a.d)); /* the third firing does not re-arm */
    assert_int_equal(a.fired, 3);
    hl_deadlines_free(&s);
}

static void test_deadline_fire_may_cancel_another_due_entry(void **state) {
    (void)state;
    hl_deadlines s;
    set_init(&s, 60);
    the_set = &s;
    entry a, b, c;
    entry_init(&a, 1);
    entry_init(&b, 2);
    entry_init(&c, 3);
    a.then = then_cancel_other;
    a.other = &b;
    hl_deadline_arm(&s, &a.d, 1, 0);
    hl_deadline_arm(&s, &b.d, 1, 0);
    hl_deadline_arm(&s, &c.d, 2, 0);
    /* b is due in the same run, after a; a cancels it: it never fires. */
    assert_int_equal(hl_deadlines_run(&s, 5000), 2);
    static const int want[] = {1, 3};
    assert_order(want, HL_ARRAY_LEN(want));
    assert_int_equal(b.fired, 0);
    assert_false(hl_deadline_armed(&b.d));
    hl_deadlines_free(&s);
}

/* An entry cancelled inside fire may be the only one of its list, or the
 * head the run would look at next. */
static void test_deadline_fire_may_cancel_the_last_entry_of_a_list(void **state) {
    (void)state;
    hl_deadlines s;
    set_init(&s, 60);
    the_set = &s;
    entry a, b;
    entry_init(&a, 1);
    entry_init(&b, 2);
    a.then = then_cancel_other;
    a.other = &b;
    hl_deadline_arm(&s, &a.d, 1, 0);
    hl_deadline_arm(&s, &b.d, 7, 0);
    assert_int_equal(hl_deadlines_run(&s, 100000), 1);
    assert_int_equal(hl_deadlines_next(&s), 0);
    /* The set is still usable: both lists take entries again. */
    hl_deadline_arm(&s, &b.d, 7, 0);
    hl_deadline_arm(&s, &a.d, 1, 0);
    assert_int_equal(hl_deadlines_next(&s), 1000);
    hl_deadlines_free(&s);
}

static void test_deadline_fire_may_arm_another_entry_due_now(void **state) {
    (void)state;
    hl_deadlines s;
    set_init(&s, 60);
    the_set = &s;
    long long now = 10000;
    entry a, b;
    entry_init(&a, 1);
    entry_init(&b, 2);
    a.then = then_arm_other;
    a.other = &b;
    a.secs = 1;
    a.now = &now;
    hl_deadline_arm(&s, &a.d, 1, 0);
    /* b is armed from the run's clock, so it is not due in this run. */
    assert_int_equal(hl_deadlines_run(&s, now), 1);
    assert_true(hl_deadline_armed(&b.d));
    assert_int_equal(hl_deadlines_next(&s), 11000);
    assert_int_equal(hl_deadlines_run(&s, 11000), 1);
    assert_int_equal(b.fired, 1);
    hl_deadlines_free(&s);
}

/* ---- watch -------------------------------------------------------------------- */

static void test_deadline_watch_only_when_the_next_deadline_is_sooner(void **state) {
    (void)state;
    hl_deadlines s;
    set_init(&s, 60);
    entry a, b, c, d;
    entry_init(&a, 1);
    entry_init(&b, 2);
    entry_init(&c, 3);
    entry_init(&d, 4);
    hl_deadline_arm(&s, &a.d, 5, 0); /* first: watched */
    assert_int_equal(nwatched, 1);
    assert_int_equal(watched[0], 5000);
    hl_deadline_arm(&s, &b.d, 10, 0); /* later: not */
    assert_int_equal(nwatched, 1);
    hl_deadline_arm(&s, &c.d, 2, 0); /* sooner: watched */
    assert_int_equal(nwatched, 2);
    assert_int_equal(watched[1], 2000);
    hl_deadline_arm(&s, &d.d, 2, 0); /* the same: not */
    assert_int_equal(nwatched, 2);
    hl_deadline_cancel(&s, &c.d); /* cancelling never watches */
    hl_deadline_cancel(&s, &d.d);
    assert_int_equal(nwatched, 2);
    hl_deadline_arm(&s, &c.d, 3, 0); /* later than the timer's 2000: not */
    assert_int_equal(nwatched, 2);
    /* The timer fires at 2000 with nothing due; the run sets it again. */
    assert_int_equal(hl_deadlines_run(&s, 2000), 0);
    assert_int_equal(nwatched, 3);
    assert_int_equal(watched[2], 3000);
    /* A run that fires watches the next deadline. */
    assert_int_equal(hl_deadlines_run(&s, 3000), 1);
    assert_int_equal(nwatched, 4);
    assert_int_equal(watched[3], 5000);
    assert_int_equal(hl_deadlines_run(&s, 20000), 2);
    /* Nothing left: nothing to watch. */
    assert_int_equal(nwatched, 4);
    /* After everything fired, the next arm is watched again. */
    hl_deadline_arm(&s, &a.d, 60, 20000);
    assert_int_equal(nwatched, 5);
    assert_int_equal(watched[4], 80000);
    hl_deadlines_free(&s);
}

/* The timer is set once for an entry armed inside fire, not twice. */
static void test_deadline_watch_once_for_an_arm_inside_fire(void **state) {
    (void)state;
    hl_deadlines s;
    set_init(&s, 60);
    the_set = &s;
    long long now = 0;
    entry a;
    entry_init(&a, 1);
    a.then = then_rearm_self;
    a.secs = 4;
    a.now = &now;
    hl_deadline_arm(&s, &a.d, 4, now);
    assert_int_equal(nwatched, 1);
    now = 4000;
    assert_int_equal(hl_deadlines_run(&s, now), 1);
    assert_int_equal(nwatched, 2);
    assert_int_equal(watched[1], 8000);
    hl_deadlines_free(&s);
}

static void test_deadline_watch_may_be_null(void **state) {
    (void)state;
    hl_deadlines s;
    assert_int_equal(hl_deadlines_init(&s, 10, NULL, NULL), 0);
    entry a;
    entry_init(&a, 1);
    hl_deadline_arm(&s, &a.d, 1, 0);
    assert_int_equal(hl_deadlines_run(&s, 1000), 1);
    hl_deadlines_free(&s);
    hl_deadlines_free(&s); /* twice is fine */
}

/* ---- Many entries --------------------------------------------------------------- */

#define MANY 10000

/* Random durations armed as the clock goes forward, some cancelled, some
 * re-armed, run at random moments: every armed entry fires exactly once,
 * never early, never later than the run after its deadline, and in
 * deadline order within each run. */
static void test_deadline_many_entries_fire_once_in_order(void **state) {
    (void)state;
    static entry e[MANY];
    static long long due[MANY];
    hl_deadlines s;
    set_init(&s, 120);
    srand(3);
    long long now = 1;
    size_t armed = 0;
    for (int i = 0; i < MANY; i++) {
        entry_init(&e[i], i);
        now += rand() % 7;
        hl_deadline_arm(&s, &e[i].d, 1 + (unsigned)(rand() % 125), now);
        if (rand() % 10 == 0) hl_deadline_arm(&s, &e[i].d, 1 + (unsigned)(rand() % 120), now);
        if (rand() % 10 == 0) hl_deadline_cancel(&s, &e[i].d);
        due[i] = e[i].d.at;
        armed += due[i] != 0;
    }
    size_t fired = 0;
    norder = 0;
    while (hl_deadlines_next(&s) != 0) {
        long long next = hl_deadlines_next(&s);
        now += rand() % 3000;
        size_t before = norder;
        size_t n = hl_deadlines_run(&s, now);
        assert_int_equal(n, norder - before);
        if (next <= now) assert_true(n > 0);
        for (size_t k = before; k < norder; k++) {
            long long d = due[order[k]];
            assert_true(d != 0 && d <= now);
            if (k > before) assert_true(due[order[k - 1]] <= d);
        }
        /* What is left is not due. */
        assert_true(hl_deadlines_next(&s) == 0 || hl_deadlines_next(&s) > now);
        fired += n;
    }
    assert_int_equal(fired, armed);
    for (int i = 0; i < MANY; i++)
        assert_int_equal(e[i].fired, due[i] != 0);
    hl_deadlines_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_deadline_arm_sets_at_and_next, reset),
        cmocka_unit_test_setup(test_deadline_cancel_disarms_and_is_idempotent, reset),
        cmocka_unit_test_setup(test_deadline_cancel_anywhere_in_a_list_keeps_the_rest, reset),
        cmocka_unit_test_setup(test_deadline_rearm_moves_the_entry, reset),
        cmocka_unit_test_setup(test_deadline_arm_clamps_secs_to_one_to_max, reset),
        cmocka_unit_test_setup(test_deadline_arm_at_zero_is_still_armed, reset),
        cmocka_unit_test_setup(test_deadline_run_fires_earliest_first, reset),
        cmocka_unit_test_setup(test_deadline_run_fires_only_what_is_due_and_counts_it, reset),
        cmocka_unit_test_setup(test_deadline_fire_may_rearm_its_own_entry, reset),
        cmocka_unit_test_setup(test_deadline_fire_may_cancel_another_due_entry, reset),
        cmocka_unit_test_setup(test_deadline_fire_may_cancel_the_last_entry_of_a_list, reset),
        cmocka_unit_test_setup(test_deadline_fire_may_arm_another_entry_due_now, reset),
        cmocka_unit_test_setup(test_deadline_watch_only_when_the_next_deadline_is_sooner, reset),
        cmocka_unit_test_setup(test_deadline_watch_once_for_an_arm_inside_fire, reset),
        cmocka_unit_test_setup(test_deadline_watch_may_be_null, reset),
        cmocka_unit_test_setup(test_deadline_many_entries_fire_once_in_order, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for core/hl_chantab.c: a worker's hash table of channels.
 * Names are passed from blocks of exactly their length, so a read past
 * len is caught by ASan; leaks are caught by LeakSanitizer at exit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hl_chantab.h"
#include "hl_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Helpers ----------------------------------------------------------- */

/* Returns a copy of s[0..n) in a block of exactly n bytes (one byte for
 * n == 0, never read). */
static char *exact_copy(const char *s, size_t n) {
    char *p = malloc(n ? n : 1);
    assert_non_null(p);
    if (n) memcpy(p, s, n);
    return p;
}

static hl_chan *add_copy(hl_chantab *t, const char *name, size_t len) {
    char *p = exact_copy(name, len);
    hl_chan *c = hl_chantab_add(t, p, len);
    free(p);
    return c;
}

static hl_chan *find_copy(const hl_chantab *t, const char *name, size_t len) {
    char *p = exact_copy(name, len);
    hl_chan *c = hl_chantab_find(t, p, len);
    free(p);
    return c;
}

static void assert_zeroed(const hl_chan *c) {
    assert_null(c->waiters);
    assert_int_equal(c->nwaiters, 0);
    assert_int_equal(c->sub, HL_SUB_NONE);
    assert_int_equal(c->linger_armed, 0);
    assert_null(c->linger);
    assert_null(c->owner);
}

/* Fills the fields that belong to the worker, as a worker would. */
static void dirty(hl_chan *c) {
    c->waiters = (struct hl_member *)(uintptr_t)0x1000;
    c->nwaiters = 7;
    c->sub = HL_SUB_LIVE;
    c->linger_armed = 1;
    c->linger = (struct event *)(uintptr_t)0x2000;
    c->owner = c;
}

static size_t count_by_walking(const hl_chantab *t) {
    size_t n = 0;
    for (size_t i = 0; i < t->nbuckets; i++)
        for (const hl_chan *c = t->buckets[i]; c; c = c->next)
            n++;
    return n;
}

/* ---- Basics -------------------------------------------------------------- */

static void test_chantab_starts_empty(void **state) {
    hl_chantab t;
    (void)state;
    memset(&t, 0xA5, sizeof(t));
    hl_chantab_init(&t);
    assert_null(t.buckets);
    assert_int_equal(t.nbuckets, 0);
    assert_int_equal(t.count, 0);
    /* Finding in a table that never had a bucket must not touch one. */
    assert_null(find_copy(&t, "news", 4));
    assert_null(hl_chantab_find(&t, "", 0));
    hl_chantab_free(&t);
}

static void test_chantab_add_find_remove(void **state) {
    hl_chantab t;
    (void)state;
    hl_chantab_init(&t);

    hl_chan *c = add_copy(&t, "news", 4);
    assert_non_null(c);
    assert_int_equal(t.count, 1);
    assert_true(t.nbuckets > 0);
    assert_int_equal(c->len, 4);
    assert_string_equal(c->name, "news"); /* NUL-terminated copy */
    assert_ptr_equal(find_copy(&t, "news", 4), c);
    assert_null(find_copy(&t, "sport", 5));

    hl_chan *d = add_copy(&t, "sport", 5);
    assert_non_null(d);
    assert_true(c != d);
    assert_int_equal(t.count, 2);
    assert_ptr_equal(find_copy(&t, "news", 4), c);
    assert_ptr_equal(find_copy(&t, "sport", 5), d);

    hl_chantab_remove(&t, c);
    assert_int_equal(t.count, 1);
    assert_null(find_copy(&t, "news", 4));
    assert_ptr_equal(find_copy(&t, "sport", 5), d);

    hl_chantab_remove(&t, d);
    assert_int_equal(t.count, 0);
    assert_null(find_copy(&t, "sport", 5));
    assert_int_equal(count_by_walking(&t), 0);

    /* The same name can come back after it left. */
    c = add_copy(&t, "news", 4);
    assert_non_null(c);
    assert_ptr_equal(find_copy(&t, "news", 4), c);
    hl_chantab_free(&t);
}

static void test_chantab_entries_come_zeroed(void **state) {
    hl_chantab t;
    (void)state;
    hl_chantab_init(&t);
    /* Freed memory that held a used entry is handed out again soon: the
     * new entry must still start clean. */
    for (int round = 0; round < 200; round++) {
        char name[32];
        int n = snprintf(name, sizeof(name), "chan-%d", round % 5);
        hl_chan *c = add_copy(&t, name, (size_t)n);
        assert_non_null(c);
        assert_zeroed(c);
        assert_int_equal(c->name[c->len], '\0');
        dirty(c);
        hl_chantab_remove(&t, c);
    }
    assert_int_equal(t.count, 0);
    hl_chantab_free(&t);
}

/* ---- Names that nearly match ------------------------------------------------- */

static const struct {
    const char *name;
    size_t len;
} near_names[] = {
    {"", 0},         {"a", 1},        {"aa", 2},    {"aaa", 3},  {"ab", 2},    {"ac", 2},
    {"ba", 2},       {"a\0", 2},      {"a\0\0", 3}, {"\0", 1},   {"x\0y", 3},  {"x\0z", 3},
    {"news", 4},     {"news2", 5},    {"new", 3},   {"newt", 4}, {"News", 4},  {"news\xFF", 5},
    {"news\x80", 5}, {"news\x7f", 5}, {"\xFF", 1},  {"\xFE", 1}, {"news ", 5},
};

static void test_chantab_names_differing_in_length_or_last_byte(void **state) {
    hl_chantab t;
    hl_chan *got[HL_ARRAY_LEN(near_names)];
    (void)state;
    hl_chantab_init(&t);
    for (size_t i = 0; i < HL_ARRAY_LEN(near_names); i++) {
        /* Each new name must not be mistaken for one already there. */
        assert_null(find_copy(&t, near_names[i].name, near_names[i].len));
        got[i] = add_copy(&t, near_names[i].name, near_names[i].len);
        assert_non_null(got[i]);
        assert_int_equal(got[i]->len, near_names[i].len);
        if (near_names[i].len)
            assert_memory_equal(got[i]->name, near_names[i].name, near_names[i].len);
        assert_int_equal(got[i]->name[near_names[i].len], '\0');
    }
    assert_int_equal(t.count, HL_ARRAY_LEN(near_names));
    for (size_t i = 0; i < HL_ARRAY_LEN(near_names); i++)
        if (find_copy(&t, near_names[i].name, near_names[i].len) != got[i])
            fail_msg("case %zu: found the wrong entry", i);

    /* Prefixes and extensions of a lone name are not it. */
    hl_chantab_free(&t);
    hl_chantab_init(&t);
    assert_non_null(add_copy(&t, "abc", 3));
    assert_null(find_copy(&t, "ab", 2));
    assert_null(find_copy(&t, "abcd", 4));
    assert_null(find_copy(&t, "abd", 3));
    assert_null(find_copy(&t, "abc\0", 4));
    assert_null(find_copy(&t, "", 0));

    /* Removing one of a near pair leaves the other. */
    hl_chan *a = add_copy(&t, "ab", 2);
    hl_chantab_remove(&t, find_copy(&t, "abc", 3));
    assert_null(find_copy(&t, "abc", 3));
    assert_ptr_equal(find_copy(&t, "ab", 2), a);
    hl_chantab_free(&t);
}

static void test_chantab_names_with_colliding_hashes_stay_apart(void **state) {
    /* Two valid channel names with the same 64-bit FNV-1a hash, found by a
     * distinguished-point search: only the name comparison tells them
     * apart, and any client could pick them. */
    static const char one[] = "PzashhG6IQO";
    static const char two[] = "vBxatjOiVwP";
    hl_chantab t;
    (void)state;
    hl_chantab_init(&t);
    hl_chan *a = add_copy(&t, one, sizeof(one) - 1);
    assert_non_null(a);
    assert_null(find_copy(&t, two, sizeof(two) - 1));
    hl_chan *b = add_copy(&t, two, sizeof(two) - 1);
    assert_non_null(b);
    assert_true(a->hash == b->hash); /* the premise of this test */
    assert_ptr_equal(find_copy(&t, one, sizeof(one) - 1), a);
    assert_ptr_equal(find_copy(&t, two, sizeof(two) - 1), b);

    hl_chantab_remove(&t, a);
    assert_null(find_copy(&t, one, sizeof(one) - 1));
    assert_ptr_equal(find_copy(&t, two, sizeof(two) - 1), b);
    hl_chantab_remove(&t, b);
    assert_null(find_copy(&t, two, sizeof(two) - 1));
    assert_int_equal(t.count, 0);
    hl_chantab_free(&t);
}

static void test_chantab_long_names(void **state) {
    const size_t n = 100000;
    hl_chantab t;
    (void)state;
    char *name = malloc(n);
    assert_non_null(name);
    memset(name, 'L', n);
    hl_chantab_init(&t);
    hl_chan *c = add_copy(&t, name, n);
    assert_non_null(c);
    assert_int_equal(c->len, n);
    assert_int_equal(c->name[n], '\0');
    name[n - 1] = 'M';
    assert_null(find_copy(&t, name, n));
    hl_chan *d = add_copy(&t, name, n);
    assert_non_null(d);
    assert_ptr_equal(find_copy(&t, name, n), d);
    name[n - 1] = 'L';
    assert_ptr_equal(find_copy(&t, name, n), c);
    assert_null(find_copy(&t, name, n - 1));
    hl_chantab_free(&t);
    free(name);
}

/* ---- Growth ------------------------------------------------------------------ */

static void test_chantab_grows_past_many_resizes(void **state) {
    enum { N = 10000 };
    hl_chantab t;
    (void)state;
    hl_chan **entries = calloc(N, sizeof(*entries));
    assert_non_null(entries);
    hl_chantab_init(&t);
    size_t resizes = 0, last = 0;
    for (int i = 0; i < N; i++) {
        char name[32];
        int n = snprintf(name, sizeof(name), "channel:%d", i);
        entries[i] = add_copy(&t, name, (size_t)n);
        assert_non_null(entries[i]);
        entries[i]->nwaiters = (size_t)i; /* survives the moves between buckets */
        if (t.nbuckets != last) resizes++;
        last = t.nbuckets;
        /* A power of two, never fuller than one entry per bucket. */
        assert_int_equal(t.nbuckets & (t.nbuckets - 1), 0);
        assert_true(t.count <= t.nbuckets);
    }
    assert_int_equal(t.count, N);
    assert_true(resizes >= 8);
    assert_int_equal(count_by_walking(&t), N);

    for (int i = 0; i < N; i++) {
        char name[32];
        int n = snprintf(name, sizeof(name), "channel:%d", i);
        hl_chan *c = find_copy(&t, name, (size_t)n);
        if (c != entries[i]) fail_msg("channel:%d lost after growth", i);
        assert_int_equal(c->nwaiters, (size_t)i);
    }
    assert_null(find_copy(&t, "channel:10000", 13));
    assert_null(find_copy(&t, "channel:", 8));

    /* Remove every third, in reverse order, then look again. */
    for (int i = N - 1; i >= 0; i--)
        if (i % 3 == 0) hl_chantab_remove(&t, entries[i]);
    assert_int_equal(t.count, N - (N + 2) / 3);
    assert_int_equal(count_by_walking(&t), t.count);
    for (int i = 0; i < N; i++) {
        char name[32];
        int n = snprintf(name, sizeof(name), "channel:%d", i);
        hl_chan *c = find_copy(&t, name, (size_t)n);
        if (i % 3 == 0)
            assert_null(c);
        else
            assert_ptr_equal(c, entries[i]);
    }
    hl_chantab_free(&t);
    free(entries);
}

/* ---- foreach ------------------------------------------------------------------ */

typedef struct visit_log {
    hl_chantab *t;
    int *visits;     /* per entry index, kept in nwaiters */
    size_t seen;     /* calls so far */
    size_t removed;  /* entries the callback removed */
    int remove_mode; /* 0: none, 1: every other call, 2: all */
} visit_log;

static void visit(hl_chan *c, void *ud) {
    visit_log *log = ud;
    log->visits[c->nwaiters]++;
    int remove = log->remove_mode == 2 || (log->remove_mode == 1 && log->seen % 2 == 0);
    log->seen++;
    if (remove) {
        /* Mark the index as gone before the entry is freed. */
        log->visits[c->nwaiters] += 1000;
        hl_chantab_remove(log->t, c);
        log->removed++;
    }
}

static void fill(hl_chantab *t, int n) {
    for (int i = 0; i < n; i++) {
        char name[32];
        int len = snprintf(name, sizeof(name), "f%d", i);
        hl_chan *c = add_copy(t, name, (size_t)len);
        assert_non_null(c);
        c->nwaiters = (size_t)i;
    }
}

static void test_chantab_foreach_visits_each_entry_once(void **state) {
    enum { N = 1000 };
    hl_chantab t;
    int visits[N] = {0};
    visit_log log = {&t, visits, 0, 0, 0};
    (void)state;

    /* An empty table calls nothing. */
    hl_chantab_init(&t);
    hl_chantab_foreach(&t, visit, &log);
    assert_int_equal(log.seen, 0);

    fill(&t, N);
    hl_chantab_foreach(&t, visit, &log);
    assert_int_equal(log.seen, N);
    for (int i = 0; i < N; i++)
        assert_int_equal(visits[i], 1);
    assert_int_equal(t.count, N);
    hl_chantab_free(&t);
}

static void test_chantab_foreach_share_visits_each_entry_once_over_all_shares(void **state) {
    enum { N = 1000, SHARES = 16 };
    hl_chantab t;
    int visits[N] = {0};
    visit_log log = {&t, visits, 0, 0, 0};
    (void)state;
    hl_chantab_init(&t);
    hl_chantab_foreach_share(&t, 3, SHARES, visit, &log);
    assert_int_equal(log.seen, 0);

    fill(&t, N);
    size_t most = 0;
    for (size_t k = 0; k < SHARES; k++) {
        size_t before = log.seen;
        hl_chantab_foreach_share(&t, k, SHARES, visit, &log);
        if (log.seen - before > most) most = log.seen - before;
    }
    assert_int_equal(log.seen, N);
    for (int i = 0; i < N; i++)
        assert_int_equal(visits[i], 1);
    /* A share is a share, not the whole table (well under twice its part). */
    assert_true(most < 2 * N / SHARES);

    /* Removing the entry at hand is allowed, as for hl_chantab_foreach. */
    log.remove_mode = 2;
    for (size_t k = 0; k < SHARES; k++)
        hl_chantab_foreach_share(&t, k, SHARES, visit, &log);
    assert_int_equal(t.count, 0);
    assert_int_equal(log.removed, N);
    hl_chantab_free(&t);
}

static void test_chantab_foreach_survives_removing_every_other_entry(void **state) {
    enum { N = 1000 };
    hl_chantab t;
    int visits[N] = {0};
    visit_log log = {&t, visits, 0, 0, 1};
    (void)state;
    hl_chantab_init(&t);
    fill(&t, N);

    hl_chantab_foreach(&t, visit, &log);
    assert_int_equal(log.seen, N);
    assert_int_equal(log.removed, N / 2);
    assert_int_equal(t.count, N - N / 2);
    assert_int_equal(count_by_walking(&t), t.count);
    for (int i = 0; i < N; i++) {
        char name[32];
        int len = snprintf(name, sizeof(name), "f%d", i);
        hl_chan *c = find_copy(&t, name, (size_t)len);
        if (visits[i] == 1001)
            assert_null(c);
        else if (visits[i] == 1)
            assert_non_null(c);
        else
            fail_msg("f%d visited %d times", i, visits[i] % 1000);
    }

    /* A second pass sees exactly the survivors, once each. */
    memset(visits, 0, sizeof(visits));
    log.seen = 0;
    log.remove_mode = 0;
    hl_chantab_foreach(&t, visit, &log);
    assert_int_equal(log.seen, t.count);
    hl_chantab_free(&t);
}

static void test_chantab_foreach_can_empty_the_table(void **state) {
    enum { N = 300 };
    hl_chantab t;
    int visits[N] = {0};
    visit_log log = {&t, visits, 0, 0, 2};
    (void)state;
    hl_chantab_init(&t);
    fill(&t, N);
    hl_chantab_foreach(&t, visit, &log);
    assert_int_equal(log.seen, N);
    assert_int_equal(log.removed, N);
    assert_int_equal(t.count, 0);
    assert_int_equal(count_by_walking(&t), 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(visits[i], 1001);

    /* The emptied table still works. */
    hl_chan *c = add_copy(&t, "again", 5);
    assert_non_null(c);
    assert_zeroed(c);
    assert_ptr_equal(find_copy(&t, "again", 5), c);
    hl_chantab_free(&t);
}

/* ---- Freeing ------------------------------------------------------------------- */

static void test_chantab_free_is_safe_at_every_stage(void **state) {
    hl_chantab t;
    (void)state;

    hl_chantab_free(NULL);

    /* Initialised and empty. */
    hl_chantab_init(&t);
    hl_chantab_free(&t);
    assert_null(t.buckets);
    assert_int_equal(t.nbuckets, 0);
    assert_int_equal(t.count, 0);

    /* After use, with entries left in it (LeakSanitizer checks they go). */
    fill(&t, 500);
    hl_chantab_free(&t);
    assert_null(t.buckets);
    assert_int_equal(t.nbuckets, 0);
    assert_int_equal(t.count, 0);
    assert_null(find_copy(&t, "f1", 2));

    /* Twice. */
    hl_chantab_free(&t);
    assert_null(t.buckets);

    /* After everything was removed but the buckets remain. */
    hl_chan *c = add_copy(&t, "x", 1);
    hl_chantab_remove(&t, c);
    assert_non_null(t.buckets);
    hl_chantab_free(&t);
    hl_chantab_free(&t);

    /* A freed table is an initialised one: usable again. */
    c = add_copy(&t, "y", 1);
    assert_non_null(c);
    assert_ptr_equal(find_copy(&t, "y", 1), c);
    hl_chantab_free(&t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chantab_starts_empty),
        cmocka_unit_test(test_chantab_add_find_remove),
        cmocka_unit_test(test_chantab_entries_come_zeroed),
        cmocka_unit_test(test_chantab_names_differing_in_length_or_last_byte),
        cmocka_unit_test(test_chantab_names_with_colliding_hashes_stay_apart),
        cmocka_unit_test(test_chantab_long_names),
        cmocka_unit_test(test_chantab_grows_past_many_resizes),
        cmocka_unit_test(test_chantab_foreach_visits_each_entry_once),
        cmocka_unit_test(test_chantab_foreach_share_visits_each_entry_once_over_all_shares),
        cmocka_unit_test(test_chantab_foreach_survives_removing_every_other_entry),
        cmocka_unit_test(test_chantab_foreach_can_empty_the_table),
        cmocka_unit_test(test_chantab_free_is_safe_at_every_stage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

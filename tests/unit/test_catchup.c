/* Unit tests for core/engine/hl_catchup.c: what a client is owed on one
 * channel, from its cursor and what the worker knows of the channel
 * (README "Cursors: nothing lost between two polls"). The channels are
 * built by hand, their caches filled with real messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hl_catchup.h"
#include "hl_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EPOCH 0xabcULL /* the worker's */
#define OTHER 0xdefULL /* a data set Redis has lost since */
#define TTL 60000LL    /* history.ttl, ms */
#define NOW 10000000LL /* Redis's clock */
#define SYNC (NOW - 10000)

/* Initialisers for the tables. */
#define AT(ms, seq)                                                                                \
    {                                                                                              \
        HL_CUR_AT, {                                                                               \
            (ms), (seq)                                                                            \
        }                                                                                          \
    }
#define NEWC                                                                                       \
    {                                                                                              \
        HL_CUR_NEW, {                                                                              \
            0, 0                                                                                   \
        }                                                                                          \
    }
#define ALLC                                                                                       \
    {                                                                                              \
        HL_CUR_ALL, {                                                                              \
            0, 0                                                                                   \
        }                                                                                          \
    }

/* The head of a stream that did not exist at the sync, and of one that
 * does not exist now (hl_history_head). */
#define QUIET_HEAD_MS ((uint64_t)SYNC - 1)
#define GONE_HEAD_MS ((uint64_t)NOW - 1)

static hl_sid SID(uint64_t ms, uint64_t seq) {
    return (hl_sid){ms, seq};
}

static hl_cur_part at(uint64_t ms, uint64_t seq) {
    return (hl_cur_part){HL_CUR_AT, {ms, seq}};
}

/* ---- Channels ------------------------------------------------------------ */

typedef enum chan_kind {
    CH_BUSY,  /* cache holds 100..104, everything after 99-0; older ones trimmed */
    CH_WHOLE, /* cache holds 100..104, the whole stream */
    CH_BARE,  /* the stream exists (last 50-0) but holds nothing */
    CH_QUIET, /* no stream in Redis at the sync, nothing since */
} chan_kind;

static hl_chan *make_chan(chan_kind kind, hl_sync_state sync) {
    static const char name[] = "news";
    hl_chan *c = calloc(1, sizeof(*c) + sizeof(name));
    assert_non_null(c);
    memcpy(c->name, name, sizeof(name));
    c->len = sizeof(name) - 1;
    c->sync = sync;
    hl_msgcache_init(&c->cache, 8, 1 << 20);
    switch (kind) {
    case CH_BUSY:
    case CH_WHOLE:
        for (uint64_t ms = 100; ms <= 104; ms++) {
            hl_msg *m = hl_msg_new(SID(ms, 0), c->name, c->len, "x", 1);
            assert_non_null(m);
            hl_sid dropped;
            assert_int_equal(hl_msgcache_push(&c->cache, m, &dropped), 0);
        }
        c->last = SID(104, 0);
        c->whole = kind == CH_WHOLE;
        c->cache_from = kind == CH_WHOLE ? SID(0, 0) : SID(99, 0);
        break;
    case CH_BARE:
        c->last = SID(50, 0);
        c->cache_from = SID(0, 0);
        c->whole = 1;
        break;
    case CH_QUIET:
        c->last = SID(QUIET_HEAD_MS, UINT64_MAX);
        c->cache_from = c->last;
        c->whole = 1;
        c->empty = 1;
        break;
    }
    return c;
}

static void free_chan(hl_chan *c) {
    hl_msgcache_free(&c->cache);
    free(c);
}

static const char *need_name(hl_need n) {
    switch (n) {
    case HL_NEED_NOTHING: return "NOTHING";
    case HL_NEED_CACHE: return "CACHE";
    case HL_NEED_READ: return "READ";
    }
    return "?";
}

static int same_part(hl_cur_part a, hl_cur_part b) {
    return a.kind == b.kind && (a.kind != HL_CUR_AT || hl_sid_cmp(a.id, b.id) == 0);
}

static const char *show_part(hl_cur_part p, char *buf, size_t n) {
    if (p.kind == HL_CUR_NEW) return "new";
    if (p.kind == HL_CUR_ALL) return "0";
    snprintf(buf, n, "%llu-%llu", (unsigned long long)p.id.ms, (unsigned long long)p.id.seq);
    return buf;
}

/* ---- hl_catchup_classify ------------------------------------------------------ */

typedef struct classify_case {
    const char *name;
    chan_kind chan;
    uint64_t wepoch;     /* the cursor's epoch */
    long long redis_now; /* env.redis_now */
    hl_position pos;
    hl_need need;
    hl_cur_part after; /* pos.cur afterwards */
} classify_case;

static const classify_case classify_cases[] = {
    /* Cursor "new". */
    {"new starts at the last id", CH_BUSY, EPOCH, NOW, {NEWC, 0, 0}, HL_NEED_NOTHING, AT(104, 0)},
    {"new on a quiet channel starts at its head",
     CH_QUIET,
     EPOCH,
     NOW,
     {NEWC, 0, 0},
     HL_NEED_NOTHING,
     AT(QUIET_HEAD_MS, UINT64_MAX)},
    {"new of another epoch is left as is",
     CH_BUSY,
     OTHER,
     NOW,
     {NEWC, 0, 0},
     HL_NEED_NOTHING,
     NEWC},
    /* Cursor "0". */
    {"0 with the whole stream cached", CH_WHOLE, EPOCH, NOW, {ALLC, 0, 0}, HL_NEED_CACHE, ALLC},
    {"0 with part of the stream cached", CH_BUSY, EPOCH, NOW, {ALLC, 0, 0}, HL_NEED_READ, ALLC},
    {"0 on a stream holding nothing moves to its last id",
     CH_BARE,
     EPOCH,
     NOW,
     {ALLC, 0, 0},
     HL_NEED_NOTHING,
     AT(50, 0)},
    {"0 on a quiet channel moves to its head",
     CH_QUIET,
     EPOCH,
     NOW,
     {ALLC, 0, 0},
     HL_NEED_NOTHING,
     AT(QUIET_HEAD_MS, UINT64_MAX)},
    /* An id, on a channel with messages. */
    {"id at the last", CH_BUSY, EPOCH, NOW, {AT(104, 0), 0, 0}, HL_NEED_NOTHING, AT(104, 0)},
    {"id behind, in the cache", CH_BUSY, EPOCH, NOW, {AT(101, 0), 0, 0}, HL_NEED_CACHE, AT(101, 0)},
    {"id between two cached ids",
     CH_BUSY,
     EPOCH,
     NOW,
     {AT(101, 5), 0, 0},
     HL_NEED_CACHE,
     AT(101, 5)},
    {"id at cache_from", CH_BUSY, EPOCH, NOW, {AT(99, 0), 0, 0}, HL_NEED_CACHE, AT(99, 0)},
    {"id just before cache_from",
     CH_BUSY,
     EPOCH,
     NOW,
     {AT(98, UINT64_MAX), 0, 0},
     HL_NEED_READ,
     AT(98, UINT64_MAX)},
    {"id 0-0 on a trimmed stream", CH_BUSY, EPOCH, NOW, {AT(0, 0), 0, 0}, HL_NEED_READ, AT(0, 0)},
    {"id before the whole cache", CH_WHOLE, EPOCH, NOW, {AT(7, 0), 0, 0}, HL_NEED_CACHE, AT(7, 0)},
    {"id behind on a stream holding nothing",
     CH_BARE,
     EPOCH,
     NOW,
     {AT(40, 0), 0, 0},
     HL_NEED_READ,
     AT(40, 0)},
    {"id ahead, unverified", CH_BUSY, EPOCH, NOW, {AT(104, 1), 0, 0}, HL_NEED_READ, AT(104, 1)},
    {"id ahead, verified", CH_BUSY, EPOCH, NOW, {AT(104, 1), 1, 0}, HL_NEED_NOTHING, AT(104, 1)},
    {"huge id, unverified",
     CH_BUSY,
     EPOCH,
     NOW,
     {AT(UINT64_MAX, UINT64_MAX), 0, 0},
     HL_NEED_READ,
     AT(UINT64_MAX, UINT64_MAX)},
    /* Level: a read found nothing since; only the cache's news counts. */
    {"level, before cache_from",
     CH_BUSY,
     EPOCH,
     NOW,
     {AT(50, 0), 0, 1},
     HL_NEED_NOTHING,
     AT(50, 0)},
    {"level, ahead", CH_BUSY, EPOCH, NOW, {AT(200, 0), 0, 1}, HL_NEED_NOTHING, AT(200, 0)},
    {"level, news in the cache",
     CH_BUSY,
     EPOCH,
     NOW,
     {AT(102, 0), 1, 1},
     HL_NEED_CACHE,
     AT(102, 0)},
    /* Another epoch: the ids mean nothing here; Redis says missed. */
    {"id of another epoch", CH_BUSY, OTHER, NOW, {AT(101, 0), 0, 0}, HL_NEED_READ, AT(101, 0)},
    {"id of another epoch equal to the last",
     CH_BUSY,
     OTHER,
     NOW,
     {AT(104, 0), 0, 0},
     HL_NEED_READ,
     AT(104, 0)},
    {"id of another epoch, verified",
     CH_BUSY,
     OTHER,
     NOW,
     {AT(200, 0), 1, 0},
     HL_NEED_READ,
     AT(200, 0)},
    {"id of another epoch, level",
     CH_BUSY,
     OTHER,
     NOW,
     {AT(101, 0), 1, 1},
     HL_NEED_NOTHING,
     AT(101, 0)},
    {"id of another epoch on a quiet channel",
     CH_QUIET,
     OTHER,
     NOW,
     {AT(SYNC - 100, 0), 0, 0},
     HL_NEED_READ,
     AT(SYNC - 100, 0)},
    /* A quiet channel: its head is a point in Redis's time. */
    {"quiet, at the head",
     CH_QUIET,
     EPOCH,
     NOW,
     {AT(QUIET_HEAD_MS, UINT64_MAX), 0, 0},
     HL_NEED_NOTHING,
     AT(QUIET_HEAD_MS, UINT64_MAX)},
    {"quiet, behind within the TTL moves to the head",
     CH_QUIET,
     EPOCH,
     NOW,
     {AT(SYNC - TTL / 2, 0), 0, 0},
     HL_NEED_NOTHING,
     AT(QUIET_HEAD_MS, UINT64_MAX)},
    {"quiet, behind by more than the TTL",
     CH_QUIET,
     EPOCH,
     NOW,
     {AT(SYNC - TTL - 1000, 0), 0, 0},
     HL_NEED_READ,
     AT(SYNC - TTL - 1000, 0)},
    {"quiet, 0-0", CH_QUIET, EPOCH, NOW, {AT(0, 0), 0, 0}, HL_NEED_READ, AT(0, 0)},
    {"quiet, behind by more than the TTL, level",
     CH_QUIET,
     EPOCH,
     NOW,
     {AT(SYNC - TTL - 1000, 0), 0, 1},
     HL_NEED_NOTHING,
     AT(SYNC - TTL - 1000, 0)},
    {"quiet, just after the head",
     CH_QUIET,
     EPOCH,
     NOW,
     {AT(SYNC, 0), 0, 0},
     HL_NEED_NOTHING,
     AT(SYNC, 0)},
    {"quiet, ahead at Redis's now",
     CH_QUIET,
     EPOCH,
     NOW,
     {AT(NOW, 9), 0, 0},
     HL_NEED_NOTHING,
     AT(NOW, 9)},
    {"quiet, ahead within now + 1 s",
     CH_QUIET,
     EPOCH,
     NOW,
     {AT(NOW + 1000, 0), 0, 0},
     HL_NEED_NOTHING,
     AT(NOW + 1000, 0)},
    {"quiet, ahead in Redis's future",
     CH_QUIET,
     EPOCH,
     NOW,
     {AT(NOW + 5000, 0), 0, 0},
     HL_NEED_READ,
     AT(NOW + 5000, 0)},
    {"quiet, ahead in Redis's future, verified",
     CH_QUIET,
     EPOCH,
     NOW,
     {AT(NOW + 5000, 0), 1, 0},
     HL_NEED_NOTHING,
     AT(NOW + 5000, 0)},
    {"quiet, ahead while Redis's clock is unknown",
     CH_QUIET,
     EPOCH,
     0,
     {AT(NOW, 0), 0, 0},
     HL_NEED_READ,
     AT(NOW, 0)},
};

static void run_classify_cases(const classify_case *cases, size_t n) {
    int failures = 0;
    for (size_t i = 0; i < n; i++) {
        const classify_case *k = &cases[i];
        hl_chan *c = make_chan(k->chan, HL_SYNC_DONE);
        hl_catchup_env env = {EPOCH, TTL, k->redis_now};
        hl_position pos = k->pos;
        hl_need need = hl_catchup_classify(&env, k->wepoch, c, &pos);
        char b1[64], b2[64];
        if (need != k->need || !same_part(pos.cur, k->after)) {
            print_error("%s: %s, cursor %s; want %s, cursor %s\n", k->name, need_name(need),
                        show_part(pos.cur, b1, sizeof(b1)), need_name(k->need),
                        show_part(k->after, b2, sizeof(b2)));
            failures++;
        }
        /* Classifying never changes what a read proved. */
        assert_int_equal(pos.verified, k->pos.verified);
        assert_int_equal(pos.level, k->pos.level);
        free_chan(c);
    }
    if (failures) fail_msg("%d of %zu cases failed", failures, n);
}

static void test_catchup_classify_table(void **state) {
    (void)state;
    run_classify_cases(classify_cases, HL_ARRAY_LEN(classify_cases));
}

/* README: "A cursor from the future ... is answered at once, never
 * held." An id past INT64_MAX ms is in Redis's future too, however it
 * looks as a signed number. */
static void test_catchup_quiet_channel_reads_a_cursor_past_int64_ms(void **state) {
    (void)state;
    static const classify_case huge[] = {
        {"quiet, ahead by 2^63 ms",
         CH_QUIET,
         EPOCH,
         NOW,
         {AT(1ULL << 63, 0), 0, 0},
         HL_NEED_READ,
         AT(1ULL << 63, 0)},
        {"quiet, huge id",
         CH_QUIET,
         EPOCH,
         NOW,
         {AT(UINT64_MAX, UINT64_MAX), 0, 0},
         HL_NEED_READ,
         AT(UINT64_MAX, UINT64_MAX)},
    };
    run_classify_cases(huge, HL_ARRAY_LEN(huge));
}

/* Once moved, the client is up to date where it is. */
static void test_catchup_classify_is_stable_after_a_move(void **state) {
    (void)state;
    hl_catchup_env env = {EPOCH, TTL, NOW};
    for (size_t i = 0; i < HL_ARRAY_LEN(classify_cases); i++) {
        const classify_case *k = &classify_cases[i];
        if (k->need != HL_NEED_NOTHING || same_part(k->pos.cur, k->after)) continue;
        hl_chan *c = make_chan(k->chan, HL_SYNC_DONE);
        hl_position pos = k->pos;
        hl_catchup_classify(&env, k->wepoch, c, &pos);
        hl_cur_part moved = pos.cur;
        if (hl_catchup_classify(&env, k->wepoch, c, &pos) != HL_NEED_NOTHING ||
            !same_part(pos.cur, moved))
            fail_msg("%s: not up to date after the move", k->name);
        free_chan(c);
    }
}

/* A quiet channel's head moves forward with Redis's clock (the ticks); a
 * client that keeps polling follows it and never needs a read. */
static void test_catchup_quiet_channel_client_follows_the_moving_head(void **state) {
    (void)state;
    hl_chan *c = make_chan(CH_QUIET, HL_SYNC_DONE);
    hl_position pos = {{HL_CUR_NEW, {0, 0}}, 0, 0};
    for (long long t = NOW; t < NOW + 20 * TTL; t += TTL / 4) {
        hl_catchup_env env = {EPOCH, TTL, t};
        c->last = SID((uint64_t)t - 1, UINT64_MAX);
        c->cache_from = c->last;
        if (hl_catchup_classify(&env, EPOCH, c, &pos) != HL_NEED_NOTHING)
            fail_msg("at %lld: the client needs more than its wait", t);
        assert_true(same_part(pos.cur, (hl_cur_part){HL_CUR_AT, c->last}));
    }
    free_chan(c);
}

/* ---- hl_catchup_cache_from -------------------------------------------------- */

typedef struct from_case {
    const char *name;
    chan_kind chan;
    hl_sync_state sync;
    uint64_t wepoch;
    hl_cur_part cur;
    long from;
} from_case;

static const from_case from_cases[] = {
    {"not synced", CH_WHOLE, HL_SYNC_NONE, EPOCH, AT(101, 0), -1},
    {"sync read in flight", CH_WHOLE, HL_SYNC_READING, EPOCH, ALLC, -1},
    {"another epoch", CH_WHOLE, HL_SYNC_DONE, OTHER, AT(101, 0), -1},
    {"another epoch, 0", CH_WHOLE, HL_SYNC_DONE, OTHER, ALLC, -1},
    {"0 with the whole stream cached", CH_WHOLE, HL_SYNC_DONE, EPOCH, ALLC, 0},
    {"0 with part of it cached", CH_BUSY, HL_SYNC_DONE, EPOCH, ALLC, -1},
    {"0 on a quiet channel", CH_QUIET, HL_SYNC_DONE, EPOCH, ALLC, 0},
    /* "new" is made an id by classify before the cache is looked at. */
    {"new", CH_WHOLE, HL_SYNC_DONE, EPOCH, NEWC, -1},
    {"id before cache_from", CH_BUSY, HL_SYNC_DONE, EPOCH, AT(98, 0), -1},
    {"id at cache_from", CH_BUSY, HL_SYNC_DONE, EPOCH, AT(99, 0), 0},
    {"id at the first cached", CH_BUSY, HL_SYNC_DONE, EPOCH, AT(100, 0), 1},
    {"id in the cache", CH_BUSY, HL_SYNC_DONE, EPOCH, AT(101, 0), 2},
    {"id between cached ids", CH_BUSY, HL_SYNC_DONE, EPOCH, AT(101, 5), 2},
    {"id at the last: none yet", CH_BUSY, HL_SYNC_DONE, EPOCH, AT(104, 0), 5},
    {"id ahead: none yet", CH_BUSY, HL_SYNC_DONE, EPOCH, AT(UINT64_MAX, UINT64_MAX), 5},
    {"0-0 on the whole stream", CH_WHOLE, HL_SYNC_DONE, EPOCH, AT(0, 0), 0},
    {"quiet channel, at the head", CH_QUIET, HL_SYNC_DONE, EPOCH, AT(QUIET_HEAD_MS, UINT64_MAX), 0},
};

static void test_catchup_cache_from_table(void **state) {
    (void)state;
    hl_catchup_env env = {EPOCH, TTL, NOW};
    for (size_t i = 0; i < HL_ARRAY_LEN(from_cases); i++) {
        const from_case *k = &from_cases[i];
        hl_chan *c = make_chan(k->chan, k->sync);
        long got = hl_catchup_cache_from(&env, k->wepoch, c, k->cur);
        if (got != k->from) fail_msg("%s: %ld, want %ld", k->name, got, k->from);
        free_chan(c);
    }
}

/* Whenever classify says CACHE, the cache can say what from, and it has
 * something to give: else the waiter answers with nothing and the same
 * cursor, again and again. */
static void check_cache_answers(const classify_case *cases, size_t n) {
    hl_catchup_env env = {EPOCH, TTL, NOW};
    for (size_t i = 0; i < n; i++) {
        const classify_case *k = &cases[i];
        if (k->need != HL_NEED_CACHE) continue;
        hl_chan *c = make_chan(k->chan, HL_SYNC_DONE);
        hl_position pos = k->pos;
        hl_catchup_classify(&env, k->wepoch, c, &pos);
        long from = hl_catchup_cache_from(&env, k->wepoch, c, pos.cur);
        if (from < 0 || (size_t)from >= c->cache.count) {
            size_t count = c->cache.count;
            free_chan(c);
            fail_msg("%s: classify says CACHE, cache_from says %ld of %zu", k->name, from, count);
        }
        free_chan(c);
    }
}

static void test_catchup_cache_answers_what_classify_sends_to_it(void **state) {
    (void)state;
    check_cache_answers(classify_cases, HL_ARRAY_LEN(classify_cases));
}

/* Cursor "0" under an epoch Redis has lost since ("abc:0", or the "0"
 * part of "abc:0,"): classify sends it to the cache whatever the epoch,
 * so the cache must answer it too (or classify must not send it). */
static void test_catchup_cache_answers_0_of_another_epoch(void **state) {
    (void)state;
    hl_catchup_env env = {EPOCH, TTL, NOW};
    hl_chan *c = make_chan(CH_WHOLE, HL_SYNC_DONE);
    hl_position pos = {{HL_CUR_ALL, {0, 0}}, 0, 0};
    hl_need need = hl_catchup_classify(&env, OTHER, c, &pos);
    long from = hl_catchup_cache_from(&env, OTHER, c, pos.cur);
    size_t count = c->cache.count;
    free_chan(c);
    if (need == HL_NEED_CACHE && (from < 0 || (size_t)from >= count))
        fail_msg("classify says CACHE, cache_from says %ld of %zu", from, count);
}

/* ---- hl_catchup_read_done ---------------------------------------------------- */

/* Streams as holdline_read reports them: {now, exists, length, first,
 * last, max deleted, added}. */
static const hl_stream_state st_held = {NOW, 1, 5, {100, 0}, {104, 0}, {0, 0}, 5};
static const hl_stream_state st_trimmed = {NOW, 1, 5, {100, 0}, {104, 0}, {0, 0}, 50};
static const hl_stream_state st_deleted = {NOW, 1, 4, {100, 0}, {104, 0}, {104, 0}, 5};
static const hl_stream_state st_emptied = {NOW, 1, 0, {0, 0}, {104, 0}, {0, 0}, 5};
static const hl_stream_state st_gone = {NOW, 0, 0, {0, 0}, {0, 0}, {0, 0}, 0};

typedef struct read_case {
    const char *name;
    uint64_t wepoch, read_epoch;
    const hl_stream_state *st;
    int got;
    hl_position pos;
    int missed;
    hl_cur_part after;
    int level;
} read_case;

static const read_case read_cases[] = {
    /* Messages came back: the cursor stays for the delivery to move. */
    {"id, messages held", EPOCH, EPOCH, &st_held, 1, {AT(101, 0), 0, 0}, 0, AT(101, 0), 0},
    {"id, messages, epoch changed",
     OTHER,
     EPOCH,
     &st_held,
     1,
     {AT(101, 0), 0, 0},
     1,
     AT(101, 0),
     0},
    {"id, messages, trimmed", EPOCH, EPOCH, &st_trimmed, 1, {AT(50, 0), 0, 0}, 1, AT(50, 0), 0},
    {"id, messages, one deleted",
     EPOCH,
     EPOCH,
     &st_deleted,
     1,
     {AT(102, 0), 0, 0},
     1,
     AT(102, 0),
     0},
    {"new, messages", EPOCH, EPOCH, &st_held, 1, {NEWC, 0, 0}, 0, NEWC, 0},
    {"0, messages", EPOCH, EPOCH, &st_held, 1, {ALLC, 0, 0}, 0, ALLC, 0},
    {"0, messages, epoch changed", OTHER, EPOCH, &st_held, 1, {ALLC, 0, 0}, 0, ALLC, 0},
    /* Nothing came back. */
    {"id at the last", EPOCH, EPOCH, &st_held, 0, {AT(104, 0), 0, 0}, 0, AT(104, 0), 1},
    {"id ahead of the last: from elsewhere",
     EPOCH,
     EPOCH,
     &st_held,
     0,
     {AT(200, 0), 0, 0},
     1,
     AT(104, 0),
     0},
    {"id, epoch changed", OTHER, EPOCH, &st_held, 0, {AT(101, 0), 0, 1}, 1, AT(104, 0), 0},
    {"id, epoch changed, stream gone",
     OTHER,
     EPOCH,
     &st_gone,
     0,
     {AT(NOW - 5, 0), 0, 0},
     1,
     AT(GONE_HEAD_MS, UINT64_MAX),
     0},
    {"id, stream emptied by a trim",
     EPOCH,
     EPOCH,
     &st_emptied,
     0,
     {AT(102, 0), 0, 0},
     1,
     AT(104, 0),
     0},
    {"id, the entries after it deleted",
     EPOCH,
     EPOCH,
     &st_deleted,
     0,
     {AT(103, 0), 0, 0},
     1,
     AT(104, 0),
     0},
    {"id, stream expired",
     EPOCH,
     EPOCH,
     &st_gone,
     0,
     {AT(NOW - TTL - 1, 0), 0, 0},
     1,
     AT(GONE_HEAD_MS, UINT64_MAX),
     0},
    {"id, stream gone, cursor recent",
     EPOCH,
     EPOCH,
     &st_gone,
     0,
     {AT(NOW - 1000, 0), 0, 0},
     0,
     AT(GONE_HEAD_MS, UINT64_MAX),
     1},
    {"id, stream gone, cursor at Redis's now",
     EPOCH,
     EPOCH,
     &st_gone,
     0,
     {AT(NOW, 3), 0, 0},
     0,
     AT(NOW, 3),
     1},
    {"id, stream gone, cursor from the future",
     EPOCH,
     EPOCH,
     &st_gone,
     0,
     {AT(NOW + 5000, 0), 0, 0},
     1,
     AT(GONE_HEAD_MS, UINT64_MAX),
     0},
    {"new, nothing", EPOCH, EPOCH, &st_held, 0, {NEWC, 0, 0}, 0, AT(104, 0), 1},
    {"new, stream gone",
     EPOCH,
     EPOCH,
     &st_gone,
     0,
     {NEWC, 0, 0},
     0,
     AT(GONE_HEAD_MS, UINT64_MAX),
     1},
    {"new, epoch changed", OTHER, EPOCH, &st_held, 0, {NEWC, 0, 0}, 0, AT(104, 0), 1},
    {"0, stream gone", EPOCH, EPOCH, &st_gone, 0, {ALLC, 0, 0}, 0, AT(GONE_HEAD_MS, UINT64_MAX), 1},
    {"0, stream emptied", EPOCH, EPOCH, &st_emptied, 0, {ALLC, 0, 0}, 0, AT(104, 0), 1},
};

static void test_catchup_read_done_table(void **state) {
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < HL_ARRAY_LEN(read_cases); i++) {
        const read_case *k = &read_cases[i];
        /* Verified before or not, the read verifies it. */
        for (int was = 0; was <= 1; was++) {
            hl_position pos = k->pos;
            pos.verified = was;
            int missed = hl_catchup_read_done(TTL, k->wepoch, k->read_epoch, k->st, k->got, &pos);
            char b1[64], b2[64];
            if (missed != k->missed || !same_part(pos.cur, k->after) || pos.level != k->level ||
                pos.verified != 1) {
                print_error("%s: missed %d, cursor %s, level %d, verified %d; "
                            "want missed %d, cursor %s, level %d, verified 1\n",
                            k->name, missed, show_part(pos.cur, b1, sizeof(b1)), pos.level,
                            pos.verified, k->missed, show_part(k->after, b2, sizeof(b2)), k->level);
                failures++;
            }
        }
    }
    if (failures) fail_msg("%d cases failed", failures);
}

/* ---- Classify, read, classify ------------------------------------------------ */

/* The message a client got from another node has not reached this
 * worker yet: Redis confirms the id, and the client waits instead of
 * reading again and again. */
static void test_catchup_confirmed_cursor_ahead_of_the_worker_waits(void **state) {
    (void)state;
    hl_catchup_env env = {EPOCH, TTL, NOW};
    hl_chan *c = make_chan(CH_BUSY, HL_SYNC_DONE);
    hl_position pos = {at(105, 0), 0, 0};
    assert_int_equal(hl_catchup_classify(&env, EPOCH, c, &pos), HL_NEED_READ);
    hl_stream_state st = st_held;
    st.last = SID(105, 0);
    st.length = st.added = 6;
    assert_int_equal(hl_catchup_read_done(TTL, EPOCH, EPOCH, &st, 0, &pos), 0);
    assert_true(same_part(pos.cur, at(105, 0)));
    assert_int_equal(hl_catchup_classify(&env, EPOCH, c, &pos), HL_NEED_NOTHING);
    /* The message arrives: the cursor is the channel's last. */
    hl_sid dropped;
    assert_true(hl_msgcache_push(&c->cache, hl_msg_new(SID(105, 0), "news", 4, "y", 1), &dropped) >=
                0);
    c->last = SID(105, 0);
    pos.level = 0;
    assert_int_equal(hl_catchup_classify(&env, EPOCH, c, &pos), HL_NEED_NOTHING);
    free_chan(c);
}

/* A cursor from the future is read at once, told it missed, and moved
 * back to where Redis stands, where it is up to date. */
static void test_catchup_future_cursor_is_read_and_moved_back(void **state) {
    (void)state;
    hl_catchup_env env = {EPOCH, TTL, NOW};
    hl_chan *c = make_chan(CH_BUSY, HL_SYNC_DONE);
    hl_position pos = {at(900, 0), 0, 0};
    assert_int_equal(hl_catchup_classify(&env, EPOCH, c, &pos), HL_NEED_READ);
    assert_int_equal(hl_catchup_read_done(TTL, EPOCH, EPOCH, &st_held, 0, &pos), 1);
    assert_true(same_part(pos.cur, at(104, 0)));
    assert_int_equal(pos.level, 0);
    assert_int_equal(hl_catchup_classify(&env, EPOCH, c, &pos), HL_NEED_NOTHING);
    free_chan(c);
}

/* A read that found nothing is not repeated until the channel has news. */
static void test_catchup_level_cursor_is_not_read_twice(void **state) {
    (void)state;
    hl_catchup_env env = {EPOCH, TTL, 0};
    hl_chan *c = make_chan(CH_QUIET, HL_SYNC_DONE);
    /* Ahead of the head, and Redis's clock unknown: a read. */
    hl_position pos = {at(SYNC + 5, 0), 0, 0};
    assert_int_equal(hl_catchup_classify(&env, EPOCH, c, &pos), HL_NEED_READ);
    hl_stream_state st = st_gone;
    st.now_ms = SYNC + 100;
    assert_int_equal(hl_catchup_read_done(TTL, EPOCH, EPOCH, &st, 0, &pos), 0);
    assert_true(pos.level && pos.verified);
    assert_int_equal(hl_catchup_classify(&env, EPOCH, c, &pos), HL_NEED_NOTHING);
    free_chan(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_catchup_classify_table),
        cmocka_unit_test(test_catchup_quiet_channel_reads_a_cursor_past_int64_ms),
        cmocka_unit_test(test_catchup_classify_is_stable_after_a_move),
        cmocka_unit_test(test_catchup_quiet_channel_client_follows_the_moving_head),
        cmocka_unit_test(test_catchup_cache_from_table),
        cmocka_unit_test(test_catchup_cache_answers_what_classify_sends_to_it),
        cmocka_unit_test(test_catchup_cache_answers_0_of_another_epoch),
        cmocka_unit_test(test_catchup_read_done_table),
        cmocka_unit_test(test_catchup_confirmed_cursor_ahead_of_the_worker_waits),
        cmocka_unit_test(test_catchup_future_cursor_is_read_and_moved_back),
        cmocka_unit_test(test_catchup_level_cursor_is_not_read_twice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for core/hl_history.c: the pub/sub framing parser, the Redis
 * Function library text, and the rule that decides "missed". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hl_common.h"
#include "hl_history.h"
#include "hl_rlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *exact_copy(const char *s, size_t n) {
    char *p = malloc(n ? n : 1);
    assert_non_null(p);
    if (n) memcpy(p, s, n);
    return p;
}

/* ---- hl_frame_parse -------------------------------------------------------- */

typedef struct frame_case {
    const char *in;
    size_t len; /* 0: strlen(in) */
    hl_frame_kind kind;
    const char *id;   /* HL_FRAME_ID */
    const char *data; /* what the caller delivers */
    size_t dlen;
} frame_case;

/* One case a line: clang-format would split the concatenated literals. */
// clang-format off
static const frame_case frame_cases[] = {
    {"hello", 0, HL_FRAME_PLAIN, NULL, "hello", 5},
    {"", 0, HL_FRAME_PLAIN, NULL, "", 0},
    {"\x1e" "1-0\nhi", 0, HL_FRAME_ID, "1-0", "hi", 2},
    {"\x1e" "1732300000000-12\n", 0, HL_FRAME_ID, "1732300000000-12", "", 0},
    {"\x1e" "5-5\nline one\nline two", 0, HL_FRAME_ID, "5-5", "line one\nline two", 17},
    {"\x1e" "5-5\n\x1e" "6-6\nx", 0, HL_FRAME_ID, "5-5", "\x1e" "6-6\nx", 6},
    {"\x1e" "18446744073709551615-18446744073709551615\nz", 0, HL_FRAME_ID,
     "18446744073709551615-18446744073709551615", "z", 1},
    {"\x1e" "5-5\na\0b", 8, HL_FRAME_ID, "5-5", "a\0b", 3},
    /* Framed-looking but not frames: delivered whole, as plain. */
    {"\x1e", 0, HL_FRAME_BAD, NULL, "\x1e", 1},
    {"\x1e\n", 0, HL_FRAME_BAD, NULL, "\x1e\n", 2},
    {"\x1e" "1-0", 0, HL_FRAME_BAD, NULL, "\x1e" "1-0", 4},
    {"\x1e" "1-0 \nx", 0, HL_FRAME_BAD, NULL, "\x1e" "1-0 \nx", 7},
    {"\x1e" "abc\nx", 0, HL_FRAME_BAD, NULL, "\x1e" "abc\nx", 6},
    {"\x1e" "18446744073709551616-0\nx", 0, HL_FRAME_BAD, NULL,
     "\x1e" "18446744073709551616-0\nx", 25},
    /* The newline must come within an id's length. */
    {"\x1e" "111111111111111111111111111111111111111111111\nx", 0, HL_FRAME_BAD, NULL,
     "\x1e" "111111111111111111111111111111111111111111111\nx", 48},
    {"x\x1e" "1-0\ny", 0, HL_FRAME_PLAIN, NULL, "x\x1e" "1-0\ny", 7},
};
// clang-format on

static void test_history_frame_parse_table(void **state) {
    (void)state;
    for (size_t i = 0; i < HL_ARRAY_LEN(frame_cases); i++) {
        const frame_case *k = &frame_cases[i];
        size_t len = k->len ? k->len : strlen(k->in);
        char *in = exact_copy(k->in, len);
        hl_sid id = {0, 0};
        const char *data = NULL;
        size_t dlen = 99;
        hl_frame_kind kind = hl_frame_parse(in, len, &id, &data, &dlen);
        if (kind != k->kind) fail_msg("case %zu: kind %d, want %d", i, kind, k->kind);
        assert_int_equal(dlen, k->dlen);
        assert_memory_equal(data, k->data, dlen);
        assert_true(data >= in && data + dlen <= in + len);
        if (k->id) {
            hl_sid want;
            assert_int_equal(hl_sid_parse(k->id, strlen(k->id), &want), HL_OK);
            assert_int_equal(hl_sid_cmp(id, want), 0);
        }
        free(in);
    }
}

static void test_history_frame_parse_random_input(void **state) {
    (void)state;
    srand(11);
    for (int round = 0; round < 20000; round++) {
        size_t len = (size_t)(rand() % 60);
        char *s = malloc(len ? len : 1);
        assert_non_null(s);
        for (size_t i = 0; i < len; i++) {
            int r = rand() % 16;
            s[i] = r < 10    ? (char)('0' + r)
                   : r == 10 ? '-'
                   : r == 11 ? '\n'
                             : (char)(rand() & 0xff);
        }
        if (len > 0 && round % 2) s[0] = 0x1e;
        hl_sid id;
        const char *data;
        size_t dlen;
        hl_frame_parse(s, len, &id, &data, &dlen);
        assert_true(data >= s && data + dlen <= s + len);
        free(s);
    }
}

/* ---- The library ------------------------------------------------------------ */

static void test_history_library_bakes_in_length_and_ttl(void **state) {
    (void)state;
    hl_buf b;
    hl_buf_init(&b);
    hl_rlib_source(&b, 1234, 3600000, 0);
    assert_false(b.oom);
    assert_int_equal(strncmp(b.data, "#!lua name=holdline\n", 20), 0);
    assert_non_null(strstr(b.data, "local MAXLEN = 1234\n"));
    assert_non_null(strstr(b.data, "local TTL_MS = 3600000\n"));
    assert_non_null(strstr(b.data, "register_function('holdline_publish'"));
    assert_non_null(strstr(b.data, "register_function('holdline_read'"));
    /* The frame marker is written as Lua's decimal escape of 0x1E. */
    assert_non_null(strstr(b.data, "'\\030' .. id .. '\\n'"));
    assert_non_null(strstr(b.data, "local PUBCMD = 'PUBLISH'\n"));
    /* The brace check comes before the first write. */
    const char *check = strstr(b.data, "string.find(channel, '[{}]')");
    assert_non_null(check);
    assert_true(check < strstr(b.data, "redis.call('XADD'"));
    assert_true(check < strstr(b.data, "redis.call('GET', idem)"));
    hl_buf_free(&b);
    /* Cluster mode announces on the shard channel. */
    hl_buf_init(&b);
    hl_rlib_source(&b, 1, 1000, 1);
    assert_non_null(strstr(b.data, "local PUBCMD = 'SPUBLISH'\n"));
    assert_null(strstr(b.data, "'PUBLISH'"));
    hl_buf_free(&b);
}

/* ---- Head and missed ---------------------------------------------------------- */

static hl_sid S(uint64_t ms, uint64_t seq) {
    return (hl_sid){ms, seq};
}

static void test_history_head_of_a_missing_stream_sorts_before_anything_new(void **state) {
    (void)state;
    hl_stream_state st = {.now_ms = 5000, .exists = 0};
    hl_sid h = hl_history_head(&st);
    assert_int_equal(hl_sid_cmp(h, S(4999, UINT64_MAX)), 0);
    assert_true(hl_sid_cmp(h, S(5000, 0)) < 0);
    assert_true(hl_sid_cmp(h, S(4999, 7)) > 0);
    st.exists = 1;
    st.last = S(42, 1);
    assert_int_equal(hl_sid_cmp(hl_history_head(&st), S(42, 1)), 0);
}

#define TTL 60000 /* ms */

typedef struct missed_case {
    const char *name;
    hl_stream_state st;
    hl_sid at;
    int missed;
} missed_case;

static const missed_case missed_cases[] = {
    {"missing stream, recent cursor", {.now_ms = 100000, .exists = 0}, {99000, 0}, 0},
    {"missing stream, cursor a TTL old", {.now_ms = 100000, .exists = 0}, {40000, 0}, 1},
    {"missing stream, cursor from the future", {.now_ms = 100000, .exists = 0}, {100001, 0}, 1},
    {"missing stream, synthetic head", {.now_ms = 100000, .exists = 0}, {99999, UINT64_MAX}, 0},
    {"at the last id", {100000, 1, 10, {90000, 0}, {99000, 0}, {0, 0}, 10}, {99000, 0}, 0},
    {"behind, nothing removed", {100000, 1, 10, {90000, 0}, {99000, 0}, {0, 0}, 10}, {95000, 0}, 0},
    {"after the last id", {100000, 1, 10, {90000, 0}, {99000, 0}, {0, 0}, 10}, {99000, 1}, 1},
    {"huge id", {100000, 1, 10, {90000, 0}, {99000, 0}, {0, 0}, 10}, {UINT64_MAX, 0}, 1},
    {"XDEL after the cursor",
     {100000, 1, 9, {90000, 0}, {99000, 0}, {96000, 0}, 10},
     {95000, 0},
     1},
    {"XDEL before the cursor",
     {100000, 1, 9, {90000, 0}, {99000, 0}, {94000, 0}, 10},
     {95000, 0},
     0},
    {"trimmed, cursor before the first held",
     {100000, 1, 100, {90000, 0}, {99000, 0}, {0, 0}, 600},
     {80000, 0},
     1},
    {"trimmed, cursor at the first held",
     {100000, 1, 100, {90000, 0}, {99000, 0}, {0, 0}, 600},
     {90000, 0},
     0},
    {"trimmed, cursor inside what is held",
     {100000, 1, 100, {90000, 0}, {99000, 0}, {0, 0}, 600},
     {91000, 3},
     0},
    {"new stream soon after the cursor",
     {100000, 1, 3, {95000, 0}, {99000, 0}, {0, 0}, 3},
     {94000, 0},
     0},
    {"new stream a TTL after the cursor",
     {100000, 1, 3, {95000, 0}, {99000, 0}, {0, 0}, 3},
     {35000, 0},
     1},
    {"emptied stream (XTRIM MAXLEN 0)",
     {100000, 1, 0, {0, 0}, {99000, 0}, {0, 0}, 3},
     {95000, 0},
     1},
    {"cursor 0-0 on a fresh stream", {100000, 1, 3, {95000, 0}, {99000, 0}, {0, 0}, 3}, {0, 0}, 1},
    /* Found by fuzz_frame: ids past INT64_MAX ms (an explicit XADD id can
     * be anything) once overflowed a signed subtraction. */
    {"first id past INT64_MAX ms",
     {100000, 1, 2, {UINT64_MAX - 5, 0}, {UINT64_MAX, 0}, {0, 0}, 2},
     {1, 0},
     1},
    {"first id just after a cursor past INT64_MAX ms",
     {100000, 1, 2, {UINT64_MAX - 5, 0}, {UINT64_MAX, 0}, {0, 0}, 2},
     {UINT64_MAX - 6, 0},
     0},
};

static void test_history_missed_table(void **state) {
    (void)state;
    for (size_t i = 0; i < HL_ARRAY_LEN(missed_cases); i++) {
        const missed_case *k = &missed_cases[i];
        int got = hl_history_missed(&k->st, k->at, TTL);
        if (got != k->missed) fail_msg("%s: missed=%d, want %d", k->name, got, k->missed);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_history_frame_parse_table),
        cmocka_unit_test(test_history_frame_parse_random_input),
        cmocka_unit_test(test_history_library_bakes_in_length_and_ttl),
        cmocka_unit_test(test_history_head_of_a_missing_stream_sorts_before_anything_new),
        cmocka_unit_test(test_history_missed_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for core/hl_cursor.c: stream ids and the cursors clients
 * send back, hostile ones included. Inputs are copied into blocks of
 * exactly their length, so with ASan reading one byte too far fails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hl_common.h"
#include "hl_cursor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *exact_copy(const char *s, size_t n) {
    char *p = malloc(n ? n : 1);
    assert_non_null(p);
    if (n) memcpy(p, s, n);
    return p;
}

static int sid_parse_str(const char *s, hl_sid *out) {
    size_t n = strlen(s);
    char *p = exact_copy(s, n);
    int rc = hl_sid_parse(p, n, out);
    free(p);
    return rc;
}

/* ---- hl_sid ------------------------------------------------------------ */

static const struct {
    const char *in;
    int ok;
    uint64_t ms, seq;
} sid_cases[] = {
    {"0-0", 1, 0, 0},
    {"1-0", 1, 1, 0},
    {"1732300000000-5", 1, 1732300000000ULL, 5},
    {"18446744073709551615-18446744073709551615", 1, UINT64_MAX, UINT64_MAX},
    {"007-01", 1, 7, 1},
    {"", 0, 0, 0},
    {"1", 0, 0, 0},
    {"1-", 0, 0, 0},
    {"-1", 0, 0, 0},
    {"-", 0, 0, 0},
    {"1-2-3", 0, 0, 0},
    {"a-1", 0, 0, 0},
    {"1-b", 0, 0, 0},
    {"+1-2", 0, 0, 0},
    {"1-+2", 0, 0, 0},
    {" 1-2", 0, 0, 0},
    {"1-2 ", 0, 0, 0},
    {"1 -2", 0, 0, 0},
    {"0x10-0", 0, 0, 0},
    {"1.5-0", 0, 0, 0},
    {"18446744073709551616-0", 0, 0, 0},  /* 2^64 */
    {"0-18446744073709551616", 0, 0, 0},  /* 2^64 */
    {"99999999999999999999-0", 0, 0, 0},  /* 20 digits, too big */
    {"000000000000000000001-0", 0, 0, 0}, /* 21 digits */
    {"1-999999999999999999999999999999", 0, 0, 0},
    {"1_0", 0, 0, 0},
    {"1:0", 0, 0, 0},
};

static void test_cursor_sid_parse_table(void **state) {
    (void)state;
    for (size_t i = 0; i < HL_ARRAY_LEN(sid_cases); i++) {
        hl_sid id = {42, 42};
        int rc = sid_parse_str(sid_cases[i].in, &id);
        if ((rc == HL_OK) != sid_cases[i].ok)
            fail_msg("'%s': parse %s, want %s", sid_cases[i].in, rc == HL_OK ? "ok" : "error",
                     sid_cases[i].ok ? "ok" : "error");
        if (sid_cases[i].ok) {
            assert_true(id.ms == sid_cases[i].ms);
            assert_true(id.seq == sid_cases[i].seq);
        } else {
            /* A failed parse leaves the output alone. */
            assert_true(id.ms == 42 && id.seq == 42);
        }
    }
}

static void test_cursor_sid_a_nul_inside_is_not_a_digit(void **state) {
    (void)state;
    hl_sid id;
    assert_int_equal(hl_sid_parse("1\0-2", 4, &id), HL_ERR);
    assert_int_equal(hl_sid_parse("1-2\0", 4, &id), HL_ERR);
}

static void test_cursor_sid_cmp_orders_by_ms_then_seq(void **state) {
    (void)state;
    hl_sid a = {1, 5}, b = {2, 0}, c = {2, 1}, m = {UINT64_MAX, UINT64_MAX};
    assert_true(hl_sid_cmp(a, b) < 0);
    assert_true(hl_sid_cmp(b, a) > 0);
    assert_true(hl_sid_cmp(b, c) < 0);
    assert_true(hl_sid_cmp(c, c) == 0);
    assert_true(hl_sid_cmp(c, m) < 0);
}

static void test_cursor_sid_format_round_trips(void **state) {
    (void)state;
    const hl_sid ids[] = {{0, 0}, {1, 0}, {1732300000000ULL, 7}, {UINT64_MAX, UINT64_MAX}};
    for (size_t i = 0; i < HL_ARRAY_LEN(ids); i++) {
        char buf[HL_SID_MAXLEN + 1];
        size_t n = hl_sid_format(ids[i], buf);
        assert_int_equal(n, strlen(buf));
        assert_true(n <= HL_SID_MAXLEN);
        hl_sid back;
        assert_int_equal(hl_sid_parse(buf, n, &back), HL_OK);
        assert_int_equal(hl_sid_cmp(back, ids[i]), 0);
    }
    char buf[HL_SID_MAXLEN + 1];
    hl_sid_format((hl_sid){UINT64_MAX, UINT64_MAX}, buf);
    assert_string_equal(buf, "18446744073709551615-18446744073709551615");
}

/* ---- hl_cursor_parse ------------------------------------------------------ */

/* Parts in a compact text form for the table: "n" NEW, "a" ALL, or an id. */
typedef struct cursor_case {
    const char *in;
    size_t n; /* channels in the poll */
    int ok;
    uint64_t epoch;
    const char *parts[3]; /* expected, when ok */
    const char *words;    /* in the error, when not ok */
} cursor_case;

static const cursor_case cursor_cases[] = {
    {"", 1, 1, 0, {"n"}, NULL},
    {"", 3, 1, 0, {"n", "n", "n"}, NULL},
    {"0", 1, 1, 0, {"a"}, NULL},
    {"0", 3, 1, 0, {"a", "a", "a"}, NULL},
    {"ab12:1-0", 1, 1, 0xab12, {"1-0"}, NULL},
    {"AB12:1-0", 1, 1, 0xab12, {"1-0"}, NULL},
    {"f:1-0,2-3", 2, 1, 0xf, {"1-0", "2-3"}, NULL},
    {"f:0,2-3,", 3, 1, 0xf, {"a", "2-3", "n"}, NULL},
    {"f:,,", 3, 1, 0xf, {"n", "n", "n"}, NULL},
    {"f:", 1, 1, 0xf, {"n"}, NULL},
    {"ffffffffffffffff:1-1", 1, 1, UINT64_MAX, {"1-1"}, NULL},
    {"f:18446744073709551615-18446744073709551615",
     1,
     1,
     0xf,
     {"18446744073709551615-18446744073709551615"},
     NULL},
    /* Wrong number of parts. */
    {"f:1-0,2-0", 1, 0, 0, {NULL}, "more parts"},
    {"f:1-0", 2, 0, 0, {NULL}, "1 parts but the poll has 2"},
    {"f:1-0,", 1, 0, 0, {NULL}, "more parts"},
    {"f:,", 3, 0, 0, {NULL}, "2 parts"},
    /* Wrong separators. */
    {"f;1-0", 1, 0, 0, {NULL}, "a cursor is"},
    {"f:1-0;2-0", 2, 0, 0, {NULL}, "not a message id"},
    {"f:1-0:2-0", 2, 0, 0, {NULL}, "not a message id"},
    {"f:1_0", 1, 0, 0, {NULL}, "not a message id"},
    {"f::1-0", 1, 0, 0, {NULL}, "not a message id"},
    {"f:1-0 ,2-0", 2, 0, 0, {NULL}, "not a message id"},
    /* Bad epochs. */
    {":1-0", 1, 0, 0, {NULL}, "epoch"},
    {"zz:1-0", 1, 0, 0, {NULL}, "epoch"},
    {"-1:1-0", 1, 0, 0, {NULL}, "epoch"},
    {"12345678901234567:1-0", 1, 0, 0, {NULL}, "epoch"},
    {"0x1f:1-0", 1, 0, 0, {NULL}, "epoch"},
    /* Bad ids and huge numbers. */
    {"f:1-", 1, 0, 0, {NULL}, "not a message id"},
    {"f:-1", 1, 0, 0, {NULL}, "not a message id"},
    {"f:1-2-3", 1, 0, 0, {NULL}, "not a message id"},
    {"f:1", 1, 0, 0, {NULL}, "not a message id"},
    {"f:00", 1, 0, 0, {NULL}, "not a message id"},
    {"f:18446744073709551616-0", 1, 0, 0, {NULL}, "not a message id"},
    {"f:123456789012345678901234567890-0", 1, 0, 0, {NULL}, "not a message id"},
    {"f:1-0,1-0,999999999999999999999-1", 3, 0, 0, {NULL}, "part 3"},
    /* Plain junk. */
    {"00", 1, 0, 0, {NULL}, "a cursor is"},
    {"1-0", 1, 0, 0, {NULL}, "a cursor is"},
    {"abc", 1, 0, 0, {NULL}, "a cursor is"},
    {" ", 1, 0, 0, {NULL}, "a cursor is"},
};

static void check_part(const cursor_case *k, size_t i, const hl_cur_part *p) {
    const char *want = k->parts[i];
    if (strcmp(want, "n") == 0) {
        if (p->kind != HL_CUR_NEW) fail_msg("'%s' part %zu: want NEW", k->in, i);
    } else if (strcmp(want, "a") == 0) {
        if (p->kind != HL_CUR_ALL) fail_msg("'%s' part %zu: want ALL", k->in, i);
    } else {
        hl_sid id;
        assert_int_equal(hl_sid_parse(want, strlen(want), &id), HL_OK);
        if (p->kind != HL_CUR_AT || hl_sid_cmp(p->id, id) != 0)
            fail_msg("'%s' part %zu: want %s", k->in, i, want);
    }
}

static void test_cursor_parse_table(void **state) {
    (void)state;
    for (size_t c = 0; c < HL_ARRAY_LEN(cursor_cases); c++) {
        const cursor_case *k = &cursor_cases[c];
        size_t len = strlen(k->in);
        char *in = exact_copy(k->in, len);
        hl_cur_part parts[3];
        uint64_t epoch = 99;
        char err[128] = "";
        int rc = hl_cursor_parse(in, len, k->n, &epoch, parts, err, sizeof(err));
        free(in);
        if ((rc == HL_OK) != k->ok)
            fail_msg("'%s' on %zu channels: %s (%s), want %s", k->in, k->n,
                     rc == HL_OK ? "ok" : "error", err, k->ok ? "ok" : "error");
        if (k->ok) {
            assert_true(epoch == k->epoch);
            for (size_t i = 0; i < k->n; i++)
                check_part(k, i, &parts[i]);
        } else if (strstr(err, k->words) == NULL) {
            fail_msg("'%s': error '%s' lacks '%s'", k->in, err, k->words);
        }
    }
}

static void test_cursor_format_and_parse_round_trip(void **state) {
    (void)state;
    const hl_cur_part sets[][3] = {
        {{HL_CUR_AT, {5, 1}}, {HL_CUR_AT, {6, 0}}, {HL_CUR_AT, {UINT64_MAX, UINT64_MAX}}},
        {{HL_CUR_ALL, {0, 0}}, {HL_CUR_AT, {6, 0}}, {HL_CUR_NEW, {0, 0}}},
        {{HL_CUR_NEW, {0, 0}}, {HL_CUR_NEW, {0, 0}}, {HL_CUR_AT, {1, 1}}},
        {{HL_CUR_ALL, {0, 0}}, {HL_CUR_NEW, {0, 0}}, {HL_CUR_ALL, {0, 0}}},
    };
    for (size_t s = 0; s < HL_ARRAY_LEN(sets); s++) {
        for (size_t n = 1; n <= 3; n++) {
            hl_buf b;
            hl_buf_init(&b);
            hl_cursor_format(&b, 0x1234abcdULL, sets[s], n);
            hl_cur_part back[3];
            uint64_t epoch;
            char err[128];
            if (hl_cursor_parse(b.data ? b.data : "", b.len, n, &epoch, back, err, sizeof(err)) !=
                HL_OK)
                fail_msg("set %zu/%zu: '%s' does not parse: %s", s, n, b.data, err);
            for (size_t i = 0; i < n; i++) {
                assert_int_equal(back[i].kind, sets[s][i].kind);
                if (back[i].kind == HL_CUR_AT)
                    assert_int_equal(hl_sid_cmp(back[i].id, sets[s][i].id), 0);
            }
            hl_buf_free(&b);
        }
    }
}

static void test_cursor_format_short_forms(void **state) {
    (void)state;
    hl_cur_part news[2] = {{HL_CUR_NEW, {0, 0}}, {HL_CUR_NEW, {0, 0}}};
    hl_cur_part alls[2] = {{HL_CUR_ALL, {0, 0}}, {HL_CUR_ALL, {0, 0}}};
    hl_cur_part one[1] = {{HL_CUR_AT, {1732300000000ULL, 2}}};
    hl_buf b;
    hl_buf_init(&b);
    hl_cursor_format(&b, 0xabc, news, 2);
    assert_int_equal(b.len, 0);
    hl_cursor_format(&b, 0xabc, alls, 2);
    assert_string_equal(b.data, "0");
    hl_buf_free(&b);
    hl_cursor_format(&b, 0xabc, one, 1);
    assert_string_equal(b.data, "abc:1732300000000-2");
    hl_buf_free(&b);
}

/* Random bytes and random mixes of cursor characters: never a crash,
 * never an over-read, and whatever parses formats back to something that
 * parses the same. */
static void test_cursor_parse_random_input(void **state) {
    (void)state;
    static const char alphabet[] = "0123456789abcdefABCDEF:,-;x \x1e\xff";
    srand(7);
    for (int round = 0; round < 20000; round++) {
        size_t len = (size_t)(rand() % 64);
        char *s = malloc(len ? len : 1);
        assert_non_null(s);
        for (size_t i = 0; i < len; i++)
            s[i] = round % 2 ? (char)(rand() & 0xff) : alphabet[rand() % (sizeof(alphabet) - 1)];
        size_t n = 1 + (size_t)(rand() % 3);
        hl_cur_part parts[3], again[3];
        uint64_t epoch, epoch2;
        char err[128];
        if (hl_cursor_parse(s, len, n, &epoch, parts, err, sizeof(err)) == HL_OK) {
            hl_buf b;
            hl_buf_init(&b);
            hl_cursor_format(&b, epoch, parts, n);
            assert_int_equal(
                hl_cursor_parse(b.data ? b.data : "", b.len, n, &epoch2, again, err, sizeof(err)),
                HL_OK);
            for (size_t i = 0; i < n; i++) {
                assert_int_equal(again[i].kind, parts[i].kind);
                if (parts[i].kind == HL_CUR_AT)
                    assert_int_equal(hl_sid_cmp(again[i].id, parts[i].id), 0);
            }
            hl_buf_free(&b);
        }
        free(s);
    }
}

static void test_cursor_epoch_parse_table(void **state) {
    (void)state;
    uint64_t e;
    assert_int_equal(hl_epoch_parse("1", 1, &e), HL_OK);
    assert_true(e == 1);
    assert_int_equal(hl_epoch_parse("ffffffffffffffff", 16, &e), HL_OK);
    assert_true(e == UINT64_MAX);
    assert_int_equal(hl_epoch_parse("", 0, &e), HL_ERR);
    assert_int_equal(hl_epoch_parse("10000000000000000", 17, &e), HL_ERR);
    assert_int_equal(hl_epoch_parse("g", 1, &e), HL_ERR);
    assert_int_equal(hl_epoch_parse("1\0", 2, &e), HL_ERR);
}

/* Cluster mode: one epoch per slot, one per cursor. */
static void test_cursor_epoch_combine(void **state) {
    (void)state;
    uint64_t one[] = {0x2a};
    assert_true(hl_epoch_combine(one, 1) == 0x2a);
    uint64_t same[] = {7, 7, 7};
    assert_true(hl_epoch_combine(same, 3) == 7);
    uint64_t ab[] = {7, 8}, ba[] = {8, 7};
    uint64_t h = hl_epoch_combine(ab, 2);
    assert_true(h != 0 && h != 7 && h != 8);
    assert_true(h == hl_epoch_combine(ab, 2));
    assert_true(h != hl_epoch_combine(ba, 2)); /* the poll's order counts */
    uint64_t unknown[] = {7, 0};
    assert_true(hl_epoch_combine(unknown, 2) == 0);
    assert_true(hl_epoch_combine(NULL, 0) == 0);
    /* One slot's new epoch changes the combination. */
    uint64_t later[] = {7, 9};
    assert_true(hl_epoch_combine(later, 2) != h);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cursor_sid_parse_table),
        cmocka_unit_test(test_cursor_sid_a_nul_inside_is_not_a_digit),
        cmocka_unit_test(test_cursor_sid_cmp_orders_by_ms_then_seq),
        cmocka_unit_test(test_cursor_sid_format_round_trips),
        cmocka_unit_test(test_cursor_parse_table),
        cmocka_unit_test(test_cursor_format_and_parse_round_trip),
        cmocka_unit_test(test_cursor_format_short_forms),
        cmocka_unit_test(test_cursor_parse_random_input),
        cmocka_unit_test(test_cursor_epoch_parse_table),
        cmocka_unit_test(test_cursor_epoch_combine),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for core/store/hl_rreply.c: reading Redis's replies. The
 * replies are built from RESP text by hiredis's own reader, as they are
 * on a connection, so every shape Redis (or something pretending to be
 * it) can send is one table row. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hl_common.h"
#include "hl_rreply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Building replies ---------------------------------------------------- */

/* The tables write replies in a short notation, tokens split by spaces:
 *   $text  bulk string ("$" alone: empty)   +text  status   -text  error
 *   :n     integer   _  nil   _a  nil array   [ ... ]  array
 * In text, '~' stands for a space. */
static size_t skip_token(char **tok, size_t n, size_t i) {
    if (strcmp(tok[i], "[") != 0) return i + 1;
    int depth = 0;
    do {
        assert_true(i < n);
        if (strcmp(tok[i], "[") == 0) depth++;
        if (strcmp(tok[i], "]") == 0) depth--;
        i++;
    } while (depth > 0);
    return i;
}

static size_t emit(hl_buf *out, char **tok, size_t n, size_t i) {
    assert_true(i < n);
    const char *t = tok[i];
    if (strcmp(t, "[") == 0) {
        size_t count = 0, j = i + 1;
        for (;;) {
            if (j >= n) fail_msg("an unclosed [");
            if (strcmp(tok[j], "]") == 0) break;
            j = skip_token(tok, n, j);
            count++;
        }
        hl_buf_printf(out, "*%zu\r\n", count);
        j = i + 1;
        while (strcmp(tok[j], "]") != 0)
            j = emit(out, tok, n, j);
        return j + 1;
    }
    if (strcmp(t, "_") == 0) {
        hl_buf_puts(out, "$-1\r\n");
    } else if (strcmp(t, "_a") == 0) {
        hl_buf_puts(out, "*-1\r\n");
    } else if (t[0] == ':') {
        hl_buf_printf(out, "%s\r\n", t);
    } else {
        char text[256];
        size_t len = strlen(t + 1);
        assert_true(len < sizeof(text));
        for (size_t k = 0; k <= len; k++)
            text[k] = t[1 + k] == '~' ? ' ' : t[1 + k];
        if (t[0] == '$')
            hl_buf_printf(out, "$%zu\r\n%s\r\n", len, text);
        else if (t[0] == '+' || t[0] == '-')
            hl_buf_printf(out, "%c%s\r\n", t[0], text);
        else
            fail_msg("bad token '%s'", t);
    }
    return i + 1;
}

/* Parses RESP text into a reply; the caller frees it. */
static redisReply *from_resp(const char *text, size_t len) {
    redisReader *rd = redisReaderCreate();
    assert_non_null(rd);
    assert_int_equal(redisReaderFeed(rd, text, len), REDIS_OK);
    void *reply = NULL;
    assert_int_equal(redisReaderGetReply(rd, &reply), REDIS_OK);
    if (reply == NULL) fail_msg("incomplete RESP: '%s'", text);
    redisReaderFree(rd);
    return reply;
}

/* A reply from the notation above, or NULL for the text "NULL" (what
 * hiredis hands a callback when the connection is gone). */
static redisReply *reply_of(const char *notation) {
    if (strcmp(notation, "NULL") == 0) return NULL;
    char copy[1024], *tok[256];
    size_t n = 0;
    assert_true(strlen(notation) < sizeof(copy));
    strcpy(copy, notation);
    for (char *save, *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        assert_true(n < HL_ARRAY_LEN(tok));
        tok[n++] = t;
    }
    hl_buf out;
    hl_buf_init(&out);
    size_t end = emit(&out, tok, n, 0);
    if (end != n) fail_msg("'%s' is more than one reply", notation);
    assert_false(out.oom);
    redisReply *r = from_resp(out.data, out.len);
    hl_buf_free(&out);
    return r;
}

static void free_reply(redisReply *r) {
    if (r) freeReplyObject(r);
}

static void test_rreply_notation_builds_what_resp_says(void **state) {
    (void)state;
    redisReply *r = reply_of("[ $abc :-7 [ ] _ _a +OK -ERR~x $ ]");
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 8);
    assert_int_equal(r->element[0]->type, REDIS_REPLY_STRING);
    assert_string_equal(r->element[0]->str, "abc");
    assert_int_equal(r->element[1]->integer, -7);
    assert_int_equal(r->element[2]->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->element[2]->elements, 0);
    assert_int_equal(r->element[3]->type, REDIS_REPLY_NIL);
    assert_int_equal(r->element[4]->type, REDIS_REPLY_NIL);
    assert_int_equal(r->element[5]->type, REDIS_REPLY_STATUS);
    assert_int_equal(r->element[6]->type, REDIS_REPLY_ERROR);
    assert_string_equal(r->element[6]->str, "ERR x");
    assert_int_equal(r->element[7]->type, REDIS_REPLY_STRING);
    assert_int_equal(r->element[7]->len, 0);
    free_reply(r);
}

/* ---- hl_rreply_epoch ---------------------------------------------------- */

static uint64_t epoch_of(const char *s, size_t n) {
    char *p = malloc(n ? n : 1);
    assert_non_null(p);
    if (n) memcpy(p, s, n);
    uint64_t e = hl_rreply_epoch(p, n);
    free(p);
    return e;
}

static void test_rreply_epoch_reads_ours_as_hex(void **state) {
    (void)state;
    assert_true(epoch_of("abc", 3) == 0xabc);
    assert_true(epoch_of("ABC", 3) == 0xabc);
    assert_true(epoch_of("1", 1) == 1);
    assert_true(epoch_of("ffffffffffffffff", 16) == UINT64_MAX);
    assert_true(epoch_of("3f9a0c11d2e4b577", 16) == 0x3f9a0c11d2e4b577ULL);
}

/* Someone set the key by hand: every node derives the same nonzero
 * epoch from the same text, and different texts give different ones. */
static void test_rreply_epoch_of_other_text_is_stable_and_nonzero(void **state) {
    (void)state;
    static const struct {
        const char *s;
        size_t n;
    } texts[] = {
        {"hello", 5}, {"0", 1}, /* hex, but 0 means "no epoch" */
        {"00", 2},    {"", 0},     {"g", 1},        {"10000000000000000", 17}, /* 17 hex digits */
        {"abc\n", 4}, {"ab c", 4}, {" abc", 4},     {"-1", 2},
        {"0xabc", 5}, {"a\0b", 3}, {"\xff\xfe", 2},
    };
    uint64_t seen[HL_ARRAY_LEN(texts)];
    for (size_t i = 0; i < HL_ARRAY_LEN(texts); i++) {
        uint64_t e = epoch_of(texts[i].s, texts[i].n);
        if (e == 0) fail_msg("text %zu: epoch 0", i);
        assert_true(epoch_of(texts[i].s, texts[i].n) == e);
        for (size_t j = 0; j < i; j++)
            if (seen[j] == e) fail_msg("texts %zu and %zu: the same epoch", j, i);
        seen[i] = e;
    }
    /* Not read as the hex they resemble. */
    assert_true(epoch_of("abc\n", 4) != 0xabc);
    assert_true(epoch_of(" abc", 4) != 0xabc);
}

/* ---- hl_rreply_read (holdline_read) ----------------------------------------- */

typedef struct read_case {
    const char *name;
    const char *reply;
    int ok;
    uint64_t epoch; /* when ok */
    hl_stream_state st;
    long entries; /* -1: NULL */
} read_case;

#define FULL_ENTRIES "[ [ $1-0 [ $d $hi ] ] [ $5-3 [ $d $yo ] ] ]"

static const read_case read_cases[] = {
    {"a stream that does not exist",
     "[ $abc :1700000000000 ]",
     1,
     0xabc,
     {1700000000000LL, 0, 0, {0, 0}, {0, 0}, {0, 0}, 0},
     -1},
    {"a full reply",
     "[ $abc :1700000000000 :2 $1-0 $5-3 $0-0 :9 " FULL_ENTRIES " ]",
     1,
     0xabc,
     {1700000000000LL, 1, 2, {1, 0}, {5, 3}, {0, 0}, 9},
     2},
    {"a full reply, no entries, something deleted",
     "[ $abc :1700000000000 :0 $0-0 $5-3 $5-3 :4 [ ] ]",
     1,
     0xabc,
     {1700000000000LL, 1, 0, {0, 0}, {5, 3}, {5, 3}, 4},
     0},
    {"huge ids",
     "[ $ffffffffffffffff :1 :1 $18446744073709551615-18446744073709551615 "
     "$18446744073709551615-18446744073709551615 $0-0 :1 [ ] ]",
     1,
     UINT64_MAX,
     {1, 1, 1, {UINT64_MAX, UINT64_MAX}, {UINT64_MAX, UINT64_MAX}, {0, 0}, 1},
     0},
    /* Not such a reply at all. */
    {"NULL", "NULL", 0, 0, {0}, -1},
    {"nil", "_", 0, 0, {0}, -1},
    {"nil array", "_a", 0, 0, {0}, -1},
    {"a bulk string", "$abc", 0, 0, {0}, -1},
    {"an integer", ":2", 0, 0, {0}, -1},
    {"an error", "-ERR~Function~not~found", 0, 0, {0}, -1},
    {"a status", "+OK", 0, 0, {0}, -1},
    /* Wrong counts. */
    {"no elements", "[ ]", 0, 0, {0}, -1},
    {"1 element", "[ $abc ]", 0, 0, {0}, -1},
    {"3 elements", "[ $abc :1 :2 ]", 0, 0, {0}, -1},
    {"7 elements", "[ $abc :1 :2 $1-0 $5-3 $0-0 :9 ]", 0, 0, {0}, -1},
    {"9 elements", "[ $abc :1 :2 $1-0 $5-3 $0-0 :9 [ ] :0 ]", 0, 0, {0}, -1},
    /* Wrong types. */
    {"epoch an integer", "[ :1 :1 ]", 0, 0, {0}, -1},
    {"epoch nil", "[ _ :1 ]", 0, 0, {0}, -1},
    {"epoch a status", "[ +abc :1 ]", 0, 0, {0}, -1},
    {"now a string", "[ $abc $1700000000000 ]", 0, 0, {0}, -1},
    {"now nil", "[ $abc _ ]", 0, 0, {0}, -1},
    {"length a string", "[ $abc :1 $2 $1-0 $5-3 $0-0 :9 [ ] ]", 0, 0, {0}, -1},
    {"added a string", "[ $abc :1 :2 $1-0 $5-3 $0-0 $9 [ ] ]", 0, 0, {0}, -1},
    {"entries nil", "[ $abc :1 :2 $1-0 $5-3 $0-0 :9 _ ]", 0, 0, {0}, -1},
    {"entries a nil array", "[ $abc :1 :2 $1-0 $5-3 $0-0 :9 _a ]", 0, 0, {0}, -1},
    {"entries an integer", "[ $abc :1 :2 $1-0 $5-3 $0-0 :9 :0 ]", 0, 0, {0}, -1},
    {"entries a string", "[ $abc :1 :2 $1-0 $5-3 $0-0 :9 $x ]", 0, 0, {0}, -1},
    /* Bad ids. */
    {"first not an id", "[ $abc :1 :2 $abc $5-3 $0-0 :9 [ ] ]", 0, 0, {0}, -1},
    {"first an integer", "[ $abc :1 :2 :1 $5-3 $0-0 :9 [ ] ]", 0, 0, {0}, -1},
    {"first nil", "[ $abc :1 :2 _ $5-3 $0-0 :9 [ ] ]", 0, 0, {0}, -1},
    {"last cut short", "[ $abc :1 :2 $1-0 $5- $0-0 :9 [ ] ]", 0, 0, {0}, -1},
    {"last with three parts", "[ $abc :1 :2 $1-0 $5-3-1 $0-0 :9 [ ] ]", 0, 0, {0}, -1},
    {"last empty", "[ $abc :1 :2 $1-0 $ $0-0 :9 [ ] ]", 0, 0, {0}, -1},
    {"max deleted past 2^64",
     "[ $abc :1 :2 $1-0 $5-3 $18446744073709551616-0 :9 [ ] ]",
     0,
     0,
     {0},
     -1},
    {"max deleted a status", "[ $abc :1 :2 $1-0 $5-3 +0-0 :9 [ ] ]", 0, 0, {0}, -1},
};

static int same_state(const hl_stream_state *a, const hl_stream_state *b) {
    return a->now_ms == b->now_ms && a->exists == b->exists && a->length == b->length &&
           hl_sid_cmp(a->first, b->first) == 0 && hl_sid_cmp(a->last, b->last) == 0 &&
           hl_sid_cmp(a->maxdel, b->maxdel) == 0 && a->added == b->added;
}

static void test_rreply_read_table(void **state) {
    (void)state;
    static const hl_stream_state zero;
    for (size_t i = 0; i < HL_ARRAY_LEN(read_cases); i++) {
        const read_case *k = &read_cases[i];
        redisReply *r = reply_of(k->reply);
        hl_stream_state st;
        memset(&st, 0x5a, sizeof(st));
        uint64_t epoch = 77;
        const redisReply *entries = (const redisReply *)&epoch;
        int rc = hl_rreply_read(r, &st, &epoch, &entries);
        if ((rc == HL_OK) != k->ok)
            fail_msg("%s: %s, want %s", k->name, rc == HL_OK ? "ok" : "error",
                     k->ok ? "ok" : "error");
        if (k->ok) {
            if (epoch != k->epoch) fail_msg("%s: epoch %llx", k->name, (unsigned long long)epoch);
            if (!same_state(&st, &k->st)) fail_msg("%s: wrong stream state", k->name);
            if (k->entries < 0) {
                assert_null(entries);
            } else {
                assert_non_null(entries);
                /* entries points into the reply. */
                assert_ptr_equal(entries, r->element[7]);
                assert_int_equal(entries->elements, (size_t)k->entries);
            }
        } else {
            /* A refused reply leaves no half-read state behind. */
            if (entries != NULL) fail_msg("%s: entries set", k->name);
            if (!same_state(&st, &zero)) fail_msg("%s: stream state not cleared", k->name);
        }
        free_reply(r);
    }
}

/* An epoch key set by hand is read the way hl_rreply_epoch reads it. */
static void test_rreply_read_derives_the_epoch_of_other_text(void **state) {
    (void)state;
    redisReply *r = reply_of("[ $not~ours :5 ]");
    hl_stream_state st;
    uint64_t epoch = 0;
    const redisReply *entries;
    assert_int_equal(hl_rreply_read(r, &st, &epoch, &entries), HL_OK);
    assert_true(epoch == hl_rreply_epoch("not ours", 8));
    assert_true(epoch != 0);
    free_reply(r);
}

/* ---- hl_rreply_entry ----------------------------------------------------- */

typedef struct entry_case {
    const char *name;
    const char *reply;
    const char *json; /* NULL: no message */
} entry_case;

#define MSG(id, data) "{\"channel\":\"news\",\"id\":\"" id "\",\"data\":\"" data "\"}"

static const entry_case entry_cases[] = {
    {"field d", "[ $1-0 [ $d $hi ] ]", MSG("1-0", "hi")},
    {"d after another field", "[ $7-2 [ $x $1 $d $hi ] ]", MSG("7-2", "hi")},
    {"the first d", "[ $1-0 [ $d $first $d $second ] ]", MSG("1-0", "first")},
    {"d empty", "[ $1-0 [ $d $ ] ]", MSG("1-0", "")},
    {"d with quotes and a space", "[ $1-0 [ $d $a\"b~c ] ]", MSG("1-0", "a\\\"b c")},
    {"d not UTF-8", "[ $1-0 [ $d $\xff ] ]", MSG("1-0", "\\ufffd")},
    {"without d", "[ $1-0 [ $x $1 ] ]", MSG("1-0", "")},
    {"no fields", "[ $1-0 [ ] ]", MSG("1-0", "")},
    {"a field named dd", "[ $1-0 [ $dd $hi ] ]", MSG("1-0", "")},
    {"a field named D", "[ $1-0 [ $D $hi ] ]", MSG("1-0", "")},
    {"huge id", "[ $18446744073709551615-18446744073709551615 [ $d $z ] ]",
     MSG("18446744073709551615-18446744073709551615", "z")},
    /* Malformed ids. */
    {"id not an id", "[ $abc [ $d $hi ] ]", NULL},
    {"id cut short", "[ $1- [ $d $hi ] ]", NULL},
    {"id empty", "[ $ [ $d $hi ] ]", NULL},
    {"id past 2^64", "[ $18446744073709551616-0 [ $d $hi ] ]", NULL},
    {"id an integer", "[ :1 [ $d $hi ] ]", NULL},
    {"id nil", "[ _ [ $d $hi ] ]", NULL},
    {"id a status", "[ +1-0 [ $d $hi ] ]", NULL},
    /* Wrong shapes. */
    {"no fields element", "[ $1-0 ]", NULL},
    {"three elements", "[ $1-0 [ $d $hi ] $x ]", NULL},
    {"empty array", "[ ]", NULL},
    {"fields a string", "[ $1-0 $d ]", NULL},
    {"fields nil", "[ $1-0 _ ]", NULL},
    {"fields a nil array", "[ $1-0 _a ]", NULL},
    {"a string", "$1-0", NULL},
    {"nil", "_", NULL},
    {"an error", "-ERR~x", NULL},
};

static void run_entry_cases(const entry_case *cases, size_t n) {
    int failures = 0;
    for (size_t i = 0; i < n; i++) {
        const entry_case *k = &cases[i];
        redisReply *r = reply_of(k->reply);
        char *name = malloc(4);
        assert_non_null(name);
        memcpy(name, "news", 4); /* exactly 4 bytes, no NUL */
        hl_msg *m = hl_rreply_entry(r, name, 4);
        if (k->json == NULL && m != NULL) {
            print_error("%s: a message (%s), want none\n", k->name, m->json);
            failures++;
        } else if (k->json != NULL && m == NULL) {
            print_error("%s: no message, want %s\n", k->name, k->json);
            failures++;
        } else if (m != NULL && strcmp(m->json, k->json) != 0) {
            print_error("%s: %s, want %s\n", k->name, m->json, k->json);
            failures++;
        }
        if (m != NULL) assert_int_equal(m->len, strlen(m->json));
        free(m);
        free(name);
        free_reply(r);
    }
    if (failures) fail_msg("%d of %zu cases failed", failures, n);
}

static void test_rreply_entry_table(void **state) {
    (void)state;
    run_entry_cases(entry_cases, HL_ARRAY_LEN(entry_cases));
}

/* hl_rreply.h: "[id, [field, value, ...]] ... NULL if malformed". A
 * field list of odd length is not pairs, whether or not a "d" pair can
 * be picked out of it. */
static void test_rreply_entry_with_an_odd_field_list_is_malformed(void **state) {
    (void)state;
    static const entry_case odd[] = {
        {"odd field list, d alone", "[ $1-0 [ $d ] ]", NULL},
        {"odd field list, d without a value", "[ $1-0 [ $x $1 $d ] ]", NULL},
        {"odd field list after d", "[ $1-0 [ $d $hi $x ] ]", NULL},
    };
    run_entry_cases(odd, HL_ARRAY_LEN(odd));
}

/* Data with bytes the notation cannot write: a line break and a NUL. */
static void test_rreply_entry_keeps_binary_data(void **state) {
    (void)state;
    static const char resp[] = "*2\r\n$3\r\n9-9\r\n*2\r\n$1\r\nd\r\n$4\r\na\nb\0\r\n";
    redisReply *r = from_resp(resp, sizeof(resp) - 1);
    hl_msg *m = hl_rreply_entry(r, "n", 1);
    assert_non_null(m);
    assert_string_equal(m->json, "{\"channel\":\"n\",\"id\":\"9-9\",\"data\":\"a\\nb\\u0000\"}");
    assert_true(m->id.ms == 9 && m->id.seq == 9);
    free(m);
    free_reply(r);
}

/* ---- hl_rreply_time ------------------------------------------------------ */

static const struct {
    const char *reply;
    int ok;
    long long ms;
} time_cases[] = {
    {"[ $1700000000 $123456 ]", 1, 1700000000123LL},
    {"[ $1700000000 $999999 ]", 1, 1700000000999LL},
    {"[ $0 $0 ]", 1, 0},
    {"[ $5 $0000001 ]", 1, 5000},
    {"[ $1000000000000 $0 ]", 1, 1000000000000000LL},
    {"[ $1700000000 $1000000 ]", 0, 0}, /* usec >= 1e6 */
    {"[ $1700000000 $9999999 ]", 0, 0},
    {"[ $1000000000001 $0 ]", 0, 0},       /* beyond any real clock */
    {"[ $100000000000000000 $0 ]", 0, 0},  /* 18 digits */
    {"[ $1234567890123456789 $0 ]", 0, 0}, /* 19 digits: too long */
    {"[ $1 $1234567890123456789 ]", 0, 0},
    {"[ $99999999999999999999999 $0 ]", 0, 0},
    {"[ $17a0 $1 ]", 0, 0},
    {"[ $1 $1x ]", 0, 0},
    {"[ $-1 $0 ]", 0, 0},
    {"[ $+1 $0 ]", 0, 0},
    {"[ $1~ $0 ]", 0, 0},
    {"[ $~1 $0 ]", 0, 0},
    {"[ $1.5 $0 ]", 0, 0},
    {"[ $ $0 ]", 0, 0},
    {"[ $1 $ ]", 0, 0},
    {"[ :1700000000 :0 ]", 0, 0},
    {"[ +1700000000 +0 ]", 0, 0},
    {"[ _ $0 ]", 0, 0},
    {"[ $1 ]", 0, 0},
    {"[ $1 $2 $3 ]", 0, 0},
    {"[ ]", 0, 0},
    {"$1700000000", 0, 0},
    {"_", 0, 0},
    {"-ERR~x", 0, 0},
    {"NULL", 0, 0},
};

static void test_rreply_time_table(void **state) {
    (void)state;
    for (size_t i = 0; i < HL_ARRAY_LEN(time_cases); i++) {
        redisReply *r = reply_of(time_cases[i].reply);
        long long ms = -42;
        int rc = hl_rreply_time(r, &ms);
        if ((rc == HL_OK) != time_cases[i].ok)
            fail_msg("'%s': %s, want %s", time_cases[i].reply, rc == HL_OK ? "ok" : "error",
                     time_cases[i].ok ? "ok" : "error");
        if (time_cases[i].ok && ms != time_cases[i].ms)
            fail_msg("'%s': %lld ms, want %lld", time_cases[i].reply, ms, time_cases[i].ms);
        free_reply(r);
    }
}

/* ---- hl_rreply_publish ------------------------------------------------------ */

static const struct {
    const char *reply;
    hl_publish_reply want;
    const char *id;
} publish_cases[] = {
    {"$1732300000000-0", HL_PUB_STORED, "1732300000000-0"},
    {"+1732300000000-0", HL_PUB_DUPLICATE, "1732300000000-0"},
    {"-ERR~holdline_publish:~the~key~must~be~a~stream", HL_PUB_REFUSED,
     "ERR holdline_publish: the key must be a stream"},
    {"-LOADING~Redis~is~loading~the~dataset~in~memory", HL_PUB_REFUSED,
     "LOADING Redis is loading the dataset in memory"},
    {"_", HL_PUB_BAD, ""},
    {"_a", HL_PUB_BAD, ""},
    {":1", HL_PUB_BAD, ""},
    {"[ $1-0 ]", HL_PUB_BAD, ""},
    {"[ ]", HL_PUB_BAD, ""},
    {"NULL", HL_PUB_BAD, ""},
};

static void test_rreply_publish_table(void **state) {
    (void)state;
    for (size_t i = 0; i < HL_ARRAY_LEN(publish_cases); i++) {
        redisReply *r = reply_of(publish_cases[i].reply);
        const char *id = NULL;
        size_t len = 99;
        hl_publish_reply got = hl_rreply_publish(r, &id, &len);
        if (got != publish_cases[i].want)
            fail_msg("'%s': %d, want %d", publish_cases[i].reply, got, publish_cases[i].want);
        assert_non_null(id);
        assert_int_equal(len, strlen(publish_cases[i].id));
        assert_memory_equal(id, publish_cases[i].id, len);
        /* The id points into the reply. */
        if (got != HL_PUB_BAD) assert_ptr_equal(id, r->str);
        free_reply(r);
    }
}

/* ---- hl_rreply_library_missing ---------------------------------------------- */

static const struct {
    const char *reply;
    int missing;
} library_cases[] = {
    {"-ERR~Function~not~found", 1},
    {"-ERR~Library~not~found", 0},
    {"-NOSCRIPT~No~matching~script", 0},
    {"-ERR~unknown~command~'FCALL'", 0},
    {"+Function~not~found", 0},
    {"$Function~not~found", 0},
    {"[ -ERR~Function~not~found ]", 0},
    {":0", 0},
    {"_", 0},
    {"NULL", 0},
};

static void test_rreply_library_missing_table(void **state) {
    (void)state;
    for (size_t i = 0; i < HL_ARRAY_LEN(library_cases); i++) {
        redisReply *r = reply_of(library_cases[i].reply);
        int got = hl_rreply_library_missing(r);
        if (got != library_cases[i].missing)
            fail_msg("'%s': %d, want %d", library_cases[i].reply, got, library_cases[i].missing);
        free_reply(r);
    }
}

/* ---- hl_rreply_readonly ------------------------------------------------ */

static const struct {
    const char *reply;
    int readonly;
} readonly_cases[] = {
    {"-READONLY~You~can't~write~against~a~read~only~replica.", 1},
    {"-READONLY", 1},
    {"-ERR~READONLY", 0},
    {"-NOREPLICAS~Not~enough~good~replicas~to~write.", 0},
    {"+READONLY", 0},
    {"$READONLY", 0},
    {"[ -READONLY ]", 0},
    {"NULL", 0},
};

static void test_rreply_readonly_table(void **state) {
    (void)state;
    for (size_t i = 0; i < HL_ARRAY_LEN(readonly_cases); i++) {
        redisReply *r = reply_of(readonly_cases[i].reply);
        int got = hl_rreply_readonly(r);
        if (got != readonly_cases[i].readonly)
            fail_msg("'%s': %d, want %d", readonly_cases[i].reply, got, readonly_cases[i].readonly);
        free_reply(r);
    }
}

/* ---- hl_rreply_master_addr, hl_rreply_role ------------------------------ */

static const struct {
    const char *reply;
    int ok;
    const char *host;
    int port;
} master_cases[] = {
    {"[ $127.0.0.1 $6379 ]", 1, "127.0.0.1", 6379},
    {"[ $redis-a.internal $1 ]", 1, "redis-a.internal", 1},
    {"[ $::1 $65535 ]", 1, "::1", 65535},
    {"_a", 0, NULL, 0}, /* the sentinel knows no such master */
    {"_", 0, NULL, 0},
    {"NULL", 0, NULL, 0},
    {"-ERR~no~such~master", 0, NULL, 0},
    {"[ $127.0.0.1 ]", 0, NULL, 0},
    {"[ $127.0.0.1 $6379 $x ]", 0, NULL, 0},
    {"[ $127.0.0.1 :6379 ]", 0, NULL, 0},
    {"[ $127.0.0.1 $0 ]", 0, NULL, 0},
    {"[ $127.0.0.1 $65536 ]", 0, NULL, 0},
    {"[ $127.0.0.1 $123456 ]", 0, NULL, 0},
    {"[ $127.0.0.1 $63a9 ]", 0, NULL, 0},
    {"[ $127.0.0.1 $ ]", 0, NULL, 0},
    {"[ $ $6379 ]", 0, NULL, 0},
    {"$127.0.0.1:6379", 0, NULL, 0},
};

static void test_rreply_master_addr_table(void **state) {
    (void)state;
    for (size_t i = 0; i < HL_ARRAY_LEN(master_cases); i++) {
        redisReply *r = reply_of(master_cases[i].reply);
        char host[64] = "untouched";
        int port = -1;
        int rc = hl_rreply_master_addr(r, host, sizeof(host), &port);
        if ((rc == HL_OK) != master_cases[i].ok)
            fail_msg("'%s': rc %d, want %s", master_cases[i].reply, rc,
                     master_cases[i].ok ? "ok" : "an error");
        if (master_cases[i].ok) {
            assert_string_equal(host, master_cases[i].host);
            assert_int_equal(port, master_cases[i].port);
        } else {
            /* A refusal leaves the caller's values alone. */
            assert_string_equal(host, "untouched");
            assert_int_equal(port, -1);
        }
        free_reply(r);
    }
}

static void test_rreply_master_addr_refuses_a_host_too_long_for_the_buffer(void **state) {
    (void)state;
    redisReply *r = reply_of("[ $0123456789 $6379 ]");
    char small[10], fits[11];
    int port = 0;
    assert_int_equal(hl_rreply_master_addr(r, small, sizeof(small), &port), HL_ERR);
    assert_int_equal(hl_rreply_master_addr(r, fits, sizeof(fits), &port), HL_OK);
    assert_string_equal(fits, "0123456789");
    free_reply(r);
}

static const struct {
    const char *reply;
    hl_redis_role role;
} role_cases[] = {
    {"[ $master :3129659 [ [ $127.0.0.1 $9001 $3129242 ] ] ]", HL_ROLE_MASTER},
    {"[ $master :0 [ ] ]", HL_ROLE_MASTER},
    {"[ $slave $127.0.0.1 :9000 $connected :3167038 ]", HL_ROLE_REPLICA},
    {"[ $sentinel [ $mymaster ] ]", HL_ROLE_SENTINEL},
    {"[ +master ]", HL_ROLE_MASTER},
    {"[ $replica ]", HL_ROLE_UNKNOWN},
    {"[ $Master ]", HL_ROLE_UNKNOWN},
    {"[ :1 ]", HL_ROLE_UNKNOWN},
    {"[ ]", HL_ROLE_UNKNOWN},
    {"$master", HL_ROLE_UNKNOWN},
    {"-ERR~unknown~command", HL_ROLE_UNKNOWN},
    {"NULL", HL_ROLE_UNKNOWN},
};

static void test_rreply_role_table(void **state) {
    (void)state;
    for (size_t i = 0; i < HL_ARRAY_LEN(role_cases); i++) {
        redisReply *r = reply_of(role_cases[i].reply);
        if (hl_rreply_role(r) != role_cases[i].role)
            fail_msg("'%s': %d, want %d", role_cases[i].reply, hl_rreply_role(r),
                     role_cases[i].role);
        free_reply(r);
    }
}

/* ---- hl_rreply_cluster_slots, hl_rreply_redirect ------------------------ */

static void test_rreply_cluster_slots_table(void **state) {
    (void)state;
    static const struct {
        const char *reply;
        int n; /* -1: refused */
    } cases[] = {
        {"[ ]", 0},
        {"[ [ :0 :5460 [ $127.0.0.1 :7001 $id1 ] [ $127.0.0.1 :7004 $id4 ] ] "
         "[ :5461 :16383 [ $ :7002 $id2 [ ] ] ] ]",
         2},
        {"[ [ :0 :16383 [ $h :7001 ] ] ]", 1},
        {"[ [ :5 :4 [ $h :7001 ] ] ]", -1},     /* upside down */
        {"[ [ :0 :16384 [ $h :7001 ] ] ]", -1}, /* past the last slot */
        {"[ [ :-1 :5 [ $h :7001 ] ] ]", -1},    /* before the first */
        {"[ [ :0 :5 [ $h :0 ] ] ]", -1},        /* port */
        {"[ [ :0 :5 [ $h :65536 ] ] ]", -1},    /* port */
        {"[ [ :0 :5 [ $h $7001 ] ] ]", -1},     /* a port as a string */
        {"[ [ :0 :5 ] ]", -1},                  /* no master */
        {"[ [ :0 :5 [ $h ] ] ]", -1},           /* no port */
        {"[ [ $0 :5 [ $h :7001 ] ] ]", -1},     /* a slot as a string */
        {"[ :0 ]", -1},                         /* not a range */
        {"-ERR~This~instance~has~cluster~support~disabled", -1},
        {"NULL", -1},
        {"[ [ :0 :1 [ $a :1 ] ] [ :2 :3 [ $a :1 ] ] [ :4 :5 [ $a :1 ] ] ]", -1}, /* more than max */
    };
    for (size_t i = 0; i < HL_ARRAY_LEN(cases); i++) {
        redisReply *r = reply_of(cases[i].reply);
        hl_slot_range out[2];
        int n = hl_rreply_cluster_slots(r, "seed.host", out, 2);
        if (n != cases[i].n) fail_msg("'%s': %d ranges, want %d", cases[i].reply, n, cases[i].n);
        if (i == 1) {
            assert_int_equal(out[0].lo, 0);
            assert_int_equal(out[0].hi, 5460);
            assert_string_equal(out[0].host, "127.0.0.1");
            assert_int_equal(out[0].port, 7001);
            assert_int_equal(out[1].lo, 5461);
            assert_int_equal(out[1].hi, 16383);
            assert_string_equal(out[1].host, "seed.host"); /* empty: where it was asked */
            assert_int_equal(out[1].port, 7002);
        }
        free_reply(r);
    }
}

static void test_rreply_redirect_table(void **state) {
    (void)state;
    static const struct {
        const char *err;
        hl_redirect kind;
        unsigned slot;
        const char *host;
        int port;
    } cases[] = {
        {"MOVED 15811 127.0.0.1:7003", HL_REDIR_MOVED, 15811, "127.0.0.1", 7003},
        {"ASK 0 10.1.2.3:1", HL_REDIR_ASK, 0, "10.1.2.3", 1},
        {"MOVED 16383 :7002", HL_REDIR_MOVED, 16383, "asked", 7002},
        {"MOVED 12 ::1:7002", HL_REDIR_MOVED, 12, "::1", 7002},
        {"MOVED 12 redis-a.internal:65535", HL_REDIR_MOVED, 12, "redis-a.internal", 65535},
        {"TRYAGAIN Multiple keys request during rehashing of slot", HL_REDIR_TRYAGAIN, 0, NULL, 0},
        {"CLUSTERDOWN Hash slot not served", HL_REDIR_CLUSTERDOWN, 0, NULL, 0},
        {"CLUSTERDOWN The cluster is down", HL_REDIR_CLUSTERDOWN, 0, NULL, 0},
        {"MOVED 16384 127.0.0.1:7003", HL_REDIR_NONE, 0, NULL, 0},
        {"MOVED 1 127.0.0.1", HL_REDIR_NONE, 0, NULL, 0},
        {"MOVED 1 127.0.0.1:", HL_REDIR_NONE, 0, NULL, 0},
        {"MOVED 1 127.0.0.1:0", HL_REDIR_NONE, 0, NULL, 0},
        {"MOVED 1 127.0.0.1:70000", HL_REDIR_NONE, 0, NULL, 0},
        {"MOVED 1 127.0.0.1:7x", HL_REDIR_NONE, 0, NULL, 0},
        {"MOVED x 127.0.0.1:7003", HL_REDIR_NONE, 0, NULL, 0},
        {"MOVED", HL_REDIR_NONE, 0, NULL, 0},
        {"MOVED 1234567 h:1", HL_REDIR_NONE, 0, NULL, 0},
        {"ERR unknown command", HL_REDIR_NONE, 0, NULL, 0},
        {"moved 1 h:1", HL_REDIR_NONE, 0, NULL, 0},
        {"", HL_REDIR_NONE, 0, NULL, 0},
    };
    for (size_t i = 0; i < HL_ARRAY_LEN(cases); i++) {
        unsigned slot = 99999;
        char host[64] = "untouched";
        int port = -1;
        hl_redirect k = hl_rreply_redirect(cases[i].err, strlen(cases[i].err), "asked", &slot, host,
                                           sizeof(host), &port);
        if (k != cases[i].kind) fail_msg("'%s': %d, want %d", cases[i].err, k, cases[i].kind);
        if (cases[i].host) {
            assert_int_equal(slot, cases[i].slot);
            assert_string_equal(host, cases[i].host);
            assert_int_equal(port, cases[i].port);
        } else {
            assert_string_equal(host, "untouched");
            assert_int_equal(port, -1);
        }
    }
    /* A host longer than the buffer is refused, not cut. */
    char small[4];
    unsigned slot;
    int port;
    assert_int_equal(
        hl_rreply_redirect("MOVED 1 abcd:7", 14, "a", &slot, small, sizeof(small), &port),
        HL_REDIR_NONE);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rreply_notation_builds_what_resp_says),
        cmocka_unit_test(test_rreply_epoch_reads_ours_as_hex),
        cmocka_unit_test(test_rreply_epoch_of_other_text_is_stable_and_nonzero),
        cmocka_unit_test(test_rreply_read_table),
        cmocka_unit_test(test_rreply_read_derives_the_epoch_of_other_text),
        cmocka_unit_test(test_rreply_entry_table),
        cmocka_unit_test(test_rreply_entry_with_an_odd_field_list_is_malformed),
        cmocka_unit_test(test_rreply_entry_keeps_binary_data),
        cmocka_unit_test(test_rreply_time_table),
        cmocka_unit_test(test_rreply_publish_table),
        cmocka_unit_test(test_rreply_library_missing_table),
        cmocka_unit_test(test_rreply_readonly_table),
        cmocka_unit_test(test_rreply_cluster_slots_table),
        cmocka_unit_test(test_rreply_redirect_table),
        cmocka_unit_test(test_rreply_master_addr_table),
        cmocka_unit_test(test_rreply_master_addr_refuses_a_host_too_long_for_the_buffer),
        cmocka_unit_test(test_rreply_role_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for core/hl_codec.c: every shape holdline writes on the wire.
 * Known inputs are checked byte for byte; hostile ones (quotes, line
 * breaks, bytes that are not UTF-8, NULs) through a strict JSON validator
 * and an SSE framing checker that know nothing of the encoder. Inputs are
 * copied into blocks of exactly their length, so with ASan reading one
 * byte too far fails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hl_codec.h"
#include "hl_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A byte string with its length, so inputs may hold NUL bytes. */
#define BYTES(s) (s), (sizeof(s) - 1)

/* ---- Helpers ------------------------------------------------------------ */

static int reset_alloc(void **state) {
    (void)state;
    hl_json_fail_after(-1);
    return 0;
}

static char *exact_copy(const char *s, size_t n) {
    char *p = malloc(n ? n : 1);
    assert_non_null(p);
    if (n) memcpy(p, s, n);
    return p;
}

/* Writes s[0..n) printably into out, for failure messages. */
static const char *show(const char *s, size_t n, char *out, size_t outlen) {
    size_t w = 0;
    for (size_t i = 0; i < n && w + 5 < outlen; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f)
            out[w++] = (char)c;
        else
            w += (size_t)snprintf(out + w, outlen - w, "\\x%02x", c);
    }
    out[w] = '\0';
    return out;
}

static void assert_buf(const hl_buf *b, const char *want) {
    char s1[2048], s2[2048];
    assert_false(b->oom);
    if (b->len != strlen(want) || memcmp(b->data, want, b->len) != 0)
        fail_msg("got  '%s'\nwant '%s'", show(b->data, b->len, s1, sizeof(s1)),
                 show(want, strlen(want), s2, sizeof(s2)));
}

/* ---- A strict JSON validator (RFC 8259, strings RFC 3629 UTF-8) ------------- */

typedef struct jp {
    const unsigned char *p, *end;
    int depth;
} jp;

static void ws(jp *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static int hex4(jp *j, unsigned *v) {
    if (j->end - j->p < 4) return 0;
    *v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = *j->p++;
        *v <<= 4;
        if (c >= '0' && c <= '9')
            *v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            *v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            *v |= c - 'A' + 10;
        else
            return 0;
    }
    return 1;
}

/* One well-formed UTF-8 sequence of 2 to 4 bytes, decoded the long way. */
static int utf8_seq(jp *j) {
    unsigned char c = *j->p;
    size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
    if (len == 0 || c >= 0xF8 || (size_t)(j->end - j->p) < len) return 0;
    uint32_t cp = c & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((j->p[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (j->p[i] & 0x3F);
    }
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    j->p += len;
    return 1;
}

static int jstring(jp *j) {
    if (j->p >= j->end || *j->p != '"') return 0;
    j->p++;
    while (j->p < j->end) {
        unsigned char c = *j->p;
        if (c == '"') {
            j->p++;
            return 1;
        }
        if (c < 0x20) return 0;
        if (c == '\\') {
            j->p++;
            if (j->p >= j->end) return 0;
            c = *j->p++;
            if (c == 'u') {
                unsigned v, w;
                if (!hex4(j, &v)) return 0;
                if (v >= 0xDC00 && v <= 0xDFFF) return 0;
                if (v >= 0xD800 && v <= 0xDBFF) {
                    if (j->end - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u') return 0;
                    j->p += 2;
                    if (!hex4(j, &w) || w < 0xDC00 || w > 0xDFFF) return 0;
                }
            } else if (!strchr("\"\\/bfnrt", c) || c == '\0') {
                return 0;
            }
        } else if (c >= 0x80) {
            if (!utf8_seq(j)) return 0;
        } else {
            j->p++;
        }
    }
    return 0;
}

static int digits(jp *j) {
    const unsigned char *s = j->p;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
        j->p++;
    return j->p > s;
}

static int jnumber(jp *j) {
    if (j->p < j->end && *j->p == '-') j->p++;
    if (j->p < j->end && *j->p == '0')
        j->p++;
    else if (!digits(j))
        return 0;
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (!digits(j)) return 0;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-')) j->p++;
        if (!digits(j)) return 0;
    }
    return 1;
}

static int jvalue(jp *j);

static int jcontainer(jp *j, char open, char close, int object) {
    if (++j->depth > 64) return 0;
    j->p++; /* open */
    (void)open;
    ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        j->depth--;
        return 1;
    }
    for (;;) {
        ws(j);
        if (object) {
            if (!jstring(j)) return 0;
            ws(j);
            if (j->p >= j->end || *j->p != ':') return 0;
            j->p++;
        }
        if (!jvalue(j)) return 0;
        ws(j);
        if (j->p >= j->end) return 0;
        if (*j->p == ',') {
            j->p++;
            continue;
        }
        if (*j->p != close) return 0;
        j->p++;
        j->depth--;
        return 1;
    }
}

static int literal(jp *j, const char *w) {
    size_t n = strlen(w);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n) != 0) return 0;
    j->p += n;
    return 1;
}

static int jvalue(jp *j) {
    ws(j);
    if (j->p >= j->end) return 0;
    switch (*j->p) {
    case '{': return jcontainer(j, '{', '}', 1);
    case '[': return jcontainer(j, '[', ']', 0);
    case '"': return jstring(j);
    case 't': return literal(j, "true");
    case 'f': return literal(j, "false");
    case 'n': return literal(j, "null");
    default: return jnumber(j);
    }
}

/* 1 if s[0..n) is exactly one JSON value, here always an object. */
static int valid_json_object(const char *s, size_t n) {
    jp j = {(const unsigned char *)s, (const unsigned char *)s + n, 0};
    ws(&j);
    if (j.p >= j.end || *j.p != '{') return 0;
    if (!jvalue(&j)) return 0;
    ws(&j);
    return j.p == j.end;
}

static void assert_valid_json(const char *s, size_t n) {
    char out[4096];
    if (!valid_json_object(s, n)) fail_msg("not valid JSON: '%s'", show(s, n, out, sizeof(out)));
}

/* ---- An SSE framing checker (WHATWG "server-sent events") ------------------- */

/* Checks that s[0..n) is whole events, each ending in a blank line, whose
 * lines are comments or known fields, with no CR anywhere (a line break
 * in SSE) and every data line one JSON object. Returns the number of
 * events; *ids and *datas count the id and data lines. */
static size_t check_sse(const char *s, size_t n, size_t *ids, size_t *datas) {
    char out[4096];
    size_t events = 0;
    *ids = *datas = 0;
    if (memchr(s, '\r', n)) fail_msg("a CR in '%s'", show(s, n, out, sizeof(out)));
    if (n < 2 || s[n - 1] != '\n' || s[n - 2] != '\n')
        fail_msg("does not end with a blank line: '%s'", show(s, n, out, sizeof(out)));
    size_t i = 0;
    int in_event = 0;
    while (i < n) {
        const char *nl = memchr(s + i, '\n', n - i);
        assert_non_null(nl);
        size_t len = (size_t)(nl - (s + i));
        const char *line = s + i;
        i += len + 1;
        if (len == 0) {
            if (!in_event) fail_msg("an empty event in '%s'", show(s, n, out, sizeof(out)));
            events++;
            in_event = 0;
            continue;
        }
        in_event = 1;
        if (line[0] == ':') continue;
        if (memchr(line, '\0', len)) fail_msg("a NUL in a line");
        if (len >= 6 && memcmp(line, "data: ", 6) == 0) {
            assert_valid_json(line + 6, len - 6);
            (*datas)++;
        } else if (len >= 4 && memcmp(line, "id: ", 4) == 0) {
            (*ids)++;
        } else if (len >= 7 && memcmp(line, "retry: ", 7) == 0) {
            for (size_t k = 7; k < len; k++)
                if (line[k] < '0' || line[k] > '9') fail_msg("retry is not digits");
        } else if (len == 13 && memcmp(line, "event: missed", 13) == 0) {
        } else {
            fail_msg("unknown line '%s'", show(line, len, out, sizeof(out)));
        }
    }
    return events;
}

/* The checkers themselves: each broken input is refused. */
static void test_codec_checkers_refuse_broken_output(void **state) {
    (void)state;
    static const struct {
        const char *s;
        size_t n;
    } bad_json[] = {
        {BYTES("")},
        {BYTES("{")},
        {BYTES("{\"a\":1,}")},
        {BYTES("{\"a\":\"x\ny\"}")},
        {BYTES("{\"a\":\"\xFF\"}")},
        {BYTES("{\"a\":\"\xC0\xAF\"}")},
        {BYTES("{\"a\":\"\xED\xA0\x80\"}")},
        {BYTES("{\"a\":\"\\ud800\"}")},
        {BYTES("{\"a\":\"\\x41\"}")},
        {BYTES("{\"a\":\"\0\"}")},
        {BYTES("{\"a\":01}")},
        {BYTES("{\"a\":nul}")},
        {BYTES("{\"a\":1}{}")},
        {BYTES("{\"a\" 1}")},
    };
    for (size_t i = 0; i < HL_ARRAY_LEN(bad_json); i++) {
        char *p = exact_copy(bad_json[i].s, bad_json[i].n);
        if (valid_json_object(p, bad_json[i].n)) fail_msg("bad JSON %zu passes", i);
        free(p);
    }
    assert_true(valid_json_object(
        BYTES("{\"a\":[1,-2.5e3,true,null,{}],\"\\ud83d\\ude00\":\"\xF0\x9F\x98\x80\"}")));
}

/* ---- Message objects ----------------------------------------------------------- */

typedef struct message_case {
    const char *name;
    size_t nlen;
    int has_id;
    hl_sid id;
    const char *data;
    size_t dlen;
    const char *want;
} message_case;

// clang-format off
static const message_case message_cases[] = {
    {BYTES("news"), 1, {1732300000000ULL, 0}, BYTES("hello"),
     "{\"channel\":\"news\",\"id\":\"1732300000000-0\",\"data\":\"hello\"}"},
    {BYTES("news"), 0, {0, 0}, BYTES("hello"),
     "{\"channel\":\"news\",\"id\":null,\"data\":\"hello\"}"},
    {BYTES("a.b~c:d-e_f"), 1, {UINT64_MAX, UINT64_MAX}, BYTES(""),
     "{\"channel\":\"a.b~c:d-e_f\",\"id\":\"18446744073709551615-18446744073709551615\","
     "\"data\":\"\"}"},
    {BYTES("n"), 1, {0, 0}, BYTES("say \"hi\"\n\\ \t\r/"),
     "{\"channel\":\"n\",\"id\":\"0-0\",\"data\":\"say \\\"hi\\\"\\n\\\\ \\t\\r/\"}"},
    {BYTES("n"), 0, {0, 0}, BYTES("a\0b\x1e"),
     "{\"channel\":\"n\",\"id\":null,\"data\":\"a\\u0000b\\u001e\"}"},
    {BYTES("n"), 1, {5, 5}, BYTES("caf\xC3\xA9 \xFF\xC3("),
     "{\"channel\":\"n\",\"id\":\"5-5\",\"data\":\"caf\xC3\xA9 \\ufffd\\ufffd(\"}"},
    /* Hostile channel names: the codec does not validate them, it escapes. */
    {BYTES("x\"}],\"y\n\xC0\xAF"), 0, {0, 0}, BYTES("d"),
     "{\"channel\":\"x\\\"}],\\\"y\\n\\ufffd\\ufffd\",\"id\":null,\"data\":\"d\"}"},
    {BYTES(""), 1, {1, 2}, BYTES("\xE2\x80\xA8"),
     "{\"channel\":\"\",\"id\":\"1-2\",\"data\":\"\\u2028\"}"},
};
// clang-format on

static void test_codec_message_table(void **state) {
    (void)state;
    for (size_t i = 0; i < HL_ARRAY_LEN(message_cases); i++) {
        const message_case *k = &message_cases[i];
        char *name = exact_copy(k->name, k->nlen);
        char *data = exact_copy(k->data, k->dlen);
        hl_buf b;
        hl_buf_init(&b);
        hl_codec_message(&b, name, k->nlen, k->has_id ? &k->id : NULL, data, k->dlen);
        assert_buf(&b, k->want);
        assert_valid_json(b.data, b.len);
        hl_buf_free(&b);
        free(name);
        free(data);
    }
}

/* Whatever bytes a publisher sends, the object is valid JSON on one line. */
static void test_codec_message_of_random_bytes_is_valid_json(void **state) {
    (void)state;
    srand(5);
    for (int round = 0; round < 5000; round++) {
        size_t nlen = (size_t)(rand() % 12), dlen = (size_t)(rand() % 80);
        char *name = malloc(nlen ? nlen : 1), *data = malloc(dlen ? dlen : 1);
        assert_non_null(name);
        assert_non_null(data);
        for (size_t i = 0; i < nlen; i++)
            name[i] = (char)(rand() & 0xff);
        for (size_t i = 0; i < dlen; i++)
            data[i] =
                round % 2 ? (char)(rand() & 0xff) : "\"\\\n\r\x01\xC3\xA9\xE2\x80\xA8"[rand() % 11];
        hl_sid id = {(uint64_t)rand(), (uint64_t)rand()};
        hl_buf b;
        hl_buf_init(&b);
        hl_codec_message(&b, name, nlen, round % 3 ? &id : NULL, data, dlen);
        assert_false(b.oom);
        assert_valid_json(b.data, b.len);
        assert_null(memchr(b.data, '\n', b.len));
        assert_null(memchr(b.data, '\r', b.len));
        hl_buf_free(&b);
        free(name);
        free(data);
    }
}

/* ---- Envelopes --------------------------------------------------------------- */

static void test_codec_poll_answer_with_zero_one_and_many_items(void **state) {
    (void)state;
    static const char *objs[] = {
        "{\"channel\":\"a\",\"id\":\"1-0\",\"data\":\"x\"}",
        "{\"channel\":\"b\",\"id\":null,\"data\":\"\\n\"}",
        "{\"channel\":\"a\",\"id\":\"2-0\",\"data\":\"\\\"]}\"}",
    };
    hl_codec_item items[3];
    char *copies[3];
    for (size_t i = 0; i < 3; i++) {
        copies[i] = exact_copy(objs[i], strlen(objs[i]));
        items[i] = (hl_codec_item){copies[i], strlen(objs[i])};
    }
    static const char cur[] = "3f9a:1-0,2-0";
    char *c = exact_copy(cur, sizeof(cur) - 1);
    static const struct {
        size_t n;
        int missed;
        const char *want;
    } cases[] = {
        {0, 0, "{\"cursor\":\"3f9a:1-0,2-0\",\"messages\":[],\"missed\":false}"},
        {0, 1, "{\"cursor\":\"3f9a:1-0,2-0\",\"messages\":[],\"missed\":true}"},
        {1, 0,
         "{\"cursor\":\"3f9a:1-0,2-0\",\"messages\":[{\"channel\":\"a\",\"id\":\"1-0\","
         "\"data\":\"x\"}],\"missed\":false}"},
        {3, 1,
         "{\"cursor\":\"3f9a:1-0,2-0\",\"messages\":[{\"channel\":\"a\",\"id\":\"1-0\","
         "\"data\":\"x\"},{\"channel\":\"b\",\"id\":null,\"data\":\"\\n\"},{\"channel\":\"a\","
         "\"id\":\"2-0\",\"data\":\"\\\"]}\"}],\"missed\":true}"},
    };
    for (size_t i = 0; i < HL_ARRAY_LEN(cases); i++) {
        hl_buf b;
        hl_buf_init(&b);
        hl_codec_poll_answer(&b, c, sizeof(cur) - 1, items, cases[i].n, cases[i].missed);
        assert_buf(&b, cases[i].want);
        assert_valid_json(b.data, b.len);
        hl_buf_free(&b);
    }
    /* The empty cursor ("only newer", on every channel). */
    hl_buf b;
    hl_buf_init(&b);
    hl_codec_poll_answer(&b, "", 0, NULL, 0, 0);
    assert_buf(&b, "{\"cursor\":\"\",\"messages\":[],\"missed\":false}");
    hl_buf_free(&b);
    free(c);
    for (size_t i = 0; i < 3; i++)
        free(copies[i]);
}

/* Items encoded by hl_codec_message from hostile data still make one
 * valid answer. */
static void test_codec_poll_answer_of_hostile_messages_is_valid_json(void **state) {
    (void)state;
    hl_buf m[HL_ARRAY_LEN(message_cases)];
    hl_codec_item items[HL_ARRAY_LEN(message_cases)];
    for (size_t i = 0; i < HL_ARRAY_LEN(message_cases); i++) {
        const message_case *k = &message_cases[i];
        hl_buf_init(&m[i]);
        hl_codec_message(&m[i], k->name, k->nlen, k->has_id ? &k->id : NULL, k->data, k->dlen);
        items[i] = (hl_codec_item){m[i].data, m[i].len};
    }
    hl_buf b;
    hl_buf_init(&b);
    hl_codec_poll_answer(&b, "0", 1, items, HL_ARRAY_LEN(items), 1);
    assert_false(b.oom);
    assert_valid_json(b.data, b.len);
    hl_buf_free(&b);
    for (size_t i = 0; i < HL_ARRAY_LEN(message_cases); i++)
        hl_buf_free(&m[i]);
}

static void test_codec_publish_answer_with_and_without_duplicate(void **state) {
    (void)state;
    char *name = exact_copy("news", 4), *id = exact_copy("1732300000000-0", 15);
    hl_buf b;
    hl_buf_init(&b);
    hl_codec_publish_answer(&b, name, 4, id, 15, 0);
    assert_buf(&b, "{\"channel\":\"news\",\"id\":\"1732300000000-0\"}");
    hl_buf_free(&b);
    hl_codec_publish_answer(&b, name, 4, id, 15, 1);
    assert_buf(&b, "{\"channel\":\"news\",\"id\":\"1732300000000-0\",\"duplicate\":true}");
    hl_buf_free(&b);
    /* Whatever Redis returned as the id, the answer stays JSON. */
    static const char odd[] = "1-0\"\n\xFF";
    char *o = exact_copy(odd, sizeof(odd) - 1);
    hl_codec_publish_answer(&b, "n\"\n", 3, o, sizeof(odd) - 1, 1);
    assert_buf(&b, "{\"channel\":\"n\\\"\\n\",\"id\":\"1-0\\\"\\n\\ufffd\",\"duplicate\":true}");
    assert_valid_json(b.data, b.len);
    hl_buf_free(&b);
    free(name);
    free(id);
    free(o);
}

static void test_codec_channel_info_with_and_without_last(void **state) {
    (void)state;
    char *name = exact_copy("news", 4);
    hl_buf b;
    hl_buf_init(&b);
    hl_sid last = {1732300000000ULL, 0};
    hl_codec_channel_info(&b, name, 4, &last, 42);
    assert_buf(&b, "{\"channel\":\"news\",\"last_id\":\"1732300000000-0\",\"length\":42}");
    hl_buf_free(&b);
    /* An emptied stream still has a last id. */
    hl_codec_channel_info(&b, name, 4, &last, 0);
    assert_buf(&b, "{\"channel\":\"news\",\"last_id\":\"1732300000000-0\",\"length\":0}");
    hl_buf_free(&b);
    hl_codec_channel_info(&b, name, 4, NULL, 0);
    assert_buf(&b, "{\"channel\":\"news\",\"last_id\":null,\"length\":0}");
    hl_buf_free(&b);
    hl_codec_channel_info(&b, "\xFF\"", 2, NULL, 0);
    assert_buf(&b, "{\"channel\":\"\\ufffd\\\"\",\"last_id\":null,\"length\":0}");
    assert_valid_json(b.data, b.len);
    hl_buf_free(&b);
    free(name);
}

static void test_codec_error_escapes_code_and_detail(void **state) {
    (void)state;
    hl_buf b;
    hl_buf_init(&b);
    hl_codec_error(&b, "bad_cursor", "the cursor has 1 parts but the poll has 2");
    assert_buf(
        &b, "{\"error\":\"bad_cursor\",\"detail\":\"the cursor has 1 parts but the poll has 2\"}");
    hl_buf_free(&b);
    hl_codec_error(&b, "redis_error", "ERR \"x\"\nline two \xC3\x28 \x7f");
    assert_buf(&b,
               "{\"error\":\"redis_error\",\"detail\":\"ERR \\\"x\\\"\\nline two \\ufffd( \x7f\"}");
    assert_valid_json(b.data, b.len);
    hl_buf_free(&b);
    hl_codec_error(&b, "", "");
    assert_buf(&b, "{\"error\":\"\",\"detail\":\"\"}");
    hl_buf_free(&b);
}

/* The codec appends: an envelope after other text leaves that text. */
static void test_codec_appends_to_what_the_buffer_holds(void **state) {
    (void)state;
    hl_buf b;
    hl_buf_init(&b);
    hl_buf_puts(&b, "prefix:");
    hl_codec_error(&b, "c", "d");
    assert_buf(&b, "prefix:{\"error\":\"c\",\"detail\":\"d\"}");
    hl_buf_free(&b);
}

/* ---- Server-Sent Events --------------------------------------------------------- */

static void test_codec_sse_open_with_and_without_cursor(void **state) {
    (void)state;
    char *cur = exact_copy("ab:1-0", 6);
    hl_buf b;
    hl_buf_init(&b);
    hl_codec_sse_open(&b, 3000, cur, 6);
    assert_buf(&b, "retry: 3000\nid: ab:1-0\n\n");
    hl_buf_free(&b);
    hl_codec_sse_open(&b, 0, cur, 0);
    assert_buf(&b, "retry: 0\n\n");
    hl_buf_free(&b);
    free(cur);
}

static void test_codec_sse_message_with_and_without_id_line(void **state) {
    (void)state;
    static const char obj[] = "{\"channel\":\"n\",\"id\":\"1-0\",\"data\":\"x\"}";
    char *json = exact_copy(obj, sizeof(obj) - 1), *cur = exact_copy("ab:1-0", 6);
    hl_buf b;
    hl_buf_init(&b);
    hl_codec_sse_message(&b, cur, 6, json, sizeof(obj) - 1);
    assert_buf(&b, "id: ab:1-0\ndata: {\"channel\":\"n\",\"id\":\"1-0\",\"data\":\"x\"}\n\n");
    hl_buf_free(&b);
    /* A plain message does not move the cursor: no id line. */
    hl_codec_sse_message(&b, cur, 0, json, sizeof(obj) - 1);
    assert_buf(&b, "data: {\"channel\":\"n\",\"id\":\"1-0\",\"data\":\"x\"}\n\n");
    hl_buf_free(&b);
    free(json);
    free(cur);
}

static void test_codec_sse_missed_with_and_without_id(void **state) {
    (void)state;
    char *cur = exact_copy("ab:7-0", 6);
    hl_buf b;
    hl_buf_init(&b);
    hl_codec_sse_missed(&b, cur, 6, 1);
    assert_buf(&b, "event: missed\nid: ab:7-0\ndata: {\"cursor\":\"ab:7-0\",\"missed\":true}\n\n");
    hl_buf_free(&b);
    hl_codec_sse_missed(&b, cur, 6, 0);
    assert_buf(&b, "event: missed\ndata: {\"cursor\":\"ab:7-0\",\"missed\":true}\n\n");
    hl_buf_free(&b);
    free(cur);
}

static void test_codec_sse_position_and_heartbeat(void **state) {
    (void)state;
    char *cur = exact_copy("ab:7-0,0,", 9);
    hl_buf b;
    hl_buf_init(&b);
    hl_codec_sse_position(&b, cur, 9);
    assert_buf(&b, "id: ab:7-0,0,\n\n");
    hl_buf_free(&b);
    hl_codec_sse_heartbeat(&b);
    assert_buf(&b, ": hb\n\n");
    hl_buf_free(&b);
    free(cur);
}

/* A stream of every kind of event, the messages from hostile data: whole
 * events, one line per field, no raw line break inside a data line. */
static void test_codec_sse_stream_of_hostile_messages_is_well_framed(void **state) {
    (void)state;
    static const char cur[] = "3f9a:1732300000000-0,0,";
    hl_buf b;
    hl_buf_init(&b);
    hl_codec_sse_open(&b, 2500, cur, sizeof(cur) - 1);
    size_t want_events = 1, want_ids = 1, want_datas = 0;
    srand(9);
    for (int round = 0; round < 300; round++) {
        size_t dlen = (size_t)(rand() % 40);
        char *data = malloc(dlen ? dlen : 1);
        assert_non_null(data);
        for (size_t i = 0; i < dlen; i++)
            data[i] = round % 2 ? (char)(rand() & 0xff) : "\n\r\"\\\x85\xE2\x80\xA9:"[rand() % 10];
        hl_buf m;
        hl_buf_init(&m);
        hl_sid id = {(uint64_t)round, 0};
        hl_codec_message(&m, "ch\n\r", 4, round % 3 ? &id : NULL, data, dlen);
        assert_false(m.oom);
        size_t clen = round % 3 ? sizeof(cur) - 1 : 0;
        hl_codec_sse_message(&b, cur, clen, m.data, m.len);
        want_events++, want_datas++, want_ids += clen > 0;
        hl_buf_free(&m);
        free(data);
        switch (round % 4) {
        case 0:
            hl_codec_sse_heartbeat(&b);
            want_events++;
            break;
        case 1:
            hl_codec_sse_missed(&b, cur, sizeof(cur) - 1, round % 8 == 1);
            want_events++, want_datas++, want_ids += round % 8 == 1;
            break;
        case 2:
            hl_codec_sse_position(&b, cur, sizeof(cur) - 1);
            want_events++, want_ids++;
            break;
        default: break;
        }
    }
    assert_false(b.oom);
    size_t ids, datas;
    assert_int_equal(check_sse(b.data, b.len, &ids, &datas), want_events);
    assert_int_equal(ids, want_ids);
    assert_int_equal(datas, want_datas);
    hl_buf_free(&b);
}

/* ---- Out of memory ------------------------------------------------------------- */

/* Each shape, once more: the argument is which one. */
static void encode(hl_buf *b, int shape) {
    static const char big[] = "0123456789abcdef\n\"\xFF 0123456789abcdef 0123456789abcdef "
                              "0123456789abcdef 0123456789abcdef 0123456789abcdef";
    static const hl_sid id = {1732300000000ULL, 9};
    static const hl_codec_item items[2] = {{BYTES("{\"a\":1}")}, {BYTES("{\"b\":2}")}};
    switch (shape) {
    case 0: hl_codec_message(b, BYTES("news"), &id, BYTES(big)); break;
    case 1: hl_codec_message(b, BYTES("news"), NULL, BYTES(big)); break;
    case 2: hl_codec_poll_answer(b, BYTES("ab:1-0"), items, 2, 1); break;
    case 3: hl_codec_publish_answer(b, BYTES(big), BYTES("1-0"), 1); break;
    case 4: hl_codec_channel_info(b, BYTES(big), &id, 42); break;
    case 5: hl_codec_channel_info(b, BYTES(big), NULL, 0); break;
    case 6: hl_codec_error(b, "redis_error", big); break;
    case 7: hl_codec_sse_open(b, 3000, BYTES("ab:1-0")); break;
    case 8: hl_codec_sse_message(b, BYTES("ab:1-0"), BYTES(big)); break;
    case 9: hl_codec_sse_missed(b, BYTES("ab:1-0"), 1); break;
    case 10: hl_codec_sse_position(b, BYTES("ab:1-0")); break;
    default: hl_codec_sse_heartbeat(b); break;
    }
}
#define SHAPES 12

/* Failing the first, second, ... allocation in turn: every run either
 * gives the whole answer or a sticky oom that hands over nothing. */
static void test_codec_every_failing_allocation_is_sticky(void **state) {
    (void)state;
    for (int shape = 0; shape < SHAPES; shape++) {
        hl_buf ref;
        hl_buf_init(&ref);
        /* Twice, so the second copy needs the buffer to grow. */
        encode(&ref, shape);
        encode(&ref, shape);
        assert_false(ref.oom);
        int whole = 0;
        for (int n = 0; n < 32 && !whole; n++) {
            hl_buf b;
            hl_buf_init(&b);
            hl_json_fail_after(n);
            encode(&b, shape);
            encode(&b, shape);
            hl_json_fail_after(-1);
            /* Once out of memory, more appends change nothing. */
            int oom = b.oom;
            size_t len = b.len;
            encode(&b, shape);
            if (oom) {
                assert_int_equal(b.oom, 1);
                assert_int_equal(b.len, len);
            }
            size_t tlen = 0;
            char *p = hl_buf_take(&b, &tlen);
            if (oom) {
                assert_null(p);
            } else {
                assert_non_null(p);
                assert_int_equal(tlen, ref.len * 3 / 2);
                assert_memory_equal(p, ref.data, ref.len);
                whole = 1;
            }
            free(p);
            hl_buf_free(&b);
        }
        if (!whole) fail_msg("shape %d never succeeded", shape);
        hl_buf_free(&ref);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_codec_checkers_refuse_broken_output, reset_alloc),
        cmocka_unit_test_teardown(test_codec_message_table, reset_alloc),
        cmocka_unit_test_teardown(test_codec_message_of_random_bytes_is_valid_json, reset_alloc),
        cmocka_unit_test_teardown(test_codec_poll_answer_with_zero_one_and_many_items, reset_alloc),
        cmocka_unit_test_teardown(test_codec_poll_answer_of_hostile_messages_is_valid_json,
                                  reset_alloc),
        cmocka_unit_test_teardown(test_codec_publish_answer_with_and_without_duplicate,
                                  reset_alloc),
        cmocka_unit_test_teardown(test_codec_channel_info_with_and_without_last, reset_alloc),
        cmocka_unit_test_teardown(test_codec_error_escapes_code_and_detail, reset_alloc),
        cmocka_unit_test_teardown(test_codec_appends_to_what_the_buffer_holds, reset_alloc),
        cmocka_unit_test_teardown(test_codec_sse_open_with_and_without_cursor, reset_alloc),
        cmocka_unit_test_teardown(test_codec_sse_message_with_and_without_id_line, reset_alloc),
        cmocka_unit_test_teardown(test_codec_sse_missed_with_and_without_id, reset_alloc),
        cmocka_unit_test_teardown(test_codec_sse_position_and_heartbeat, reset_alloc),
        cmocka_unit_test_teardown(test_codec_sse_stream_of_hostile_messages_is_well_framed,
                                  reset_alloc),
        cmocka_unit_test_teardown(test_codec_every_failing_allocation_is_sticky, reset_alloc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

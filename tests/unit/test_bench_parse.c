/* Unit tests for holdline-bench's pure parts (cmd/holdline-bench/hb_parse.c
 * and hb_stats.c): response heads, chunked bodies, Server-Sent Events
 * blocks, poll answers and SSE message data, the data the bench
 * publishes, flag values, the browser-like headers of its polls, and the
 * latency histogram with its hand-over between processes. Inputs are
 * copied into blocks of exactly their length, so with ASan a read one
 * byte too far fails the test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hb_parse.h"
#include "hb_stats.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A copy of s without its NUL, in a block of exactly its length. */
static char *exact(const char *s) {
    size_t n = strlen(s);
    char *p = malloc(n ? n : 1);
    assert_non_null(p);
    memcpy(p, s, n);
    return p;
}

static int str_is(hb_str s, const char *want) {
    if (want == NULL) return s.p == NULL;
    return s.p != NULL && s.n == strlen(want) && memcmp(s.p, want, s.n) == 0;
}

/* ---- hb_parse_head -------------------------------------------------------- */

static const struct {
    const char *in;
    long ret; /* 1 complete (the head ends at the blank line), -2 partial, -1 refused */
    int status;
    long long length; /* -1: no length (chunked, or until the server closes) */
    int close;
    hb_body body;     /* how the body is delimited */
    int event_stream; /* Content-Type: text/event-stream */
} head_cases[] = {
    {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 1, 200, 5, 0, HB_BODY_LENGTH, 0},
    {"HTTP/1.1 201 Created\r\ncontent-length:0\r\nConnection: close\r\n\r\n", 1, 201, 0, 1,
     HB_BODY_LENGTH, 0},
    {"HTTP/1.1 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\n{}", 1, 200, 2, 0,
     HB_BODY_LENGTH, 0},
    {"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}", 1, 200, 2, 1, HB_BODY_LENGTH, 0},
    {"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", 1, 200, 0, 0,
     HB_BODY_LENGTH, 0},
    {"HTTP/1.1 204 No Content\r\n\r\n", 1, 204, 0, 0, HB_BODY_LENGTH, 0},
    {"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 10\r\n\r\n", 1, 503, 10, 0,
     HB_BODY_LENGTH, 0},
    {"HTTP/1.1 200 OK\r\nConnection: upgrade, close\r\nContent-Length: 1\r\n\r\nx", 1, 200, 1, 1,
     HB_BODY_LENGTH, 0},
    /* Not yet complete. */
    {"", -2, 0, 0, 0, HB_BODY_LENGTH, 0},
    {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n", -2, 0, 0, 0, HB_BODY_LENGTH, 0},
    {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r", -2, 0, 0, 0, HB_BODY_LENGTH, 0},
    /* Event streams: holdline's is chunked, nchan's runs until it closes. */
    {"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n"
     "Transfer-Encoding: chunked\r\n\r\n",
     1, 200, -1, 0, HB_BODY_CHUNKED, 1},
    {"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nContent-Type: text/event-stream; "
     "charset=utf-8\r\nConnection: keep-alive\r\n\r\n: hi\n\n",
     1, 200, -1, 0, HB_BODY_CLOSE, 1},
    {"HTTP/1.1 200 OK\r\ntransfer-encoding: identity, Chunked\r\n\r\n", 1, 200, -1, 0,
     HB_BODY_CHUNKED, 0},
    {"HTTP/1.1 200 OK\r\n\r\n", 1, 200, -1, 0, HB_BODY_CLOSE, 0},
    {"HTTP/1.1 200 OK\r\nContent-Type: text/event-streams\r\nContent-Length: 0\r\n\r\n", 1, 200, 0,
     0, HB_BODY_LENGTH, 0},
    {"HTTP/1.1 200 OK\r\nContent-Type: TEXT/Event-Stream;charset=utf-8\r\nContent-Length: "
     "0\r\n\r\n",
     1, 200, 0, 0, HB_BODY_LENGTH, 1},
    /* Whatever the head says, a 304 has no body. */
    {"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", 1, 304, 0, 0,
     HB_BODY_LENGTH, 0},
    /* Refused: not HTTP/1.x, junk lengths, both chunked and a length, codings. */
    {"HTTP/2 200 OK\r\n\r\n", -1, 0, 0, 0, HB_BODY_LENGTH, 0},
    {"ICY 200 OK\r\nContent-Length: 1\r\n\r\n", -1, 0, 0, 0, HB_BODY_LENGTH, 0},
    {"HTTP/1.1 2x0 OK\r\nContent-Length: 1\r\n\r\n", -1, 0, 0, 0, HB_BODY_LENGTH, 0},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", -1, 0, 0, 0,
     HB_BODY_LENGTH, 0},
    {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", -1, 0, 0, 0,
     HB_BODY_LENGTH, 0},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", -1, 0, 0, 0, HB_BODY_LENGTH, 0},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 3\r\n\r\n", -1, 0, 0, 0,
     HB_BODY_LENGTH, 0},
    {"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", -1, 0, 0, 0, HB_BODY_LENGTH, 0},
    {"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999\r\n\r\n", -1, 0, 0, 0, HB_BODY_LENGTH, 0},
    {"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n", -1, 0, 0, 0, HB_BODY_LENGTH, 0},
};

static void test_parse_head_table(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof(head_cases) / sizeof(head_cases[0]); i++) {
        char *in = exact(head_cases[i].in);
        hb_http_head h;
        long r = hb_parse_head(in, strlen(head_cases[i].in), &h);
        long want = head_cases[i].ret;
        if (want == 1) want = (long)(strstr(head_cases[i].in, "\r\n\r\n") - head_cases[i].in) + 4;
        if (r != want) fail_msg("case %zu: returned %ld, want %ld", i, r, want);
        if (r > 0) {
            assert_int_equal(h.head_len, (size_t)r);
            assert_int_equal(h.status, head_cases[i].status);
            assert_int_equal(h.content_length, head_cases[i].length);
            if (h.close != head_cases[i].close) fail_msg("case %zu: close=%d", i, h.close);
            if (h.body != head_cases[i].body) fail_msg("case %zu: body=%d", i, (int)h.body);
            if (h.event_stream != head_cases[i].event_stream)
                fail_msg("case %zu: event_stream=%d", i, h.event_stream);
        }
        free(in);
    }
}

static void test_parse_head_refuses_a_head_that_never_ends(void **state) {
    (void)state;
    size_t n = 20000;
    char *in = malloc(n);
    assert_non_null(in);
    memset(in, 'a', n);
    memcpy(in, "HTTP/1.1 200 OK\r\n", 17);
    hb_http_head h;
    assert_int_equal(hb_parse_head(in, n, &h), -1);
    free(in);
}

/* ---- hb_chunked_decode ---------------------------------------------------- */

static const struct {
    const char *in;
    const char *data; /* what the chunks carry */
    long ret;         /* -2 the body goes on, -1 refused, else bytes after the end */
} chunked_cases[] = {
    {"5\r\nhello\r\n0\r\n\r\n", "hello", 0},
    {"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world", 0},
    {"3;name=\"v;x\"\r\nabc\r\n0 ; last\r\n\r\n", "abc", 0},
    {"a\r\n0123456789\r\nA\r\nabcdefghij\r\n0\r\n\r\n", "0123456789abcdefghij", 0},
    {"1\r\n\n\r\n0\r\nX-Trailer: 1\r\nY: 2\r\n\r\nHTTP/1.1 200", "\n", 12},
    {"000e\r\ndata: s=1\n\n: x\r\n0\r\n\r\n", "data: s=1\n\n: x", 0},
    /* The body goes on. */
    {"", "", -2},
    {"5", "", -2},
    {"5\r", "", -2},
    {"5\r\nhel", "hel", -2},
    {"5\r\nhello\r", "hello", -2},
    {"5\r\nhello\r\n", "hello", -2},
    {"5\r\nhello\r\n0\r\n", "hello", -2},
    {"5\r\nhello\r\n0\r\n\r", "hello", -2},
    {"0\r\nX: 1\r\n", "", -2},
    /* Refused. */
    {"\r\n", "", -1},
    {"g\r\n", "", -1},
    {"-1\r\n", "", -1},
    {"5\nhello\r\n", "", -1},
    {"5\r\nhelloX\r\n", "hello", -1},
    {"5\r\nhello\n0\r\n\r\n", "hello", -1},
    {"1000000000000000\r\n", "", -1},
    {"0\r\n\n", "", -1},
    {"0\r\nX: 1\n\r\n", "", -1},
    {"5;ext\n", "", -1},
};

static void test_chunked_decode_table(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof(chunked_cases) / sizeof(chunked_cases[0]); i++) {
        const char *in = chunked_cases[i].in;
        size_t n = strlen(in);
        char *buf = exact(in);
        hb_chunked d;
        hb_chunked_init(&d);
        size_t len = n;
        long r = hb_chunked_decode(&d, buf, &len);
        if (r != chunked_cases[i].ret)
            fail_msg("case %zu: returned %ld, want %ld", i, r, chunked_cases[i].ret);
        const char *want = chunked_cases[i].data;
        if (len != strlen(want) || memcmp(buf, want, len) != 0)
            fail_msg("case %zu: data '%.*s', want '%s'", i, (int)len, buf, want);
        /* What follows the body sits right after its data. */
        if (r > 0) assert_memory_equal(buf + len, in + n - (size_t)r, (size_t)r);
        free(buf);
    }
}

/* Feeds in to one decoder in reads of the sizes in cuts (then the rest),
 * as a connection would, and checks the data and the end. */
static void decode_in_reads(const char *in, const size_t *cuts, size_t ncuts, const char *want,
                            long want_ret) {
    size_t n = strlen(in), off = 0;
    char data[256] = "";
    size_t dlen = 0;
    long r = -2;
    hb_chunked d;
    hb_chunked_init(&d);
    for (size_t c = 0; c <= ncuts && off < n && r == -2; c++) {
        size_t piece = c < ncuts && cuts[c] < n - off ? cuts[c] : n - off;
        char *buf = malloc(piece ? piece : 1);
        assert_non_null(buf);
        memcpy(buf, in + off, piece);
        size_t len = piece;
        r = hb_chunked_decode(&d, buf, &len);
        assert_true(r != -1);
        assert_true(dlen + len < sizeof(data));
        memcpy(data + dlen, buf, len);
        dlen += len;
        off += piece;
        free(buf);
    }
    if (r != want_ret) fail_msg("'%s' in reads: returned %ld, want %ld", in, r, want_ret);
    if (dlen != strlen(want) || memcmp(data, want, dlen) != 0)
        fail_msg("'%s' in reads: data '%.*s', want '%s'", in, (int)dlen, data, want);
}

static void test_chunked_decode_keeps_its_place_across_reads(void **state) {
    (void)state;
    /* Every case that ends, cut once at every byte and read byte by byte. */
    for (size_t i = 0; i < sizeof(chunked_cases) / sizeof(chunked_cases[0]); i++) {
        if (chunked_cases[i].ret != 0) continue;
        const char *in = chunked_cases[i].in;
        size_t n = strlen(in);
        for (size_t cut = 1; cut < n; cut++)
            decode_in_reads(in, &cut, 1, chunked_cases[i].data, 0);
        size_t ones[64];
        for (size_t j = 0; j < 64; j++)
            ones[j] = 1;
        assert_true(n <= 64);
        decode_in_reads(in, ones, n, chunked_cases[i].data, 0);
    }
    /* A size line, a data CRLF and the trailer each split in the middle. */
    static const size_t cuts[] = {1, 2, 4, 1, 3, 2, 5, 1};
    decode_in_reads("1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nT: v\r\n\r\n", cuts, 8,
                    "abcdefghijklmnopqrstuvwxyz", 0);
}

static void test_chunked_decode_leaves_every_byte_after_the_end(void **state) {
    (void)state;
    char buf[] = "0\r\n\r\nnext";
    hb_chunked d;
    hb_chunked_init(&d);
    size_t len = strlen(buf);
    assert_int_equal(hb_chunked_decode(&d, buf, &len), 4);
    assert_int_equal(len, 0);
    assert_memory_equal(buf, "next", 4);
    char more[] = "more";
    len = 4;
    assert_int_equal(hb_chunked_decode(&d, more, &len), 4);
    assert_int_equal(len, 0);
}

/* ---- hb_sse_next ---------------------------------------------------------- */

/* One block as a line of text, for comparing: "[id ev data lines retry
 * fields comments]", "-" for an absent value. */
static void describe(const hb_sse_event *ev, char *out, size_t cap) {
    char id[64] = "-", event[64] = "-", data[128] = "-";
    if (ev->id.p) snprintf(id, sizeof(id), "%.*s", (int)ev->id.n, ev->id.p);
    if (ev->event.p) snprintf(event, sizeof(event), "%.*s", (int)ev->event.n, ev->event.p);
    if (ev->data.p) snprintf(data, sizeof(data), "%.*s", (int)ev->data.n, ev->data.p);
    size_t n = strlen(out);
    snprintf(out + n, cap - n, "[%s %s %s %d %lld %d %d]", id, event, data, ev->data_lines,
             ev->retry, ev->fields, ev->comments);
}

static const struct {
    const char *in;
    const char *blocks; /* every block read, described; bytes left at the end */
    size_t left;
} sse_cases[] = {
    /* holdline: the first block, the position, a message, a miss, a heartbeat. */
    {"retry: 3000\nid: 0\n\nid: c:5\n\nid: c:6\ndata: {\"channel\":\"news\",\"id\":\"1733-0\","
     "\"data\":\"s=1\"}\n\nevent: missed\ndata: {}\n\n: hb\n\n",
     "[0 - - 0 3000 2 0][c:5 - - 0 -1 1 0][c:6 - {\"channel\":\"news\",\"id\":\"1733-0\","
     "\"data\":\"s=1\"} 1 -1 2 0][- missed {} 1 -1 2 0][- - - 0 -1 0 1]",
     0},
    /* nchan: its greeting, a message, two data lines, a ping, its timeout. */
    {": hi\n\nid: 1796167512:0\ndata: s=1 k=0 t=5\n\nid: 1796167512:1\ndata: line1\ndata: "
     "line2\n\n:hb\nevent: ping\n\n:408: 408 Request Timeout\n\n",
     "[- - - 0 -1 0 1][1796167512:0 - s=1 k=0 t=5 1 -1 2 0][1796167512:1 - line1 2 -1 3 0]"
     "[- ping - 0 -1 1 1][- - - 0 -1 0 1]",
     0},
    /* CRLF, CR alone and LF alone end lines alike; a blank line alone is a block. */
    {"data: a\r\nid: 1\r\n\r\ndata: b\rid: 2\r\rdata: c\n\n\n",
     "[1 - a 1 -1 2 0][2 - b 1 -1 2 0][- - c 1 -1 1 0][- - - 0 -1 0 0]", 0},
    /* No space after the colon, two after it, a bare name, unknown fields. */
    {"data:x\ndata:  y\ndata\nfoo: bar\nid:\n\n", "[ - x 3 -1 5 0]", 0},
    /* The last id and event win; a retry that is not all digits is ignored. */
    {"id: 1\nid: 2\nevent: a\nevent: b\nretry: 10\nretry: 5s\ndata: d\n\n", "[2 b d 1 10 7 0]", 0},
    /* An unfinished block is left for the next read. */
    {"data: a\n\ndata: b\n", "[- - a 1 -1 1 0]", 8},
    {"data: a\n\ndata: b\r\n\r", "[- - a 1 -1 1 0][- - b 1 -1 1 0]", 0},
    {"data: a\r", "", 8},
    {"", "", 0},
};

/* Reads every block of in, given in reads of the sizes in cuts (then the
 * rest), keeping what a read did not finish in front of the next, as a
 * connection does; describes the blocks into out and returns the bytes
 * left unfinished. */
static size_t sse_in_reads(const char *in, const size_t *cuts, size_t ncuts, char *out,
                           size_t cap) {
    size_t n = strlen(in), off = 0, have = 0;
    char *buf = malloc(n + 1);
    assert_non_null(buf);
    hb_sse s;
    memset(&s, 0, sizeof(s));
    out[0] = '\0';
    for (size_t c = 0; c <= ncuts && off < n; c++) {
        size_t piece = c < ncuts && cuts[c] < n - off ? cuts[c] : n - off;
        memcpy(buf + have, in + off, piece);
        have += piece;
        off += piece;
        /* In a block of exactly what is there, so ASan sees over-reads. */
        char *exact_buf = malloc(have ? have : 1);
        assert_non_null(exact_buf);
        memcpy(exact_buf, buf, have);
        size_t used = 0;
        long r;
        hb_sse_event ev;
        while ((r = hb_sse_next(&s, exact_buf + used, have - used, &ev)) > 0) {
            describe(&ev, out, cap);
            used += (size_t)r;
        }
        assert_int_equal(r, -2);
        free(exact_buf);
        memmove(buf, buf + used, have - used);
        have -= used;
    }
    free(buf);
    return have;
}

static void test_sse_next_table(void **state) {
    (void)state;
    char got[1024];
    for (size_t i = 0; i < sizeof(sse_cases) / sizeof(sse_cases[0]); i++) {
        size_t left = sse_in_reads(sse_cases[i].in, NULL, 0, got, sizeof(got));
        if (strcmp(got, sse_cases[i].blocks) != 0)
            fail_msg("case %zu: blocks\n  %s\nwant\n  %s", i, got, sse_cases[i].blocks);
        if (left != sse_cases[i].left) fail_msg("case %zu: %zu bytes left", i, left);
    }
}

static void test_sse_next_reads_the_same_blocks_however_the_bytes_are_cut(void **state) {
    (void)state;
    char got[1024];
    for (size_t i = 0; i < sizeof(sse_cases) / sizeof(sse_cases[0]); i++) {
        const char *in = sse_cases[i].in;
        size_t n = strlen(in);
        for (size_t cut = 1; cut < n; cut++) {
            size_t left = sse_in_reads(in, &cut, 1, got, sizeof(got));
            if (strcmp(got, sse_cases[i].blocks) != 0 || left != sse_cases[i].left)
                fail_msg("case %zu cut at %zu: blocks\n  %s\nwant\n  %s", i, cut, got,
                         sse_cases[i].blocks);
        }
        static size_t ones[512];
        for (size_t j = 0; j < 512; j++)
            ones[j] = 1;
        assert_true(n <= 512);
        sse_in_reads(in, ones, n, got, sizeof(got));
        if (strcmp(got, sse_cases[i].blocks) != 0)
            fail_msg("case %zu byte by byte: blocks\n  %s", i, got);
    }
}

static void test_sse_next_joins_a_crlf_split_across_reads(void **state) {
    (void)state;
    char got[256];
    /* The blank line's CR ends one read and its LF starts the next: the LF
     * must not count as one more blank line (an empty block). */
    static const size_t at_cr[] = {11};
    assert_int_equal(sse_in_reads("data: a\r\n\r\ndata: b\r\n\r\n", at_cr, 1, got, sizeof(got)), 0);
    assert_string_equal(got, "[- - a 1 -1 1 0][- - b 1 -1 1 0]");
    /* A field line's CRLF split: one line, not a line and a blank one. */
    static const size_t in_field[] = {8};
    assert_int_equal(sse_in_reads("data: a\r\n\r\n", in_field, 1, got, sizeof(got)), 0);
    assert_string_equal(got, "[- - a 1 -1 1 0]");
    /* A CR alone that ends the block, followed later by a field. */
    static const size_t cr_alone[] = {9};
    assert_int_equal(sse_in_reads("data: a\r\rdata: b\r\r", cr_alone, 1, got, sizeof(got)), 0);
    assert_string_equal(got, "[- - a 1 -1 1 0][- - b 1 -1 1 0]");
}

static void test_sse_next_refuses_a_block_that_never_ends(void **state) {
    (void)state;
    size_t n = HB_SSE_BLOCK_MAX;
    char *in = malloc(n);
    assert_non_null(in);
    memset(in, 'x', n);
    memcpy(in, "data: ", 6);
    hb_sse s;
    hb_sse_event ev;
    memset(&s, 0, sizeof(s));
    assert_int_equal(hb_sse_next(&s, in, n - 1, &ev), -2);
    assert_int_equal(hb_sse_next(&s, in, n, &ev), -1);
    free(in);
}

/* What a connection does with a chunked event stream: decode each read in
 * place after the unfinished block, then read blocks. */
static void test_sse_blocks_of_a_chunked_stream_cut_across_chunks_and_reads(void **state) {
    (void)state;
    /* Chunks split "data:" and the CRLF of a blank line. */
    const char *wire = "d\r\nretry: 3000\n\n\r\n"
                       "a\r\nid: c:5\nda\r\n"
                       "1a\r\nta: {\"channel\":\"n\",\"data\":\r\n"
                       "d\r\n\"s=1 k=0\"}\r\n\r\r\n"
                       "3\r\n\n: \r\n"
                       "3\r\nhb\n\r\n"
                       "1\r\n\n\r\n"
                       "0\r\n\r\n";
    const char *want = "[- - - 0 3000 1 0][c:5 - {\"channel\":\"n\",\"data\":\"s=1 k=0\"} 1 -1 2 0]"
                       "[- - - 0 -1 0 1]";
    size_t n = strlen(wire);
    for (size_t cut = 1; cut <= n; cut++) {
        char buf[512], got[512] = "";
        size_t have = 0, off = 0;
        long end = -2;
        hb_chunked d;
        hb_sse s;
        hb_chunked_init(&d);
        memset(&s, 0, sizeof(s));
        while (off < n && end == -2) {
            size_t piece = cut < n - off ? cut : n - off;
            memcpy(buf + have, wire + off, piece);
            off += piece;
            size_t len = piece;
            end = hb_chunked_decode(&d, buf + have, &len);
            assert_true(end != -1);
            have += len;
            size_t used = 0;
            long r;
            hb_sse_event ev;
            while ((r = hb_sse_next(&s, buf + used, have - used, &ev)) > 0) {
                describe(&ev, got, sizeof(got));
                used += (size_t)r;
            }
            memmove(buf, buf + used, have - used);
            have -= used;
        }
        if (end != 0 || strcmp(got, want) != 0 || have != 0)
            fail_msg("reads of %zu: end %ld, %zu left, blocks\n  %s", cut, end, have, got);
    }
}

/* ---- hb_parse_msg --------------------------------------------------------- */

static void test_parse_msg_reads_one_message_object(void **state) {
    (void)state;
    const char *good = " {\"channel\":\"news\",\"id\":\"1733-0\",\"data\":\"s=1 k=0 t=5\"} ";
    char *in = exact(good);
    hb_msg m;
    assert_int_equal(hb_parse_msg(in, strlen(good), &m), 0);
    assert_true(str_is(m.channel, "news"));
    assert_true(str_is(m.id, "1733-0"));
    assert_true(str_is(m.data, "s=1 k=0 t=5"));
    free(in);
    static const char *const bad[] = {
        "",
        "s=1 k=0 t=5",
        "[{\"data\":\"x\"}]",
        ",{\"data\":\"x\"}",
        "{\"data\":\"x\"",
        "{\"data\":\"x\"} {}",
        "{\"data\":\"x\"},",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        in = exact(bad[i]);
        if (hb_parse_msg(in, strlen(bad[i]), &m) != -1) fail_msg("accepted '%s'", bad[i]);
        free(in);
    }
}

/* ---- hb_scan_answer, hb_next_msg ------------------------------------------ */

static void test_scan_answer_reads_cursor_messages_and_missed(void **state) {
    (void)state;
    const char *body = "{\"cursor\":\"3f9a:1732300000042-0\",\"messages\":["
                       "{\"channel\":\"news\",\"id\":\"1732300000042-0\",\"data\":\"s=1 k=0 t=5\"},"
                       "{\"channel\":\"a,b\",\"id\":null,\"data\":\"say \\\"hi\\\" ]}\"}"
                       "],\"missed\":true}";
    char *in = exact(body);
    hb_answer a;
    hb_msg m;
    assert_int_equal(hb_scan_answer(in, strlen(body), &a), 0);
    assert_true(str_is(a.cursor, "3f9a:1732300000042-0"));
    assert_int_equal(a.missed, 1);
    assert_int_equal(hb_next_msg(&a, &m), 1);
    assert_true(str_is(m.channel, "news"));
    assert_true(str_is(m.id, "1732300000042-0"));
    assert_true(str_is(m.data, "s=1 k=0 t=5"));
    assert_int_equal(hb_next_msg(&a, &m), 1);
    assert_true(str_is(m.channel, "a,b"));
    assert_true(str_is(m.id, NULL));
    /* Escapes are left as they are. */
    assert_true(str_is(m.data, "say \\\"hi\\\" ]}"));
    assert_int_equal(hb_next_msg(&a, &m), 0);
    assert_int_equal(hb_next_msg(&a, &m), 0);
    free(in);
}

static void test_scan_answer_of_a_timeout_has_no_messages(void **state) {
    (void)state;
    const char *body = "{ \"cursor\" : \"e:0\" , \"messages\" : [ ] , \"missed\" : false }";
    char *in = exact(body);
    hb_answer a;
    hb_msg m;
    assert_int_equal(hb_scan_answer(in, strlen(body), &a), 0);
    assert_true(str_is(a.cursor, "e:0"));
    assert_int_equal(a.missed, 0);
    assert_int_equal(hb_next_msg(&a, &m), 0);
    free(in);
}

static void test_scan_answer_skips_fields_it_does_not_know(void **state) {
    (void)state;
    const char *body =
        "{\"v\":[1,{\"x\":\"]\"}],\"messages\":[{\"extra\":{\"n\":2},\"channel\":\"c\","
        "\"data\":\"d\",\"id\":\"1-0\"}],\"n\":-1.5e3,\"cursor\":\"z\"}";
    char *in = exact(body);
    hb_answer a;
    hb_msg m;
    assert_int_equal(hb_scan_answer(in, strlen(body), &a), 0);
    assert_true(str_is(a.cursor, "z"));
    assert_int_equal(hb_next_msg(&a, &m), 1);
    assert_true(str_is(m.channel, "c"));
    assert_true(str_is(m.data, "d"));
    assert_true(str_is(m.id, "1-0"));
    assert_int_equal(hb_next_msg(&a, &m), 0);
    free(in);
}

static const char *const bad_answers[] = {
    "",
    "[]",
    "{",
    "{\"cursor\":\"a\"}",                      /* no messages */
    "{\"messages\":[]}",                       /* no cursor */
    "{\"cursor\":\"a\",\"messages\":{}}",      /* not an array */
    "{\"cursor\":\"a,\"messages\":[]}",        /* unterminated string */
    "{\"cursor\":\"a\",\"messages\":[],}",     /* trailing comma */
    "{\"cursor\":\"a\",\"messages\":[]",       /* unclosed */
    "{\"cursor\":\"a\",\"messages\":[]\"x\"}", /* missing comma */
    "{\"cursor\":\"a\\",
    "{\"cursor\":\"a\",\"messages\":[],\"missed\":maybe}",
};

static void test_scan_answer_refuses_malformed_bodies(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof(bad_answers) / sizeof(bad_answers[0]); i++) {
        char *in = exact(bad_answers[i]);
        hb_answer a;
        if (hb_scan_answer(in, strlen(bad_answers[i]), &a) != -1)
            fail_msg("accepted '%s'", bad_answers[i]);
        free(in);
    }
}

static const char *const bad_arrays[] = {
    "{\"cursor\":\"a\",\"messages\":[{\"channel\":\"c\"",
    "{\"cursor\":\"a\",\"messages\":[{\"channel\":nul}]}",
    "{\"cursor\":\"a\",\"messages\":[7]}",
    "{\"cursor\":\"a\",\"messages\":[{\"channel\" \"c\"}]}",
};

static void test_next_msg_refuses_malformed_messages(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof(bad_arrays) / sizeof(bad_arrays[0]); i++) {
        size_t n = strlen(bad_arrays[i]);
        char *in = exact(bad_arrays[i]);
        hb_answer a;
        hb_msg m;
        /* The top level may already fail; if not, the message must. */
        if (hb_scan_answer(in, n, &a) == 0 && hb_next_msg(&a, &m) != -1)
            fail_msg("accepted '%s'", bad_arrays[i]);
        free(in);
    }
}

/* ---- hb_data_field -------------------------------------------------------- */

static void test_data_field_finds_integer_fields(void **state) {
    (void)state;
    const char *d = "s=12 k=3 t=1732300000123456 xxxxxxxx";
    char *in = exact(d);
    hb_str s = {in, strlen(d)};
    long long v;
    assert_int_equal(hb_data_field(s, 's', &v), 0);
    assert_int_equal(v, 12);
    assert_int_equal(hb_data_field(s, 'k', &v), 0);
    assert_int_equal(v, 3);
    assert_int_equal(hb_data_field(s, 't', &v), 0);
    assert_int_equal(v, 1732300000123456LL);
    assert_int_equal(hb_data_field(s, 'r', &v), -1);
    assert_int_equal(hb_data_field(s, 'x', &v), -1);
    free(in);
}

static const char *const bad_fields[] = {"",     "s",    "s=",   "s=x",
                                         "s=1x", "as=1", "s=-1", "s=99999999999999999999"};

static void test_data_field_refuses_what_is_not_a_field(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof(bad_fields) / sizeof(bad_fields[0]); i++) {
        char *in = exact(bad_fields[i]);
        hb_str s = {in, strlen(bad_fields[i])};
        long long v;
        if (hb_data_field(s, 's', &v) != -1) fail_msg("accepted '%s'", bad_fields[i]);
        free(in);
    }
}

/* ---- Flag values ---------------------------------------------------------- */

static void test_parse_numbers_within_their_ranges(void **state) {
    (void)state;
    long long v;
    double d;
    assert_int_equal(hb_parse_ll("15000", 1, 20000, &v), 0);
    assert_int_equal(v, 15000);
    assert_int_equal(hb_parse_ll("0", 1, 20000, &v), -1);
    assert_int_equal(hb_parse_ll("20001", 1, 20000, &v), -1);
    assert_int_equal(hb_parse_ll("1e3", 1, 20000, &v), -1);
    assert_int_equal(hb_parse_ll(" 5", 1, 20000, &v), -1);
    assert_int_equal(hb_parse_ll("", 1, 20000, &v), -1);
    assert_int_equal(hb_parse_ll("99999999999999999999", 1, 20000, &v), -1);
    assert_int_equal(hb_parse_double("0.5", 0, 10, &d), 0);
    assert_true(d == 0.5);
    assert_int_equal(hb_parse_double("nan", 0, 10, &d), -1);
    assert_int_equal(hb_parse_double("11", 0, 10, &d), -1);
    assert_int_equal(hb_parse_double("2s", 0, 10, &d), -1);
}

static void test_parse_addrs_lists_nodes_and_sources(void **state) {
    (void)state;
    struct sockaddr_in a[4];
    int n;
    char err[160];
    assert_int_equal(hb_parse_addrs("127.0.0.1:8080,localhost:8081", 1, a, 4, &n, err, sizeof(err)),
                     0);
    assert_int_equal(n, 2);
    assert_int_equal(ntohs(a[0].sin_port), 8080);
    assert_int_equal(ntohl(a[1].sin_addr.s_addr), 0x7f000001);
    assert_int_equal(ntohs(a[1].sin_port), 8081);
    assert_int_equal(hb_parse_addrs("127.0.0.2,127.0.0.3", 0, a, 4, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ntohl(a[1].sin_addr.s_addr), 0x7f000003);

    static const struct {
        const char *in;
        int want_port;
        const char *says;
    } bad[] = {
        {"", 1, "empty"},
        {"127.0.0.1", 1, "HOST:PORT"},
        {"127.0.0.1:0", 1, "HOST:PORT"},
        {"127.0.0.1:65536", 1, "HOST:PORT"},
        {"example.com:80", 1, "not an IPv4"},
        {"127.0.0.1:80,", 1, "trailing comma"},
        {"127.0.0.1:80,,127.0.0.1:81", 1, "not an address"},
        {"127.0.0.2:5", 0, "without a port"},
        {"1:1,1:2,1:3,1:4,1:5", 1, "not an IPv4"},
        {"127.0.0.1:1,127.0.0.1:2,127.0.0.1:3,127.0.0.1:4,127.0.0.1:5", 1, "more than 4"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (hb_parse_addrs(bad[i].in, bad[i].want_port, a, 4, &n, err, sizeof(err)) != -1)
            fail_msg("accepted '%s'", bad[i].in);
        if (strstr(err, bad[i].says) == NULL)
            fail_msg("'%s': message '%s' lacks '%s'", bad[i].in, err, bad[i].says);
    }
}

/* ---- Browser request headers --------------------------------------------- */

/* Whether c may be in an HTTP header name (RFC 9110 tchar). */
static int is_tchar(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* Checks that buf[0..n) is header lines, each "Name: value" ending in
 * CRLF, with no bare CR or LF and no blank line; returns how many. */
static int check_header_lines(const char *buf, size_t n) {
    int lines = 0;
    size_t i = 0;
    while (i < n) {
        const char *line = buf + i;
        const char *crlf = strstr(line, "\r\n");
        if (crlf == NULL || (size_t)(crlf - buf) + 2 > n) fail_msg("line %d has no CRLF", lines);
        size_t len = (size_t)(crlf - line);
        if (len == 0) fail_msg("a blank line after %d lines", lines);
        size_t name = 0;
        while (name < len && is_tchar(line[name]))
            name++;
        if (name == 0 || name + 2 > len || line[name] != ':' || line[name + 1] != ' ')
            fail_msg("line %d is not 'Name: value': '%.*s'", lines, (int)len, line);
        for (size_t j = 0; j < len; j++)
            if (line[j] == '\r' || line[j] == '\n') fail_msg("a bare CR or LF in line %d", lines);
        i += len + 2;
        lines++;
    }
    return lines;
}

static void test_browser_headers_are_about_700_bytes_of_what_chrome_sends(void **state) {
    (void)state;
    char buf[2048];
    long n = hb_browser_headers(buf, sizeof(buf), "127.0.0.1:8081", 1, 0);
    assert_true(n >= 650 && n <= 750);
    assert_int_equal(strlen(buf), (size_t)n);
    assert_true(check_header_lines(buf, (size_t)n) >= 12);
    const char *must[] = {"\r\nUser-Agent: Mozilla/5.0 (",
                          "\r\nAccept: ",
                          "\r\nAccept-Language: ",
                          "\r\nAccept-Encoding: gzip",
                          "\r\nsec-ch-ua: ",
                          "\r\nsec-ch-ua-mobile: ",
                          "\r\nsec-ch-ua-platform: ",
                          "\r\nSec-Fetch-Site: same-origin\r\n",
                          "\r\nSec-Fetch-Mode: ",
                          "\r\nSec-Fetch-Dest: ",
                          "\r\nReferer: http://127.0.0.1:8081/"};
    for (size_t i = 0; i < sizeof(must) / sizeof(must[0]); i++)
        if (strstr(buf, must[i]) == NULL) fail_msg("no '%s' in:\n%s", must[i] + 2, buf);
    /* A same-origin GET has no Origin; Host and the cookies are not its. */
    assert_null(strstr(buf, "Origin:"));
    assert_null(strstr(buf, "Host:"));
    assert_null(strstr(buf, "Cookie:"));
}

static void test_cookie_header_value_is_exactly_the_bytes_asked(void **state) {
    (void)state;
    static const long long sizes[] = {HB_COOKIE_MIN, HB_COOKIE_MIN + 1, 31, 100, 700, 2048, 4000,
                                      65536};
    static char buf[70000], again[70000];
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        long long want = sizes[i];
        long n = hb_browser_headers(buf, sizeof(buf), "h:1", 0, want);
        if (n != want + 10) fail_msg("%lld bytes: length %ld, want %lld", want, n, want + 10);
        assert_int_equal(check_header_lines(buf, (size_t)n), 1);
        assert_memory_equal(buf, "Cookie: ", 8);
        /* name=value pairs joined by "; ", values of cookie-octets only. */
        const char *v = buf + 8, *end = buf + n - 2;
        int cookies = 0;
        while (v < end) {
            const char *semi = strstr(v, "; ");
            const char *stop = semi != NULL && semi < end ? semi : end;
            const char *eq = memchr(v, '=', (size_t)(stop - v));
            if (eq == NULL || eq == v || eq + 1 == stop)
                fail_msg("%lld bytes: cookie %d is not name=value", want, cookies);
            for (const char *c = v; c < eq; c++)
                if (!is_tchar(*c)) fail_msg("%lld bytes: '%c' in a cookie name", want, *c);
            for (const char *c = eq + 1; c < stop; c++)
                if (*c <= ' ' || *c == '"' || *c == ',' || *c == ';' || *c == '\\' || *c > '~')
                    fail_msg("%lld bytes: '%c' in a cookie value", want, *c);
            cookies++;
            v = stop == end ? end : stop + 2;
        }
        if (want == 2048 && (cookies < 20 || cookies > 40))
            fail_msg("2 KB of cookies in %d cookies, want 20 to 40", cookies);
        /* The same every call, so every poll of a run is the same size. */
        assert_int_equal(hb_browser_headers(again, sizeof(again), "h:1", 0, want), n);
        assert_memory_equal(buf, again, (size_t)n);
    }
}

static void test_browser_headers_with_cookies_are_both_together(void **state) {
    (void)state;
    char both[4096], browser[2048], cookie[4096];
    long b = hb_browser_headers(browser, sizeof(browser), "127.0.0.1:8081", 1, 0);
    long c = hb_browser_headers(cookie, sizeof(cookie), "127.0.0.1:8081", 0, 2048);
    long n = hb_browser_headers(both, sizeof(both), "127.0.0.1:8081", 1, 2048);
    assert_int_equal(n, b + c);
    assert_memory_equal(both, browser, (size_t)b);
    assert_memory_equal(both + b, cookie, (size_t)c);
}

static void test_browser_headers_refuse_a_small_buffer_or_cookie(void **state) {
    (void)state;
    char buf[4096];
    assert_int_equal(hb_browser_headers(buf, sizeof(buf), "h:1", 0, 0), 0);
    assert_string_equal(buf, "");
    long n = hb_browser_headers(buf, sizeof(buf), "h:1", 1, 100);
    assert_true(n > 0);
    /* Room for the lines and their NUL, and not one byte less. */
    char *exact_fit = malloc((size_t)n + 1);
    assert_non_null(exact_fit);
    assert_int_equal(hb_browser_headers(exact_fit, (size_t)n + 1, "h:1", 1, 100), n);
    assert_int_equal(hb_browser_headers(exact_fit, (size_t)n, "h:1", 1, 100), -1);
    assert_string_equal(exact_fit, "");
    assert_int_equal(hb_browser_headers(exact_fit, 100, "h:1", 1, 0), -1);
    assert_string_equal(exact_fit, "");
    free(exact_fit);
    assert_int_equal(hb_browser_headers(buf, sizeof(buf), "h:1", 0, HB_COOKIE_MIN - 1), -1);
    assert_int_equal(hb_browser_headers(buf, sizeof(buf), "h:1", 0, -1), -1);
    assert_int_equal(hb_browser_headers(buf, 0, "h:1", 1, 0), -1);
}

/* ---- Histogram and the hand-over of counters ------------------------------ */

static void test_hist_percentiles_are_within_its_resolution(void **state) {
    (void)state;
    static hb_hist h;
    memset(&h, 0, sizeof(h));
    assert_int_equal(hb_hist_pct(&h, 50), -1);
    for (long long v = 1; v <= 100000; v++)
        hb_hist_add(&h, v);
    assert_int_equal(h.n, 100000);
    assert_int_equal(h.max_us, 100000);
    static const double pcts[] = {50, 90, 99, 99.9};
    for (size_t i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++) {
        double want = pcts[i] * 1000;
        double got = (double)hb_hist_pct(&h, pcts[i]);
        if (got < want || got > want * 1.032)
            fail_msg("p%g = %g, want %g (+3.2%%)", pcts[i], got, want);
    }
    assert_int_equal(hb_hist_pct(&h, 100), 100000);
}

static void test_hist_is_exact_for_small_values_and_clamps_the_rest(void **state) {
    (void)state;
    static hb_hist h;
    memset(&h, 0, sizeof(h));
    hb_hist_add(&h, -5);
    hb_hist_add(&h, 7);
    hb_hist_add(&h, 127);
    assert_int_equal(hb_hist_pct(&h, 1), 0);
    assert_int_equal(hb_hist_pct(&h, 50), 7);
    assert_int_equal(hb_hist_pct(&h, 100), 127);
    hb_hist_add(&h, 1LL << 50);
    assert_int_equal(hb_hist_pct(&h, 100), 1LL << 50);
}

static void test_stats_written_by_two_workers_merge_into_one(void **state) {
    (void)state;
    static hb_stats a, b, merged, direct;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    memset(&merged, 0, sizeof(merged));
    memset(&direct, 0, sizeof(direct));
    a.waiters = 3, a.held = 3, a.received = 10, a.errors = 1, a.first_us = 500, a.last_us = 900;
    b.waiters = 2, b.held = 1, b.gaps = 4, b.dups = 2, b.first_us = 400, b.last_us = 800;
    a.idle_held = 7, b.idle_held = 5, b.idle_answers = 3;
    for (long long v = 0; v < 5000; v += 7)
        hb_hist_add(&a.lat, v);
    for (long long v = 100; v < 900000; v += 1111)
        hb_hist_add(&b.lat, v);

    /* Through a pipe, line by line, as the parent reads a worker. */
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    assert_int_equal(hb_stats_write(fd[1], &a), 0);
    assert_int_equal(hb_stats_write(fd[1], &b), 0);
    close(fd[1]);
    FILE *f = fdopen(fd[0], "r");
    assert_non_null(f);
    char line[HB_LINE_MAX + 2];
    int lines = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        size_t n = strlen(line);
        assert_true(n > 0 && n <= HB_LINE_MAX && line[n - 1] == '\n');
        line[n - 1] = '\0';
        assert_int_equal(hb_stats_read_line(&merged, line), 0);
        lines++;
    }
    fclose(f);
    assert_true(lines > 2);

    hb_stats_merge(&direct, &a);
    hb_stats_merge(&direct, &b);
    assert_int_equal(merged.waiters, 5);
    assert_int_equal(merged.held, 4);
    assert_int_equal(merged.received, 10);
    assert_int_equal(merged.gaps, 4);
    assert_int_equal(merged.dups, 2);
    assert_int_equal(merged.errors, 1);
    assert_int_equal(merged.idle_held, 12);
    assert_int_equal(merged.idle_answers, 3);
    assert_int_equal(merged.first_us, 400);
    assert_int_equal(merged.last_us, 900);
    assert_int_equal(merged.lat.n, a.lat.n + b.lat.n);
    assert_int_equal(merged.lat.max_us, b.lat.max_us);
    assert_memory_equal(&merged, &direct, sizeof(merged));
    assert_int_equal(hb_hist_pct(&merged.lat, 99), hb_hist_pct(&direct.lat, 99));
}

static void test_stats_read_line_refuses_other_lines(void **state) {
    (void)state;
    static hb_stats s;
    assert_int_equal(hb_stats_read_line(&s, "READY 0 5"), -1);
    assert_int_equal(hb_stats_read_line(&s, "STAT held=x"), -1);
    assert_int_equal(hb_stats_read_line(&s, "HIST 99999:1"), -1);
    assert_int_equal(hb_stats_read_line(&s, "HIST 3"), -1);
    /* Unknown counters from a newer worker are skipped, not fatal. */
    assert_int_equal(hb_stats_read_line(&s, "STAT held=2 future=7"), 0);
    assert_int_equal(s.held, 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_head_table),
        cmocka_unit_test(test_parse_head_refuses_a_head_that_never_ends),
        cmocka_unit_test(test_chunked_decode_table),
        cmocka_unit_test(test_chunked_decode_keeps_its_place_across_reads),
        cmocka_unit_test(test_chunked_decode_leaves_every_byte_after_the_end),
        cmocka_unit_test(test_sse_next_table),
        cmocka_unit_test(test_sse_next_reads_the_same_blocks_however_the_bytes_are_cut),
        cmocka_unit_test(test_sse_next_joins_a_crlf_split_across_reads),
        cmocka_unit_test(test_sse_next_refuses_a_block_that_never_ends),
        cmocka_unit_test(test_sse_blocks_of_a_chunked_stream_cut_across_chunks_and_reads),
        cmocka_unit_test(test_parse_msg_reads_one_message_object),
        cmocka_unit_test(test_scan_answer_reads_cursor_messages_and_missed),
        cmocka_unit_test(test_scan_answer_of_a_timeout_has_no_messages),
        cmocka_unit_test(test_scan_answer_skips_fields_it_does_not_know),
        cmocka_unit_test(test_scan_answer_refuses_malformed_bodies),
        cmocka_unit_test(test_next_msg_refuses_malformed_messages),
        cmocka_unit_test(test_data_field_finds_integer_fields),
        cmocka_unit_test(test_data_field_refuses_what_is_not_a_field),
        cmocka_unit_test(test_parse_numbers_within_their_ranges),
        cmocka_unit_test(test_parse_addrs_lists_nodes_and_sources),
        cmocka_unit_test(test_browser_headers_are_about_700_bytes_of_what_chrome_sends),
        cmocka_unit_test(test_cookie_header_value_is_exactly_the_bytes_asked),
        cmocka_unit_test(test_browser_headers_with_cookies_are_both_together),
        cmocka_unit_test(test_browser_headers_refuse_a_small_buffer_or_cookie),
        cmocka_unit_test(test_hist_percentiles_are_within_its_resolution),
        cmocka_unit_test(test_hist_is_exact_for_small_values_and_clamps_the_rest),
        cmocka_unit_test(test_stats_written_by_two_workers_merge_into_one),
        cmocka_unit_test(test_stats_read_line_refuses_other_lines),
    };
    return cmocka_run_group_tests_name("holdline-bench parsing and counters", tests, NULL, NULL);
}

/* Unit tests for hl_peek: reading a connection's first request head, the
 * pool it needs by libmicrohttpd 0.9.75's accounting, the channel that
 * places it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hl_peek.h"

static hl_peek_status parse(const char *s, hl_peek *p) {
    return hl_peek_parse(s, strlen(s), p);
}

static int span_is(hl_span s, const char *want) {
    return s.n == strlen(want) && memcmp(s.p, want, s.n) == 0;
}

static void test_peek_a_short_poll_is_complete_and_names_its_first_channel(void **state) {
    (void)state;
    hl_peek p;
    const char *req = "GET /poll/news,sport?cursor=abc&timeout=25 HTTP/1.1\r\n"
                      "Host: h\r\nAccept: */*\r\n\r\n";
    assert_int_equal(parse(req, &p), HL_PEEK_DONE);
    assert_int_equal(p.head_len, strlen(req));
    assert_true(span_is(p.target, "/poll/news,sport?cursor=abc&timeout=25"));
    assert_true(span_is(p.channel, "news"));
    assert_int_equal(p.lines, 2);
    assert_int_equal(p.args, 2);
    assert_int_equal(p.cookies, 0);
    assert_int_equal(p.header_bytes, (4 + 1 + 4) + (6 + 3 + 4));
    /* 2 lines + 2 arguments: four records, no cookie copy. */
    assert_int_equal(hl_peek_pool_need(&p),
                     strlen(req) + 4 * HL_PEEK_RECORD + HL_PEEK_ROOM + p.target.n);
}

static void test_peek_bytes_after_the_head_are_not_part_of_it(void **state) {
    (void)state;
    hl_peek p;
    const char *req = "POST /publish/x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
                      "GET /poll/y HTTP/1.1\r\n\r\n";
    assert_int_equal(parse(req, &p), HL_PEEK_DONE);
    assert_int_equal(p.head_len,
                     strlen(req) - strlen("hello") - strlen("GET /poll/y HTTP/1.1\r\n\r\n"));
    assert_int_equal(p.channel.n, 0); /* a publish is not placed by channel */
}

static void test_peek_incomplete_heads_ask_for_more(void **state) {
    (void)state;
    hl_peek p;
    static const char *const partial[] = {
        "",
        "GET /poll/a HTTP/1.1",
        "GET /poll/a HTTP/1.1\r\n",
        "GET /poll/a HTTP/1.1\r\nHost: h\r\n",
        "GET /poll/a HTTP/1.1\r\nHost: h\r\n\r",
    };
    for (size_t i = 0; i < sizeof(partial) / sizeof(partial[0]); i++)
        assert_int_equal(parse(partial[i], &p), HL_PEEK_MORE);
    /* The request line alone, unfinished: its length so far. */
    assert_int_equal(parse("GET /aaaaaaaa", &p), HL_PEEK_MORE);
    assert_int_equal(p.line_len, 13);
    assert_int_equal(parse("GET /aaaaaaaa HTTP/1.1\r\nHo", &p), HL_PEEK_MORE);
    assert_int_equal(p.line_len, 22);
}

static void test_peek_bare_line_feeds_end_lines_too(void **state) {
    (void)state;
    hl_peek p;
    assert_int_equal(parse("GET /poll/a HTTP/1.1\nHost: h\n\n", &p), HL_PEEK_DONE);
    assert_int_equal(p.lines, 1);
    assert_int_equal(p.head_len, 30);
}

static void test_peek_cookies_count_every_part_libmicrohttpd_keeps(void **state) {
    (void)state;
    hl_peek p;
    const char *req = "GET /poll/a HTTP/1.1\r\nHost: h\r\nCookie: a=1; b=2; c=3\r\n"
                      "cookie: ,,,\r\n\r\n";
    assert_int_equal(parse(req, &p), HL_PEEK_DONE);
    /* Three pairs, then four parts of nothing: MHD splits on ';' and ','. */
    assert_int_equal(p.cookies, 3 + 4);
    assert_int_equal(p.cookie_bytes, strlen("a=1; b=2; c=3") + 3);
    size_t copy = (p.cookie_bytes + 1 + 15) & ~(size_t)15;
    assert_int_equal(hl_peek_pool_need(&p), p.head_len + (3 + 7) * HL_PEEK_RECORD + copy +
                                                p.cookie_bytes / 2 + HL_PEEK_ROOM + p.target.n);
}

static void test_peek_header_values_are_trimmed_and_origin_is_kept(void **state) {
    (void)state;
    hl_peek p;
    const char *req = "GET /events/feed?x HTTP/1.1\r\nOrigin:   https://app.example  \r\n"
                      "X-Empty:\r\nNo colon here\r\n\r\n";
    assert_int_equal(parse(req, &p), HL_PEEK_DONE);
    assert_true(span_is(p.origin, "https://app.example"));
    assert_true(span_is(p.channel, "feed"));
    assert_int_equal(p.args, 1);
    assert_int_equal(p.lines, 3);
    assert_int_equal(p.header_bytes, (6 + 19 + 4) + (7 + 0 + 4) + (13 + 0 + 4));
}

static void test_peek_odd_request_lines_leave_no_channel(void **state) {
    (void)state;
    hl_peek p;
    static const char *const odd[] = {
        "GET /poll/ HTTP/1.1\r\n\r\n",
        "GET /poll HTTP/1.1\r\n\r\n",
        "GET /pollx/a HTTP/1.1\r\n\r\n",
        "GET /healthz HTTP/1.1\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
        assert_int_equal(parse(odd[i], &p), HL_PEEK_DONE);
        assert_int_equal(p.channel.n, 0);
    }
}

/* libmicrohttpd refuses these at once; waiting for a blank line that may
 * never come would hold them until the connection timeout. */
static void test_peek_a_request_line_not_http1_is_done_at_its_end(void **state) {
    (void)state;
    hl_peek p;
    static const char *const other[] = {
        "GET /\r\n",          "GET /healthz\r\n\r\n", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "GET / HTTP/2.0\r\n", "GARBAGE\r\n",          "\r\n",
        "GET / HTTP/1.\r\n",
    };
    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
        assert_int_equal(parse(other[i], &p), HL_PEEK_DONE);
        assert_int_equal(p.not_http1, 1);
        assert_int_equal(p.head_len, (size_t)(strchr(other[i], '\n') - other[i]) + 1);
    }
    assert_int_equal(parse("GET / HTTP/1.0\r\n", &p), HL_PEEK_MORE);
    assert_int_equal(p.not_http1, 0);
}

/* The model against what the probe saw libmicrohttpd do with a 2 KiB
 * pool (shared/research/engine-probe-multi-daemon.md, section 3): a
 * Chrome-like request of 629 bytes and 16 lines overflowed it, so it
 * must not be placed there; a short service request fits the default
 * tiny class (1536). */
static void test_peek_pool_need_keeps_chrome_out_of_a_2k_pool(void **state) {
    (void)state;
    char req[1024];
    size_t n = (size_t)snprintf(req, sizeof(req), "GET /poll/a HTTP/1.1\r\n");
    for (int i = 0; i < 16; i++)
        n += (size_t)snprintf(req + n, sizeof(req) - n, "X-Header-%02d: %s\r\n", i,
                              "abcdefghijklmnopqrstuvwx");
    snprintf(req + n, sizeof(req) - n, "\r\n");
    hl_peek p;
    assert_int_equal(parse(req, &p), HL_PEEK_DONE);
    assert_true(p.head_len > 600);
    assert_true(hl_peek_pool_need(&p) > 2048);
    assert_int_equal(parse("GET /poll/a?timeout=60&cursor=0123456789abcdef:1-2 HTTP/1.1\r\n"
                           "Host: 127.0.0.1:8080\r\n\r\n",
                           &p),
                     HL_PEEK_DONE);
    assert_true(hl_peek_pool_need(&p) <= 1536);
}

static void test_peek_hash_spreads_and_is_stable(void **state) {
    (void)state;
    assert_int_equal(hl_peek_hash("news", 4), hl_peek_hash("news", 4));
    assert_int_not_equal(hl_peek_hash("news", 4), hl_peek_hash("newt", 4));
    /* 1000 channel names over 15 daemons: none far from the mean. */
    unsigned bins[15] = {0};
    char name[32];
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(name, sizeof(name), "hbchannel%d", i);
        bins[hl_peek_hash(name, (size_t)n) % 15]++;
    }
    for (int i = 0; i < 15; i++) {
        assert_true(bins[i] > 1000 / 15 / 2);
        assert_true(bins[i] < 1000 / 15 * 2);
    }
    /* Over a power of two too, where only the low bits count: plain
     * FNV-1a put names that differ in their last digit in few bins. */
    unsigned bins8[8] = {0};
    for (int i = 0; i < 80; i++) {
        int n = snprintf(name, sizeof(name), "idle%d", i);
        bins8[hl_peek_hash(name, (size_t)n) % 8]++;
    }
    for (int i = 0; i < 8; i++) {
        assert_true(bins8[i] >= 3);
        assert_true(bins8[i] <= 20);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_peek_a_short_poll_is_complete_and_names_its_first_channel),
        cmocka_unit_test(test_peek_bytes_after_the_head_are_not_part_of_it),
        cmocka_unit_test(test_peek_incomplete_heads_ask_for_more),
        cmocka_unit_test(test_peek_bare_line_feeds_end_lines_too),
        cmocka_unit_test(test_peek_cookies_count_every_part_libmicrohttpd_keeps),
        cmocka_unit_test(test_peek_header_values_are_trimmed_and_origin_is_kept),
        cmocka_unit_test(test_peek_odd_request_lines_leave_no_channel),
        cmocka_unit_test(test_peek_a_request_line_not_http1_is_done_at_its_end),
        cmocka_unit_test(test_peek_pool_need_keeps_chrome_out_of_a_2k_pool),
        cmocka_unit_test(test_peek_hash_spreads_and_is_stable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for core/hl_request.c: routes, channel names and lists, the
 * timeout parameter and percent-decoding. Inputs are copied into blocks of
 * exactly their length (picohttpparser's guard-page habit, with ASan as
 * the guard), so reading one byte too far fails the test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hl_common.h"
#include "hl_request.h"

#include <stdio.h>
#include <limits.h>
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

/* The same for a C string, NUL included. */
static char *exact_strdup(const char *s) {
    return exact_copy(s, strlen(s) + 1);
}

static void assert_contains(const char *haystack, const char *needle) {
    if (strstr(haystack, needle) == NULL)
        fail_msg("\"%s\" does not contain \"%s\"", haystack, needle);
}

/* ---- hl_route_match --------------------------------------------------------- */

static const struct {
    const char *path;
    hl_route_kind kind;
    const char *arg; /* the expected argument; "" when none */
} route_cases[] = {
    {"/", HL_ROUTE_INDEX, ""},
    {"/index.html", HL_ROUTE_INDEX, ""},
    {"/holdline.js", HL_ROUTE_CLIENT_JS, ""},
    /* Without a channel the poll route still matches, so the answer is
     * 400 "channel missing", not 404. */
    {"/poll", HL_ROUTE_POLL, ""},
    {"/poll/", HL_ROUTE_POLL, ""},
    {"/poll/news", HL_ROUTE_POLL, "news"},
    {"/poll/a,b", HL_ROUTE_POLL, "a,b"},
    /* The argument is passed on whole; channel validation rejects it. */
    {"/poll/a/b", HL_ROUTE_POLL, "a/b"},
    {"/poll//", HL_ROUTE_POLL, "/"},
    {"/poll/\x7f", HL_ROUTE_POLL, "\x7f"},
    {"/publish/x", HL_ROUTE_PUBLISH, "x"},
    {"/channels/news", HL_ROUTE_CHANNEL, "news"},
    {"/channels", HL_ROUTE_CHANNEL, ""},
    {"/channelsx", HL_ROUTE_NONE, ""},
    {"/publish", HL_ROUTE_PUBLISH, ""},
    {"/publish/", HL_ROUTE_PUBLISH, ""},
    {"/healthz", HL_ROUTE_HEALTHZ, ""},
    {"/readyz", HL_ROUTE_READYZ, ""},
    {"/metrics", HL_ROUTE_METRICS, ""},
    {"/metrics/x", HL_ROUTE_NONE, ""},
    /* Near misses are unknown paths. */
    {"/pollx", HL_ROUTE_NONE, ""},
    {"/poll.", HL_ROUTE_NONE, ""},
    {"/publishx/a", HL_ROUTE_NONE, ""},
    {"/healthz/", HL_ROUTE_NONE, ""},
    {"/healthz/x", HL_ROUTE_NONE, ""},
    {"/readyz/", HL_ROUTE_NONE, ""},
    {"/healthzz", HL_ROUTE_NONE, ""},
    {"/health", HL_ROUTE_NONE, ""},
    {"/index.html/", HL_ROUTE_NONE, ""},
    {"/index.htm", HL_ROUTE_NONE, ""},
    {"/holdline.jsx", HL_ROUTE_NONE, ""},
    {"/holdline.js/", HL_ROUTE_NONE, ""},
    {"//poll/x", HL_ROUTE_NONE, ""},
    {"//", HL_ROUTE_NONE, ""},
    {"/./poll/x", HL_ROUTE_NONE, ""},
    {"/../poll/x", HL_ROUTE_NONE, ""},
    {"", HL_ROUTE_NONE, ""},
    {"poll/x", HL_ROUTE_NONE, ""},
    {"/POLL/x", HL_ROUTE_NONE, ""},
    {"/Poll/x", HL_ROUTE_NONE, ""},
    {"/HEALTHZ", HL_ROUTE_NONE, ""},
    {" /poll/x", HL_ROUTE_NONE, ""},
    {"/poll\\x", HL_ROUTE_NONE, ""},
    {"/healthz?x=1", HL_ROUTE_NONE, ""},
    {"/healthz\x7f", HL_ROUTE_NONE, ""},
    {"/\xC3\xA9", HL_ROUTE_NONE, ""},
};

static void check_route(size_t i, const char *path, hl_route_kind kind, const char *arg) {
    hl_route r;
    memset(&r, 0xA5, sizeof(r)); /* every field must be written */
    hl_route_match(path, &r);
    if (r.kind != kind) fail_msg("case %zu \"%s\": kind %d, want %d", i, path, r.kind, kind);
    if (r.arg.n != strlen(arg) || (r.arg.n > 0 && memcmp(r.arg.p, arg, r.arg.n) != 0))
        fail_msg("case %zu \"%s\": arg \"%.*s\", want \"%s\"", i, path, (int)r.arg.n,
                 r.arg.n ? r.arg.p : "", arg);
    /* An argument points into the path, right after the route's slash. */
    if (r.arg.n > 0) assert_ptr_equal(r.arg.p, path + strlen(path) - r.arg.n);
}

static void test_request_route_match_table(void **state) {
    (void)state;
    for (size_t i = 0; i < HL_ARRAY_LEN(route_cases); i++) {
        char *path = exact_strdup(route_cases[i].path);
        check_route(i, path, route_cases[i].kind, route_cases[i].arg);
        free(path);
    }
}

static void test_request_route_match_very_long_paths(void **state) {
    const size_t n = 1024 * 1024;
    (void)state;
    char *path = malloc(n + 1);
    assert_non_null(path);

    /* A long channel list is still the poll route, argument intact. */
    memcpy(path, "/poll/", 6);
    memset(path + 6, 'a', n - 6);
    path[n] = '\0';
    hl_route r;
    hl_route_match(path, &r);
    assert_int_equal(r.kind, HL_ROUTE_POLL);
    assert_ptr_equal(r.arg.p, path + 6);
    assert_int_equal(r.arg.n, n - 6);

    /* Long paths that start like a route but are none. */
    memcpy(path, "/healthz", 8);
    hl_route_match(path, &r);
    assert_int_equal(r.kind, HL_ROUTE_NONE);
    assert_int_equal(r.arg.n, 0);

    memset(path, '/', n);
    hl_route_match(path, &r);
    assert_int_equal(r.kind, HL_ROUTE_NONE);

    memset(path, 'a', n);
    hl_route_match(path, &r);
    assert_int_equal(r.kind, HL_ROUTE_NONE);
    free(path);
}

/* ---- Methods and Allow ------------------------------------------------------ */

static const hl_route_kind all_kinds[] = {
    HL_ROUTE_NONE,    HL_ROUTE_INDEX,  HL_ROUTE_CLIENT_JS, HL_ROUTE_POLL,    HL_ROUTE_PUBLISH,
    HL_ROUTE_HEALTHZ, HL_ROUTE_READYZ, HL_ROUTE_CHANNEL,   HL_ROUTE_METRICS,
};

static const struct {
    hl_route_kind kind;
    const char *method;
    int ok;
} method_cases[] = {
    {HL_ROUTE_INDEX, "GET", 1},
    {HL_ROUTE_INDEX, "HEAD", 1},
    {HL_ROUTE_INDEX, "POST", 0},
    {HL_ROUTE_CLIENT_JS, "GET", 1},
    {HL_ROUTE_CLIENT_JS, "HEAD", 1},
    {HL_ROUTE_CLIENT_JS, "PUT", 0},
    {HL_ROUTE_HEALTHZ, "GET", 1},
    {HL_ROUTE_HEALTHZ, "HEAD", 1},
    {HL_ROUTE_HEALTHZ, "POST", 0},
    {HL_ROUTE_READYZ, "GET", 1},
    {HL_ROUTE_READYZ, "HEAD", 1},
    {HL_ROUTE_READYZ, "DELETE", 0},
    {HL_ROUTE_METRICS, "GET", 1},
    {HL_ROUTE_METRICS, "HEAD", 1},
    {HL_ROUTE_METRICS, "POST", 0},
    /* A poll is a long wait, not something to HEAD. */
    {HL_ROUTE_POLL, "GET", 1},
    {HL_ROUTE_POLL, "HEAD", 0},
    {HL_ROUTE_POLL, "POST", 0},
    {HL_ROUTE_PUBLISH, "POST", 1},
    {HL_ROUTE_PUBLISH, "GET", 0},
    {HL_ROUTE_PUBLISH, "HEAD", 0},
    {HL_ROUTE_PUBLISH, "PUT", 0},
    {HL_ROUTE_CHANNEL, "GET", 1},
    {HL_ROUTE_CHANNEL, "HEAD", 0},
    {HL_ROUTE_CHANNEL, "POST", 0},
    /* An unknown path is a 404 whatever the method, never a 405. */
    {HL_ROUTE_NONE, "GET", 1},
    {HL_ROUTE_NONE, "BREW", 1},
    {HL_ROUTE_NONE, "", 1},
};

/* Methods no route takes: OPTIONS is answered before the method check,
 * and the rest are near misses of real methods. */
static const char *const hostile_methods[] = {
    "OPTIONS", "PUT", "DELETE", "PATCH", "TRACE", "CONNECT", "get", "Get",   "post",   "head",
    "",        "G",   "GE",     "GETX",  "GET ",  " GET",    "POS", "POSTT", "HEAD\r",
};

static void test_request_route_method_ok_table(void **state) {
    (void)state;
    for (size_t i = 0; i < HL_ARRAY_LEN(method_cases); i++) {
        char *m = exact_strdup(method_cases[i].method);
        if (hl_route_method_ok(method_cases[i].kind, m) != method_cases[i].ok)
            fail_msg("case %zu: kind %d method \"%s\": want %d", i, method_cases[i].kind, m,
                     method_cases[i].ok);
        free(m);
    }
    for (size_t k = 0; k < HL_ARRAY_LEN(all_kinds); k++) {
        if (all_kinds[k] == HL_ROUTE_NONE) continue;
        for (size_t i = 0; i < HL_ARRAY_LEN(hostile_methods); i++) {
            char *m = exact_strdup(hostile_methods[i]);
            if (hl_route_method_ok(all_kinds[k], m))
                fail_msg("kind %d accepts method \"%s\"", all_kinds[k], m);
            free(m);
        }
    }
}

static const struct {
    hl_route_kind kind;
    const char *allow;
} allow_cases[] = {
    {HL_ROUTE_NONE, "GET, HEAD, OPTIONS"},      {HL_ROUTE_INDEX, "GET, HEAD, OPTIONS"},
    {HL_ROUTE_CLIENT_JS, "GET, HEAD, OPTIONS"}, {HL_ROUTE_POLL, "GET, OPTIONS"},
    {HL_ROUTE_PUBLISH, "POST, OPTIONS"},        {HL_ROUTE_HEALTHZ, "GET, HEAD, OPTIONS"},
    {HL_ROUTE_READYZ, "GET, HEAD, OPTIONS"},    {HL_ROUTE_METRICS, "GET, HEAD, OPTIONS"},
    {HL_ROUTE_CHANNEL, "GET, OPTIONS"},
};

static void test_request_route_allow_table(void **state) {
    (void)state;
    for (size_t i = 0; i < HL_ARRAY_LEN(allow_cases); i++)
        assert_string_equal(hl_route_allow(allow_cases[i].kind), allow_cases[i].allow);
}

static void test_request_route_allow_agrees_with_method_ok(void **state) {
    /* A 405's Allow header must list exactly the methods that would have
     * been accepted (OPTIONS aside, which is answered earlier). */
    static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"};
    (void)state;
    for (size_t k = 0; k < HL_ARRAY_LEN(all_kinds); k++) {
        if (all_kinds[k] == HL_ROUTE_NONE) continue;
        const char *allow = hl_route_allow(all_kinds[k]);
        assert_contains(allow, "OPTIONS");
        for (size_t i = 0; i < HL_ARRAY_LEN(methods); i++) {
            char listed[32];
            snprintf(listed, sizeof(listed), "%s,", methods[i]);
            int in_allow = strncmp(allow, listed, strlen(listed)) == 0;
            snprintf(listed, sizeof(listed), " %s,", methods[i]);
            in_allow = in_allow || strstr(allow, listed) != NULL;
            if (in_allow != hl_route_method_ok(all_kinds[k], methods[i]))
                fail_msg("kind %d: Allow \"%s\" and method_ok disagree on %s", all_kinds[k], allow,
                         methods[i]);
        }
    }
}

/* ---- hl_channel_valid ------------------------------------------------------ */

static const char channel_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                    "0123456789._~:-";

static int channel_valid_copy(const char *s, size_t n) {
    char *p = exact_copy(s, n);
    int v = hl_channel_valid(p, n);
    free(p);
    return v;
}

static void test_request_channel_valid_accepts_every_allowed_class(void **state) {
    static const char *const good[] = {
        "a",
        "Z",
        "0",
        "9",
        ".",
        "_",
        "~",
        ":",
        "-",
        "news",
        "News-2024",
        "user:42",
        "a.b_c~d:e-f",
        "...",
        "--",
        "~~",
        "::",
        "0123456789",
        "ABCXYZabcxyz",
    };
    (void)state;
    for (size_t i = 0; i < HL_ARRAY_LEN(good); i++)
        if (!channel_valid_copy(good[i], strlen(good[i]))) fail_msg("\"%s\" rejected", good[i]);
    /* Every allowed byte on its own, and all of them together. */
    for (size_t i = 0; i < sizeof(channel_chars) - 1; i++)
        assert_true(channel_valid_copy(&channel_chars[i], 1));
    assert_true(channel_valid_copy(channel_chars, sizeof(channel_chars) - 1));
}

static void test_request_channel_valid_rejects_every_other_byte(void **state) {
    (void)state;
    for (unsigned c = 0; c < 256; c++) {
        if (c != 0 && strchr(channel_chars, (int)c) != NULL) continue;
        /* Alone, at the start, in the middle and at the end. */
        char s[5] = {'a', 'b', (char)c, 'c', 'd'};
        if (channel_valid_copy(s + 2, 1)) fail_msg("byte 0x%02x accepted alone", c);
        if (channel_valid_copy(s + 2, 3)) fail_msg("byte 0x%02x accepted first", c);
        if (channel_valid_copy(s, 5)) fail_msg("byte 0x%02x accepted inside", c);
        if (channel_valid_copy(s, 3)) fail_msg("byte 0x%02x accepted last", c);
    }
}

static void test_request_channel_valid_rejects_hostile_names(void **state) {
    static const struct {
        const char *s;
        size_t n;
    } bad[] = {
        {"a b", 3},         {"a/b", 3},          {"#a", 2},
        {"a%20b", 5},       {"a,b", 3},          {"a\x7f", 2},
        {"a\0b", 3},        {"\0", 1},           {"a\nb", 3},
        {"a\r", 2},         {"\t", 1},           {"a?b", 3},
        {"a&b", 3},         {"a=b", 3},          {"a+b", 3},
        {"a*", 2},          {"\"a\"", 3},        {"'a'", 3},
        {"<a>", 3},         {"a\\b", 3},         {"a;b", 3},
        {"a|b", 3},         {"a@b", 3},          {"$a", 2},
        {"caf\xC3\xA9", 5}, {"\xE2\x80\xA8", 3}, {"\xF0\x9F\x98\x80", 4},
        {"\x80", 1},        {"\xFF", 1},         {"a\xC0\xAF", 3},
        {"../x", 4},        {"a/../b", 6},
    };
    (void)state;
    for (size_t i = 0; i < HL_ARRAY_LEN(bad); i++)
        if (channel_valid_copy(bad[i].s, bad[i].n)) fail_msg("case %zu accepted", i);
}

static void test_request_channel_valid_limits_length(void **state) {
    char name[HL_CHANNEL_MAX_LEN + 2];
    (void)state;
    memset(name, 'x', sizeof(name));
    assert_false(channel_valid_copy(name, 0));
    assert_false(hl_channel_valid(NULL, 0));
    assert_false(hl_channel_valid("", 0));
    assert_true(channel_valid_copy(name, 1));
    assert_true(channel_valid_copy(name, 199));
    assert_true(channel_valid_copy(name, 200));
    assert_false(channel_valid_copy(name, 201));
    assert_false(channel_valid_copy(name, 202));
    assert_int_equal(HL_CHANNEL_MAX_LEN, 200);
    /* Only the first n bytes count. */
    assert_true(hl_channel_valid("abc/def", 3));
    assert_false(hl_channel_valid("abc/def", 4));
}

/* ---- hl_channels_parse -------------------------------------------------------- */

#define MAXPARTS 8

static const struct {
    const char *s;
    size_t max;
    int rc;
    const char *parts[MAXPARTS]; /* on success */
    const char *err;             /* a substring of the message on failure */
} parse_cases[] = {
    {"news", 16, HL_OK, {"news"}, NULL},
    {"a,b,c", 16, HL_OK, {"a", "b", "c"}, NULL},
    {"a,b", 2, HL_OK, {"a", "b"}, NULL},
    {"a", 1, HL_OK, {"a"}, NULL},
    /* Names that share a prefix are not duplicates. */
    {"a,ab,abc,b", 16, HL_OK, {"a", "ab", "abc", "b"}, NULL},
    {"abc,ab,a", 16, HL_OK, {"abc", "ab", "a"}, NULL},
    {"a.b,a_b,a~b,a:b,a-b", 16, HL_OK, {"a.b", "a_b", "a~b", "a:b", "a-b"}, NULL},
    {"", 16, HL_ERR, {NULL}, "no channel given"},
    {"a,b,c", 2, HL_ERR, {NULL}, "at most 2 channels"},
    {"a", 0, HL_ERR, {NULL}, "at most 0 channels"},
    {"a,,b", 16, HL_ERR, {NULL}, "channel names are"},
    {",a", 16, HL_ERR, {NULL}, "channel names are"},
    {"a,", 16, HL_ERR, {NULL}, "channel names are"},
    {",", 16, HL_ERR, {NULL}, "channel names are"},
    {",,", 16, HL_ERR, {NULL}, "channel names are"},
    {"a,a", 16, HL_ERR, {NULL}, "channel 'a' given twice"},
    {"a,b,a", 16, HL_ERR, {NULL}, "channel 'a' given twice"},
    {"x,y,y", 16, HL_ERR, {NULL}, "channel 'y' given twice"},
    {"a,b c", 16, HL_ERR, {NULL}, "channel names are"},
    {"a,b/c", 16, HL_ERR, {NULL}, "channel names are"},
    {"a, b", 16, HL_ERR, {NULL}, "channel names are"},
    {"a;b", 16, HL_ERR, {NULL}, "channel names are"},
    {"a,caf\xC3\xA9", 16, HL_ERR, {NULL}, "channel names are"},
    {"a%2Cb", 16, HL_ERR, {NULL}, "channel names are"},
    {"a,\x7f", 16, HL_ERR, {NULL}, "channel names are"},
};

static void test_request_channels_parse_table(void **state) {
    (void)state;
    for (size_t i = 0; i < HL_ARRAY_LEN(parse_cases); i++) {
        size_t n = strlen(parse_cases[i].s);
        char *s = exact_copy(parse_cases[i].s, n);
        size_t max = parse_cases[i].max;
        /* Exactly max slots, so a write past them is caught. */
        hl_span *out = malloc((max ? max : 1) * sizeof(*out));
        assert_non_null(out);
        size_t count = 999;
        char err[128] = "";
        int rc = hl_channels_parse(s, n, out, max, &count, err, sizeof(err));
        if (rc != parse_cases[i].rc)
            fail_msg("case %zu \"%s\": rc %d, want %d (%s)", i, parse_cases[i].s, rc,
                     parse_cases[i].rc, err);
        if (rc == HL_OK) {
            size_t want = 0;
            while (want < MAXPARTS && parse_cases[i].parts[want])
                want++;
            if (count != want) fail_msg("case %zu: %zu parts, want %zu", i, count, want);
            for (size_t k = 0; k < count; k++) {
                assert_int_equal(out[k].n, strlen(parse_cases[i].parts[k]));
                assert_memory_equal(out[k].p, parse_cases[i].parts[k], out[k].n);
                /* Spans point into the caller's string. */
                assert_true(out[k].p >= s && out[k].p + out[k].n <= s + n);
            }
        } else {
            assert_contains(err, parse_cases[i].err);
        }
        free(out);
        free(s);
    }
}

static void test_request_channels_parse_stops_at_max(void **state) {
    const size_t total = 300, max = 16;
    (void)state;
    char *list = malloc(total * 8);
    assert_non_null(list);
    size_t n = 0;
    for (size_t i = 0; i < total; i++)
        n += (size_t)sprintf(list + n, "%sc%zu", i ? "," : "", i);
    char *s = exact_copy(list, n);
    hl_span *out = malloc(max * sizeof(*out));
    assert_non_null(out);
    size_t count;
    char err[128] = "";
    assert_int_equal(hl_channels_parse(s, n, out, max, &count, err, sizeof(err)), HL_ERR);
    assert_string_equal(err, "at most 16 channels per request");

    /* Exactly max is fine: the cut is after the last one, not before. */
    size_t cut = 0;
    for (size_t commas = 0; cut < n; cut++)
        if (s[cut] == ',' && ++commas == max) break;
    assert_int_equal(hl_channels_parse(s, cut, out, max, &count, err, sizeof(err)), HL_OK);
    assert_int_equal(count, max);
    assert_int_equal(out[0].n, 2);
    assert_memory_equal(out[0].p, "c0", 2);
    assert_int_equal(out[15].n, 3);
    assert_memory_equal(out[15].p, "c15", 3);
    free(out);
    free(s);
    free(list);
}

static void test_request_channels_parse_hostile_bytes_and_lengths(void **state) {
    hl_span out[4];
    size_t count;
    char err[128];
    char name[HL_CHANNEL_MAX_LEN + 1];
    char list[2 * sizeof(name) + 2];
    (void)state;

    /* A NUL inside the list is a bad name, not its end. */
    char *s = exact_copy("a\0b", 3);
    assert_int_equal(hl_channels_parse(s, 3, out, 4, &count, err, sizeof(err)), HL_ERR);
    free(s);
    s = exact_copy("a,\0", 3);
    assert_int_equal(hl_channels_parse(s, 3, out, 4, &count, err, sizeof(err)), HL_ERR);
    free(s);

    /* Only n bytes count. */
    s = exact_copy("a,b,c", 5);
    assert_int_equal(hl_channels_parse(s, 3, out, 4, &count, err, sizeof(err)), HL_OK);
    assert_int_equal(count, 2);
    free(s);

    /* 200 bytes per name is fine; 201 is not. */
    memset(name, 'n', sizeof(name));
    memcpy(list, name, 200);
    list[200] = ',';
    memcpy(list + 201, name, 199);
    list[400] = 'm';
    s = exact_copy(list, 401);
    assert_int_equal(hl_channels_parse(s, 401, out, 4, &count, err, sizeof(err)), HL_OK);
    assert_int_equal(count, 2);
    assert_int_equal(out[0].n, 200);
    assert_int_equal(out[1].n, 200);
    free(s);
    memcpy(list + 201, name, 201);
    s = exact_copy(list, 402);
    assert_int_equal(hl_channels_parse(s, 402, out, 4, &count, err, sizeof(err)), HL_ERR);
    assert_contains(err, "1 to 200 bytes");
    free(s);

    /* A 200-byte duplicate is named in the message without overflowing
     * a small buffer; NULL and zero-sized buffers are allowed too. */
    memcpy(list + 201, name, 200);
    s = exact_copy(list, 401);
    char small[16];
    assert_int_equal(hl_channels_parse(s, 401, out, 4, &count, small, sizeof(small)), HL_ERR);
    assert_int_equal(strlen(small), sizeof(small) - 1);
    assert_int_equal(hl_channels_parse(s, 401, out, 4, &count, NULL, 0), HL_ERR);
    assert_int_equal(hl_channels_parse(s, 401, out, 4, &count, small, 0), HL_ERR);
    free(s);
}

/* ---- hl_timeout_parse -------------------------------------------------------- */

static const struct {
    const char *s;
    int def, max;
    int rc, out;
} timeout_cases[] = {
    {NULL, 30, 120, HL_OK, 30},
    {NULL, 120, 120, HL_OK, 120},
    {NULL, 300, 120, HL_OK, 120},
    {"1", 30, 120, HL_OK, 1},
    {"30", 30, 120, HL_OK, 30},
    {"120", 30, 120, HL_OK, 120},
    {"121", 30, 120, HL_ERR, 0},
    {"007", 30, 120, HL_OK, 7},
    {"3601", 30, 3600, HL_ERR, 0},
    {"3600", 30, 3600, HL_OK, 3600},
    {"2147483647", 30, INT_MAX, HL_OK, INT_MAX},
    {"2147483648", 30, INT_MAX, HL_ERR, 0}, /* found by fuzz_request's header check */
    {"2147483647", 30, 120, HL_ERR, 0},
    {"2147483648", 30, 120, HL_ERR, 0},
    {"9223372036854775807", 30, 120, HL_ERR, 0},
    {"9223372036854775808", 30, 120, HL_ERR, 0},
    {"99999999999999999999", 30, 120, HL_ERR, 0},
    {"18446744073709551617", 30, 120, HL_ERR, 0},
    {"0", 30, 120, HL_ERR, 0},
    {"00", 30, 120, HL_ERR, 0},
    {"-0", 30, 120, HL_ERR, 0},
    {"-1", 30, 120, HL_ERR, 0},
    {"+5", 30, 120, HL_ERR, 0},
    {" 5", 30, 120, HL_ERR, 0},
    {"5 ", 30, 120, HL_ERR, 0},
    {"\t5", 30, 120, HL_ERR, 0},
    {"5\n", 30, 120, HL_ERR, 0},
    {"5s", 30, 120, HL_ERR, 0},
    {"1.5", 30, 120, HL_ERR, 0},
    {"1e2", 30, 120, HL_ERR, 0},
    {"", 30, 120, HL_ERR, 0},
    {"0x10", 30, 120, HL_ERR, 0},
    {"abc", 30, 120, HL_ERR, 0},
    {"5,6", 30, 120, HL_ERR, 0},
    {"\x7f", 30, 120, HL_ERR, 0},
    {"\xEF\xBC\x95", 30, 120, HL_ERR, 0}, /* a fullwidth digit five */
    {"\xD9\xA5", 30, 120, HL_ERR, 0},     /* an Arabic-Indic digit five */
};

static void test_request_timeout_parse_table(void **state) {
    (void)state;
    for (size_t i = 0; i < HL_ARRAY_LEN(timeout_cases); i++) {
        char *s = timeout_cases[i].s ? exact_strdup(timeout_cases[i].s) : NULL;
        int out = -7;
        char err[128] = "";
        int rc =
            hl_timeout_parse(s, timeout_cases[i].def, timeout_cases[i].max, &out, err, sizeof(err));
        if (rc != timeout_cases[i].rc)
            fail_msg("case %zu \"%s\": rc %d, want %d", i, s ? s : "(null)", rc,
                     timeout_cases[i].rc);
        if (rc == HL_OK) {
            if (out != timeout_cases[i].out)
                fail_msg("case %zu \"%s\": %d, want %d", i, s ? s : "(null)", out,
                         timeout_cases[i].out);
        } else {
            assert_int_equal(out, -7); /* untouched on error */
            char want[64];
            snprintf(want, sizeof(want), "timeout must be whole seconds from 1 to %d",
                     timeout_cases[i].max);
            assert_contains(err, want);
        }
        free(s);
    }
}

static void test_request_timeout_parse_very_long_values(void **state) {
    const size_t n = 100000;
    int out;
    char err[64];
    (void)state;
    char *s = malloc(n + 1);
    assert_non_null(s);

    memset(s, '9', n);
    s[n] = '\0';
    out = -7;
    assert_int_equal(hl_timeout_parse(s, 30, 120, &out, err, sizeof(err)), HL_ERR);
    assert_int_equal(out, -7);

    /* Leading zeros are still a small number. */
    memset(s, '0', n);
    s[n - 1] = '5';
    assert_int_equal(hl_timeout_parse(s, 30, 120, &out, err, sizeof(err)), HL_OK);
    assert_int_equal(out, 5);

    /* One bad byte at the very end spoils it. */
    s[n - 1] = 'x';
    assert_int_equal(hl_timeout_parse(s, 30, 120, &out, NULL, 0), HL_ERR);
    free(s);
}

static void test_request_idempotency_keys(void **state) {
    (void)state;
    const char *good[] = {"a", "order-17", "A.b_c:d-9",
                          "0123456789012345678901234567890123456789012345678901234567890123"};
    const char *bad[] = {
        "",     "a b",   "a/b",
        "a~b",  "é",     "a\tb",
        "x{y}", "a%20b", "01234567890123456789012345678901234567890123456789012345678901234"};
    for (size_t i = 0; i < HL_ARRAY_LEN(good); i++)
        if (!hl_idempotency_key_valid(good[i])) fail_msg("'%s' refused", good[i]);
    for (size_t i = 0; i < HL_ARRAY_LEN(bad); i++)
        if (hl_idempotency_key_valid(bad[i])) fail_msg("'%s' accepted", bad[i]);
}

/* ---- hl_percent_decode ------------------------------------------------------- */

static const struct {
    const char *in;
    const char *out;
    size_t n;
} decode_cases[] = {
    {"", "", 0},
    {"abc", "abc", 3},
    {"/poll/news", "/poll/news", 10},
    {"%41", "A", 1},
    {"%4a", "J", 1},
    {"%4A", "J", 1},
    {"%6a%6A%6b", "jjk", 3},
    {"%41%42%43", "ABC", 3},
    {"x%41y%42z", "xAyBz", 5},
    {"%2F", "/", 1},
    {"%2C", ",", 1},
    {"%20", " ", 1},
    {"%7f", "\x7f", 1},
    {"%FF", "\xFF", 1},
    {"%C3%A9", "\xC3\xA9", 2},
    /* A NUL may never appear: it would cut "a%00b" to "a". */
    {"%00", "\x7f", 1},
    {"a%00b",
     "a\x7f"
     "b",
     3},
    {"%00%00", "\x7f\x7f", 2},
    /* Malformed escapes: only the '%' is replaced, the rest is kept. */
    {"%", "\x7f", 1},
    {"a%", "a\x7f", 2},
    {"%4",
     "\x7f"
     "4",
     2},
    {"a%4",
     "a\x7f"
     "4",
     3},
    {"%zz", "\x7fzz", 3},
    {"%g1", "\x7fg1", 3},
    {"%1g",
     "\x7f"
     "1g",
     3},
    {"%-1", "\x7f-1", 3},
    {"% 41", "\x7f 41", 4},
    {"%%", "\x7f\x7f", 2},
    {"%%41",
     "\x7f"
     "A",
     2},
    {"%%%", "\x7f\x7f\x7f", 3},
    {"%x%41", "\x7fxA", 3},
    /* One pass only: an escaped '%' is not decoded again. */
    {"%2541", "%41", 3},
    {"%252", "%2", 2},
    /* '+' stays '+'. */
    {"a+b", "a+b", 3},
    {"%2B", "+", 1},
    {"+%2B+", "+++", 3},
};

static void test_request_percent_decode_table(void **state) {
    (void)state;
    for (size_t i = 0; i < HL_ARRAY_LEN(decode_cases); i++) {
        char *s = exact_strdup(decode_cases[i].in);
        size_t n = hl_percent_decode(s);
        if (n != decode_cases[i].n || memcmp(s, decode_cases[i].out, n) != 0)
            fail_msg("case %zu \"%s\": length %zu, want %zu", i, decode_cases[i].in, n,
                     decode_cases[i].n);
        assert_int_equal(s[n], '\0');
        free(s);
    }
}

static void test_request_percent_decode_never_makes_a_valid_channel_of_nul(void **state) {
    static const char *const inputs[] = {"a%00b", "%00", "news%00", "%00news", "a%0"};
    (void)state;
    for (size_t i = 0; i < HL_ARRAY_LEN(inputs); i++) {
        char *s = exact_strdup(inputs[i]);
        size_t n = hl_percent_decode(s);
        assert_int_equal(strlen(s), n);
        assert_false(hl_channel_valid(s, n));
        free(s);
    }
}

static void test_request_percent_decode_of_random_input(void **state) {
    static const char alphabet[] = "%%%%0123456789abcdefABCDEFgxz+ /\x7f\x80\xff";
    uint64_t x = 0x243F6A8885A308D3ULL;
    (void)state;
    for (int round = 0; round < 20000; round++) {
        char buf[24];
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t len = (size_t)(x % sizeof(buf));
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf[i] = alphabet[x % (sizeof(alphabet) - 1)];
        }
        buf[len] = '\0';
        char *s = exact_strdup(buf);
        size_t n = hl_percent_decode(s);
        /* Never longer, never a NUL inside, always terminated. */
        assert_true(n <= len);
        assert_int_equal(strlen(s), n);
        /* Each '%' consumes itself and at most two more bytes. */
        size_t pct = 0;
        for (size_t i = 0; i < len; i++)
            pct += buf[i] == '%';
        assert_true(n + 2 * pct >= len);
        free(s);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_route_match_table),
        cmocka_unit_test(test_request_route_match_very_long_paths),
        cmocka_unit_test(test_request_route_method_ok_table),
        cmocka_unit_test(test_request_route_allow_table),
        cmocka_unit_test(test_request_route_allow_agrees_with_method_ok),
        cmocka_unit_test(test_request_channel_valid_accepts_every_allowed_class),
        cmocka_unit_test(test_request_channel_valid_rejects_every_other_byte),
        cmocka_unit_test(test_request_channel_valid_rejects_hostile_names),
        cmocka_unit_test(test_request_channel_valid_limits_length),
        cmocka_unit_test(test_request_channels_parse_table),
        cmocka_unit_test(test_request_channels_parse_stops_at_max),
        cmocka_unit_test(test_request_channels_parse_hostile_bytes_and_lengths),
        cmocka_unit_test(test_request_timeout_parse_table),
        cmocka_unit_test(test_request_timeout_parse_very_long_values),
        cmocka_unit_test(test_request_idempotency_keys),
        cmocka_unit_test(test_request_percent_decode_table),
        cmocka_unit_test(test_request_percent_decode_never_makes_a_valid_channel_of_nul),
        cmocka_unit_test(test_request_percent_decode_of_random_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

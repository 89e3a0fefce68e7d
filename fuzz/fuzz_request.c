/* fuzz_request.c -- libFuzzer target for core/hl_request.h.
 *
 * The whole input is, in turn, a path for hl_route_match, a channel list
 * for hl_channels_parse (at most 16 and at most 256 channels), a timeout
 * value for hl_timeout_parse (with several default/maximum pairs), a
 * channel name for hl_channel_valid, an Idempotency-Key for
 * hl_idempotency_key_valid and a URL for hl_percent_decode; the decoded
 * URL then goes through routing and channel parsing the way hl_http
 * hands it on. Besides memory safety and UB, each result is checked
 * against a plain reference of what the header promises: spans point
 * into the caller's string, a parsed list is the input's own
 * comma-separated pieces, a timeout is a decimal from 1 to the maximum,
 * and percent-decoding never grows a string nor lets a NUL in. */
#include <limits.h>

#include "fuzz.h"
#include "hl_common.h"
#include "hl_request.h"

#define ERRLEN 128

static int ref_channel_char(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("._~:-", c) != NULL;
}

/* The header's definition of a channel name, written out again. */
static int ref_channel_valid(const char *s, size_t n) {
    if (n < 1 || n > HL_CHANNEL_MAX_LEN) return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\0' || !ref_channel_char((unsigned char)s[i])) return 0;
    return 1;
}

/* The route a path names, from the table in the header. */
static hl_route_kind ref_route(const char *path, size_t *arg_at) {
    static const struct {
        const char *path;
        hl_route_kind kind;
        int prefix;
    } table[] = {
        {"/", HL_ROUTE_INDEX, 0},
        {"/index.html", HL_ROUTE_INDEX, 0},
        {"/holdline.js", HL_ROUTE_CLIENT_JS, 0},
        {"/poll", HL_ROUTE_POLL, 1},
        {"/events", HL_ROUTE_EVENTS, 1},
        {"/publish", HL_ROUTE_PUBLISH, 1},
        {"/channels", HL_ROUTE_CHANNEL, 1},
        {"/healthz", HL_ROUTE_HEALTHZ, 0},
        {"/readyz", HL_ROUTE_READYZ, 0},
        {"/metrics", HL_ROUTE_METRICS, 0},
    };
    *arg_at = 0;
    for (size_t i = 0; i < HL_ARRAY_LEN(table); i++) {
        size_t n = strlen(table[i].path);
        if (strcmp(path, table[i].path) == 0) return table[i].kind;
        if (table[i].prefix && strncmp(path, table[i].path, n) == 0 && path[n] == '/') {
            *arg_at = n + 1;
            return table[i].kind;
        }
    }
    return HL_ROUTE_NONE;
}

static void check_route(const char *path) {
    size_t len = strlen(path), arg_at;
    hl_route_kind want = ref_route(path, &arg_at);
    hl_route r;

    memset(&r, 0x5A, sizeof(r));
    hl_route_match(path, &r);
    FUZZ_CHECK(r.kind == want);
    if (arg_at > 0) {
        FUZZ_CHECK(r.arg.p == path + arg_at && r.arg.n == len - arg_at);
    } else {
        FUZZ_CHECK(r.arg.p == NULL && r.arg.n == 0);
    }
    /* Every route has an Allow value, and OPTIONS is always in it. */
    const char *allow = hl_route_allow(r.kind);
    FUZZ_CHECK(allow != NULL && strstr(allow, "OPTIONS") != NULL);
    /* An unknown path is answered 404 before its method is looked at. */
    if (r.kind != HL_ROUTE_NONE) {
        FUZZ_CHECK(hl_route_method_ok(r.kind, "GET") == (strstr(allow, "GET") != NULL));
        FUZZ_CHECK(hl_route_method_ok(r.kind, "POST") == (strstr(allow, "POST") != NULL));
    }
    /* The path is a method here too: any string must be safe to pass. */
    (void)hl_route_method_ok(r.kind, path);
}

/* Channel list rules: the comma-separated pieces, each a valid name, none
 * twice, at most max of them. */
static int ref_channels_ok(const char *s, size_t n, size_t max) {
    size_t parts = 0, start = 0;
    if (n == 0) return 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != ',') continue;
        if (!ref_channel_valid(s + start, i - start)) return 0;
        /* A duplicate is an earlier piece of the same bytes. */
        size_t pstart = 0;
        for (size_t k = 0; k < start; k++) {
            if (s[k] != ',') continue;
            if (k - pstart == i - start && memcmp(s + pstart, s + start, i - start) == 0) return 0;
            pstart = k + 1;
        }
        parts++;
        start = i + 1;
    }
    return parts <= max;
}

static void check_channels(const char *s, size_t n, size_t max, size_t errlen) {
    hl_span out[256];
    size_t count = (size_t)-1;
    char *err = fuzz_errbuf(errlen);

    int rc = hl_channels_parse(s, n, out, max, &count, err, errlen);
    FUZZ_CHECK(rc == HL_OK || rc == HL_ERR);
    FUZZ_CHECK((rc == HL_OK) == ref_channels_ok(s, n, max));
    if (rc == HL_OK) {
        /* The spans are the input's pieces, in order, with one comma
         * between two of them and nothing left over. */
        FUZZ_CHECK(count >= 1 && count <= max);
        const char *at = s;
        for (size_t k = 0; k < count; k++) {
            FUZZ_CHECK(out[k].p == at && hl_channel_valid(out[k].p, out[k].n));
            at += out[k].n;
            FUZZ_CHECK(k + 1 == count ? at == s + n : *at == ',');
            at++;
            for (size_t j = 0; j < k; j++)
                FUZZ_CHECK(out[j].n != out[k].n || memcmp(out[j].p, out[k].p, out[k].n) != 0);
        }
    } else {
        FUZZ_CHECK(fuzz_err_written(err, errlen));
    }
    free(err);
}

/* The timeout rule: NULL means def (at most max), else only a decimal
 * from 1 to max. Returns HL_OK with the value in *out, or HL_ERR. */
static int ref_timeout(const char *s, int def, int max, int *out) {
    long long v = 0;
    if (s == NULL) {
        *out = def < max ? def : max;
        return HL_OK;
    }
    if (*s == '\0') return HL_ERR;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return HL_ERR;
        v = v * 10 + (*p - '0');
        if (v > INT_MAX) v = (long long)INT_MAX + 1;
    }
    if (v < 1 || v > max) return HL_ERR;
    *out = (int)v;
    return HL_OK;
}

static void check_timeout(const char *s) {
    /* poll.default_timeout and poll.max_timeout are 1..3600 (hl_config),
     * so that is the range the maximum is tried in. */
    static const int pairs[][2] = {{30, 120},    {1, 1},    {120, 30},
                                   {3600, 3600}, {1, 3600}, {3600, 1}};
    for (size_t i = 0; i < HL_ARRAY_LEN(pairs); i++) {
        int def = pairs[i][0], max = pairs[i][1];
        int got = -7, want = -7;
        char *err = fuzz_errbuf(ERRLEN);
        int rc = hl_timeout_parse(s, def, max, &got, err, ERRLEN);
        int wrc = ref_timeout(s, def, max, &want);
        FUZZ_CHECK(rc == wrc);
        if (rc == HL_OK) {
            FUZZ_CHECK(got == want && got >= 1 && got <= max);
        } else {
            /* The unit tests hold the output untouched on error. */
            FUZZ_CHECK(got == -7 && fuzz_err_written(err, ERRLEN));
        }
        free(err);
    }
}

/* 1 to 64 bytes of A-Z a-z 0-9 . _ : - (a channel's set without '~'). */
static int ref_idempotency_key_valid(const char *s) {
    size_t n = strlen(s);
    if (n < 1 || n > 64) return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '~' || !ref_channel_char((unsigned char)s[i])) return 0;
    return 1;
}

static int ref_hex(char c) {
    const char *digits = "0123456789abcdef";
    const char *p = c != '\0' ? strchr(digits, c >= 'A' && c <= 'F' ? c - 'A' + 'a' : c) : NULL;
    return p != NULL ? (int)(p - digits) : -1;
}

/* hl_percent_decode's documented result, written into out (which has
 * room for strlen(in) + 1 bytes). */
static size_t ref_decode(const char *in, char *out) {
    size_t w = 0, r = 0;
    while (in[r] != '\0') {
        if (in[r] != '%') {
            out[w++] = in[r++];
        } else if (ref_hex(in[r + 1]) >= 0 && ref_hex(in[r + 2]) >= 0) {
            int c = ref_hex(in[r + 1]) * 16 + ref_hex(in[r + 2]);
            out[w++] = c == 0 ? 0x7F : (char)c;
            r += 3;
        } else {
            out[w++] = 0x7F;
            r++;
        }
    }
    out[w] = '\0';
    return w;
}

/* Decodes a copy of s; returns the decoded string (the caller frees it). */
static char *check_percent_decode(const char *s) {
    size_t len = strlen(s);
    char *got = fuzz_strndup(s, len);
    char *want = fuzz_strndup(s, len);

    size_t n = hl_percent_decode(got);
    size_t wn = ref_decode(s, want);
    /* Never longer, still terminated, no NUL inside: "a%00b" stays three
     * bytes long and cannot pass as "a". */
    FUZZ_CHECK(n <= len);
    FUZZ_CHECK(got[n] == '\0' && strlen(got) == n);
    FUZZ_CHECK(n == wn && memcmp(got, want, n) == 0);
    if (strchr(s, '%') == NULL) FUZZ_CHECK(n == len && memcmp(got, s, len) == 0);
    free(want);
    return got;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *raw = (const char *)data;
    char *s = fuzz_strndup(data, size);

    check_route(s);
    FUZZ_CHECK(hl_channel_valid(raw, size) == ref_channel_valid(raw, size));
    check_channels(raw, size, 16, ERRLEN);
    check_channels(raw, size, 256, ERRLEN);
    /* A message cut short by a small buffer is still terminated. */
    check_channels(raw, size, 16, 5);
    check_timeout(s);
    check_timeout(NULL);
    FUZZ_CHECK(hl_idempotency_key_valid(s) == ref_idempotency_key_valid(s));

    /* What hl_http does with a URL: decode, route, split the argument. */
    char *url = check_percent_decode(s);
    hl_route r;
    check_route(url);
    hl_route_match(url, &r);
    if (r.kind == HL_ROUTE_POLL) check_channels(r.arg.p, r.arg.n, 16, ERRLEN);
    check_timeout(url);

    free(url);
    free(s);
    return 0;
}

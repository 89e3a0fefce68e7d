/* Integration: hostile and malformed HTTP against a real node. Every
 * request below is one a scanner, a broken client or an attacker sends;
 * each must be answered with its status (and holdline's JSON error when
 * holdline answers itself) or closed, never crash the node, never hold a
 * connection forever, never publish anything. Then the limits that keep a
 * node alive under abuse: slowloris clients are cut at
 * http.connection_timeout while held polls are not, connections over
 * http.max_connections get 503 + Retry-After instead of a silent close, and
 * a client that hangs up while its poll is held releases its subscription
 * within seconds. */
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "itest.h"

static it_redis redis;
static it_node node; /* the table's node: every setting at its default */

#define MAX_TIMEOUT 120   /* poll.max_timeout, default */
#define MAX_CHANNELS 16   /* poll.max_channels, default */
#define MAX_URL 2048      /* http.max_url_bytes, default */
#define MAX_MESSAGE 65536 /* publish.max_message_bytes, default */

static int setup(void **state) {
    (void)state;
    static const char *const env[] = {"HOLDLINE_HTTP_WORKERS=2", NULL};
    if (it_redis_start(&redis) != 0) return -1;
    if (it_node_start_env(&node, redis.port, NULL, env) != 0) return -1;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    int st = it_node_stop(&node);
    it_redis_stop(&redis);
    if (st != 0 || it_log_has_crash(node.log)) {
        fprintf(stderr, "node exit status %d (want 0), or a crash report in %s\n", st, node.log);
        return -1;
    }
    return 0;
}

static void sleep_ms(int ms) {
    usleep((useconds_t)ms * 1000);
}

/* Status of GET path, or 0 if no answer came within timeout_ms. */
static int get_status(int port, const char *path, int timeout_ms) {
    it_resp r;
    if (it_http(port, "GET", path, NULL, 0, NULL, timeout_ms, &r) != 0) return 0;
    int st = r.status;
    it_resp_free(&r);
    return st;
}

/* ---- the table ---- */

typedef enum expect_kind {
    JSON,    /* exactly this status, holdline's JSON body with this error code
                (NULL: any code; for 2xx no error at all) */
    STATUS,  /* exactly this status, any body (libmicrohttpd's own answer) */
    REJECT,  /* refused: a 4xx/5xx status, or the connection closed without an
                answer; never a 2xx/3xx and never left hanging */
    SURVIVE, /* any answer or a close, but not a hang; the checks after it
                count (health, nothing stored) */
    ANY      /* even left open (a request that never completes): only the
                checks after it count */
} expect_kind;

typedef struct row {
    char name[96];
    char *req; /* malloc'd */
    size_t len;
    expect_kind kind;
    int status;
    const char *code;
    int half_close;     /* shut the sending side after the request */
    const char *allow;  /* when set, the Allow header must hold this */
    char unstored[160]; /* a channel this row must not have published to */
} row;

typedef struct table {
    row r[128];
    size_t n;
} table;

static row *add_bytes(table *t, const char *name, const char *req, size_t len, expect_kind kind,
                      int status, const char *code) {
    assert_true(t->n < sizeof(t->r) / sizeof(t->r[0]));
    row *r = &t->r[t->n++];
    memset(r, 0, sizeof(*r));
    snprintf(r->name, sizeof(r->name), "%s", name);
    r->req = malloc(len + 1);
    memcpy(r->req, req, len);
    r->req[len] = '\0';
    r->len = len;
    r->kind = kind;
    r->status = status;
    r->code = code;
    return r;
}

static row *add(table *t, const char *name, const char *req, expect_kind kind, int status,
                const char *code) {
    return add_bytes(t, name, req, strlen(req), kind, status, code);
}

/* "GET <target> HTTP/1.1" with Host and Connection: close. */
static row *add_get(table *t, const char *name, const char *target, expect_kind kind, int status,
                    const char *code) {
    size_t cap = strlen(target) + 128;
    char *req = malloc(cap);
    snprintf(req, cap, "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", target);
    row *r = add(t, name, req, kind, status, code);
    free(req);
    return r;
}

/* A string of n copies of c. */
static char *repeat(char c, size_t n) {
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* A publish to channel with extra headers (ending in CRLF) and body. */
static row *add_publish(table *t, const char *name, const char *channel, const char *headers,
                        const char *body, size_t body_len, expect_kind kind, int status,
                        const char *code) {
    size_t cap = body_len + strlen(headers) + 512;
    char *req = malloc(cap);
    int n =
        snprintf(req, cap, "POST /publish/%s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n%s\r\n",
                 channel, headers);
    memcpy(req + n, body, body_len);
    row *r = add_bytes(t, name, req, (size_t)n + body_len, kind, status, code);
    free(req);
    snprintf(r->unstored, sizeof(r->unstored), "%s", channel);
    return r;
}

static void build_table(table *t, const char *pid) {
    char buf[512], ch[128], ch2[128], hdr[512];
    char *s, *big;

    /* Methods. */
    add(t, "BREW on /poll", "BREW /poll/x?timeout=1 HTTP/1.1\r\nHost: t\r\n\r\n", JSON, 405,
        "method_not_allowed")
        ->allow = "GET";
    add(t, "DELETE on /poll", "DELETE /poll/x?timeout=1 HTTP/1.1\r\nHost: t\r\n\r\n", JSON, 405,
        "method_not_allowed")
        ->allow = "GET";
    add(t, "lowercase get", "get /healthz HTTP/1.1\r\nHost: t\r\n\r\n", JSON, 405,
        "method_not_allowed");
    add(t, "GET on /publish", "GET /publish/x HTTP/1.1\r\nHost: t\r\n\r\n", JSON, 405,
        "method_not_allowed")
        ->allow = "POST";
    add(t, "POST on /poll",
        "POST /poll/x?timeout=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi", JSON, 405,
        "method_not_allowed")
        ->allow = "GET";
    snprintf(ch, sizeof(ch), "hostile-put-%s", pid);
    snprintf(buf, sizeof(buf), "PUT /publish/%s HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi",
             ch);
    row *r = add(t, "PUT on /publish", buf, JSON, 405, "method_not_allowed");
    r->allow = "POST";
    snprintf(r->unstored, sizeof(r->unstored), "%s", ch);
    add(t, "TRACE", "TRACE /healthz HTTP/1.1\r\nHost: t\r\n\r\n", JSON, 405, "method_not_allowed");
    s = repeat('A', 300);
    snprintf(buf, sizeof(buf), "%s /healthz HTTP/1.1\r\nHost: t\r\n\r\n", s);
    add(t, "300-byte method", buf, REJECT, 0, NULL);
    free(s);
    add(t, "CONNECT authority form", "CONNECT 127.0.0.1:80 HTTP/1.1\r\nHost: t\r\n\r\n", REJECT, 0,
        NULL);

    /* Unknown paths. */
    add_get(t, "unknown path", "/nope", JSON, 404, "not_found");
    add_get(t, "prefix of a route", "/pollx/a", JSON, 404, "not_found");
    add_get(t, "dot-dot path", "/../../etc/passwd", REJECT, 0, NULL);
    add_get(t, "absolute-form target elsewhere", "http://evil.example/etc/passwd", REJECT, 0, NULL);

    /* Header and URL sizes. Every refusal is holdline's own JSON: the
     * first request's head is read before libmicrohttpd sees it, and a
     * connection gets a pool that fits it (or a 431 when none does). */
    s = repeat('a', 20 * 1024);
    big = malloc(24 * 1024);
    snprintf(big, 24 * 1024, "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: %s\r\n\r\n", s);
    add(t, "20 KB header", big, JSON, 431, "headers_too_large");
    free(s);
    free(big);
    s = repeat('a', 10 * 1024);
    big = malloc(12 * 1024);
    snprintf(big, 12 * 1024, "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: %s\r\n\r\n", s);
    add(t, "10 KB header (a larger pool)", big, JSON, 200, NULL);
    free(s);
    free(big);
    big = malloc(32 * 1024);
    size_t n = (size_t)snprintf(big, 32 * 1024, "GET /healthz HTTP/1.1\r\nHost: t\r\n");
    for (int i = 0; i < 500; i++)
        n += (size_t)snprintf(big + n, 32 * 1024 - n, "X-%d: v\r\n", i);
    snprintf(big + n, 32 * 1024 - n, "\r\n");
    add(t, "500 small headers (the largest pool)", big, JSON, 200, NULL);
    n = (size_t)snprintf(big, 32 * 1024, "GET /healthz HTTP/1.1\r\nHost: t\r\n");
    for (int i = 0; i < 1200; i++)
        n += (size_t)snprintf(big + n, 32 * 1024 - n, "X-%d: v\r\n", i);
    snprintf(big + n, 32 * 1024 - n, "\r\n");
    add(t, "1200 small headers (beyond every pool)", big, JSON, 431, "headers_too_large");
    /* Each ',' is a cookie record of 64 bytes to libmicrohttpd. */
    s = repeat(',', 1500);
    snprintf(big, 32 * 1024, "GET /healthz HTTP/1.1\r\nHost: t\r\nCookie: %s\r\n\r\n", s);
    add(t, "1500 empty cookies (beyond every pool)", big, JSON, 431, "headers_too_large");
    free(s);
    free(big);
    /* Over max_header_bytes (16384) in several lines. */
    s = repeat('h', 5500);
    big = malloc(24 * 1024);
    snprintf(big, 24 * 1024,
             "GET /healthz HTTP/1.1\r\nHost: t\r\nX-A: %s\r\nX-B: %s\r\nX-C: %s\r\n\r\n", s, s, s);
    add(t, "16.5 KB of headers", big, JSON, 431, "headers_too_large");
    snprintf(big, 24 * 1024, "GET /healthz HTTP/1.1\r\nHost: t\r\nX-A: %s\r\nX-B: %s\r\n\r\n", s,
             s);
    add(t, "11 KB of headers (allowed)", big, JSON, 200, NULL);
    free(s);
    free(big);
    /* Over max_url_bytes: a long query on a path that answers 200. */
    s = repeat('q', 3000);
    big = malloc(4 * 1024);
    snprintf(big, 4 * 1024, "/healthz?pad=%s", s);
    add_get(t, "3 KB URL", big, JSON, 414, "url_too_long");
    free(s);
    s = repeat('q', MAX_URL - 13 - 10);
    snprintf(big, 4 * 1024, "/healthz?pad=%s", s);
    add_get(t, "URL just under max_url_bytes", big, JSON, 200, NULL);
    free(s);
    s = repeat('q', MAX_URL - 13 + 10);
    snprintf(big, 4 * 1024, "/healthz?pad=%s", s);
    add_get(t, "URL just over max_url_bytes", big, JSON, 414, "url_too_long");
    free(s);
    free(big);
    s = repeat('q', 50 * 1024);
    big = malloc(51 * 1024);
    snprintf(big, 51 * 1024, "/healthz?pad=%s", s);
    add_get(t, "50 KB URL (beyond the pool)", big, JSON, 414, "url_too_long");
    free(s);
    free(big);
    /* Short URLs with many parameters: libmicrohttpd keeps each in the
     * connection's pool, so a few hundred would exhaust it long before
     * max_url_bytes (and left the connection hanging without an answer).
     * At most 16 are taken; more is 400 bad_request. */
    big = malloc(4 * 1024);
    static const int nargs[] = {16, 17, 120, 400};
    for (size_t k = 0; k < sizeof(nargs) / sizeof(nargs[0]); k++) {
        char name[64];
        n = (size_t)snprintf(big, 4 * 1024, "/healthz?");
        for (int i = 0; i < nargs[k]; i++)
            n += (size_t)snprintf(big + n, 4 * 1024 - n, "%sa=%d", i ? "&" : "", i % 10);
        snprintf(name, sizeof(name), "%d query parameters (%zu-byte URL)", nargs[k], n);
        if (nargs[k] <= 16)
            add_get(t, name, big, JSON, 200, NULL);
        else
            add_get(t, name, big, JSON, 400, "bad_request");
    }
    free(big);

    /* Percent-encoding and channel names. */
    add_get(t, "%zz in channel", "/poll/%zz?timeout=1", JSON, 400, "bad_channel");
    add_get(t, "lone % in channel", "/poll/abc%?timeout=1", JSON, 400, "bad_channel");
    add_get(t, "%0 at the end of the path", "/poll/abc%0", JSON, 400, "bad_channel");
    add_get(t, "%00 in channel", "/poll/a%00b?timeout=1", JSON, 400, "bad_channel");
    add_get(t, "%0A in channel", "/poll/a%0Ab?timeout=1", JSON, 400, "bad_channel");
    add_get(t, "%2F in channel", "/poll/a%2Fb?timeout=1", JSON, 400, "bad_channel");
    add_get(t, "non-ASCII channel", "/poll/%C3%A9t%C3%A9?timeout=1", JSON, 400, "bad_channel");
    add_get(t, "empty channel", "/poll/?timeout=1", JSON, 400, "bad_channel");
    add_get(t, "empty channel in a list", "/poll/a,,b?timeout=1", JSON, 400, "bad_channel");
    add_get(t, "trailing comma", "/poll/a,?timeout=1", JSON, 400, "bad_channel");
    add_get(t, "duplicate channel", "/poll/dup,dup?timeout=1", JSON, 400, NULL);
    s = repeat('c', 201);
    snprintf(buf, sizeof(buf), "/poll/%s?timeout=1", s);
    add_get(t, "201-byte channel", buf, JSON, 400, "bad_channel");
    snprintf(buf, sizeof(buf), "/channels/%s", s);
    add_get(t, "201-byte channel on /channels", buf, JSON, 400, "bad_channel");
    free(s);
    s = repeat('c', 200);
    snprintf(buf, sizeof(buf), "/channels/%s", s);
    add_get(t, "200-byte channel on /channels (allowed)", buf, JSON, 200, NULL);
    free(s);
    big = malloc(4 * 1024);
    n = (size_t)snprintf(big, 4 * 1024, "/poll/");
    for (int i = 0; i < 300; i++)
        n += (size_t)snprintf(big + n, 4 * 1024 - n, "%sc%d", i ? "," : "", i);
    snprintf(big + n, 4 * 1024 - n, "?timeout=1");
    add_get(t, "300 channels", big, JSON, 400, "too_many_channels");
    n = (size_t)snprintf(big, 4 * 1024, "/poll/");
    for (int i = 0; i <= MAX_CHANNELS; i++)
        n += (size_t)snprintf(big + n, 4 * 1024 - n, "%sc%d", i ? "," : "", i);
    snprintf(big + n, 4 * 1024 - n, "?timeout=1");
    add_get(t, "max_channels + 1 channels", big, JSON, 400, "too_many_channels");
    free(big);

    /* Timeouts: digits from 1 to poll.max_timeout, nothing else. */
    static const char *const bad_timeouts[] = {
        "0",   "-1",  "99999999999999999999", "1e9", "abc", "", "%205", "+5", "5s", "0x10", "5.0",
        "%00", "%zz",
    };
    for (size_t i = 0; i < sizeof(bad_timeouts) / sizeof(bad_timeouts[0]); i++) {
        char name[64];
        snprintf(buf, sizeof(buf), "/poll/t?timeout=%s", bad_timeouts[i]);
        snprintf(name, sizeof(name), "timeout=%s", bad_timeouts[i]);
        add_get(t, name, buf, JSON, 400, "bad_timeout");
    }
    snprintf(buf, sizeof(buf), "/poll/t?timeout=%d", MAX_TIMEOUT + 1);
    add_get(t, "timeout=max_timeout+1", buf, JSON, 400, "bad_timeout");
    add_get(t, "timeout=1 (allowed)", "/poll/t?timeout=1", JSON, 200, NULL);

    /* Cursors. */
    add_get(t, "cursor zz:1-0", "/poll/c?timeout=1&cursor=zz:1-0", JSON, 400, "bad_cursor");
    add_get(t, "cursor %00", "/poll/c?timeout=1&cursor=%00", JSON, 400, "bad_cursor");
    add_get(t, "cursor %zz", "/poll/c?timeout=1&cursor=%zz", JSON, 400, "bad_cursor");
    add_get(t, "cursor 0:0:0", "/poll/c?timeout=1&cursor=0:0:0", JSON, 400, "bad_cursor");
    add(t, "Last-Event-ID with a control byte",
        "GET /poll/c?timeout=1 HTTP/1.1\r\nHost: t\r\nLast-Event-ID: 1\x01:1-0\r\n\r\n", REJECT, 0,
        NULL);

    /* Request line and version. */
    add(t, "HTTP/0.9 style GET /", "GET /\r\n", REJECT, 0, NULL);
    add(t, "HTTP/0.9 style GET /healthz", "GET /healthz\r\n\r\n", REJECT, 0, NULL);
    add(t, "HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", REJECT, 0, NULL);
    add(t, "HTTP/2.0 version", "GET /healthz HTTP/2.0\r\nHost: t\r\n\r\n", REJECT, 0, NULL);
    add(t, "HTTP/9.9 version", "GET /healthz HTTP/9.9\r\nHost: t\r\n\r\n", REJECT, 0, NULL);
    add(t, "FOO/1.1 version", "GET /healthz FOO/1.1\r\nHost: t\r\n\r\n", REJECT, 0, NULL);
    /* A TLS ClientHello's first bytes (https:// to the plain port). */
    static const char tls[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n";
    add_bytes(t, "garbage request line", tls, sizeof(tls) - 1, REJECT, 0, NULL);
    /* A NUL byte in the target would make libmicrohttpd cut the path there
     * and serve what came before it. */
    static const char nul_line[] = "GET /healthz\0x HTTP/1.1\r\nHost: t\r\n\r\n";
    static const char nul_path[] = "GET /poll/a\0b?timeout=1 HTTP/1.1\r\nHost: t\r\n\r\n";
    add_bytes(t, "NUL in the request line", nul_line, sizeof(nul_line) - 1, JSON, 400,
              "bad_request");
    add_bytes(t, "NUL in a poll's channel", nul_path, sizeof(nul_path) - 1, JSON, 400,
              "bad_request");
    /* libmicrohttpd ends a header value at a NUL byte and does not say so
     * (README): refused or served, the node must only stay whole. */
    static const char nul_header[] = "GET /healthz HTTP/1.1\r\nHost: t\r\nX-A: a\0b\r\n\r\n";
    add_bytes(t, "NUL in a header value", nul_header, sizeof(nul_header) - 1, SURVIVE, 0, NULL);
    add(t, "HTTP/1.1 without Host", "GET /healthz HTTP/1.1\r\n\r\n", STATUS, 400, NULL);
    add(t, "HTTP/1.0 without Host (allowed)", "GET /healthz HTTP/1.0\r\n\r\n", JSON, 200, NULL);
    add(t, "space in the target", "GET /heal thz HTTP/1.1\r\nHost: t\r\n\r\n", REJECT, 0, NULL);
    add(t, "header without colon", "GET /healthz HTTP/1.1\r\nHost: t\r\nNoColonHere\r\n\r\n",
        REJECT, 0, NULL);

    /* Publishes that must not be stored. */
    snprintf(ch, sizeof(ch), "hostile-big-%s", pid);
    big = repeat('m', MAX_MESSAGE + 1);
    snprintf(hdr, sizeof(hdr), "Content-Length: %d\r\n", MAX_MESSAGE + 1);
    add_publish(t, "body over max_message_bytes", ch, hdr, big, MAX_MESSAGE + 1, JSON, 413,
                "too_large");
    free(big);
    snprintf(ch, sizeof(ch), "hostile-chunked-%s", pid);
    big = malloc(6 * 0x4000 + 4096);
    n = 0;
    for (int i = 0; i < 5; i++) { /* 5 chunks of 16 KiB: 80 KiB */
        n += (size_t)snprintf(big + n, 64, "4000\r\n");
        memset(big + n, 'c', 0x4000);
        n += 0x4000;
        n += (size_t)snprintf(big + n, 8, "\r\n");
    }
    n += (size_t)snprintf(big + n, 16, "0\r\n\r\n");
    add_publish(t, "chunked body over max_message_bytes", ch, "Transfer-Encoding: chunked\r\n", big,
                n, JSON, 413, "too_large");
    free(big);
    snprintf(ch, sizeof(ch), "hostile-expect-%s", pid);
    add_publish(t, "Expect: 100-continue, Content-Length too large", ch,
                "Content-Length: 1000000\r\nExpect: 100-continue\r\n", "", 0, JSON, 413,
                "too_large");
    snprintf(ch, sizeof(ch), "hostile-lie-%s", pid);
    add_publish(t, "Content-Length larger than sent, then close", ch, "Content-Length: 100\r\n",
                "only ten b", 10, ANY, 0, NULL)
        ->half_close = 1;
    snprintf(ch, sizeof(ch), "hostile-absurd-%s", pid);
    add_publish(t, "absurd Content-Length", ch, "Content-Length: 99999999999999999999999\r\n", "x",
                1, REJECT, 0, NULL);
    snprintf(ch, sizeof(ch), "hostile-neg-%s", pid);
    add_publish(t, "negative Content-Length", ch, "Content-Length: -1\r\n", "x", 1, REJECT, 0,
                NULL);
    snprintf(ch, sizeof(ch), "hostile-badchunk-%s", pid);
    add_publish(t, "bad chunk size", ch, "Transfer-Encoding: chunked\r\n",
                "zz\r\nhello\r\n0\r\n\r\n", 16, REJECT, 0, NULL);
    snprintf(ch, sizeof(ch), "hostile-hugechunk-%s", pid);
    add_publish(t, "chunk size beyond 64 bits", ch, "Transfer-Encoding: chunked\r\n",
                "FFFFFFFFFFFFFFFFFFFFFFFF\r\nhello\r\n0\r\n\r\n", 38, REJECT, 0, NULL);
    snprintf(ch2, sizeof(ch2), "hostile-badchan-%s%%00", pid);
    add_publish(t, "publish to %00 channel", ch2, "Content-Length: 2\r\n", "hi", 2, JSON, 400,
                "bad_channel")
        ->unstored[0] = '\0';

    /* Idempotency keys: 1 to 64 of A-Z a-z 0-9 . _ : - */
    static const struct {
        const char *name, *value;
    } bad_keys[] = {
        {"empty Idempotency-Key", ""},
        {"Idempotency-Key with a space", "a b"},
        {"Idempotency-Key with a slash", "a/b"},
        {"Idempotency-Key with a quote", "a\"b"},
        {"non-ASCII Idempotency-Key", "\xc3\xa9"},
    };
    for (size_t i = 0; i < sizeof(bad_keys) / sizeof(bad_keys[0]); i++) {
        snprintf(ch, sizeof(ch), "hostile-key%zu-%s", i, pid);
        snprintf(hdr, sizeof(hdr), "Idempotency-Key: %s\r\nContent-Length: 2\r\n",
                 bad_keys[i].value);
        add_publish(t, bad_keys[i].name, ch, hdr, "hi", 2, JSON, 400, "bad_idempotency_key");
    }
    s = repeat('k', 65);
    snprintf(ch, sizeof(ch), "hostile-key65-%s", pid);
    snprintf(hdr, sizeof(hdr), "Idempotency-Key: %s\r\nContent-Length: 2\r\n", s);
    add_publish(t, "65-byte Idempotency-Key", ch, hdr, "hi", 2, JSON, 400, "bad_idempotency_key");
    free(s);
    s = repeat('k', 64);
    snprintf(ch, sizeof(ch), "hostile-key64-%s", pid);
    snprintf(hdr, sizeof(hdr), "Idempotency-Key: %s-x.y_z:\r\nContent-Length: 2\r\n", s + 8);
    add_publish(t, "64-byte Idempotency-Key (allowed)", ch, hdr, "hi", 2, JSON, 201, NULL)
        ->unstored[0] = '\0';
    free(s);
}

/* Runs one row and returns 0 if the node did what it should; a line on
 * stdout says what happened either way. */
static int run_row(const row *r) {
    it_resp resp;
    int closed = 0;
    long long t0 = it_now_ms();
    it_raw_ex(node.port, r->req, r->len, r->half_close, r->kind == ANY ? 500 : 3000, &resp,
              &closed);
    long long took = it_now_ms() - t0;
    it_json j;
    it_json_parse(resp.body, &j);
    char allow[128] = "";
    it_resp_header(&resp, "Allow", allow, sizeof(allow));
    int ok = 0;
    switch (r->kind) {
    case JSON:
        ok = resp.status == r->status && j.parsed &&
             (r->status < 300
                  ? j.error[0] == '\0'
                  : j.error[0] != '\0' && (r->code == NULL || strcmp(j.error, r->code) == 0));
        if (r->allow && strstr(allow, r->allow) == NULL) ok = 0;
        break;
    case STATUS: ok = resp.status == r->status; break;
    case REJECT: ok = resp.status >= 400 || (resp.status == 0 && closed); break;
    case SURVIVE: ok = resp.status != 0 || closed; break;
    case ANY: ok = 1; break;
    }
    char body[100];
    snprintf(body, sizeof(body), "%s", resp.body ? resp.body : "");
    for (char *p = body; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    printf("  %-4s %-48s -> %3d %s%s%s %.70s (%lld ms)\n", ok ? "ok" : "FAIL", r->name, resp.status,
           closed ? "closed" : "open", j.error[0] ? " error=" : "", j.error, body, took);
    if (!ok) {
        const char *want = r->kind == JSON      ? "status + JSON error"
                           : r->kind == STATUS  ? "status"
                           : r->kind == REJECT  ? "4xx/5xx or a close"
                           : r->kind == SURVIVE ? "any answer or a close"
                                                : "anything";
        printf("       want %s %d %s%s%s\n", want, r->status, r->code ? r->code : "",
               r->allow ? " Allow: " : "", r->allow ? r->allow : "");
    }
    it_json_free(&j);
    it_resp_free(&resp);
    return ok ? 0 : -1;
}

static void test_hostile_requests_get_their_status_and_the_node_keeps_serving(void **state) {
    (void)state;
    char pid[32];
    snprintf(pid, sizeof(pid), "%ld", (long)getpid());
    table *t = calloc(1, sizeof(*t));
    build_table(t, pid);
    int failures = 0, unhealthy = 0;
    for (size_t i = 0; i < t->n; i++) {
        failures += run_row(&t->r[i]) != 0;
        int st = get_status(node.port, "/healthz", 3000);
        if (st != 200) {
            unhealthy++;
            printf("       /healthz answered %d after '%s'\n", st, t->r[i].name);
        }
    }
    /* Nothing a refused publish carried was stored. */
    int stored = 0;
    for (size_t i = 0; i < t->n; i++) {
        if (t->r[i].unstored[0] == '\0') continue;
        char path[300];
        snprintf(path, sizeof(path), "/channels/%s", t->r[i].unstored);
        it_resp r;
        assert_int_equal(it_http(node.port, "GET", path, NULL, 0, NULL, 3000, &r), 0);
        it_json j;
        it_json_parse(r.body, &j);
        if (r.status != 200 || j.length != 0) {
            stored++;
            printf("  '%s' stored something: GET %s -> %d %s\n", t->r[i].name, path, r.status,
                   r.body ? r.body : "");
        }
        it_json_free(&j);
        it_resp_free(&r);
    }
    printf("hostile table: %zu requests, %d not answered as they should be, %d health checks "
           "failed, %d refused publishes stored\n",
           t->n, failures, unhealthy, stored);
    for (size_t i = 0; i < t->n; i++)
        free(t->r[i].req);
    free(t);

    /* The node still does its job: a held poll gets a publish. */
    char ch[64], path[128];
    snprintf(ch, sizeof(ch), "after-hostile-%s", pid);
    snprintf(path, sizeof(path), "GET /poll/%s?timeout=5 HTTP/1.1\r\nHost: t\r\n\r\n", ch);
    const char *reqs[] = {path};
    it_conn c;
    assert_int_equal(it_multi_open(&c, 1, &node.port, reqs), 0);
    sleep_ms(300);
    snprintf(path, sizeof(path), "/publish/%s", ch);
    it_resp r;
    assert_int_equal(it_http(node.port, "POST", path, "still here", 10, NULL, 3000, &r), 0);
    assert_int_equal(r.status, 201);
    it_resp_free(&r);
    assert_int_equal(it_multi_wait(&c, 1, 3000), 1);
    it_json j;
    it_json_parse(c.resp.body, &j);
    assert_int_equal(c.resp.status, 200);
    assert_int_equal(j.n, 1);
    assert_string_equal(j.msgs[0].data, "still here");
    it_json_free(&j);
    it_multi_free(&c, 1);
    assert_false(it_log_has_crash(node.log));
    assert_int_equal(failures, 0);
    assert_int_equal(unhealthy, 0);
    assert_int_equal(stored, 0);
}

/* ---- slowloris and idle connections ---- */

/* Reads one complete answer (head + Content-Length body) from fd; returns
 * its status or 0. */
static int read_answer(int fd, int timeout_ms) {
    char buf[8192];
    size_t len = 0;
    long long end = it_now_ms() + timeout_ms;
    while (len < sizeof(buf) - 1 && it_now_ms() < end) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0) continue;
        ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (n <= 0) return 0;
        len += (size_t)n;
        buf[len] = '\0';
        char *eoh = strstr(buf, "\r\n\r\n");
        if (eoh == NULL) continue;
        const char *cl = strcasestr(buf, "\r\nContent-Length:");
        size_t want = cl ? strtoul(cl + 17, NULL, 10) : 0;
        if (len - (size_t)(eoh + 4 - buf) < want) continue;
        int status = 0;
        sscanf(buf, "HTTP/1.%*d %d", &status);
        return status;
    }
    return 0;
}

static void test_slowloris_is_cut_at_connection_timeout_but_a_held_poll_is_not(void **state) {
    (void)state;
    static const char *const env[] = {"HOLDLINE_HTTP_CONNECTION_TIMEOUT=2",
                                      "HOLDLINE_HTTP_WORKERS=1", NULL};
    it_node n = {0};
    assert_int_equal(it_node_start_env(&n, redis.port, NULL, env), 0);

    /* A held poll longer than the connection timeout. */
    char preq[128];
    snprintf(preq, sizeof(preq), "GET /poll/slow-%ld?timeout=5 HTTP/1.1\r\nHost: t\r\n\r\n",
             (long)getpid());
    const char *reqs[] = {preq};
    it_conn pc;
    long long t0 = it_now_ms();
    assert_int_equal(it_multi_open(&pc, 1, &n.port, reqs), 0);

    /* A slowloris: one header byte every 300 ms, never done. */
    int slow = it_connect(n.port);
    assert_true(slow >= 0);
    const char *start = "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ";
    assert_int_equal(it_write_all(slow, start, strlen(start)), 0);
    /* A connection that says nothing at all. */
    int silent = it_connect(n.port);
    assert_true(silent >= 0);
    /* A keep-alive client: one answer at once, a second after 1 s (the
     * timeout counts from the previous answer), then idle. */
    /* A publish whose body never completes: 10 of 100 bytes, then silence. */
    char lie_ch[64], lie_req[256];
    snprintf(lie_ch, sizeof(lie_ch), "slow-lie-%ld", (long)getpid());
    snprintf(lie_req, sizeof(lie_req),
             "POST /publish/%s HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly ten b",
             lie_ch);
    int lying = it_connect(n.port);
    assert_true(lying >= 0);
    assert_int_equal(it_write_all(lying, lie_req, strlen(lie_req)), 0);
    int idle = it_connect(n.port);
    assert_true(idle >= 0);
    const char *hz = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
    assert_int_equal(it_write_all(idle, hz, strlen(hz)), 0);
    assert_int_equal(read_answer(idle, 2000), 200);
    long long idle_answer = it_now_ms();

    long long slow_closed = -1, silent_closed = -1, idle_closed = -1, lying_closed = -1;
    int second_status = -1;
    size_t slow_got = 0, silent_got = 0, idle_got = 0, trickled = 0;
    long long next_byte = it_now_ms() + 300;
    while (it_now_ms() - t0 < 7000 &&
           (slow_closed < 0 || silent_closed < 0 || idle_closed < 0 || lying_closed < 0)) {
        long long now = it_now_ms();
        if (slow_closed < 0 && now >= next_byte) {
            if (write(slow, "a", 1) == 1) trickled++;
            next_byte += 300;
        }
        if (second_status < 0 && now - idle_answer >= 1000) {
            if (it_write_all(idle, hz, strlen(hz)) == 0)
                second_status = read_answer(idle, 2000);
            else
                second_status = 0;
            idle_answer = it_now_ms();
        }
        struct pollfd p[4] = {{slow_closed < 0 ? slow : -1, POLLIN, 0},
                              {silent_closed < 0 ? silent : -1, POLLIN, 0},
                              {idle_closed < 0 && second_status >= 0 ? idle : -1, POLLIN, 0},
                              {lying_closed < 0 ? lying : -1, POLLIN, 0}};
        if (poll(p, 4, 20) <= 0) continue;
        char buf[4096];
        if (p[0].revents) {
            ssize_t r = read(slow, buf, sizeof(buf));
            if (r <= 0)
                slow_closed = it_now_ms();
            else
                slow_got += (size_t)r;
        }
        if (p[1].revents) {
            ssize_t r = read(silent, buf, sizeof(buf));
            if (r <= 0)
                silent_closed = it_now_ms();
            else
                silent_got += (size_t)r;
        }
        if (p[2].revents) {
            ssize_t r = read(idle, buf, sizeof(buf));
            if (r <= 0)
                idle_closed = it_now_ms();
            else
                idle_got += (size_t)r;
        }
        if (p[3].revents) {
            ssize_t r = read(lying, buf, sizeof(buf));
            if (r <= 0) lying_closed = it_now_ms();
        }
    }
    long long idle_after = idle_closed < 0 ? -1 : idle_closed - idle_answer;
    assert_int_equal(it_multi_wait(&pc, 1, 7000 - (int)(it_now_ms() - t0) + 1000), 1);
    long long poll_took = it_now_ms() - t0;
    it_json j;
    it_json_parse(pc.resp.body, &j);
    printf("connection_timeout=2: slowloris (%zu bytes trickled) closed after %lld ms (%zu bytes "
           "answered), silent connection after %lld ms, keep-alive: second answer %d, idle close "
           "%lld ms after it, unfinished publish body after %lld ms; poll with timeout=5 answered "
           "%d after %lld ms with %zu messages\n",
           trickled, slow_closed < 0 ? -1 : slow_closed - t0, slow_got,
           silent_closed < 0 ? -1 : silent_closed - t0, second_status, idle_after,
           lying_closed < 0 ? -1 : lying_closed - t0, pc.resp.status, poll_took, j.n);
    (void)idle_got;
    (void)silent_got;
    int poll_status = pc.resp.status, parsed = j.parsed;
    size_t msgs = j.n;
    it_json_free(&j);
    it_multi_free(&pc, 1);
    close(slow);
    close(silent);
    close(idle);
    close(lying);

    assert_int_equal(poll_status, 200);
    assert_true(parsed);
    assert_int_equal(msgs, 0);
    assert_in_range(poll_took, 4800, 6200);
    assert_int_equal(second_status, 200);
    assert_true(slow_closed > 0);
    assert_in_range(slow_closed - t0, 1800, 4000);
    assert_true(silent_closed > 0);
    assert_in_range(silent_closed - t0, 1800, 4000);
    assert_true(idle_after > 0);
    assert_in_range(idle_after, 1800, 4000);
    assert_true(lying_closed > 0);
    assert_in_range(lying_closed - t0, 1800, 4000);
    char path[128];
    snprintf(path, sizeof(path), "/channels/%s", lie_ch);
    it_resp r;
    assert_int_equal(it_http(n.port, "GET", path, NULL, 0, NULL, 3000, &r), 0);
    it_json cj;
    it_json_parse(r.body, &cj);
    assert_int_equal(r.status, 200);
    assert_int_equal(cj.length, 0);
    it_json_free(&cj);
    it_resp_free(&r);
    assert_int_equal(get_status(n.port, "/healthz", 2000), 200);
    assert_int_equal(it_node_stop(&n), 0);
    assert_false(it_log_has_crash(n.log));
}

/* ---- over http.max_connections ---- */

static void test_connections_over_the_limit_get_503_json_with_retry_after(void **state) {
    (void)state;
    enum { LIMIT = 20, OVER = 5 };
    static const char *const env[] = {"HOLDLINE_HTTP_MAX_CONNECTIONS=20", "HOLDLINE_HTTP_WORKERS=1",
                                      NULL};
    it_node n = {0};
    assert_int_equal(it_node_start_env(&n, redis.port, NULL, env), 0);
    /* it_node_start's readiness checks have closed; give the node a moment
     * to see those connections go. */
    sleep_ms(200);

    char preq[128];
    snprintf(preq, sizeof(preq), "GET /poll/full-%ld?timeout=3 HTTP/1.1\r\nHost: t\r\n\r\n",
             (long)getpid());
    it_conn held[LIMIT], over[OVER];
    int ports[LIMIT];
    const char *reqs[LIMIT];
    for (int i = 0; i < LIMIT; i++) {
        ports[i] = n.port;
        reqs[i] = preq;
    }
    long long t0 = it_now_ms();
    assert_int_equal(it_multi_open(held, LIMIT, ports, reqs), 0);
    sleep_ms(500);
    /* All 20 are held, not answered. */
    size_t early = it_multi_wait(held, LIMIT, 10);

    const char *hz = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
    const char *oreqs[OVER];
    for (int i = 0; i < OVER; i++)
        oreqs[i] = hz;
    it_multi_open(over, OVER, ports, oreqs);
    size_t answered = it_multi_wait(over, OVER, 3000);
    int good = 0;
    for (int i = 0; i < OVER; i++) {
        it_json j;
        it_json_parse(over[i].resp.body, &j);
        char retry[32] = "";
        it_resp_header(&over[i].resp, "Retry-After", retry, sizeof(retry));
        int ok = over[i].resp.status == 503 && j.parsed && strcmp(j.error, "overloaded") == 0 &&
                 retry[0] != '\0' && strspn(retry, "0123456789") == strlen(retry);
        good += ok;
        printf("  request %d over the limit: %d Retry-After '%s' %s\n", LIMIT + 1 + i,
               over[i].resp.status, retry, over[i].resp.body ? over[i].resp.body : "(no answer)");
        it_json_free(&j);
    }
    it_multi_free(over, OVER);

    /* The held polls are untouched and time out normally. */
    size_t polls = it_multi_wait(held, LIMIT, 5000);
    long long took = it_now_ms() - t0;
    int polls_ok = 0;
    for (int i = 0; i < LIMIT; i++) {
        it_json j;
        it_json_parse(held[i].resp.body, &j);
        polls_ok += held[i].resp.status == 200 && j.parsed && j.n == 0 && j.cursor[0];
        it_json_free(&j);
    }
    it_multi_free(held, LIMIT);
    /* Once they are gone there is room again. */
    sleep_ms(200);
    int after = get_status(n.port, "/healthz", 2000);
    printf("max_connections=20: %zu of %d held polls answered early; %zu of %d requests over the "
           "limit answered, %d of them 503 overloaded with Retry-After; held polls: %d of %d "
           "answered 200 after %lld ms; then /healthz %d\n",
           early, LIMIT, answered, OVER, good, polls_ok, LIMIT, took, after);
    assert_int_equal(early, 0);
    assert_int_equal(good, OVER);
    assert_int_equal(polls, LIMIT);
    assert_int_equal(polls_ok, LIMIT);
    assert_in_range(took, 2800, 4500);
    assert_int_equal(after, 200);
    assert_int_equal(it_node_stop(&n), 0);
    assert_false(it_log_has_crash(n.log));
}

/* ---- a client that hangs up ---- */

static void test_a_client_hanging_up_releases_its_subscription_within_seconds(void **state) {
    (void)state;
    static const char *const env[] = {"HOLDLINE_POLL_LINGER_MS=0", "HOLDLINE_HTTP_WORKERS=1", NULL};
    it_node n = {0};
    assert_int_equal(it_node_start_env(&n, redis.port, NULL, env), 0);
    char ch[64], rch[80], req[160];
    snprintf(ch, sizeof(ch), "hangup-%ld", (long)getpid());
    snprintf(rch, sizeof(rch), "holdline:%s", ch);
    const char *numsub[] = {"PUBSUB", "NUMSUB", rch};

    for (int round = 0; round < 2; round++) {
        /* Round 0: one waiter; round 1: three, all of which hang up. */
        int k = round == 0 ? 1 : 3;
        int fds[3];
        snprintf(req, sizeof(req), "GET /poll/%s?timeout=30 HTTP/1.1\r\nHost: t\r\n\r\n", ch);
        for (int i = 0; i < k; i++) {
            fds[i] = it_connect(n.port);
            assert_true(fds[i] >= 0);
            assert_int_equal(it_write_all(fds[i], req, strlen(req)), 0);
        }
        long long t = it_now_ms();
        long long subs = 0;
        while ((subs = it_redis_int(redis.port, 3, numsub)) < 1 && it_now_ms() - t < 3000)
            sleep_ms(20);
        assert_int_equal(subs, 1);
        sleep_ms(300);
        long long t0 = it_now_ms();
        for (int i = 0; i < k; i++)
            close(fds[i]);
        long long gone = -1;
        while (it_now_ms() - t0 < 8000) {
            if (it_redis_int(redis.port, 3, numsub) == 0) {
                gone = it_now_ms() - t0;
                break;
            }
            sleep_ms(50);
        }
        printf("%d waiter(s) hung up (poll timeout 30 s, linger 0): subscription gone after %lld "
               "ms\n",
               k, gone);
        assert_true(gone >= 0);
        assert_true(gone < 6000); /* peeks come every 4 s */
    }
    /* The node goes on: a new poll and a publish on the channel. */
    snprintf(req, sizeof(req), "GET /poll/%s?timeout=5 HTTP/1.1\r\nHost: t\r\n\r\n", ch);
    const char *reqs[] = {req};
    it_conn c;
    assert_int_equal(it_multi_open(&c, 1, &n.port, reqs), 0);
    long long t = it_now_ms();
    while (it_redis_int(redis.port, 3, numsub) < 1 && it_now_ms() - t < 3000)
        sleep_ms(20);
    char path[128];
    snprintf(path, sizeof(path), "/publish/%s", ch);
    it_resp r;
    assert_int_equal(it_http(n.port, "POST", path, "after", 5, NULL, 3000, &r), 0);
    assert_int_equal(r.status, 201);
    it_resp_free(&r);
    assert_int_equal(it_multi_wait(&c, 1, 3000), 1);
    it_json j;
    it_json_parse(c.resp.body, &j);
    assert_int_equal(c.resp.status, 200);
    assert_int_equal(j.n, 1);
    assert_string_equal(j.msgs[0].data, "after");
    it_json_free(&j);
    it_multi_free(&c, 1);
    assert_int_equal(it_node_stop(&n), 0);
    assert_false(it_log_has_crash(n.log));
}

int main(void) {
    /* IT_FILTER=<glob> runs only the matching tests. */
    if (getenv("IT_FILTER")) cmocka_set_test_filter(getenv("IT_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostile_requests_get_their_status_and_the_node_keeps_serving),
        cmocka_unit_test(test_slowloris_is_cut_at_connection_timeout_but_a_held_poll_is_not),
        cmocka_unit_test(test_connections_over_the_limit_get_503_json_with_retry_after),
        cmocka_unit_test(test_a_client_hanging_up_releases_its_subscription_within_seconds),
    };
    return it_finish(cmocka_run_group_tests_name("hostile clients", tests, setup, teardown));
}

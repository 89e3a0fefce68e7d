/* fuzz_peek.c -- libFuzzer target for core/hl_peek.h.
 *
 * The whole input is the bytes a worker peeks off a new connection. The
 * parser must stay inside them, every span it returns must lie inside
 * them, a complete head must end with a line feed, and what it counts
 * must agree with a plain rewrite of its rules: the head ends at the
 * first empty line (or at the request line, when that is not HTTP/1.x),
 * lines are split at '\n' with one '\r' before it dropped. Feeding the
 * head alone gives the same result as feeding it with whatever followed. */
#include "fuzz.h"
#include "hl_peek.h"

static int inside(hl_span s, const char *buf, size_t n) {
    if (s.n == 0) return 1;
    return s.p >= buf && s.p + s.n <= buf + n;
}

/* The reference: where the head ends (0: not yet) and how many header
 * lines it has. */
static size_t ref_head(const char *b, size_t n, unsigned *lines) {
    size_t pos = 0;
    int first = 1;
    *lines = 0;
    while (pos < n) {
        size_t e = pos;
        while (e < n && b[e] != '\n')
            e++;
        if (e == n) return 0;
        size_t len = e - pos;
        if (len > 0 && b[e - 1] == '\r') len--;
        if (first) {
            first = 0;
            if (len < 9 || memcmp(b + pos + len - 9, " HTTP/1.", 8) != 0) return e + 1;
        } else if (len == 0) {
            return e + 1;
        } else {
            (*lines)++;
        }
        pos = e + 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *buf = (const char *)data;
    hl_peek p;
    hl_peek_status st = hl_peek_parse(buf, size, &p);
    unsigned lines;
    size_t want = ref_head(buf, size, &lines);
    FUZZ_CHECK((st == HL_PEEK_DONE) == (want > 0));
    FUZZ_CHECK(inside(p.target, buf, size));
    FUZZ_CHECK(inside(p.origin, buf, size));
    FUZZ_CHECK(inside(p.channel, buf, size));
    FUZZ_CHECK(p.line_len <= size);
    if (st != HL_PEEK_DONE) return 0;
    FUZZ_CHECK(p.head_len == want);
    FUZZ_CHECK(buf[p.head_len - 1] == '\n');
    FUZZ_CHECK(p.not_http1 || p.lines == lines);
    FUZZ_CHECK(p.cookie_bytes <= p.head_len);
    FUZZ_CHECK(p.header_bytes <= p.head_len + 4 * (size_t)p.lines);
    FUZZ_CHECK(hl_peek_pool_need(&p) >= p.head_len + HL_PEEK_ROOM);
    /* The channel is a piece of the target's path. */
    if (p.channel.n) FUZZ_CHECK(inside(p.channel, p.target.p, p.target.n));
    /* The head alone reads the same. */
    hl_peek q;
    FUZZ_CHECK(hl_peek_parse(buf, p.head_len, &q) == HL_PEEK_DONE);
    FUZZ_CHECK(q.head_len == p.head_len && q.lines == p.lines && q.args == p.args &&
               q.cookies == p.cookies && q.cookie_bytes == p.cookie_bytes &&
               q.header_bytes == p.header_bytes && q.channel.n == p.channel.n);
    return 0;
}

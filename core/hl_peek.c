#include "hl_peek.h"

#include <string.h>
#include <strings.h>

static int name_is(const char *p, size_t n, const char *want) {
    size_t wn = strlen(want);
    return n == wn && strncasecmp(p, want, n) == 0;
}

/* The request line: the target is what lies between the first two
 * spaces; its query arguments are counted the way libmicrohttpd stores
 * them, one record per '&'-separated part. */
static void parse_request_line(const char *s, size_t n, hl_peek *p) {
    const char *sp1 = memchr(s, ' ', n);
    if (sp1 == NULL) return;
    const char *t = sp1 + 1;
    const char *end = s + n;
    const char *sp2 = memchr(t, ' ', (size_t)(end - t));
    if (sp2 == NULL) sp2 = end;
    p->target.p = t;
    p->target.n = (size_t)(sp2 - t);
    const char *q = memchr(t, '?', p->target.n);
    size_t path_len = q ? (size_t)(q - t) : p->target.n;
    if (q != NULL) {
        p->args = 1;
        for (const char *c = q + 1; c < sp2; c++)
            p->args += *c == '&';
    }
    static const char *const prefixes[] = {"/poll/", "/events/"};
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        size_t pl = strlen(prefixes[i]);
        if (path_len > pl && memcmp(t, prefixes[i], pl) == 0) {
            const char *c = t + pl, *ce = t + path_len;
            const char *comma = memchr(c, ',', (size_t)(ce - c));
            p->channel.p = c;
            p->channel.n = (size_t)((comma ? comma : ce) - c);
            break;
        }
    }
}

static void parse_header_line(const char *s, size_t n, hl_peek *p) {
    p->lines++;
    const char *colon = memchr(s, ':', n);
    size_t name_len = colon ? (size_t)(colon - s) : n;
    const char *v = colon ? colon + 1 : s + n;
    const char *ve = s + n;
    while (v < ve && (*v == ' ' || *v == '\t'))
        v++;
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
        ve--;
    size_t vlen = (size_t)(ve - v);
    p->header_bytes += name_len + vlen + 4;
    if (name_is(s, name_len, "Cookie")) {
        /* libmicrohttpd splits on ';' and ',' and keeps a record even for
         * a part without '='. */
        p->cookie_bytes += vlen;
        p->cookies++;
        for (const char *c = v; c < ve; c++)
            p->cookies += *c == ';' || *c == ',';
    } else if (name_is(s, name_len, "Origin")) {
        p->origin.p = v;
        p->origin.n = vlen;
    }
}

hl_peek_status hl_peek_parse(const char *buf, size_t len, hl_peek *p) {
    memset(p, 0, sizeof(*p));
    size_t pos = 0;
    int first = 1;
    while (pos < len) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        if (nl == NULL) break;
        size_t end = (size_t)(nl - buf);
        size_t n = end - pos;
        if (n > 0 && buf[pos + n - 1] == '\r') n--;
        if (first) {
            first = 0;
            p->line_len = n;
            parse_request_line(buf + pos, n, p);
            if (n < 9 || memcmp(buf + pos + n - 9, " HTTP/1.", 8) != 0) {
                p->not_http1 = 1;
                p->head_len = end + 1;
                return HL_PEEK_DONE;
            }
        } else if (n == 0) {
            p->head_len = end + 1;
            return HL_PEEK_DONE;
        } else {
            parse_header_line(buf + pos, n, p);
        }
        pos = end + 1;
    }
    if (first) p->line_len = len;
    return HL_PEEK_MORE;
}

size_t hl_peek_pool_need_parsed(size_t request_bytes, unsigned records, size_t cookie_bytes,
                                size_t echo_bytes) {
    size_t need = request_bytes + (size_t)records * HL_PEEK_RECORD + HL_PEEK_ROOM + echo_bytes;
    /* A browser's jar grows between two polls of one kept-alive
     * connection (a site sets a cookie): half again of it is kept free. */
    if (cookie_bytes > 0) need += ((cookie_bytes + 1 + 15) & ~(size_t)15) + cookie_bytes / 2;
    return need;
}

size_t hl_peek_pool_need(const hl_peek *p) {
    return hl_peek_pool_need_parsed(p->head_len, p->lines + p->args + p->cookies, p->cookie_bytes,
                                    p->target.n + p->origin.n);
}

uint32_t hl_peek_hash(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    /* A finishing mix, so that names that differ in their last byte only
     * (news1, news2...) spread over any number of daemons, powers of two
     * included. */
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

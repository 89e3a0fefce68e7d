/* fuzz_frame.c -- libFuzzer target for core/hl_history.h and
 * core/hl_msgcache.h: what a worker does with bytes that come from Redis.
 *
 * The first byte picks a mode (its value modulo 3), the rest is its input:
 *
 *   0  a pub/sub payload for hl_frame_parse (0x1E <id> '\n' <data>). data
 *      and dlen must stay inside the payload and end where it ends, the
 *      kind must match the framing rule, and a framed message is encoded
 *      with hl_msg_new, whose JSON must be valid whatever the data holds.
 *   1  an hl_stream_state, a cursor id and a TTL, cut from the bytes, for
 *      hl_history_missed and hl_history_head. Ids are any 64-bit values, as
 *      an XADD with an explicit id or a client's cursor can make them;
 *      lengths and counts are the non-negative ones XINFO reports. Under
 *      UBSan any signed overflow stops the run.
 *   2  a byte program for a small hl_msgcache: pushes of messages with
 *      rising ids and lookups with hl_msgcache_after, checked after each
 *      step against a model of the documented eviction rule. */
#include "fuzz.h"
#include "hl_common.h"
#include "hl_cursor.h"
#include "hl_history.h"
#include "hl_msgcache.h"

#define CACHE_MAX 8

/* ---- Mode 0: frames ---------------------------------------------------- */

/* Returns the length of the well-formed UTF-8 sequence at s, or 0. */
static size_t utf8_len(const unsigned char *s, size_t n) {
    if (s[0] < 0x80) return 1;
    size_t len = s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC2 ? 2 : 0;
    if (len == 0 || s[0] > 0xF4 || len > n) return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    uint32_t cp = s[0] & (0xFF >> (len + 1));
    for (size_t i = 1; i < len; i++)
        cp = cp << 6 | (s[i] & 0x3F);
    static const uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < least[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

/* Skips one JSON string at *p (RFC 8259: no raw control characters,
 * known escapes only, well-formed UTF-8). Returns 1 if it is one. */
static int json_string(const char **p, const char *end) {
    const unsigned char *s = (const unsigned char *)*p;
    const unsigned char *e = (const unsigned char *)end;
    if (s == e || *s++ != '"') return 0;
    while (s < e && *s != '"') {
        if (*s < 0x20) return 0;
        if (*s == '\\') {
            if (++s == e) return 0;
            if (*s == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (s + i >= e || strchr("0123456789abcdefABCDEF", s[i]) == NULL ||
                        s[i] == '\0')
                        return 0;
                s += 5;
            } else if (*s != '\0' && strchr("\"\\/bfnrt", *s) != NULL) {
                s++;
            } else {
                return 0;
            }
            continue;
        }
        size_t len = utf8_len(s, (size_t)(e - s));
        if (len == 0) return 0;
        s += len;
    }
    if (s == e) return 0;
    *p = (const char *)s + 1;
    return 1;
}

static int skip_literal(const char **p, const char *end, const char *lit) {
    size_t n = strlen(lit);
    if ((size_t)(end - *p) < n || memcmp(*p, lit, n) != 0) return 0;
    *p += n;
    return 1;
}

/* m->json is {"channel":<string>,"id":"<id>","data":<string>}. */
static void check_msg(const hl_msg *m, hl_sid id) {
    char ids[HL_SID_MAXLEN + 1];
    const char *p = m->json, *end = m->json + m->len;

    FUZZ_CHECK(m->json[m->len] == '\0' && strlen(m->json) == m->len);
    FUZZ_CHECK(hl_sid_cmp(m->id, id) == 0);
    hl_sid_format(id, ids);
    FUZZ_CHECK(skip_literal(&p, end, "{\"channel\":") && json_string(&p, end));
    FUZZ_CHECK(skip_literal(&p, end, ",\"id\":\"") && skip_literal(&p, end, ids));
    FUZZ_CHECK(skip_literal(&p, end, "\",\"data\":") && json_string(&p, end));
    FUZZ_CHECK(skip_literal(&p, end, "}") && p == end);
}

static void fuzz_frames(const char *p, size_t n) {
    hl_sid id = {7, 7};
    const char *data = NULL;
    size_t dlen = (size_t)-1;

    hl_frame_kind kind = hl_frame_parse(p, n, &id, &data, &dlen);
    FUZZ_CHECK(data >= p && dlen <= n && data + dlen == p + n);

    /* The rule: the mark, an id, '\n' within the longest id's reach. */
    int marked = n > 0 && (unsigned char)p[0] == HL_FRAME_MARK;
    size_t look = n > 0 ? n - 1 : 0;
    if (look > HL_SID_MAXLEN + 1) look = HL_SID_MAXLEN + 1;
    const char *nl = marked ? memchr(p + 1, '\n', look) : NULL;
    hl_sid want;
    int framed = nl != NULL && hl_sid_parse(p + 1, (size_t)(nl - p - 1), &want) == HL_OK;

    switch (kind) {
    case HL_FRAME_PLAIN: FUZZ_CHECK(!marked && data == p && dlen == n); break;
    case HL_FRAME_BAD: FUZZ_CHECK(marked && !framed && data == p && dlen == n); break;
    case HL_FRAME_ID: FUZZ_CHECK(framed && data == nl + 1 && hl_sid_cmp(id, want) == 0); break;
    default: FUZZ_CHECK(!"a frame kind the header does not list");
    }
    if (marked && kind != HL_FRAME_ID) FUZZ_CHECK(kind == HL_FRAME_BAD);

    /* What on_message makes of it; any bytes must give valid JSON. */
    if (kind != HL_FRAME_ID) id = (hl_sid){0, 0};
    hl_msg *m = hl_msg_new(id, "news", 4, data, dlen);
    FUZZ_CHECK(m != NULL);
    check_msg(m, id);
    free(m);
    /* A channel name is validated before it gets here, but the encoder
     * promises valid JSON for any bytes. */
    m = hl_msg_new(id, p, n < 64 ? n : 64, "", 0);
    FUZZ_CHECK(m != NULL);
    check_msg(m, id);
    free(m);
}

/* ---- Mode 1: history ----------------------------------------------------- */

static hl_sid take_sid(fuzz_in *in) {
    hl_sid id;
    id.ms = fuzz_u64(in);
    id.seq = fuzz_u64(in);
    return id;
}

/* A count XINFO reports: never negative. */
static long long take_count(fuzz_in *in) {
    return (long long)(fuzz_u64(in) >> 1);
}

static void fuzz_history(fuzz_in *in) {
    hl_stream_state st;

    memset(&st, 0, sizeof(st));
    st.exists = fuzz_byte(in) & 1;
    /* TIME is never negative, but the reply is only checked to be an
     * integer, so any value must be safe. */
    st.now_ms = (long long)fuzz_u64(in);
    st.length = take_count(in);
    st.first = take_sid(in);
    st.last = take_sid(in);
    st.maxdel = take_sid(in);
    st.added = take_count(in);
    hl_sid at = take_sid(in);
    /* history.ttl is 1..INT_MAX seconds. */
    long long ttl_ms = (long long)(1 + fuzz_u64(in) % 2147483647u) * 1000;

    int missed = hl_history_missed(&st, at, ttl_ms);
    FUZZ_CHECK(missed == 0 || missed == 1);
    /* A cursor past everything Redis ever added is always missed. */
    if (st.exists && hl_sid_cmp(at, st.last) > 0) FUZZ_CHECK(missed == 1);
    if (st.exists && hl_sid_cmp(at, st.last) == 0) FUZZ_CHECK(missed == 0);
    /* Held from before `at` to the last id, nothing deleted after it. */
    if (st.exists && hl_sid_cmp(at, st.last) < 0 && st.length > 0 &&
        hl_sid_cmp(st.first, at) <= 0 && hl_sid_cmp(st.maxdel, at) <= 0)
        FUZZ_CHECK(missed == 0);

    hl_sid head = hl_history_head(&st);
    if (st.exists) {
        FUZZ_CHECK(hl_sid_cmp(head, st.last) == 0);
    } else {
        hl_sid want = {st.now_ms > 0 ? (uint64_t)st.now_ms - 1 : 0, UINT64_MAX};
        FUZZ_CHECK(hl_sid_cmp(head, want) == 0);
    }

    /* hl_sid_cmp is a total order on what it was given. */
    int ab = hl_sid_cmp(st.first, at), ba = hl_sid_cmp(at, st.first);
    FUZZ_CHECK((ab > 0) == (ba < 0) && (ab == 0) == (ba == 0));
    FUZZ_CHECK((ab == 0) == (st.first.ms == at.ms && st.first.seq == at.seq));
    FUZZ_CHECK(ab >= 0 || st.first.ms < at.ms || (st.first.ms == at.ms && st.first.seq < at.seq));
}

/* ---- Mode 2: message cache --------------------------------------------- */

/* What the cache must hold: ids and lengths, oldest first. */
typedef struct model {
    hl_sid id[CACHE_MAX + 1];
    size_t len[CACHE_MAX + 1];
    size_t count;
} model;

static void check_cache(const hl_msgcache *c, const model *mo, size_t cap, size_t max_bytes) {
    size_t bytes = 0;
    FUZZ_CHECK(c->count == mo->count && c->count <= cap);
    for (size_t i = 0; i < c->count; i++) {
        const hl_msg *m = hl_msgcache_at(c, i);
        FUZZ_CHECK(hl_sid_cmp(m->id, mo->id[i]) == 0 && m->len == mo->len[i]);
        FUZZ_CHECK(i == 0 || hl_sid_cmp(hl_msgcache_at(c, i - 1)->id, m->id) < 0);
        bytes += m->len;
    }
    FUZZ_CHECK(c->bytes == bytes);
    /* Bounded by bytes, but always at least the newest message. */
    FUZZ_CHECK(c->count <= 1 || bytes <= max_bytes);
}

/* The next id after last, moved on by what the input says; 0 if there is
 * no greater id. */
static int next_id(fuzz_in *in, hl_sid last, hl_sid *out) {
    uint8_t step = fuzz_byte(in);
    hl_sid id = last;
    if (step & 0x80) {
        if (id.ms > UINT64_MAX - (step & 0x7F) - 1) return 0;
        id.ms += (uint64_t)(step & 0x7F) + 1;
        id.seq = fuzz_byte(in);
    } else {
        if (id.seq > UINT64_MAX - step - 1) return 0;
        id.seq += (uint64_t)step + 1;
    }
    *out = id;
    return 1;
}

static void fuzz_cache(fuzz_in *in) {
    hl_msgcache c;
    model mo;
    size_t cap = fuzz_byte(in) % (CACHE_MAX + 1);
    size_t max_bytes = (size_t)fuzz_byte(in) << 2;
    hl_sid last = take_sid(in);

    hl_msgcache_init(&c, cap, max_bytes);
    memset(&mo, 0, sizeof(mo));
    /* The first message takes the id read above, every later one a
     * greater id: the header asks for ids in order. */
    int pushed = 0;
    while (in->n > 0) {
        uint8_t op = fuzz_byte(in);
        if (op & 1) {
            hl_sid id = last;
            if (pushed && !next_id(in, last, &id)) break;
            size_t dlen;
            const char *d = fuzz_bytes(in, op >> 2, &dlen);
            hl_msg *m = hl_msg_new(id, "news", 4, d, dlen);
            FUZZ_CHECK(m != NULL);
            size_t mlen = m->len;
            hl_sid dropped = {7, 7};
            int rc = hl_msgcache_push(&c, m, &dropped);

            /* The model: drop the oldest until the new message fits. */
            int any = 0;
            hl_sid want_dropped = {0, 0};
            size_t bytes = 0;
            for (size_t i = 0; i < mo.count; i++)
                bytes += mo.len[i];
            mo.id[mo.count] = id;
            mo.len[mo.count] = mlen;
            mo.count++;
            bytes += mlen;
            while (mo.count > 0 && (mo.count > cap || (mo.count > 1 && bytes > max_bytes))) {
                want_dropped = mo.id[0];
                bytes -= mo.len[0];
                memmove(mo.id, mo.id + 1, (mo.count - 1) * sizeof(mo.id[0]));
                memmove(mo.len, mo.len + 1, (mo.count - 1) * sizeof(mo.len[0]));
                mo.count--;
                any = 1;
            }
            FUZZ_CHECK(rc == any);
            if (any) FUZZ_CHECK(hl_sid_cmp(dropped, want_dropped) == 0);
            last = id;
            pushed = 1;
        } else {
            hl_sid probe = {last.ms - (op >> 1 & 3), fuzz_byte(in)};
            size_t i = hl_msgcache_after(&c, probe);
            size_t want = 0;
            while (want < mo.count && hl_sid_cmp(mo.id[want], probe) <= 0)
                want++;
            FUZZ_CHECK(i == want);
        }
        check_cache(&c, &mo, cap, max_bytes);
    }
    hl_msgcache_free(&c);
    /* A freed cache frees again as a no-op. */
    hl_msgcache_free(&c);
    hl_msgcache_free(NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_in in = {data, size};

    switch (fuzz_byte(&in) % 3) {
    case 0: fuzz_frames((const char *)in.p, in.n); break;
    case 1: fuzz_history(&in); break;
    case 2: fuzz_cache(&in); break;
    }
    return 0;
}

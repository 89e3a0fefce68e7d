#include "hl_cursor.h"

#include <stdio.h>
#include <string.h>

#include "hl_common.h"

int hl_sid_cmp(hl_sid a, hl_sid b) {
    if (a.ms != b.ms) return a.ms < b.ms ? -1 : 1;
    if (a.seq != b.seq) return a.seq < b.seq ? -1 : 1;
    return 0;
}

/* Parses 1..20 decimal digits into a uint64_t, refusing overflow. */
static int parse_u64(const char *s, size_t n, uint64_t *out) {
    if (n == 0 || n > 20) return HL_ERR;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return HL_ERR;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return HL_ERR;
        v = v * 10 + d;
    }
    *out = v;
    return HL_OK;
}

int hl_sid_parse(const char *s, size_t n, hl_sid *out) {
    const char *dash = memchr(s, '-', n);
    if (dash == NULL) return HL_ERR;
    size_t a = (size_t)(dash - s);
    hl_sid id;
    if (parse_u64(s, a, &id.ms) != HL_OK || parse_u64(dash + 1, n - a - 1, &id.seq) != HL_OK)
        return HL_ERR;
    *out = id;
    return HL_OK;
}

size_t hl_sid_format(hl_sid id, char *buf) {
    int n = snprintf(buf, HL_SID_MAXLEN + 1, "%llu-%llu", (unsigned long long)id.ms,
                     (unsigned long long)id.seq);
    return (size_t)n;
}

int hl_epoch_parse(const char *s, size_t n, uint64_t *out) {
    if (n == 0 || n > 16) return HL_ERR;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else
            return HL_ERR;
        v = v << 4 | d;
    }
    *out = v;
    return HL_OK;
}

int hl_cursor_parse(const char *s, size_t len, size_t n, uint64_t *epoch, hl_cur_part *parts,
                    char *err, size_t errlen) {
    *epoch = 0;
    for (size_t i = 0; i < n; i++)
        parts[i] = (hl_cur_part){HL_CUR_NEW, {0, 0}};
    if (len == 0) return HL_OK;
    if (len == 1 && s[0] == '0') {
        for (size_t i = 0; i < n; i++)
            parts[i].kind = HL_CUR_ALL;
        return HL_OK;
    }
    const char *colon = memchr(s, ':', len);
    if (colon == NULL)
        return hl_set_error(err, errlen, "a cursor is \"0\" or one the server handed out");
    if (hl_epoch_parse(s, (size_t)(colon - s), epoch) != HL_OK)
        return hl_set_error(err, errlen, "the cursor's epoch is not 1 to 16 hex digits");
    const char *p = colon + 1, *end = s + len;
    size_t i = 0;
    for (;;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        size_t plen = (size_t)(stop - p);
        if (i == n)
            return hl_set_error(err, errlen,
                                "the cursor has more parts than the poll has channels");
        if (plen == 1 && p[0] == '0')
            parts[i].kind = HL_CUR_ALL;
        else if (plen > 0) {
            if (hl_sid_parse(p, plen, &parts[i].id) != HL_OK)
                return hl_set_error(err, errlen, "cursor part %zu is not a message id", i + 1);
            parts[i].kind = HL_CUR_AT;
        }
        i++;
        if (comma == NULL) break;
        p = comma + 1;
    }
    if (i != n)
        return hl_set_error(err, errlen, "the cursor has %zu parts but the poll has %zu channels",
                            i, n);
    return HL_OK;
}

void hl_cursor_format(hl_buf *b, uint64_t epoch, const hl_cur_part *parts, size_t n) {
    size_t news = 0, alls = 0;
    for (size_t i = 0; i < n; i++) {
        news += parts[i].kind == HL_CUR_NEW;
        alls += parts[i].kind == HL_CUR_ALL;
    }
    if (news == n) return;
    if (alls == n) {
        hl_buf_puts(b, "0");
        return;
    }
    hl_buf_printf(b, "%llx:", (unsigned long long)epoch);
    for (size_t i = 0; i < n; i++) {
        if (i > 0) hl_buf_puts(b, ",");
        if (parts[i].kind == HL_CUR_ALL) {
            hl_buf_puts(b, "0");
        } else if (parts[i].kind == HL_CUR_AT) {
            char id[HL_SID_MAXLEN + 1];
            hl_buf_append(b, id, hl_sid_format(parts[i].id, id));
        }
    }
}

uint64_t hl_epoch_combine(const uint64_t *e, size_t n) {
    if (n == 0) return 0;
    int same = 1;
    for (size_t i = 0; i < n; i++) {
        if (e[i] == 0) return 0;
        same &= e[i] == e[0];
    }
    if (same) return e[0];
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < n; i++) {
        for (int b = 0; b < 8; b++) {
            h ^= (e[i] >> (8 * b)) & 0xff;
            h *= 1099511628211ULL;
        }
    }
    return h ? h : 1;
}

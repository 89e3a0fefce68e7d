#include "hl_history.h"

#include <string.h>

#include "hl_common.h"

hl_frame_kind hl_frame_parse(const char *p, size_t n, hl_sid *id, const char **data, size_t *dlen) {
    *data = p;
    *dlen = n;
    if (n == 0 || (unsigned char)p[0] != HL_FRAME_MARK) return HL_FRAME_PLAIN;
    size_t look = n - 1 < HL_SID_MAXLEN + 1 ? n - 1 : HL_SID_MAXLEN + 1;
    const char *nl = memchr(p + 1, '\n', look);
    if (nl == NULL || hl_sid_parse(p + 1, (size_t)(nl - p - 1), id) != HL_OK) return HL_FRAME_BAD;
    *data = nl + 1;
    *dlen = n - (size_t)(nl + 1 - p);
    return HL_FRAME_ID;
}

hl_sid hl_history_head(const hl_stream_state *s) {
    if (s->exists) return s->last;
    hl_sid h = {s->now_ms > 0 ? (uint64_t)s->now_ms - 1 : 0, UINT64_MAX};
    return h;
}

int hl_history_missed(const hl_stream_state *s, hl_sid at, long long ttl_ms) {
    long long at_ms = at.ms > (uint64_t)INT64_MAX ? INT64_MAX : (long long)at.ms;
    if (!s->exists) {
        /* Nothing after `at` can have expired unless `at` is a TTL old:
         * the stream lives a TTL after its last entry. */
        if (at_ms > s->now_ms) return 1;
        return s->now_ms - at_ms >= ttl_ms;
    }
    int c = hl_sid_cmp(at, s->last);
    if (c > 0) return 1;
    if (c == 0) return 0;
    if (hl_sid_cmp(s->maxdel, at) > 0) return 1; /* XDEL after `at` */
    if (s->length == 0) return 1;                /* entries after `at` existed and are gone */
    if (hl_sid_cmp(s->first, at) <= 0) return 0; /* everything after `at` is held */
    /* The oldest entry held is after `at`. MAXLEN trims from the front
     * (and Redis 7.0 does not count trims in max-deleted-entry-id), so
     * if anything was ever removed it may have been after `at`. */
    if (s->added > s->length) return 1;
    /* Nothing removed from this stream, but an older one may have expired
     * before it was created, which takes more than a TTL after `at`. */
    /* first is after at, so first.ms >= at.ms: the difference fits. */
    return ttl_ms <= 0 || s->first.ms - at.ms >= (uint64_t)ttl_ms;
}

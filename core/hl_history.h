/* hl_history.h -- the pure half of holdline's Redis data model: the
 * framing of durable messages on pub/sub, the Redis Function library the
 * nodes load, and the rule that decides whether a client's cursor still
 * has an unbroken history behind it.
 *
 * A durable publish (the function holdline_publish) appends the message
 * to the channel's stream {<prefix><channel>}:log and publishes on
 * <prefix><channel> the frame
 *
 *     0x1E <stream id> '\n' <data>
 *
 * Anything else on the channel is a plain PUBLISH: delivered as-is, with
 * no id, to the waiters of the moment. The functions that write and read
 * the streams in Redis are core/store/hl_rlib.h's. */
#ifndef HL_HISTORY_H
#define HL_HISTORY_H

#include <stddef.h>

#include "hl_cursor.h"
#include "hl_json.h"

#define HL_FRAME_MARK 0x1E

typedef enum hl_frame_kind {
    HL_FRAME_PLAIN = 0, /* not framed: the whole payload is the data */
    HL_FRAME_ID,        /* framed: id and data are set */
    HL_FRAME_BAD,       /* starts with 0x1E but is not a frame; delivered as plain */
} hl_frame_kind;

/* Reads a pub/sub payload. For HL_FRAME_ID, *id is the entry id and
 * data/dlen the bytes after the '\n'; otherwise data/dlen are the whole
 * payload. Never reads outside p[0..n). */
hl_frame_kind hl_frame_parse(const char *p, size_t n, hl_sid *id, const char **data, size_t *dlen);

/* What holdline_read reported about a stream. */
typedef struct hl_stream_state {
    long long now_ms; /* Redis's clock */
    int exists;       /* 0: the stream key does not exist */
    long long length; /* entries held */
    hl_sid first;     /* first entry held (0-0 when empty) */
    hl_sid last;      /* last id ever added */
    hl_sid maxdel;    /* highest id removed by XDEL (0-0: none; trims do not count) */
    long long added;  /* entries ever added to this stream */
} hl_stream_state;

/* The position just before anything Redis will add from now on: the last
 * id for a stream that exists, else (now - 1 ms, highest seq), which
 * sorts after everything Redis could have added before now and before
 * anything it adds later. */
hl_sid hl_history_head(const hl_stream_state *s);

/* Returns 1 if a client at cursor `at` (of the same epoch) may have
 * missed messages, 0 if every message after `at` is provably still held.
 *
 * Missed when: `at` is after everything Redis ever added (a cursor from
 * elsewhere or from the future); an entry after `at` was deleted (max
 * deleted id > at); the oldest entry held is after `at` and entries were
 * trimmed (entries added > length: conservative, since the trimmed ones
 * may all have been at or before `at`); or the history may have expired
 * since `at`: the stream is gone and `at` is older than the TTL, or the
 * stream was created anew more than a TTL after `at`. */
int hl_history_missed(const hl_stream_state *s, hl_sid at, long long ttl_ms);

#endif

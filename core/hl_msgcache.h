/* hl_msgcache.h -- a channel's recent messages, kept by a worker so that
 * a client a little behind is answered without asking Redis.
 *
 * Each message is stored once, already encoded as the JSON object an
 * answer carries ({"channel":..,"id":..,"data":..}), in a ring ordered by
 * id. The ring is bounded by a count and by bytes; pushing past either
 * drops the oldest messages. Not thread-safe (one per channel per worker). */
#ifndef HL_MSGCACHE_H
#define HL_MSGCACHE_H

#include <stddef.h>

#include "hl_cursor.h"

typedef struct hl_msg {
    struct hl_msg *next; /* for lists of messages outside the ring */
    hl_sid id;
    size_t len;  /* of json */
    char json[]; /* NUL-terminated */
} hl_msg;

/* Encodes a message for channel name[0..nlen) with data[0..dlen).
 * Returns NULL when out of memory. Free with free(). */
hl_msg *hl_msg_new(hl_sid id, const char *name, size_t nlen, const char *data, size_t dlen);

typedef struct hl_msgcache {
    hl_msg **ring;    /* cap slots, NULL until the first push */
    size_t cap;       /* most messages kept (0: keep none) */
    size_t head;      /* slot of the oldest message */
    size_t count;     /* messages held */
    size_t bytes;     /* sum of their json lengths */
    size_t max_bytes; /* keep at most this many bytes (always at least one message) */
} hl_msgcache;

void hl_msgcache_init(hl_msgcache *c, size_t cap, size_t max_bytes);

/* Frees every message and the ring. A no-op on an initialised or freed
 * cache. */
void hl_msgcache_free(hl_msgcache *c);

/* Appends m (whose id must sort after every id held) and takes it over.
 * Messages dropped to make room are freed; *dropped is set to the id of
 * the last one dropped and 1 is returned, else 0. With cap 0 m itself is
 * dropped at once. Returns -1 (m freed) when out of memory. */
int hl_msgcache_push(hl_msgcache *c, hl_msg *m, hl_sid *dropped);

/* The i-th message held, oldest first (i < count). */
hl_msg *hl_msgcache_at(const hl_msgcache *c, size_t i);

/* The index of the first message whose id sorts after id (count if none). */
size_t hl_msgcache_after(const hl_msgcache *c, hl_sid id);

#endif

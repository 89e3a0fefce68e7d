/* hl_catchup.h -- what a client is owed on one channel: the rules that
 * decide, from its cursor and what the worker knows of the channel,
 * whether it is up to date, can be answered from memory, or needs a read
 * of the stream in Redis, and what such a read proves.
 *
 * Pure: it reads a channel's state (hl_chan, synced) and the client's
 * position, and moves the position only where that is provably where the
 * client stands. The waiter code (hl_waiter.c) acts on the answers. */
#ifndef HL_CATCHUP_H
#define HL_CATCHUP_H

#include <stddef.h>
#include <stdint.h>

#include "hl_chantab.h"
#include "hl_cursor.h"
#include "hl_history.h"

/* Where a client stands on one channel. */
typedef struct hl_position {
    hl_cur_part cur; /* its cursor part */
    int verified;    /* cur was checked against Redis: it may be ahead of the channel's cache */
    int level;       /* a read found nothing after cur: no new read until the channel has news */
} hl_position;

/* What the worker knows beside the channel. */
typedef struct hl_catchup_env {
    uint64_t epoch;      /* the data set's epoch; a synced channel's state belongs to it */
    long long ttl_ms;    /* history.ttl */
    long long redis_now; /* Redis's clock now (0: unknown) */
} hl_catchup_env;

typedef enum hl_need {
    HL_NEED_NOTHING = 0, /* up to date: wait for the next message */
    HL_NEED_CACHE,       /* the channel's cache holds what the client is owed */
    HL_NEED_READ,        /* only Redis knows */
} hl_need;

/* What a client at pos, whose cursor is of epoch wepoch, needs from the
 * synced channel c:
 *   - "new" (HL_CUR_NEW) is up to date at the channel's last id (of the
 *     worker's epoch; another epoch's "new" is left as is);
 *   - "0" (HL_CUR_ALL) is owed the whole history: the cache when it holds
 *     all of it, else a read;
 *   - an id of another epoch is read (Redis then says it missed);
 *   - the last id is up to date;
 *   - on a channel with no history, an id less than a TTL (less 1 s of
 *     margin) behind the head
 *     or not in Redis's future is up to date (it moves to the head);
 *   - an id the cache reaches is answered from it;
 *   - an id ahead of the worker that Redis confirmed waits; anything else
 *     is read, unless a read found nothing since (level).
 * pos->cur may move to the channel's head (NEW, an empty ALL, a quiet
 * channel). */
hl_need hl_catchup_classify(const hl_catchup_env *env, uint64_t wepoch, const hl_chan *c,
                            hl_position *pos);

/* The index of the first cached message of c a client at cur is owed, or
 * -1 if the cache cannot say (cur before it, another epoch, not synced).
 * An index equal to c->cache.count means "none yet". */
long hl_catchup_cache_from(const hl_catchup_env *env, uint64_t wepoch, const hl_chan *c,
                           hl_cur_part cur);

/* A read of the stream after pos->cur came back with st under epoch
 * read_epoch, and got messages (got > 0) or none. Returns 1 if the client
 * may have missed messages (only for an id cursor: a wrong epoch, or
 * hl_history_missed). With no messages, the position moves to the
 * stream's head when that is ahead (or when missed) and becomes level
 * (unless missed). Either way it is verified. */
int hl_catchup_read_done(long long ttl_ms, uint64_t wepoch, uint64_t read_epoch,
                         const hl_stream_state *st, int got, hl_position *pos);

#endif

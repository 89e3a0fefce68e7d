/* hl_chantab.h -- a worker's table of channels.
 *
 * One entry per channel the worker has waiters on or is still subscribed
 * to. The table owns the entries; the waiter list hanging off an entry is
 * the worker's (the table only keeps the pointer). Not thread-safe: each
 * worker has its own table, touched only by its own thread. */
#ifndef HL_CHANTAB_H
#define HL_CHANTAB_H

#include <stddef.h>
#include <stdint.h>

#include "hl_cursor.h"
#include "hl_msgcache.h"

struct hl_member;
struct event;

typedef enum hl_sub_state {
    HL_SUB_NONE = 0, /* not subscribed, nothing in flight */
    HL_SUB_PENDING,  /* SUBSCRIBE sent, not yet confirmed */
    HL_SUB_LIVE,     /* Redis confirmed the subscription */
    HL_SUB_LEAVING,  /* UNSUBSCRIBE sent, not yet confirmed */
} hl_sub_state;

/* Whether the worker knows the channel's history well enough to answer
 * from memory: after a subscription is confirmed the stream is read once
 * (READING), and from then on every durable message arrives on the
 * subscription and is added to the cache (DONE) until the subscription is
 * lost. */
typedef enum hl_sync_state {
    HL_SYNC_NONE = 0, /* not known: polls on the channel wait for DONE */
    HL_SYNC_READING,  /* the read after subscribing is in flight */
    HL_SYNC_DONE,     /* last, cache and cache_from are exact */
} hl_sync_state;

typedef struct hl_chan {
    struct hl_chan *next;      /* bucket chain, the table's */
    uint64_t hash;             /* of name, the table's */
    struct hl_member *waiters; /* waiters on this channel, in any phase (engine/) */
    size_t nwaiters;           /* length of that list */
    hl_sub_state sub;          /* subscription state on the worker's Redis link */
    unsigned sub_link;         /* the store's subscriber link it was subscribed on */
    unsigned slot;             /* where its data lives (the store's; 0 outside cluster mode) */
    hl_sync_state sync;        /* see above */
    void *sync_op;             /* READING: the store op of the sync read (engine/) */
    int linger_armed;          /* 1 while the linger timer runs */
    int restoring;             /* its SUBSCRIBE is one of those a new subscriber link sent */
    struct event *linger;      /* unsubscribes after the last waiter left; the worker's */
    void *owner;               /* the engine, for the linger callback */
    hl_sid last;               /* DONE: the newest id (or the empty stream's head) */
    hl_sid cache_from;         /* DONE: every message after this id is in cache */
    int whole;                 /* DONE: cache holds all of the stream (for cursor "0") */
    int empty;           /* DONE: no stream in Redis (last is a point in time), no message since */
    hl_msgcache cache;   /* recent messages */
    hl_msg *early;       /* READING: messages that arrived meanwhile, oldest first */
    hl_msg **early_tail; /* where the next early message is linked */
    void *reads;         /* history reads in flight for this channel's waiters (engine/) */
    long long news_ms;   /* coarse monotonic ms of the newest message (0: none yet): new
                            connections on a channel with news go to the busy daemons */
    size_t len;          /* of name */
    char name[];         /* NUL-terminated channel name, without prefix */
} hl_chan;

typedef struct hl_chantab {
    hl_chan **buckets;
    size_t nbuckets; /* a power of two, or 0 before the first add */
    size_t count;
} hl_chantab;

void hl_chantab_init(hl_chantab *t);

/* Frees every entry (not the waiters or the linger events: free those
 * first) and the buckets. hl_chantab_free on an initialised, empty or
 * freed table is a no-op. */
void hl_chantab_free(hl_chantab *t);

hl_chan *hl_chantab_find(const hl_chantab *t, const char *name, size_t len);

/* Adds a zeroed entry for name (which must not be in the table yet).
 * Returns it, or NULL when out of memory. */
hl_chan *hl_chantab_add(hl_chantab *t, const char *name, size_t len);

/* Unlinks c from the table and frees it. */
void hl_chantab_remove(hl_chantab *t, hl_chan *c);

/* Calls fn(c, ud) for every entry. fn may remove the entry it is given
 * (and no other). */
void hl_chantab_foreach(hl_chantab *t, void (*fn)(hl_chan *c, void *ud), void *ud);

/* The same for the entries of one share of the table (share < shares):
 * calling it for shares 0 .. shares-1 in turn visits every entry once,
 * as long as the table does not grow meanwhile. Each call costs about
 * 1/shares of a whole walk. */
void hl_chantab_foreach_share(hl_chantab *t, size_t share, size_t shares,
                              void (*fn)(hl_chan *c, void *ud), void *ud);

#endif

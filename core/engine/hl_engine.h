/* hl_engine.h -- transport-neutral waiters on a worker's channels.
 *
 * A waiter names one or more channels and, for each, where the client
 * stands (its cursor). The engine attaches it to the channels (subscribing
 * and syncing them through the store), works out what it is owed
 * (hl_catchup.h) and hands that to the waiter's sink:
 *
 *   - deliver: messages after the cursor (maybe none), the new cursor and
 *     whether continuity was lost ("missed");
 *   - end: the waiter is over for another reason (the node stops, the
 *     stream's time is up, out of memory).
 *
 * A long-poll is a sink that is done after one delivery (once): it is
 * detached before deliver is called. An SSE stream stays attached: its
 * cursor advances with each delivery and an empty delivery (nothing new,
 * here is the cursor) comes when it is first positioned and at every
 * period (its heartbeat). A transport never decides what a client is owed;
 * the engine never writes a byte of HTTP.
 *
 * The sink owns the hl_waiter's memory (it is usually embedded in the
 * transport's request) and must not free it while it is attached: call
 * hl_waiter_stop first. Everything runs on the worker's thread. */
#ifndef HL_ENGINE_H
#define HL_ENGINE_H

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>

#include "hl_catchup.h"
#include "hl_chantab.h"
#include "hl_codec.h"
#include "hl_config.h"
#include "hl_cursor.h"
#include "hl_deadline.h"
#include "hl_metrics.h"
#include "hl_request.h"
#include "hl_store.h"

typedef struct hl_engine hl_engine;
typedef struct hl_waiter hl_waiter;

/* A fan-out: the same delivery made to many waiters of one message.
 * A sink may keep what it built for the first of them in a slot of its
 * own choosing (a transport and a CORS origin, say) and reuse it for the
 * rest; the engine calls drop[i](memo[i]) once the fan-out is over. */
#define HL_FANOUT_SLOTS 40
typedef struct hl_fanout {
    void *memo[HL_FANOUT_SLOTS];
    void (*drop[HL_FANOUT_SLOTS])(void *memo);
} hl_fanout;

typedef struct hl_delivery {
    const hl_codec_item *items; /* message objects, in order */
    size_t n;
    /* The cursor after each item (for sinks with item_cursors; else NULL). */
    const hl_codec_item *item_cursors;
    const char *cursor; /* after all of them (NUL-terminated) */
    size_t clen;
    int missed;     /* messages before these may be lost */
    int timed_out;  /* made by the waiter's deadline */
    hl_fanout *fan; /* non-NULL: identical deliveries to other waiters follow */
    /* The stream id time (Redis's clock, ms) of the message whose arrival
     * made this delivery to a waiter that was waiting for it; 0 for a
     * catch-up from history or a plain message. */
    long long live_ms;
} hl_delivery;

typedef enum hl_end_reason {
    HL_END_STOPPING = 0, /* the node stops: the client should resume elsewhere */
    HL_END_DURATION,     /* the waiter's time is up (SSE's max duration) */
    HL_END_ERROR,        /* out of memory: close without an answer */
} hl_end_reason;

typedef struct hl_sink_ops {
    void (*deliver)(hl_waiter *w, const hl_delivery *d);
    /* The waiter is detached already. */
    void (*end)(hl_waiter *w, hl_end_reason why);
    int once;         /* detach after the first delivery (long-poll) */
    int item_cursors; /* wants hl_delivery.item_cursors */
} hl_sink_ops;

typedef enum hl_waiter_phase {
    HL_WAITER_PARKED = 0, /* some channel is not synced yet: evaluated once it is */
    HL_WAITER_READING,    /* reads of Redis history are in flight */
    HL_WAITER_WAITING,    /* up to date on every channel: a message answers it */
    HL_WAITER_OVER,       /* detached (delivered once, ended, stopped) */
} hl_waiter_phase;

/* One channel of a waiter: its place in the channel's list and the
 * client's position there. */
typedef struct hl_member {
    struct hl_waiter *w;
    hl_chan *c;                    /* NULL once detached */
    struct hl_member *prev, *next; /* c's list */
    hl_position pos;               /* where the client stands on c */
    struct hl_read *read;          /* the shared history read it waits for, or NULL */
    struct hl_member *read_next;   /* the next member sharing that read */
    hl_msg *got;                   /* what that read returned, oldest first; the member's */
} hl_member;

struct hl_waiter {
    const hl_sink_ops *ops;
    hl_engine *e;
    hl_member *members; /* n of them: &one, or an array of the waiter's */
    size_t n;
    hl_member one;
    uint64_t epoch;      /* the epoch the members' id cursors belong to (0: none yet) */
    uint64_t read_epoch; /* the epoch Redis reported to this waiter's reads */
    hl_deadline due;     /* once: the timeout; else the next heartbeat */
    long long end_at;    /* monotonic ms the waiter ends (HL_END_DURATION); 0: never */
    hl_waiter_phase phase;
    unsigned reads;            /* history reads in flight */
    unsigned period;           /* seconds between deliveries when idle */
    unsigned char missed;      /* a read found messages gone since the client's cursor */
    unsigned char read_failed; /* a read failed: wait for Redis rather than read again */
    unsigned char positioned;  /* (not once) the sink was told its cursor */
};

typedef struct hl_engine_hooks {
    /* Something hl_engine_subs_pending reports changed (for /readyz). */
    void (*state)(void *ud);
} hl_engine_hooks;

/* dl is the worker's deadline set (for the waiters' timeouts). */
hl_engine *hl_engine_new(const hl_config *cfg, struct event_base *base, int worker,
                         hl_deadlines *dl, const hl_engine_hooks *hooks, void *ud, char *err,
                         size_t errlen);
/* The events the engine takes from its store (ud: the engine). */
extern const hl_store_events hl_engine_store_events;
/* The store the engine asks (made with hl_engine_store_events). */
void hl_engine_set_store(hl_engine *e, hl_store *s);
/* The worker's metrics (channels, messages received); before this call
 * they go to hl_metrics_void. */
void hl_engine_set_metrics(hl_engine *e, hl_metrics *m);
/* Frees the channels; no waiter may be attached. hl_engine_free(NULL) is
 * a no-op. */
void hl_engine_free(hl_engine *e);

/* Starts waiter w on chans[0..n) from parts (the client's cursor, of
 * epoch; epoch 0 for "new"/"0" cursors), with ops as its sink: it waits
 * `period` seconds for the first delivery (once) or between heartbeats,
 * and ends at end_at (monotonic ms; 0: never). deliver may be called
 * before this returns. Returns HL_OK, or HL_ERR (out of memory; nothing
 * is attached, no callback was called). */
int hl_waiter_start(hl_engine *e, hl_waiter *w, const hl_sink_ops *ops, const hl_span *chans,
                    size_t n, uint64_t epoch, const hl_cur_part *parts, unsigned period,
                    long long end_at);
/* Detaches w without a callback (the client went away). A no-op on a
 * waiter that is over. */
void hl_waiter_stop(hl_waiter *w);
/* Appends w's current cursor to b. */
void hl_waiter_cursor(const hl_waiter *w, hl_buf *b);

/* Calls fn for every attached waiter whose first channel falls in share
 * `share` of `shares` of the channel table (shares 0: every waiter), once
 * each. fn may stop the waiter. */
void hl_engine_foreach(hl_engine *e, unsigned share, unsigned shares,
                       void (*fn)(hl_waiter *w, void *ud), void *ud);
/* The node stops: every waiter is answered (once) or ended. */
void hl_engine_end_all(hl_engine *e);
/* Coarse monotonic ms of channel name's newest message here (0: none). */
long long hl_engine_channel_news(const hl_engine *e, const char *name, size_t len);
/* Channels whose SUBSCRIBE, sent again when the subscriber link came up,
 * Redis has not confirmed yet (a new channel's first SUBSCRIBE does not
 * count: it makes the worker no less able to serve). */
size_t hl_engine_subs_pending(const hl_engine *e);

#endif

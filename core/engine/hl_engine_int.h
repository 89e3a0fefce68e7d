/* hl_engine_int.h -- what the engine's files share (not for other layers):
 * the engine itself, and the calls between the channel side
 * (hl_channel.c: subscriptions, sync, messages, ticks) and the waiter side
 * (hl_waiter.c: evaluation, reads, delivery). */
#ifndef HL_ENGINE_INT_H
#define HL_ENGINE_INT_H

#include "hl_engine.h"
#include "hl_metrics.h"

struct hl_engine {
    const hl_config *cfg; /* read-only */
    struct event_base *base;
    int worker;
    hl_store *store;
    hl_deadlines *dl; /* the worker's */
    hl_chantab chans;
    size_t subs_pending; /* channels whose SUBSCRIBE Redis has not confirmed yet */
    size_t restoring;    /* of those, the ones sent again when the subscriber link came up */
    size_t subs_live;    /* channels Redis confirmed and that are not leaving */
    long long live_ms;   /* while a message is told to waiters: its id time (hl_delivery) */
    hl_metrics *m;       /* the worker's */
    hl_engine_hooks hooks;
    void *ud;
};

/* hl_channel.c */
/* Finds or makes channel name and puts m on it, subscribing or syncing as
 * needed. Returns HL_OK or HL_ERR (out of memory). */
int hl__chan_attach(hl_engine *e, hl_member *m, const char *name, size_t len);
/* Takes m off its channel (arming the linger for the last one). */
void hl__chan_detach(hl_member *m);
/* What the catch-up rules need to know beside channel c, for a cursor
 * whose channels' data now have the combined epoch `epoch`. */
hl_catchup_env hl__env(const hl_engine *e, const hl_chan *c, uint64_t epoch);
/* The epoch of c's data as the store last reported it (0: not known). */
uint64_t hl__chan_epoch(const hl_engine *e, const hl_chan *c);

/* hl_waiter.c */
/* c became synced: its parked waiters are evaluated. */
void hl__waiters_synced(hl_engine *e, hl_chan *c);
/* c lost its sync: its waiting waiters park until it is synced again. */
void hl__waiters_unsync(hl_engine *e, hl_chan *c);
/* A durable message (id, its JSON) was added to c, whose last id was
 * prev before. */
void hl__waiters_message(hl_engine *e, hl_chan *c, hl_sid id, hl_sid prev, const char *json,
                         size_t jlen);
/* A plain (id-less) message on c. */
void hl__waiters_plain(hl_engine *e, hl_chan *c, const char *json, size_t jlen);
/* Waiters whose read failed are evaluated again. */
void hl__waiters_retry(hl_engine *e);
/* c goes away: the reads in flight for it are cancelled. */
void hl__reads_orphan(hl_chan *c);

#endif

/* hl_channel.c -- a worker's channels: subscriptions, the read that makes
 * a channel's cache exact (sync), messages as they come, and ticks.
 *
 * Subscriptions are per worker and per channel, however many waiters: the
 * first waiter subscribes, and the last one leaving arms a linger timer
 * that unsubscribes only if nobody came back meanwhile, so a client's
 * re-poll costs no SUBSCRIBE/UNSUBSCRIBE pair.
 *
 * Sync is "subscribe first, then read": once Redis confirms a
 * subscription, the stream's newest entries are read; messages that
 * arrive on the subscription while that read is in flight are kept aside
 * and merged by id, so the cache has no hole and no duplicate. */
#include <stdlib.h>
#include <string.h>

#include "hl_common.h"
#include "hl_engine_int.h"
#include "hl_history.h"
#include "hl_log.h"
#include "hl_time.h"

/* A channel's cache never holds more than this, whatever history.cache
 * says; a burst of large messages just makes it hold fewer. */
#define CACHE_MAX_BYTES (256 * 1024)

/* How far ahead of Redis's clock (as last seen) a frame's id may be
 * before it is taken for a forgery: two readings of one clock a few
 * seconds apart never differ by this much. */
#define FRAME_FUTURE_MS 60000

static void start_sync(hl_engine *e, hl_chan *c);

hl_catchup_env hl__env(const hl_engine *e, const hl_chan *c, uint64_t epoch) {
    hl_catchup_env env = {epoch, (long long)e->cfg->history_ttl * 1000,
                          hl_store_redis_now(e->store, c->slot)};
    return env;
}

uint64_t hl__chan_epoch(const hl_engine *e, const hl_chan *c) {
    return hl_store_epoch(e->store, c->slot);
}

/* Every change of a channel's subscription state goes through here, which
 * keeps count of the SUBSCRIBEs Redis has yet to confirm (/readyz). */
static void set_sub(hl_engine *e, hl_chan *c, hl_sub_state st) {
    if (c->sub == st) return;
    size_t before = e->restoring;
    if (c->sub == HL_SUB_PENDING) e->subs_pending--;
    if (st == HL_SUB_PENDING) e->subs_pending++;
    if (c->restoring && st != HL_SUB_PENDING) {
        c->restoring = 0;
        e->restoring--;
    }
    if (c->sub == HL_SUB_LIVE) e->subs_live--;
    if (st == HL_SUB_LIVE) e->subs_live++;
    hl_metric_set(&e->m->channels, e->subs_live);
    c->sub = st;
    if ((before == 0) != (e->restoring == 0) && e->hooks.state) e->hooks.state(e->ud);
}

static void chan_subscribe(hl_engine *e, hl_chan *c) {
    /* Down: the store's sub_up event subscribes every channel with waiters. */
    c->sub_link = hl_store_subscribe(e->store, c->name, c->len);
    set_sub(e, c, c->sub_link ? HL_SUB_PENDING : HL_SUB_NONE);
}

static void free_list(hl_msg *m) {
    while (m) {
        hl_msg *next = m->next;
        free(m);
        m = next;
    }
}

/* Forgets what the worker knew of the channel's history. */
static void chan_forget(hl_chan *c) {
    hl_msgcache_free(&c->cache);
    free_list(c->early);
    c->early = NULL;
    c->early_tail = &c->early;
}

static void chan_remove(hl_engine *e, hl_chan *c) {
    set_sub(e, c, HL_SUB_NONE);
    hl__reads_orphan(c);
    hl_store_cancel(c->sync_op);
    c->sync_op = NULL;
    chan_forget(c);
    if (c->linger) event_free(c->linger);
    hl_chantab_remove(&e->chans, c);
}

/* The channel's history is no longer known (subscription lost, epoch
 * changed): its waiters park until the next sync. */
static void chan_unsync(hl_engine *e, hl_chan *c) {
    hl_store_cancel(c->sync_op);
    c->sync_op = NULL;
    c->sync = HL_SYNC_NONE;
    chan_forget(c);
    hl__waiters_unsync(e, c);
}

static void on_linger(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    hl_chan *c = arg;
    hl_engine *e = c->owner;
    c->linger_armed = 0;
    if (c->nwaiters > 0) return;
    switch (c->sub) {
    case HL_SUB_PENDING:
    case HL_SUB_LIVE:
        if (hl_store_unsubscribe(e->store, c->sub_link, c->name, c->len) == HL_OK) {
            set_sub(e, c, HL_SUB_LEAVING);
            /* From here on messages may be missed: the cache is void. */
            chan_unsync(e, c);
            return;
        }
        chan_remove(e, c);
        return;
    case HL_SUB_NONE: chan_remove(e, c); return;
    case HL_SUB_LEAVING: return; /* the unsubscribe reply removes it */
    }
}

static void arm_linger(hl_engine *e, hl_chan *c) {
    struct timeval tv = hl_ms_tv(e->cfg->poll_linger_ms);
    evtimer_add(c->linger, &tv);
    c->linger_armed = 1;
}

static hl_chan *chan_get(hl_engine *e, const char *name, size_t len) {
    hl_chan *c = hl_chantab_find(&e->chans, name, len);
    if (c != NULL) return c;
    c = hl_chantab_add(&e->chans, name, len);
    if (c == NULL) return NULL;
    c->owner = e;
    c->slot = hl_store_slot(e->store, name, len);
    c->early_tail = &c->early;
    hl_msgcache_init(&c->cache, (size_t)e->cfg->history_cache, CACHE_MAX_BYTES);
    c->linger = evtimer_new(e->base, on_linger, c);
    if (c->linger == NULL) {
        hl_chantab_remove(&e->chans, c);
        return NULL;
    }
    return c;
}

int hl__chan_attach(hl_engine *e, hl_member *m, const char *name, size_t len) {
    hl_chan *c = chan_get(e, name, len);
    if (c == NULL) return HL_ERR;
    if (c->linger_armed) {
        evtimer_del(c->linger);
        c->linger_armed = 0;
    }
    m->prev = NULL;
    m->next = c->waiters;
    if (c->waiters) c->waiters->prev = m;
    c->waiters = m;
    m->c = c;
    c->nwaiters++;
    /* From LEAVING too: Redis runs commands in order, so a SUBSCRIBE sent
     * behind the UNSUBSCRIBE leaves the channel subscribed, with the
     * shortest possible gap. */
    if (c->sub == HL_SUB_NONE || c->sub == HL_SUB_LEAVING)
        chan_subscribe(e, c);
    else
        start_sync(e, c); /* a no-op unless subscribed and not synced */
    return HL_OK;
}

void hl__chan_detach(hl_member *m) {
    hl_chan *c = m->c;
    if (c == NULL) return;
    if (m->prev)
        m->prev->next = m->next;
    else
        c->waiters = m->next;
    if (m->next) m->next->prev = m->prev;
    m->prev = m->next = NULL;
    m->c = NULL;
    if (--c->nwaiters == 0) arm_linger(c->owner, c);
}

/* ---- Sync ------------------------------------------------------------ */

/* Adds a message that came in on the subscription to a synced channel.
 * m is taken over. Returns m's id's predecessor in *prev. Returns HL_OK,
 * or HL_ERR if m is not newer than what is known (dropped). */
static int chan_add(hl_chan *c, hl_msg *m, hl_sid *prev) {
    if (hl_sid_cmp(m->id, c->last) <= 0) {
        free(m);
        return HL_ERR;
    }
    *prev = c->last;
    c->last = m->id;
    c->empty = 0;
    hl_sid dropped;
    int rc = hl_msgcache_push(&c->cache, m, &dropped);
    if (rc != 0) c->whole = 0;
    if (rc > 0) c->cache_from = dropped;
    if (rc < 0) {
        /* Out of memory (m is freed): the cache starts over after it. */
        hl_msgcache_free(&c->cache);
        c->cache_from = c->last;
        return HL_ERR;
    }
    return HL_OK;
}

static void on_sync_read(void *ud, hl_read_result *res) {
    hl_chan *c = ud;
    hl_engine *e = c->owner;
    c->sync_op = NULL;
    if (!res->ok) {
        /* Synced again when the command link, the library or Redis's
         * will to answer comes back (the store's ready event). */
        chan_unsync(e, c);
        return;
    }
    hl_msgcache_free(&c->cache);
    c->last = hl_history_head(&res->st);
    c->cache_from = c->last;
    c->whole = 1;
    c->empty = !res->st.exists;
    if (res->st.exists && (size_t)res->st.length != res->entries) c->whole = 0;
    if (res->bad > 0) c->whole = 0;
    while (res->msgs) {
        hl_msg *m = res->msgs;
        res->msgs = m->next;
        m->next = NULL;
        if (c->cache.count == 0) c->cache_from = m->id;
        hl_sid dropped;
        int rc = hl_msgcache_push(&c->cache, m, &dropped);
        if (rc != 0) c->whole = 0;
        if (rc > 0) c->cache_from = dropped;
    }
    /* The newest entries were deleted (XDEL): the cache does not reach
     * the last id, so a cursor between the two must ask Redis. */
    if (c->cache.count > 0 &&
        hl_sid_cmp(hl_msgcache_at(&c->cache, c->cache.count - 1)->id, c->last) != 0) {
        c->cache_from = c->last;
        c->whole = 0;
    }
    /* Messages published after the read have come in meanwhile; the rest
     * were in what the read returned. */
    while (c->early) {
        hl_msg *m = c->early;
        c->early = m->next;
        m->next = NULL;
        hl_sid prev;
        chan_add(c, m, &prev);
    }
    c->early_tail = &c->early;
    c->sync = HL_SYNC_DONE;
    hl__waiters_synced(e, c);
}

static void start_sync(hl_engine *e, hl_chan *c) {
    if (c->sub != HL_SUB_LIVE || c->sync != HL_SYNC_NONE) return;
    hl_sid none = {0, 0};
    c->sync_op = hl_store_read(e->store, c->name, c->len, HL_READ_LATEST, none,
                               e->cfg->history_cache, on_sync_read, c);
    /* Not sent (not ready): the store's ready event syncs it. */
    if (c->sync_op != NULL) c->sync = HL_SYNC_READING;
}

/* Reads the channel's history again: what the worker knew of it is no
 * longer to be trusted. */
static void chan_resync(hl_engine *e, hl_chan *c) {
    chan_unsync(e, c);
    start_sync(e, c);
}

/* ---- Messages --------------------------------------------------------- */

static void on_frame(hl_engine *e, hl_chan *c, const char *p, size_t n) {
    hl_sid id;
    const char *data;
    size_t dlen;
    hl_frame_kind kind = hl_frame_parse(p, n, &id, &data, &dlen);
    long long now = hl_store_redis_now(e->store, c->slot);
    if (kind == HL_FRAME_ID && now > 0 && id.ms > (uint64_t)(now + FRAME_FUTURE_MS)) {
        /* A PUBLISH of a made-up frame must not move the channel's last
         * id past every real message to come. */
        hl_warn("worker %d: a frame on '%s' has id %llu-%llu, ahead of Redis's clock; delivered "
                "as a plain message",
                e->worker, c->name, (unsigned long long)id.ms, (unsigned long long)id.seq);
        kind = HL_FRAME_BAD;
        data = p;
        dlen = n;
    }
    if (kind == HL_FRAME_ID) {
        hl_metric_add(&e->m->received[0], 1);
        if (c->sync == HL_SYNC_NONE) return; /* read with the stream at the next sync */
        hl_msg *m = hl_msg_new(id, c->name, c->len, data, dlen);
        if (m == NULL) {
            hl_error("worker %d: out of memory for a message on '%s'; reading it again", e->worker,
                     c->name);
            chan_resync(e, c);
            return;
        }
        if (c->sync == HL_SYNC_READING) {
            *c->early_tail = m;
            c->early_tail = &m->next;
            return;
        }
        if (hl_sid_cmp(id, c->last) <= 0 && hl_sid_cmp(id, c->cache_from) > 0) {
            /* Already in the cache, which holds every message after
             * cache_from: the sync's read (on the command link) saw it
             * before its frame came on the subscriber link. */
            free(m);
            hl_debug("worker %d: a frame on '%s' the sync read had already brought; dropped",
                     e->worker, c->name);
            return;
        }
        if (hl_sid_cmp(id, c->last) <= 0) {
            /* Pub/sub keeps the stream's order, so this frame is not
             * holdline_publish's, or one before it was not: read the
             * stream again rather than trust the last id. */
            free(m);
            hl_warn("worker %d: a frame on '%s' is not newer than the last id; reading the "
                    "history again",
                    e->worker, c->name);
            chan_resync(e, c);
            return;
        }
        /* Keep the JSON past the cache, which with history.cache = 0
         * drops m at once. */
        hl_msg *keep = c->cache.cap == 0 ? m : NULL;
        if (keep) m = hl_msg_new(id, c->name, c->len, data, dlen);
        hl_sid prev = c->last;
        if (m != NULL && chan_add(c, m, &prev) == HL_OK) {
            hl_msg *j = keep ? keep : hl_msgcache_at(&c->cache, c->cache.count - 1);
            hl__waiters_message(e, c, id, prev, j->json, j->len);
        } else {
            hl_error("worker %d: out of memory for a message on '%s'; reading it again", e->worker,
                     c->name);
            chan_resync(e, c);
        }
        free(keep);
        return;
    }
    if (kind == HL_FRAME_BAD)
        hl_debug("worker %d: a payload on '%s' starts like a frame but is not one; delivered as is",
                 e->worker, c->name);
    hl_metric_add(&e->m->received[1], 1);
    hl_buf b;
    hl_buf_init(&b);
    hl_codec_message(&b, c->name, c->len, NULL, data, dlen);
    if (!b.oom)
        hl__waiters_plain(e, c, b.data, b.len);
    else
        hl_error("worker %d: out of memory for a message on '%s'", e->worker, c->name);
    hl_buf_free(&b);
}

/* ---- Ticks ------------------------------------------------------------ */

/* A channel with no history (none at its sync, nothing since) has a
 * made-up head, a point in Redis time. Left alone it would grow older
 * than history.ttl, and a client holding it would then be told it missed
 * messages that never were. When a tick says every message published
 * before Redis time T has been seen, the head of such channels moves to
 * T, with the cursors of the clients waiting at it. */
static void advance_head(hl_chan *c, hl_sid head) {
    for (hl_member *m = c->waiters; m; m = m->next)
        if (m->pos.cur.kind == HL_CUR_AT && hl_sid_cmp(m->pos.cur.id, c->last) == 0)
            m->pos.cur.id = head;
    c->last = c->cache_from = head;
}

typedef struct tick_ctx {
    hl_engine *e;
    unsigned link;
    long long ms;
} tick_ctx;

static void tick_chan(hl_chan *c, void *ud) {
    tick_ctx *t = ud;
    /* The tick tells of one master's messages: those of the channels
     * subscribed through the link it came back on. */
    if (c->sync != HL_SYNC_DONE || c->sub_link != t->link) return;
    hl_sid head = {(uint64_t)t->ms - 1, UINT64_MAX};
    if (hl_sid_cmp(head, c->last) <= 0) return;
    if (c->empty) {
        advance_head(c, head);
        return;
    }
    /* The last message is more than a TTL old: Redis has dropped the
     * stream, and the channel is as good as empty. One second of margin
     * for the PEXPIRE's own clock reading. */
    long long ttl_ms = (long long)t->e->cfg->history_ttl * 1000;
    if ((long long)c->last.ms + ttl_ms + 1000 < t->ms) {
        hl_msgcache_free(&c->cache);
        c->whole = 1;
        c->empty = 1;
        advance_head(c, head);
    }
}

/* ---- Store events ---------------------------------------------------- */

static void resubscribe(hl_chan *c, void *ud) {
    hl_engine *e = ud;
    if (c->sub != HL_SUB_NONE) return; /* subscribed, or on its way */
    if (c->nwaiters == 0 && !c->linger_armed) {
        chan_remove(e, c);
        return;
    }
    chan_subscribe(e, c);
    /* Until Redis confirms these, the worker may miss what is published
     * on channels its waiters hold: it is not ready (/readyz). A channel
     * subscribed for a new waiter later on is not a reason: the node
     * serves everything else meanwhile. */
    if (c->sub == HL_SUB_PENDING && !c->restoring) {
        c->restoring = 1;
        if (e->restoring++ == 0 && e->hooks.state) e->hooks.state(e->ud);
    }
}

static void ev_sub_up(void *ud) {
    hl_engine *e = ud;
    hl_chantab_foreach(&e->chans, resubscribe, e);
}

typedef struct link_ctx {
    hl_engine *e;
    unsigned link;
} link_ctx;

static void mark_unsubscribed(hl_chan *c, void *ud) {
    link_ctx *l = ud;
    if (c->sub == HL_SUB_NONE || c->sub_link != l->link) return;
    set_sub(l->e, c, HL_SUB_NONE);
    chan_unsync(l->e, c);
}

static void ev_sub_down(void *ud, unsigned link) {
    link_ctx l = {ud, link};
    hl_chantab_foreach(&l.e->chans, mark_unsubscribed, &l);
}

static void ev_subscribed(void *ud, unsigned link, const char *name, size_t len) {
    hl_engine *e = ud;
    hl_chan *c = hl_chantab_find(&e->chans, name, len);
    if (c == NULL || c->sub != HL_SUB_PENDING || c->sub_link != link) return;
    set_sub(e, c, HL_SUB_LIVE);
    start_sync(e, c);
}

static void ev_unsubscribed(void *ud, unsigned link, const char *name, size_t len,
                            hl_unsub_how how) {
    hl_engine *e = ud;
    hl_chan *c = hl_chantab_find(&e->chans, name, len);
    if (c == NULL || c->sub_link != link) return;
    if (how == HL_UNSUB_ASKED) {
        /* Only the reply to our latest command matters: in any other
         * state a SUBSCRIBE was sent after this UNSUBSCRIBE. */
        if (c->sub == HL_SUB_LEAVING && c->nwaiters == 0 && !c->linger_armed) chan_remove(e, c);
        return;
    }
    /* Redis dropped it (its slot moved, a failover): what was published
     * meanwhile is read from the stream once it is subscribed again. */
    if (c->sub == HL_SUB_NONE) return;
    int leaving = c->sub == HL_SUB_LEAVING;
    set_sub(e, c, HL_SUB_NONE);
    chan_unsync(e, c);
    if (leaving && c->nwaiters == 0 && !c->linger_armed) {
        chan_remove(e, c);
        return;
    }
    if (how == HL_UNSUB_MOVED) resubscribe(c, e);
}

static void ev_message(void *ud, unsigned link, const char *name, size_t len, const char *p,
                       size_t n) {
    hl_engine *e = ud;
    hl_chan *c = hl_chantab_find(&e->chans, name, len);
    if (c && c->sub == HL_SUB_LIVE && c->sub_link == link) on_frame(e, c, p, n);
}

static void sync_chan(hl_chan *c, void *ud) {
    start_sync(ud, c);
}

static void ev_ready(void *ud) {
    hl_engine *e = ud;
    hl_chantab_foreach(&e->chans, sync_chan, e);
    hl__waiters_retry(e);
}

typedef struct epoch_ctx {
    hl_engine *e;
    long slot;
} epoch_ctx;

static void resync_slot(hl_chan *c, void *ud) {
    epoch_ctx *x = ud;
    if (x->slot >= 0 && c->slot != (unsigned)x->slot) return;
    chan_unsync(x->e, c);
    start_sync(x->e, c);
}

/* A new epoch means the data set (of one slot, or all) was replaced:
 * nothing cached of its channels is true any more, and they are read
 * again. */
static void ev_epoch(void *ud, long slot, uint64_t epoch) {
    (void)epoch; /* the store answers hl_store_epoch with it from now on */
    epoch_ctx x = {ud, slot};
    hl_chantab_foreach(&x.e->chans, resync_slot, &x);
}

static void ev_tick(void *ud, unsigned link, long long ms) {
    tick_ctx t = {ud, link, ms};
    hl_chantab_foreach(&t.e->chans, tick_chan, &t);
}

static void ev_state(void *ud) {
    hl_engine *e = ud;
    if (e->hooks.state) e->hooks.state(e->ud);
}

const hl_store_events hl_engine_store_events = {
    ev_sub_up, ev_sub_down, ev_subscribed, ev_unsubscribed, ev_message,
    ev_ready,  ev_epoch,    ev_tick,       ev_state,
};

/* ---- The engine -------------------------------------------------------- */

hl_engine *hl_engine_new(const hl_config *cfg, struct event_base *base, int worker,
                         hl_deadlines *dl, const hl_engine_hooks *hooks, void *ud, char *err,
                         size_t errlen) {
    hl_engine *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        hl_set_error(err, errlen, "out of memory");
        return NULL;
    }
    e->cfg = cfg;
    e->base = base;
    e->worker = worker;
    e->dl = dl;
    e->m = &hl_metrics_void;
    if (hooks) e->hooks = *hooks;
    e->ud = ud;
    hl_chantab_init(&e->chans);
    return e;
}

void hl_engine_set_store(hl_engine *e, hl_store *s) {
    e->store = s;
}

void hl_engine_set_metrics(hl_engine *e, hl_metrics *m) {
    e->m = m;
}

static void free_chan(hl_chan *c, void *ud) {
    chan_remove(ud, c);
}

void hl_engine_free(hl_engine *e) {
    if (e == NULL) return;
    hl_chantab_foreach(&e->chans, free_chan, e);
    hl_chantab_free(&e->chans);
    free(e);
}

long long hl_engine_channel_news(const hl_engine *e, const char *name, size_t len) {
    const hl_chan *c = hl_chantab_find(&e->chans, name, len);
    return c ? c->news_ms : 0;
}

size_t hl_engine_subs_pending(const hl_engine *e) {
    return e->restoring;
}

/* hl_pubsub.c -- a worker's channels and everything it asks Redis about
 * them: subscriptions, the read of a channel's stream that makes its
 * cache exact (sync), history reads for polls, publishing, and the
 * library and epoch set up on the command link.
 *
 * Subscriptions are per worker and per channel, however many waiters: the
 * first waiter subscribes, and the last one leaving arms a linger timer
 * that unsubscribes only if nobody came back meanwhile, so a client's
 * re-poll costs no SUBSCRIBE/UNSUBSCRIBE pair. Besides, each worker holds
 * one permanent subscription to a private control channel: hiredis 0.14
 * can assert when the last subscription goes away with replies in flight,
 * and the control channel means that never happens.
 *
 * Sync follows DESIGN.md's "subscribe first, then read": once Redis
 * confirms a subscription, the stream's newest entries are read; messages
 * that arrive on the subscription while that read is in flight are kept
 * aside and merged by id, so the cache has no hole and no duplicate. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "hl_common.h"
#include "hl_log.h"
#include "hl_worker.h"

/* A channel's cache never holds more than this, whatever history.cache
 * says; a burst of large messages just makes it hold fewer. */
#define CACHE_MAX_BYTES (256 * 1024)

/* How soon what Redis refused is tried again. */
#define HL_RETRY_MS 500

static void on_sub_reply(redisAsyncContext *ac, void *reply_, void *privdata);
static void load_library(hl_worker *w);
static void start_sync(hl_worker *w, hl_chan *c);

/* ---- Redis's clock ------------------------------------------------------ */

static long long mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void note_redis_time(hl_worker *w, long long ms) {
    w->redis_ms = ms;
    w->redis_at = mono_ms();
}

static long long redis_now(const hl_worker *w) {
    return w->redis_ms + (mono_ms() - w->redis_at);
}

long long hl_pubsub_redis_now(const hl_worker *w) {
    return w->redis_ms > 0 ? redis_now(w) : 0;
}

/* ---- Redis trouble ------------------------------------------------------ */

/* Redis refused something (an error reply): the first refusal after good
 * replies is a warning, the ones that follow (every channel, every retry
 * while Redis loads its data) only debug lines. */
static void trouble(hl_worker *w, const char *what, const redisReply *reply) {
    const char *why = reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply";
    if (w->redis_trouble++ == 0)
        hl_warn("worker %d: %s: %s; trying again every %d ms until Redis answers", w->id, what, why,
                HL_RETRY_MS);
    else
        hl_debug("worker %d: %s: %s", w->id, what, why);
    hl_pubsub_retry_later(w);
}

static void no_trouble(hl_worker *w) {
    if (w->redis_trouble == 0) return;
    hl_info("worker %d: Redis answers again (after %d refusals)", w->id, w->redis_trouble);
    w->redis_trouble = 0;
}

void hl_pubsub_retry_later(hl_worker *w) {
    if (evtimer_pending(w->retry, NULL)) return;
    struct timeval tv = {HL_RETRY_MS / 1000, (HL_RETRY_MS % 1000) * 1000};
    evtimer_add(w->retry, &tv);
}

/* ---- Channels -------------------------------------------------------- */

/* Every change of a channel's subscription state goes through here, which
 * keeps count of the SUBSCRIBEs Redis has yet to confirm (/readyz). */
static void set_sub(hl_worker *w, hl_chan *c, hl_sub_state st) {
    if (c->sub == st) return;
    size_t before = w->subs_pending;
    if (c->sub == HL_SUB_PENDING) w->subs_pending--;
    if (st == HL_SUB_PENDING) w->subs_pending++;
    c->sub = st;
    if ((before == 0) != (w->subs_pending == 0)) hl_worker_update_ready(w);
}

static void chan_subscribe(hl_worker *w, hl_chan *c) {
    if (!hl_rlink_is_up(&w->sub)) {
        /* hl_pubsub_sub_up subscribes every channel with waiters. */
        set_sub(w, c, HL_SUB_NONE);
        return;
    }
    /* hiredis keeps one callback per channel and routes that channel's
     * messages to it, so every SUBSCRIBE must name on_sub_reply. */
    redisAsyncCommand(w->sub.ac, on_sub_reply, w, "SUBSCRIBE %b%b", w->cfg->redis_prefix,
                      w->prefix_len, c->name, c->len);
    set_sub(w, c, HL_SUB_PENDING);
}

/* Forgets what the worker knew of the channel's history. */
static void chan_forget(hl_chan *c) {
    hl_msgcache_free(&c->cache);
    while (c->early) {
        hl_msg *m = c->early;
        c->early = m->next;
        free(m);
    }
    c->early_tail = &c->early;
}

static void reads_orphan(hl_chan *c);

static void chan_remove(hl_worker *w, hl_chan *c) {
    set_sub(w, c, HL_SUB_NONE);
    reads_orphan(c);
    chan_forget(c);
    if (c->linger) event_free(c->linger);
    hl_chantab_remove(&w->chans, c);
}

/* The channel's history is no longer known (subscription lost, epoch
 * changed): its polls park until the next sync. */
static void chan_unsync(hl_worker *w, hl_chan *c) {
    c->sync_gen = 0; /* no reply in flight matches 0 */
    c->sync = HL_SYNC_NONE;
    chan_forget(c);
    hl_poll_unsync(w, c);
}

static void on_linger(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    hl_chan *c = arg;
    hl_worker *w = c->owner;
    c->linger_armed = 0;
    if (c->nwaiters > 0) return;
    switch (c->sub) {
    case HL_SUB_PENDING:
    case HL_SUB_LIVE:
        if (hl_rlink_is_up(&w->sub)) {
            redisAsyncCommand(w->sub.ac, NULL, NULL, "UNSUBSCRIBE %b%b", w->cfg->redis_prefix,
                              w->prefix_len, c->name, c->len);
            set_sub(w, c, HL_SUB_LEAVING);
            /* From here on messages may be missed: the cache is void. */
            chan_unsync(w, c);
            return;
        }
        chan_remove(w, c);
        return;
    case HL_SUB_NONE: chan_remove(w, c); return;
    case HL_SUB_LEAVING: return; /* the unsubscribe reply removes it */
    }
}

static void arm_linger(hl_worker *w, hl_chan *c) {
    int ms = w->cfg->poll_linger_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(c->linger, &tv);
    c->linger_armed = 1;
}

static hl_chan *chan_get(hl_worker *w, const char *name, size_t len) {
    hl_chan *c = hl_chantab_find(&w->chans, name, len);
    if (c != NULL) return c;
    c = hl_chantab_add(&w->chans, name, len);
    if (c == NULL) return NULL;
    c->owner = w;
    c->early_tail = &c->early;
    hl_msgcache_init(&c->cache, (size_t)w->cfg->history_cache, CACHE_MAX_BYTES);
    c->linger = evtimer_new(w->base, on_linger, c);
    if (c->linger == NULL) {
        hl_chantab_remove(&w->chans, c);
        return NULL;
    }
    return c;
}

int hl_pubsub_attach(hl_worker *w, hl_link *lk, const char *name, size_t len) {
    hl_chan *c = chan_get(w, name, len);
    if (c == NULL) return HL_ERR;
    if (c->linger_armed) {
        evtimer_del(c->linger);
        c->linger_armed = 0;
    }
    lk->prev = NULL;
    lk->next = c->waiters;
    if (c->waiters) c->waiters->prev = lk;
    c->waiters = lk;
    lk->c = c;
    c->nwaiters++;
    /* From LEAVING too: Redis runs commands in order, so a SUBSCRIBE sent
     * behind the UNSUBSCRIBE leaves the channel subscribed, with the
     * shortest possible gap. */
    if (c->sub == HL_SUB_NONE || c->sub == HL_SUB_LEAVING)
        chan_subscribe(w, c);
    else
        start_sync(w, c); /* a no-op unless subscribed and not synced */
    return HL_OK;
}

void hl_pubsub_detach(hl_link *lk) {
    hl_chan *c = lk->c;
    if (c == NULL) return;
    if (lk->prev)
        lk->prev->next = lk->next;
    else
        c->waiters = lk->next;
    if (lk->next) lk->next->prev = lk->prev;
    lk->prev = lk->next = NULL;
    lk->c = NULL;
    if (--c->nwaiters == 0) arm_linger(c->owner, c);
}

/* ---- Reading holdline_read replies ----------------------------------- */

static uint64_t epoch_of(const char *s, size_t n) {
    uint64_t e;
    if (hl_epoch_parse(s, n, &e) == HL_OK && e != 0) return e;
    /* Not ours (someone set the key by hand): any stable nonzero value
     * derived from it will do. */
    e = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        e ^= (unsigned char)s[i];
        e *= 1099511628211ULL;
    }
    return e ? e : 1;
}

static int sid_of(const redisReply *r, hl_sid *out) {
    return r->type == REDIS_REPLY_STRING ? hl_sid_parse(r->str, r->len, out) : HL_ERR;
}

/* Reads holdline_read's reply. *entries points into the reply (NULL for
 * a stream that does not exist). Returns HL_OK or HL_ERR. */
static int parse_read(const redisReply *rep, hl_stream_state *st, uint64_t *epoch,
                      const redisReply **entries) {
    memset(st, 0, sizeof(*st));
    *entries = NULL;
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || (rep->elements != 2 && rep->elements != 8))
        return HL_ERR;
    const redisReply *const *e = (const redisReply *const *)rep->element;
    if (e[0]->type != REDIS_REPLY_STRING || e[1]->type != REDIS_REPLY_INTEGER) return HL_ERR;
    *epoch = epoch_of(e[0]->str, e[0]->len);
    st->now_ms = e[1]->integer;
    if (rep->elements == 2) return HL_OK;
    st->exists = 1;
    if (e[2]->type != REDIS_REPLY_INTEGER || sid_of(e[3], &st->first) != HL_OK ||
        sid_of(e[4], &st->last) != HL_OK || sid_of(e[5], &st->maxdel) != HL_OK ||
        e[6]->type != REDIS_REPLY_INTEGER || e[7]->type != REDIS_REPLY_ARRAY)
        return HL_ERR;
    st->length = e[2]->integer;
    st->added = e[6]->integer;
    *entries = e[7];
    return HL_OK;
}

/* One stream entry, [id, [field, value, ...]], as a message of channel
 * name. NULL if malformed or out of memory. */
static hl_msg *entry_msg(const redisReply *e, const char *name, size_t len) {
    hl_sid id;
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || sid_of(e->element[0], &id) != HL_OK ||
        e->element[1]->type != REDIS_REPLY_ARRAY)
        return NULL;
    const redisReply *f = e->element[1];
    const char *data = "";
    size_t dlen = 0;
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        if (f->element[i]->type == REDIS_REPLY_STRING && f->element[i]->len == 1 &&
            f->element[i]->str[0] == 'd' && f->element[i + 1]->type == REDIS_REPLY_STRING) {
            data = f->element[i + 1]->str;
            dlen = f->element[i + 1]->len;
            break;
        }
    }
    return hl_msg_new(id, name, len, data, dlen);
}

/* Redis lost the library (FUNCTION FLUSH, or a restart without it):
 * load it again. Returns 1 if reply was that error. */
static int library_missing(hl_worker *w, const redisReply *reply) {
    if (reply == NULL || reply->type != REDIS_REPLY_ERROR ||
        strstr(reply->str, "Function not found") == NULL)
        return 0;
    /* Many replies may fail alike; one reload is enough. */
    if (w->cmd_ready && hl_rlink_is_up(&w->cmd)) {
        hl_warn("worker %d: the Redis Function library is gone; loading it again", w->id);
        load_library(w);
    }
    return 1;
}

/* ---- Epoch ----------------------------------------------------------- */

static void unsync_chan(hl_chan *c, void *ud) {
    chan_unsync(ud, c);
}

static void sync_chan(hl_chan *c, void *ud) {
    start_sync(ud, c);
}

/* Redis reported epoch e. A change means the data set was replaced
 * (restart without persistence, FLUSHALL): nothing cached is true any
 * more, and every channel is read again. */
static void adopt_epoch(hl_worker *w, uint64_t e) {
    if (w->epoch == e) return;
    if (w->epoch != 0)
        hl_warn("worker %d: Redis's data set changed (epoch %llx, was %llx): history before it is "
                "gone; clients from before are told they missed messages",
                w->id, (unsigned long long)e, (unsigned long long)w->epoch);
    w->epoch = e;
    /* Were Redis to lose its data again, this worker's proposal would be
     * the first to be stored; it must not be the epoch clients hold now,
     * or their old cursors would pass for current ones. */
    if (epoch_of(w->epoch_mine, strlen(w->epoch_mine)) == e) hl_worker_new_proposal(w);
    hl_chantab_foreach(&w->chans, unsync_chan, w);
    hl_chantab_foreach(&w->chans, sync_chan, w);
}

/* ---- Sync ------------------------------------------------------------ */

/* What a sync read's callback needs to find its channel again: the
 * channel may be gone by the time Redis answers. */
typedef struct sync_ctx {
    hl_worker *w;
    unsigned gen;
    size_t len;
    char name[];
} sync_ctx;

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

static void on_sync_reply(redisAsyncContext *ac, void *reply_, void *privdata) {
    (void)ac;
    sync_ctx *x = privdata;
    hl_worker *w = x->w;
    const redisReply *reply = reply_;
    hl_chan *c = hl_chantab_find(&w->chans, x->name, x->len);
    int current = c && c->sync_gen == x->gen && c->sync == HL_SYNC_READING;
    free(x);
    if (!current) return;

    hl_stream_state st;
    uint64_t epoch;
    const redisReply *entries;
    if (parse_read(reply, &st, &epoch, &entries) != HL_OK) {
        /* Synced again when the command link, the library or Redis's
         * will to answer comes back. */
        if (reply != NULL && !library_missing(w, reply))
            trouble(w, "cannot read a channel's history", reply);
        chan_unsync(w, c);
        return;
    }
    no_trouble(w);
    if (epoch != w->epoch) {
        adopt_epoch(w, epoch); /* starts this channel's sync over */
        return;
    }
    note_redis_time(w, st.now_ms);
    hl_msgcache_free(&c->cache);
    c->last = hl_history_head(&st);
    c->cache_from = c->last;
    c->whole = 1;
    c->empty = !st.exists;
    size_t n = entries ? entries->elements : 0;
    if (st.exists && (size_t)st.length != n) c->whole = 0;
    /* XREVRANGE: newest first. */
    for (size_t i = n; i-- > 0;) {
        hl_msg *m = entry_msg(entries->element[i], c->name, c->len);
        if (m == NULL) {
            c->whole = 0;
            continue;
        }
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
    hl_poll_synced(w, c);
}

static void start_sync(hl_worker *w, hl_chan *c) {
    if (c->sub != HL_SUB_LIVE || c->sync != HL_SYNC_NONE || !w->cmd_ready) return;
    sync_ctx *x = malloc(sizeof(*x) + c->len + 1);
    if (x == NULL) {
        hl_error("worker %d: out of memory syncing '%s'", w->id, c->name);
        return;
    }
    x->w = w;
    /* Numbered per worker, not per channel: a channel removed and made
     * anew must not take an old read's reply for its own. */
    x->gen = c->sync_gen = ++w->sync_seq;
    x->len = c->len;
    memcpy(x->name, c->name, c->len + 1);
    if (redisAsyncCommand(w->cmd.ac, on_sync_reply, x,
                          "FCALL holdline_read 2 {%b%b}:log %s + %d %s", w->cfg->redis_prefix,
                          w->prefix_len, c->name, c->len, w->epoch_key, w->cfg->history_cache,
                          w->epoch_mine) != REDIS_OK) {
        free(x);
        return;
    }
    c->sync = HL_SYNC_READING;
}

/* ---- Subscriber link ------------------------------------------------- */

/* Returns the channel name inside a Redis channel name, or NULL if it does
 * not carry our prefix. */
static const char *strip_prefix(hl_worker *w, const redisReply *ch, size_t *len) {
    if (ch->type != REDIS_REPLY_STRING || ch->len <= w->prefix_len ||
        memcmp(ch->str, w->cfg->redis_prefix, w->prefix_len) != 0)
        return NULL;
    *len = ch->len - w->prefix_len;
    return ch->str + w->prefix_len;
}

/* How far ahead of Redis's clock (as last seen) a frame's id may be
 * before it is taken for a forgery: two readings of one clock a few
 * seconds apart never differ by this much. */
#define FRAME_FUTURE_MS 60000

/* Reads the channel's history again: what the worker knew of it is no
 * longer to be trusted. */
static void chan_resync(hl_worker *w, hl_chan *c) {
    chan_unsync(w, c);
    start_sync(w, c);
}

static void on_message(hl_worker *w, hl_chan *c, const char *p, size_t n) {
    hl_sid id;
    const char *data;
    size_t dlen;
    hl_frame_kind kind = hl_frame_parse(p, n, &id, &data, &dlen);
    if (kind == HL_FRAME_ID && w->redis_ms > 0 &&
        id.ms > (uint64_t)(redis_now(w) + FRAME_FUTURE_MS)) {
        /* A PUBLISH of a made-up frame must not move the channel's last
         * id past every real message to come. */
        hl_warn("worker %d: a frame on '%s' has id %llu-%llu, ahead of Redis's clock; delivered "
                "as a plain message",
                w->id, c->name, (unsigned long long)id.ms, (unsigned long long)id.seq);
        kind = HL_FRAME_BAD;
        data = p;
        dlen = n;
    }
    if (kind == HL_FRAME_ID) {
        if (c->sync == HL_SYNC_NONE) return; /* read with the stream at the next sync */
        hl_msg *m = hl_msg_new(id, c->name, c->len, data, dlen);
        if (m == NULL) {
            hl_error("worker %d: out of memory for a message on '%s'; reading it again", w->id,
                     c->name);
            chan_resync(w, c);
            return;
        }
        if (c->sync == HL_SYNC_READING) {
            *c->early_tail = m;
            c->early_tail = &m->next;
            return;
        }
        if (hl_sid_cmp(id, c->last) <= 0) {
            /* Pub/sub keeps the stream's order, so this frame is not
             * holdline_publish's, or one before it was not: read the
             * stream again rather than trust the last id. */
            free(m);
            hl_warn("worker %d: a frame on '%s' is not newer than the last id; reading the "
                    "history again",
                    w->id, c->name);
            chan_resync(w, c);
            return;
        }
        /* Keep the JSON past the cache, which with history.cache = 0
         * drops m at once. */
        hl_msg *keep = c->cache.cap == 0 ? m : NULL;
        if (keep) m = hl_msg_new(id, c->name, c->len, data, dlen);
        hl_sid prev = c->last;
        if (m != NULL && chan_add(c, m, &prev) == HL_OK) {
            hl_msg *j = keep ? keep : hl_msgcache_at(&c->cache, c->cache.count - 1);
            hl_poll_message(w, c, id, prev, j->json, j->len);
        } else {
            hl_error("worker %d: out of memory for a message on '%s'; reading it again", w->id,
                     c->name);
            chan_resync(w, c);
        }
        free(keep);
        return;
    }
    if (kind == HL_FRAME_BAD)
        hl_debug("worker %d: a payload on '%s' starts like a frame but is not one; delivered as is",
                 w->id, c->name);
    hl_buf b;
    hl_buf_init(&b);
    hl_buf_puts(&b, "{\"channel\":");
    hl_json_string(&b, c->name, c->len);
    hl_buf_puts(&b, ",\"id\":null,\"data\":");
    hl_json_string(&b, data, dlen);
    hl_buf_puts(&b, "}");
    if (!b.oom)
        hl_poll_plain(w, c, b.data, b.len);
    else
        hl_error("worker %d: out of memory for a message on '%s'", w->id, c->name);
    hl_buf_free(&b);
}

/* ---- Ticks ------------------------------------------------------------ */

/* A channel with no history (none at its sync, nothing since) has a
 * made-up head, a point in Redis time. Left alone it would grow older
 * than history.ttl, and a client holding it would then be told it missed
 * messages that never were. So now and then the worker reads Redis's
 * clock T and publishes it on its own control channel; when it comes
 * back, every message published before T has been seen (pub/sub keeps
 * Redis's order across channels on one connection), and the head of such
 * channels moves to T, with the cursors of the clients waiting at it. */

static void advance_head(hl_chan *c, hl_sid head) {
    for (hl_link *l = c->waiters; l; l = l->next)
        if (l->cur.kind == HL_CUR_AT && hl_sid_cmp(l->cur.id, c->last) == 0) l->cur.id = head;
    c->last = c->cache_from = head;
}

static void tick_chan(hl_chan *c, void *ud) {
    hl_worker *w = ud;
    if (c->sync != HL_SYNC_DONE) return;
    hl_sid head = {(uint64_t)w->redis_ms - 1, UINT64_MAX};
    if (hl_sid_cmp(head, c->last) <= 0) return;
    if (c->empty) {
        advance_head(c, head);
        return;
    }
    /* The last message is more than a TTL old: Redis has dropped the
     * stream, and the channel is as good as empty. One second of margin
     * for the PEXPIRE's own clock reading. */
    long long ttl_ms = (long long)w->cfg->history_ttl * 1000;
    if ((long long)c->last.ms + ttl_ms + 1000 < w->redis_ms) {
        hl_msgcache_free(&c->cache);
        c->whole = 1;
        c->empty = 1;
        advance_head(c, head);
    }
}

static void on_tick(hl_worker *w, long long ms) {
    if (ms <= 0) return;
    note_redis_time(w, ms);
    hl_chantab_foreach(&w->chans, tick_chan, w);
}

static void on_tick_time(redisAsyncContext *ac, void *reply_, void *privdata) {
    (void)ac;
    hl_worker *w = privdata;
    redisReply *reply = reply_;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_STRING || !hl_rlink_is_up(&w->cmd))
        return;
    long long ms = strtoll(reply->element[0]->str, NULL, 10) * 1000 +
                   strtoll(reply->element[1]->str, NULL, 10) / 1000;
    redisAsyncCommand(w->cmd.ac, NULL, NULL, "PUBLISH %s tick:%lld", w->ctl_channel, ms);
}

void hl_pubsub_tick(hl_worker *w) {
    if (!w->cmd_ready || !w->ctl_live) return;
    redisAsyncCommand(w->cmd.ac, on_tick_time, w, "TIME");
}

static void on_sub_reply(redisAsyncContext *ac, void *reply_, void *privdata) {
    (void)ac;
    hl_worker *w = privdata;
    redisReply *reply = reply_;
    /* NULL: the link is going down; hl_pubsub_sub_down handles that. */
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = reply->element[0]->str;
    const redisReply *ch = reply->element[1];
    if (ch->type == REDIS_REPLY_STRING && strcmp(ch->str, w->ctl_channel) == 0) {
        if (strcasecmp(kind, "subscribe") == 0) {
            w->ctl_live = 1;
            hl_worker_update_ready(w);
        } else if (strcasecmp(kind, "message") == 0 &&
                   reply->element[2]->type == REDIS_REPLY_STRING &&
                   strncmp(reply->element[2]->str, "tick:", 5) == 0) {
            on_tick(w, strtoll(reply->element[2]->str + 5, NULL, 10));
        }
        return;
    }
    size_t len;
    const char *name = strip_prefix(w, ch, &len);
    if (name == NULL) return;
    hl_chan *c = hl_chantab_find(&w->chans, name, len);
    if (c == NULL) return;
    if (strcasecmp(kind, "message") == 0) {
        const redisReply *data = reply->element[2];
        if (data->type == REDIS_REPLY_STRING && c->sub == HL_SUB_LIVE)
            on_message(w, c, data->str, data->len);
    } else if (strcasecmp(kind, "subscribe") == 0) {
        if (c->sub == HL_SUB_PENDING) {
            set_sub(w, c, HL_SUB_LIVE);
            start_sync(w, c);
        }
    } else if (strcasecmp(kind, "unsubscribe") == 0) {
        /* Only the reply to our latest command matters: in any other state
         * a SUBSCRIBE was sent after this UNSUBSCRIBE. */
        if (c->sub == HL_SUB_LEAVING && c->nwaiters == 0 && !c->linger_armed) chan_remove(w, c);
    }
}

static void resubscribe(hl_chan *c, void *ud) {
    hl_worker *w = ud;
    if (c->nwaiters == 0 && !c->linger_armed) {
        chan_remove(w, c);
        return;
    }
    chan_subscribe(w, c);
}

void hl_pubsub_sub_up(hl_rlink *l, void *ud) {
    hl_worker *w = ud;
    redisAsyncCommand(l->ac, on_sub_reply, w, "SUBSCRIBE %s", w->ctl_channel);
    hl_chantab_foreach(&w->chans, resubscribe, w);
}

static void mark_unsubscribed(hl_chan *c, void *ud) {
    set_sub(ud, c, HL_SUB_NONE);
    chan_unsync(ud, c);
}

void hl_pubsub_sub_down(hl_rlink *l, void *ud) {
    (void)l;
    hl_worker *w = ud;
    w->ctl_live = 0;
    hl_chantab_foreach(&w->chans, mark_unsubscribed, w);
    hl_worker_update_ready(w);
}

/* ---- Command link ---------------------------------------------------- */

static void on_library_loaded(redisAsyncContext *ac, void *reply_, void *privdata) {
    (void)ac;
    hl_worker *w = privdata;
    redisReply *reply = reply_;
    if (reply == NULL || reply->type != REDIS_REPLY_ERROR) return;
    /* A Redis loading its data set refuses everything for a while; the
     * epoch read that follows reports that and retries. */
    if (strncmp(reply->str, "LOADING", 7) == 0 || strncmp(reply->str, "BUSY", 4) == 0) return;
    hl_error("worker %d: Redis refused holdline's Function library (Redis 7 or later is "
             "needed): %s",
             w->id, reply->str);
}

static void on_epoch(redisAsyncContext *ac, void *reply_, void *privdata) {
    (void)ac;
    hl_worker *w = privdata;
    redisReply *reply = reply_;
    w->loading = 0;
    if (reply == NULL) return;
    if (reply->type == REDIS_REPLY_NIL) {
        adopt_epoch(w, epoch_of(w->epoch_mine, strlen(w->epoch_mine)));
    } else if (reply->type == REDIS_REPLY_STRING) {
        adopt_epoch(w, epoch_of(reply->str, reply->len));
    } else {
        trouble(w, "cannot load the Function library and read the epoch key", reply);
        return;
    }
    no_trouble(w);
    w->cmd_ready = 1;
    hl_chantab_foreach(&w->chans, sync_chan, w);
    hl_poll_retry(w);
    hl_worker_update_ready(w);
}

/* Loads the library, then learns the epoch; commands on one connection
 * run in order, so nothing sent after this finds the library missing. */
static void load_library(hl_worker *w) {
    hl_buf b;
    hl_buf_init(&b);
    hl_history_library(&b, w->cfg->history_length, (long long)w->cfg->history_ttl * 1000);
    if (b.oom) {
        hl_error("worker %d: out of memory building the Function library", w->id);
        hl_buf_free(&b);
        return;
    }
    w->cmd_ready = 0;
    w->loading = 1;
    hl_worker_update_ready(w);
    redisAsyncCommand(w->cmd.ac, on_library_loaded, w, "FUNCTION LOAD REPLACE %b", b.data, b.len);
    redisAsyncCommand(w->cmd.ac, on_epoch, w, "SET %s %s NX GET", w->epoch_key, w->epoch_mine);
    hl_buf_free(&b);
}

void hl_pubsub_cmd_up(hl_rlink *l, void *ud) {
    (void)l;
    load_library(ud);
}

void hl_pubsub_cmd_down(hl_rlink *l, void *ud) {
    (void)l;
    hl_worker *w = ud;
    w->cmd_ready = 0;
    w->loading = 0;
    hl_worker_update_ready(w);
}

/* ---- History reads for polls ------------------------------------------ */

/* Polls that need the same read of a channel (the same cursor, the same
 * count) share one: after a reconnect, the waiters of a channel mostly
 * stand at the same place, and one read serves them all. */
typedef struct hl_read {
    hl_worker *w;
    hl_chan *c; /* NULL once the channel is gone */
    hl_cur_part after;
    int count;
    hl_link *members; /* through read_next */
    struct hl_read *next;
} hl_read;

static void read_unlink(hl_read *rd) {
    if (rd->c == NULL) return;
    hl_read **p = (hl_read **)&rd->c->reads;
    while (*p != rd)
        p = &(*p)->next;
    *p = rd->next;
    rd->c = NULL;
}

/* The channel goes away: its reads in flight forget it. */
static void reads_orphan(hl_chan *c) {
    while (c->reads)
        read_unlink(c->reads);
}

static void on_link_read(redisAsyncContext *ac, void *reply_, void *privdata) {
    (void)ac;
    hl_read *rd = privdata;
    hl_worker *w = rd->w;
    const redisReply *reply = reply_;
    read_unlink(rd);
    hl_stream_state st;
    uint64_t epoch = 0;
    const redisReply *entries;
    int ok = parse_read(reply, &st, &epoch, &entries) == HL_OK;
    if (!ok) {
        if (reply != NULL && !library_missing(w, reply)) trouble(w, "a history read failed", reply);
    } else {
        no_trouble(w);
        note_redis_time(w, st.now_ms);
        adopt_epoch(w, epoch);
    }
    hl_link *lk = rd->members;
    free(rd);
    while (lk) {
        hl_link *next = lk->read_next;
        lk->read_next = NULL;
        hl_req *r = lk->r;
        if (hl_http_req_release(r)) {
            lk = next;
            continue;
        }
        hl_msg *msgs = NULL, **tail = &msgs;
        if (ok && lk->c != NULL && r->phase == HL_POLL_READING) {
            for (size_t i = 0; entries && i < entries->elements; i++) {
                hl_msg *m = entry_msg(entries->element[i], lk->c->name, lk->c->len);
                if (m == NULL) continue;
                *tail = m;
                tail = &m->next;
            }
        }
        hl_poll_on_read(lk, &st, epoch, msgs, ok);
        lk = next;
    }
}

static int same_place(hl_cur_part a, hl_cur_part b) {
    return a.kind == b.kind && (a.kind != HL_CUR_AT || hl_sid_cmp(a.id, b.id) == 0);
}

int hl_pubsub_read(hl_worker *w, hl_link *lk, int count) {
    if (!w->cmd_ready || lk->c == NULL) return HL_ERR;
    hl_chan *c = lk->c;
    hl_read *rd = c->reads;
    while (rd && !(rd->count == count && same_place(rd->after, lk->cur)))
        rd = rd->next;
    if (rd == NULL) {
        rd = calloc(1, sizeof(*rd));
        if (rd == NULL) return HL_ERR;
        char after[HL_SID_MAXLEN + 1] = "0";
        if (lk->cur.kind == HL_CUR_AT) hl_sid_format(lk->cur.id, after);
        if (redisAsyncCommand(w->cmd.ac, on_link_read, rd,
                              "FCALL holdline_read 2 {%b%b}:log %s %s %d %s", w->cfg->redis_prefix,
                              w->prefix_len, c->name, c->len, w->epoch_key, after, count,
                              w->epoch_mine) != REDIS_OK) {
            free(rd);
            return HL_ERR;
        }
        rd->w = w;
        rd->c = c;
        rd->after = lk->cur;
        rd->count = count;
        rd->next = c->reads;
        c->reads = rd;
    }
    lk->read_next = rd->members;
    rd->members = lk;
    lk->r->redis_pending++;
    return HL_OK;
}

/* ---- Channel info ---------------------------------------------------- */

static void on_info_reply(redisAsyncContext *ac, void *reply_, void *privdata) {
    (void)ac;
    hl_req *r = privdata;
    const redisReply *reply = reply_;
    if (hl_http_req_release(r)) return;
    if (r->state != HL_REQ_PUBLISHING) return; /* the deadline answered already */
    hl_stream_state st;
    uint64_t epoch;
    const redisReply *entries;
    if (parse_read(reply, &st, &epoch, &entries) != HL_OK) {
        if (reply == NULL) {
            hl_http_answer_error(r, 503, "redis_unavailable", "the Redis connection was lost");
            return;
        }
        library_missing(r->w, reply);
        hl_http_answer_error(r, 503, "redis_error",
                             reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
        return;
    }
    adopt_epoch(r->w, epoch);
    hl_buf b;
    hl_buf_init(&b);
    hl_buf_puts(&b, "{\"channel\":");
    hl_json_string(&b, r->channel, strlen(r->channel));
    if (st.exists) {
        char id[HL_SID_MAXLEN + 1];
        hl_sid_format(st.last, id);
        hl_buf_printf(&b, ",\"last_id\":\"%s\",\"length\":%lld}", id, st.length);
    } else {
        hl_buf_puts(&b, ",\"last_id\":null,\"length\":0}");
    }
    hl_http_answer_json(r, &b, 200);
    hl_buf_free(&b);
}

int hl_pubsub_channel_info(hl_worker *w, hl_req *r) {
    if (!w->cmd_ready) return HL_ERR;
    if (redisAsyncCommand(w->cmd.ac, on_info_reply, r, "FCALL holdline_read 2 {%b%s}:log %s + 0 %s",
                          w->cfg->redis_prefix, w->prefix_len, r->channel, w->epoch_key,
                          w->epoch_mine) != REDIS_OK)
        return HL_ERR;
    r->redis_pending++;
    return HL_OK;
}

/* ---- Publish --------------------------------------------------------- */

static void on_publish_reply(redisAsyncContext *ac, void *reply_, void *privdata) {
    (void)ac;
    hl_req *r = privdata;
    redisReply *reply = reply_;
    if (hl_http_req_release(r)) return;
    if (r->state != HL_REQ_PUBLISHING) return; /* the deadline answered already */
    if (reply == NULL) {
        hl_http_answer_error(r, 503, "redis_unavailable",
                             "the Redis connection was lost; the message may not have been sent");
        return;
    }
    int duplicate = reply->type == REDIS_REPLY_STATUS;
    if (reply->type != REDIS_REPLY_STRING && !duplicate) {
        const char *why = reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply";
        if (!library_missing(r->w, reply)) trouble(r->w, "a publish failed", reply);
        hl_http_answer_error(r, 503, "redis_error", why);
        return;
    }
    hl_buf b;
    hl_buf_init(&b);
    hl_buf_puts(&b, "{\"channel\":");
    hl_json_string(&b, r->channel, strlen(r->channel));
    hl_buf_puts(&b, ",\"id\":");
    hl_json_string(&b, reply->str, reply->len);
    hl_buf_puts(&b, duplicate ? ",\"duplicate\":true}" : "}");
    hl_http_answer_json(r, &b, 201);
    hl_buf_free(&b);
}

int hl_pubsub_publish(hl_worker *w, hl_req *r) {
    if (!w->cmd_ready) return HL_ERR;
    const char *data = r->body.data ? r->body.data : "";
    const char *p = w->cfg->redis_prefix;
    size_t pl = w->prefix_len;
    int rc = r->idem
                 ? redisAsyncCommand(w->cmd.ac, on_publish_reply, r,
                                     "FCALL holdline_publish 2 {%b%s}:log {%b%s}:idem:%s %b", p, pl,
                                     r->channel, p, pl, r->channel, r->idem, data, r->body.len)
                 : redisAsyncCommand(w->cmd.ac, on_publish_reply, r,
                                     "FCALL holdline_publish 1 {%b%s}:log %b", p, pl, r->channel,
                                     data, r->body.len);
    if (rc != REDIS_OK) return HL_ERR;
    r->redis_pending++;
    return HL_OK;
}

void hl_pubsub_retry(hl_worker *w) {
    if (!hl_rlink_is_up(&w->cmd)) return; /* hl_pubsub_cmd_up starts over */
    if (!w->cmd_ready) {
        if (!w->loading) load_library(w);
        return;
    }
    hl_chantab_foreach(&w->chans, sync_chan, w);
    hl_poll_retry(w);
}

static void free_chan(hl_chan *c, void *ud) {
    chan_remove(ud, c);
}

void hl_pubsub_free(hl_worker *w) {
    hl_chantab_foreach(&w->chans, free_chan, w);
}

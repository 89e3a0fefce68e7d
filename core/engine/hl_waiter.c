/* hl_waiter.c -- waiters against a worker's channels.
 *
 * A waiter is evaluated when it starts and again whenever something
 * changes on one of its channels:
 *
 *   - a channel not yet synced parks it until it is;
 *   - the catch-up rules (hl_catchup.h) say per channel whether the client
 *     is up to date, can be answered from the cache, or needs a read;
 *   - reads of the same place on one channel are shared by the waiters
 *     that need them (after a reconnect, a channel's clients mostly stand
 *     at the same place);
 *   - what is owed is delivered to the sink, at most poll.max_messages at
 *     a time, with the new cursor.
 *
 * A message that completes many waiters alike (each on one channel, at
 * the message's predecessor) is encoded once and handed to all of them as
 * one fan-out (hl_fanout), so sinks share what they build from it. */
#include <stdlib.h>
#include <string.h>

#include "hl_common.h"
#include "hl_engine_int.h"
#include "hl_log.h"
#include "hl_time.h"

/* Polls that need the same read of a channel share one. */
typedef struct hl_read {
    hl_engine *e;
    hl_chan *c; /* NULL once the channel is gone */
    hl_store_op *op;
    hl_cur_part after;
    int count;
    hl_member *members; /* through read_next */
    struct hl_read *next;
} hl_read;

static void free_msgs(hl_msg *m) {
    while (m) {
        hl_msg *next = m->next;
        free(m);
        m = next;
    }
}

/* ---- Reads ------------------------------------------------------------- */

static void read_unlink(hl_read *rd) {
    if (rd->c == NULL) return;
    hl_read **p = (hl_read **)&rd->c->reads;
    while (*p != rd)
        p = &(*p)->next;
    *p = rd->next;
    rd->c = NULL;
}

/* Takes m out of the read it waits for; the last member out cancels it. */
static void read_leave(hl_member *m) {
    hl_read *rd = m->read;
    if (rd == NULL) return;
    hl_member **p = &rd->members;
    while (*p && *p != m)
        p = &(*p)->read_next;
    if (*p) *p = m->read_next;
    m->read = NULL;
    m->read_next = NULL;
    if (rd->members == NULL) {
        hl_store_cancel(rd->op);
        read_unlink(rd);
        free(rd);
    }
}

void hl__reads_orphan(hl_chan *c) {
    /* Members leave their reads before their channel goes; what is left
     * has none. */
    while (c->reads) {
        hl_read *rd = c->reads;
        read_unlink(rd);
        while (rd->members)
            read_leave(rd->members); /* the last one frees rd */
    }
}

static void on_read(hl_member *m, const hl_read_result *res, hl_msg *msgs);

static void on_read_reply(void *ud, hl_read_result *res) {
    hl_read *rd = ud;
    read_unlink(rd);
    hl_member *m = rd->members;
    free(rd);
    hl_msg *msgs = res->msgs;
    while (m) {
        hl_member *next = m->read_next;
        m->read = NULL;
        m->read_next = NULL;
        /* The first member takes the list, the others copies. */
        hl_msg *mine = NULL, **tail = &mine;
        if (next == NULL || msgs == NULL) {
            mine = msgs;
            msgs = NULL;
        } else {
            for (hl_msg *x = msgs; x; x = x->next) {
                hl_msg *copy = malloc(sizeof(*x) + x->len + 1);
                if (copy == NULL) break;
                memcpy(copy, x, sizeof(*x) + x->len + 1);
                copy->next = NULL;
                *tail = copy;
                tail = &copy->next;
            }
        }
        on_read(m, res, mine);
        m = next;
    }
    free_msgs(msgs);
    res->msgs = NULL;
}

static int same_place(hl_cur_part a, hl_cur_part b) {
    return a.kind == b.kind && (a.kind != HL_CUR_AT || hl_sid_cmp(a.id, b.id) == 0);
}

/* Joins or sends a read of m's channel after m's cursor. */
static int read_for(hl_engine *e, hl_member *m, int count) {
    hl_chan *c = m->c;
    if (c == NULL || !hl_store_can_read(e->store, c->slot)) return HL_ERR;
    hl_read *rd = c->reads;
    while (rd && !(rd->count == count && same_place(rd->after, m->pos.cur)))
        rd = rd->next;
    if (rd == NULL) {
        rd = calloc(1, sizeof(*rd));
        if (rd == NULL) return HL_ERR;
        hl_cur_part at = m->pos.cur;
        rd->op = hl_store_read(e->store, c->name, c->len,
                               at.kind == HL_CUR_AT ? HL_READ_AFTER : HL_READ_START, at.id, count,
                               on_read_reply, rd);
        if (rd->op == NULL) {
            free(rd);
            return HL_ERR;
        }
        rd->e = e;
        rd->c = c;
        rd->after = at;
        rd->count = count;
        rd->next = c->reads;
        c->reads = rd;
    }
    m->read = rd;
    m->read_next = rd->members;
    rd->members = m;
    return HL_OK;
}

/* ---- Delivery ---------------------------------------------------------- */

static void detach(hl_waiter *w) {
    for (size_t i = 0; i < w->n; i++) {
        hl_member *m = &w->members[i];
        read_leave(m);
        free_msgs(m->got);
        m->got = NULL;
        if (m->c) hl__chan_detach(m);
    }
    w->reads = 0;
    hl_deadline_cancel(w->e->dl, &w->due);
    w->phase = HL_WAITER_OVER;
}

/* The epoch now of the data of w's channels, combined as a cursor names
 * it (0 while one is not known). */
static uint64_t epoch_now(const hl_waiter *w) {
    uint64_t e[HL_MAX_CHANNELS];
    size_t n = w->n < HL_MAX_CHANNELS ? w->n : HL_MAX_CHANNELS;
    for (size_t i = 0; i < n; i++) {
        if (w->members[i].c == NULL) return 0;
        e[i] = hl__chan_epoch(w->e, w->members[i].c);
    }
    return hl_epoch_combine(e, n);
}

static void format_cursor(const hl_waiter *w, hl_buf *b) {
    hl_cur_part parts[HL_MAX_CHANNELS];
    size_t n = w->n < HL_MAX_CHANNELS ? w->n : HL_MAX_CHANNELS;
    for (size_t i = 0; i < n; i++)
        parts[i] = w->members[i].pos.cur;
    hl_cursor_format(b, w->epoch, parts, n);
}

void hl_waiter_cursor(const hl_waiter *w, hl_buf *b) {
    format_cursor(w, b);
}

/* What a delivery is built from. */
typedef struct batch {
    hl_codec_item *items;
    hl_codec_item *curs; /* item cursors (spans into cbuf, fixed up at the end) */
    size_t n, cap;
    hl_buf cbuf;  /* the item cursors' bytes */
    hl_msg *keep; /* read results taken: freed after the delivery */
    int oom;
} batch;

static void batch_add(hl_waiter *w, batch *b, const char *json, size_t len) {
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        hl_codec_item *items = realloc(b->items, cap * sizeof(*items));
        hl_codec_item *curs = items ? realloc(b->curs, cap * sizeof(*curs)) : NULL;
        if (items) b->items = items;
        if (curs) b->curs = curs;
        if (items == NULL || curs == NULL) {
            b->oom = 1;
            return;
        }
        b->cap = cap;
    }
    b->items[b->n] = (hl_codec_item){json, len};
    if (w->ops->item_cursors) {
        /* The offset for now: cbuf may move as it grows. */
        size_t off = b->cbuf.len;
        format_cursor(w, &b->cbuf);
        b->curs[b->n] = (hl_codec_item){(const char *)(uintptr_t)off, b->cbuf.len - off};
    }
    b->n++;
}

/* Moves what the client gets now into b (at most poll.max_messages):
 * first what reads returned, then what the cache holds after each
 * cursor, advancing the members' cursors past what was taken. */
static void collect(hl_waiter *w, batch *b) {
    hl_engine *e = w->e;
    size_t max = (size_t)e->cfg->poll_max_messages;
    uint64_t now = epoch_now(w);
    for (size_t k = 0; k < w->n; k++) {
        hl_member *m = &w->members[k];
        if (m->got) {
            while (m->got) {
                hl_msg *x = m->got;
                m->got = x->next;
                x->next = b->keep;
                b->keep = x;
                if (b->n < max) {
                    m->pos.cur = (hl_cur_part){HL_CUR_AT, x->id};
                    batch_add(w, b, x->json, x->len);
                }
            }
            continue;
        }
        hl_chan *c = m->c;
        if (c == NULL) continue;
        hl_catchup_env env = hl__env(e, c, now);
        long i = hl_catchup_cache_from(&env, w->epoch, c, m->pos.cur);
        if (i < 0) continue;
        for (size_t j = (size_t)i; j < c->cache.count && b->n < max; j++) {
            hl_msg *x = hl_msgcache_at(&c->cache, j);
            m->pos.cur = (hl_cur_part){HL_CUR_AT, x->id};
            batch_add(w, b, x->json, x->len);
        }
        /* "0" on a channel whose whole history was empty. */
        if (m->pos.cur.kind == HL_CUR_ALL) m->pos.cur = (hl_cur_part){HL_CUR_AT, c->last};
    }
}

/* Delivers to w what collect finds (plus an id-less message if extra),
 * or ends w if that runs out of memory. For a once waiter that is its
 * end; another goes on waiting. */
static size_t deliver(hl_waiter *w, const char *extra, size_t elen, int timed_out) {
    batch b;
    memset(&b, 0, sizeof(b));
    hl_buf_init(&b.cbuf);
    collect(w, &b);
    if (extra) {
        /* A plain message moves no cursor: its cursor is the one before. */
        batch_add(w, &b, extra, elen);
    }
    hl_buf cur;
    hl_buf_init(&cur);
    format_cursor(w, &cur);
    int missed = w->missed;
    w->missed = 0;
    w->read_epoch = 0;
    if (w->ops->item_cursors)
        for (size_t i = 0; i < b.n; i++)
            b.curs[i].json = b.cbuf.data + (uintptr_t)b.curs[i].json;
    int oom = b.oom || b.cbuf.oom || cur.oom;
    const hl_sink_ops *ops = w->ops;
    if (ops->once || oom) detach(w);
    if (oom) {
        ops->end(w, HL_END_ERROR);
    } else {
        if (!ops->once) w->positioned = 1;
        hl_delivery d = {b.items,
                         b.n,
                         ops->item_cursors ? b.curs : NULL,
                         cur.data ? cur.data : "",
                         cur.len,
                         missed,
                         timed_out,
                         NULL,
                         w->e->live_ms};
        ops->deliver(w, &d);
    }
    free_msgs(b.keep);
    free(b.items);
    free(b.curs);
    hl_buf_free(&b.cbuf);
    hl_buf_free(&cur);
    return oom ? 0 : b.n + (size_t)missed;
}

typedef enum eval_result {
    EVAL_HELD = 0, /* parked, reading or waiting */
    EVAL_ANSWER,   /* something to deliver */
} eval_result;

static eval_result eval(hl_waiter *w) {
    hl_engine *e = w->e;
    for (size_t i = 0; i < w->n; i++) {
        if (w->members[i].c->sync != HL_SYNC_DONE) {
            w->phase = HL_WAITER_PARKED;
            return EVAL_HELD;
        }
    }
    uint64_t now = epoch_now(w);
    if (w->epoch == 0) w->epoch = now;
    int cache = 0, reads = 0;
    unsigned char need[HL_MAX_CHANNELS];
    for (size_t i = 0; i < w->n; i++) {
        hl_member *m = &w->members[i];
        hl_catchup_env env = hl__env(e, m->c, now);
        need[i] = m->got ? HL_NEED_CACHE : hl_catchup_classify(&env, w->epoch, m->c, &m->pos);
        cache |= need[i] == HL_NEED_CACHE;
        reads += need[i] == HL_NEED_READ;
    }
    if (reads > 0 && !w->read_failed) {
        w->read_epoch = 0;
        for (size_t i = 0; i < w->n; i++) {
            if (need[i] != HL_NEED_READ) continue;
            if (read_for(e, &w->members[i], e->cfg->poll_max_messages) != HL_OK) {
                w->read_failed = 1;
                break;
            }
            w->reads++;
        }
        if (w->reads > 0) {
            w->phase = HL_WAITER_READING;
            return EVAL_HELD;
        }
    }
    if (cache || w->missed) return EVAL_ANSWER;
    w->phase = HL_WAITER_WAITING;
    return EVAL_HELD;
}

/* Evaluates w and delivers what it can; a waiter that stays (not once)
 * goes on until it is up to date, and is told its position once. */
static void reeval(hl_waiter *w) {
    /* A waiter that stays gets what the cache and the reads hold, up to
     * poll.max_messages per delivery, until a delivery has nothing new
     * (the bound only guards against a loop). */
    for (int round = 0; round < 1000 && w->phase != HL_WAITER_OVER; round++) {
        if (eval(w) != EVAL_ANSWER) {
            if (w->phase == HL_WAITER_WAITING && !w->ops->once && !w->positioned)
                deliver(w, NULL, 0, 0);
            return;
        }
        if (deliver(w, NULL, 0, 0) == 0) {
            if (w->phase != HL_WAITER_OVER) w->phase = HL_WAITER_WAITING;
            return;
        }
    }
}

/* ---- Deadlines --------------------------------------------------------- */

static void arm(hl_waiter *w) {
    long long now = hl_mono_ms();
    unsigned secs = w->period;
    if (w->end_at) {
        long long left = (w->end_at - now + 999) / 1000;
        if (left < (long long)secs) secs = left > 0 ? (unsigned)left : 1;
    }
    hl_deadline_arm(w->e->dl, &w->due, secs, now);
}

static void on_due(hl_deadline *d) {
    hl_waiter *w = (hl_waiter *)((char *)d - offsetof(hl_waiter, due));
    if (w->ops->once) {
        deliver(w, NULL, 0, 1);
        return;
    }
    if (w->end_at && hl_mono_ms() >= w->end_at) {
        const hl_sink_ops *ops = w->ops;
        detach(w);
        ops->end(w, HL_END_DURATION);
        return;
    }
    /* A heartbeat: what the waiter has now, usually nothing. */
    deliver(w, NULL, 0, 1);
    if (w->phase != HL_WAITER_OVER) arm(w);
}

/* ---- Waiters ------------------------------------------------------------ */

int hl_waiter_start(hl_engine *e, hl_waiter *w, const hl_sink_ops *ops, const hl_span *chans,
                    size_t n, uint64_t epoch, const hl_cur_part *parts, unsigned period,
                    long long end_at) {
    memset(w, 0, sizeof(*w));
    w->ops = ops;
    w->e = e;
    w->phase = HL_WAITER_OVER;
    if (n == 0 || n > HL_MAX_CHANNELS) return HL_ERR;
    w->members = n > 1 ? calloc(n, sizeof(*w->members)) : &w->one;
    if (w->members == NULL) return HL_ERR;
    w->epoch = epoch;
    w->period = period ? period : 1;
    w->end_at = end_at;
    w->due.fire = on_due;
    w->phase = HL_WAITER_PARKED;
    for (size_t i = 0; i < n; i++) {
        hl_member *m = &w->members[i];
        m->w = w;
        m->pos.cur = parts[i];
        if (hl__chan_attach(e, m, chans[i].p, chans[i].n) != HL_OK) {
            detach(w);
            if (w->members != &w->one) free(w->members);
            w->members = NULL;
            w->n = 0;
            return HL_ERR;
        }
        w->n = i + 1;
    }
    arm(w);
    reeval(w);
    return HL_OK;
}

void hl_waiter_stop(hl_waiter *w) {
    if (w->members == NULL) return;
    if (w->phase != HL_WAITER_OVER) detach(w);
    if (w->members != &w->one) free(w->members);
    w->members = NULL;
    w->n = 0;
}

/* A read for m came back. */
static void on_read(hl_member *m, const hl_read_result *res, hl_msg *msgs) {
    hl_waiter *w = m->w;
    if (w->phase != HL_WAITER_READING) {
        free_msgs(msgs);
        return;
    }
    w->reads--;
    if (!res->ok) {
        w->read_failed = 1;
        free_msgs(msgs);
    } else {
        /* The store took in the epoch Redis reported (res->epoch) before
         * this reply, so the channels' epochs now are the ones the read
         * was made under. */
        uint64_t now = epoch_now(w);
        w->missed |= hl_catchup_read_done((long long)w->e->cfg->history_ttl * 1000, w->epoch, now,
                                          &res->st, msgs != NULL, &m->pos);
        w->read_epoch = now;
        if (msgs) m->got = msgs;
    }
    if (w->reads > 0) return;
    /* Every cursor the reads moved belongs to the epoch Redis reported. */
    if (w->read_epoch) w->epoch = w->read_epoch;
    int got = 0;
    for (size_t i = 0; i < w->n; i++)
        got |= w->members[i].got != NULL;
    if (got || w->missed) deliver(w, NULL, 0, 0);
    reeval(w);
}

/* ---- What channels tell ------------------------------------------------- */

static void drop_fanout(hl_fanout *fan) {
    for (size_t i = 0; i < HL_FANOUT_SLOTS; i++)
        if (fan->memo[i] && fan->drop[i]) fan->drop[i](fan->memo[i]);
}

/* A waiter on one channel at `at`, with nothing else to be told. */
static int alone_at(uint64_t epoch, const hl_waiter *w, const hl_member *m, hl_sid at) {
    return w->n == 1 && m->pos.cur.kind == HL_CUR_AT && hl_sid_cmp(m->pos.cur.id, at) == 0 &&
           w->epoch == epoch && !w->missed && m->got == NULL;
}

/* The fan-out of one message to the waiters alone at its predecessor:
 * the cursor is the same for all of them. */
typedef struct fan_state {
    hl_fanout fan;
    hl_buf cur;
    int made;
} fan_state;

static void fan_one(fan_state *fs, hl_waiter *w, hl_sid id, const char *json, size_t jlen) {
    hl_member *m = &w->members[0];
    if (!fs->made) {
        hl_cur_part p = {HL_CUR_AT, id};
        hl_cursor_format(&fs->cur, w->epoch, &p, 1);
        fs->made = 1;
    }
    m->pos.cur = (hl_cur_part){HL_CUR_AT, id};
    const hl_sink_ops *ops = w->ops;
    if (ops->once || fs->cur.oom) detach(w);
    if (fs->cur.oom) {
        ops->end(w, HL_END_ERROR);
        return;
    }
    if (!ops->once) w->positioned = 1;
    hl_codec_item item = {json, jlen};
    hl_codec_item icur = {fs->cur.data, fs->cur.len};
    hl_delivery d = {&item,
                     1,
                     ops->item_cursors ? &icur : NULL,
                     fs->cur.data,
                     fs->cur.len,
                     0,
                     0,
                     &fs->fan,
                     (long long)id.ms};
    ops->deliver(w, &d);
}

void hl__waiters_message(hl_engine *e, hl_chan *c, hl_sid id, hl_sid prev, const char *json,
                         size_t jlen) {
    c->news_ms = hl_mono_coarse_ms();
    uint64_t epoch = hl__chan_epoch(e, c);
    fan_state fs;
    memset(&fs, 0, sizeof(fs));
    hl_buf_init(&fs.cur);
    size_t shared = 0, others = 0;
    /* Waiters looked at again answer from the cache at once: their
     * deliveries are as live as the fan-out's. */
    e->live_ms = (long long)id.ms;
    hl_member *m = c->waiters;
    while (m) {
        /* Delivering detaches (once) only this waiter's own member. */
        hl_member *next = m->next;
        hl_waiter *w = m->w;
        if (w->phase != HL_WAITER_WAITING) {
            m = next;
            continue;
        }
        if (alone_at(epoch, w, m, prev)) {
            /* The common case: a client up to date on one channel. */
            fan_one(&fs, w, id, json, jlen);
            shared++;
        } else {
            m->pos.level = 0; /* news: worth a read again if the cache cannot answer */
            reeval(w);
            others++;
        }
        m = next;
    }
    e->live_ms = 0;
    drop_fanout(&fs.fan);
    hl_buf_free(&fs.cur);
    hl_debug("worker %d: message on '%s': %zu waiters answered alike, %zu looked at again",
             e->worker, c->name, shared, others);
}

void hl__waiters_plain(hl_engine *e, hl_chan *c, const char *json, size_t jlen) {
    c->news_ms = hl_mono_coarse_ms();
    uint64_t epoch = hl__chan_epoch(e, c);
    fan_state fs;
    memset(&fs, 0, sizeof(fs));
    hl_buf_init(&fs.cur);
    hl_member *m = c->waiters;
    while (m) {
        hl_member *next = m->next;
        hl_waiter *w = m->w;
        if (w->phase == HL_WAITER_WAITING) {
            /* Clients at the channel's head share one answer, as for
             * durable messages; the cursor does not move. */
            if (alone_at(epoch, w, m, c->last))
                fan_one(&fs, w, c->last, json, jlen);
            else
                deliver(w, json, jlen, 0);
        }
        m = next;
    }
    drop_fanout(&fs.fan);
    hl_buf_free(&fs.cur);
}

static void retry_chan(hl_chan *c, void *ud) {
    (void)ud;
    hl_member *m = c->waiters;
    while (m) {
        hl_member *next = m->next;
        hl_waiter *w = m->w;
        if (w->phase == HL_WAITER_WAITING && w->read_failed) {
            w->read_failed = 0;
            reeval(w);
        }
        m = next;
    }
}

void hl__waiters_retry(hl_engine *e) {
    hl_chantab_foreach(&e->chans, retry_chan, NULL);
}

void hl__waiters_synced(hl_engine *e, hl_chan *c) {
    (void)e;
    hl_member *m = c->waiters;
    while (m) {
        hl_member *next = m->next;
        if (m->w->phase == HL_WAITER_PARKED) reeval(m->w);
        m = next;
    }
}

void hl__waiters_unsync(hl_engine *e, hl_chan *c) {
    (void)e;
    for (hl_member *m = c->waiters; m; m = m->next)
        if (m->w->phase == HL_WAITER_WAITING) m->w->phase = HL_WAITER_PARKED;
}

typedef struct foreach_ctx {
    void (*fn)(hl_waiter *w, void *ud);
    void *ud;
    unsigned share, shares;
} foreach_ctx;

static void foreach_chan(hl_chan *c, void *ud) {
    foreach_ctx *x = ud;
    hl_member *m = c->waiters;
    while (m) {
        /* fn may stop w, which takes its members off their lists. */
        hl_member *next = m->next;
        if (m == &m->w->members[0]) x->fn(m->w, x->ud);
        m = next;
    }
}

void hl_engine_foreach(hl_engine *e, unsigned share, unsigned shares,
                       void (*fn)(hl_waiter *w, void *ud), void *ud) {
    foreach_ctx x = {fn, ud, share, shares};
    if (shares > 0)
        hl_chantab_foreach_share(&e->chans, share, shares, foreach_chan, &x);
    else
        hl_chantab_foreach(&e->chans, foreach_chan, &x);
}

static void end_chan(hl_chan *c, void *ud) {
    (void)ud;
    while (c->waiters) {
        hl_waiter *w = c->waiters->w;
        if (w->ops->once) {
            /* The "no event" answer: the client's cursor back, so it loses
             * nothing by moving to another node. */
            deliver(w, NULL, 0, 0);
        } else {
            const hl_sink_ops *ops = w->ops;
            detach(w);
            ops->end(w, HL_END_STOPPING);
        }
    }
}

void hl_engine_end_all(hl_engine *e) {
    hl_chantab_foreach(&e->chans, end_chan, NULL);
}

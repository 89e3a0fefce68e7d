/* hl_poll.c -- long-polls with cursors, against a worker's channels.
 *
 * A poll names one or more channels and, for each, where the client
 * stands (its cursor part). It is evaluated when it arrives and again
 * whenever something changes on one of its channels:
 *
 *   - a channel not yet synced (no confirmed subscription plus a read of
 *     its stream) parks the poll until it is;
 *   - a client exactly at the channel's last id waits for the next
 *     message, which the subscription brings;
 *   - a client a little behind is answered from the worker's cache of
 *     recent messages, with no Redis round trip;
 *   - anything else (further behind, another epoch, "0", an id the worker
 *     has not seen yet) reads the stream in Redis after the cursor; that
 *     read also decides whether the client missed messages.
 *
 * An answer carries every message found (up to poll.max_messages) and the
 * new cursor; waiting polls on one channel that a message completes share
 * one response. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hl_common.h"
#include "hl_log.h"
#include "hl_worker.h"

typedef enum eval_result {
    EVAL_HELD = 0, /* parked, reading or waiting: the request stays suspended */
    EVAL_ANSWER,   /* *resp is the answer (NULL: out of memory) */
} eval_result;

/* What one link needs to be answered or to wait. */
typedef enum link_need {
    NEED_NOTHING = 0, /* the client is up to date on this channel */
    NEED_CACHE,       /* the answer is in memory (cache or a read's result) */
    NEED_READ,        /* only Redis knows */
} link_need;

static int sid_eq(hl_sid a, hl_sid b) {
    return a.ms == b.ms && a.seq == b.seq;
}

static void free_msgs(hl_msg *m) {
    while (m) {
        hl_msg *next = m->next;
        free(m);
        m = next;
    }
}

static void append_msg(hl_buf *b, size_t *n, const char *json, size_t len) {
    if (*n > 0) hl_buf_puts(b, ",");
    hl_buf_append(b, json, len);
    (*n)++;
}

/* Moves what the client gets now into msgs (at most poll.max_messages):
 * first what reads returned, then what the cache holds after each
 * cursor. Advances the links' cursors past what was taken. */
static void collect(hl_req *r, hl_buf *msgs, size_t *n) {
    hl_worker *w = r->w;
    size_t max = (size_t)w->cfg->poll_max_messages;
    for (size_t k = 0; k < r->nlinks; k++) {
        hl_link *l = &r->links[k];
        if (l->got) {
            while (l->got) {
                hl_msg *m = l->got;
                l->got = m->next;
                if (*n < max) {
                    append_msg(msgs, n, m->json, m->len);
                    l->cur = (hl_cur_part){HL_CUR_AT, m->id};
                }
                free(m);
            }
            continue;
        }
        hl_chan *c = l->c;
        if (c == NULL || c->sync != HL_SYNC_DONE || r->epoch != w->epoch) continue;
        size_t i;
        if (l->cur.kind == HL_CUR_ALL && c->whole)
            i = 0;
        else if (l->cur.kind == HL_CUR_AT && hl_sid_cmp(l->cur.id, c->cache_from) >= 0)
            i = hl_msgcache_after(&c->cache, l->cur.id);
        else
            continue;
        for (; i < c->cache.count && *n < max; i++) {
            hl_msg *m = hl_msgcache_at(&c->cache, i);
            append_msg(msgs, n, m->json, m->len);
            l->cur = (hl_cur_part){HL_CUR_AT, m->id};
        }
        /* "0" on a channel whose whole history was empty. */
        if (l->cur.kind == HL_CUR_ALL) l->cur = (hl_cur_part){HL_CUR_AT, c->last};
    }
}

/* The answer to r: what collect finds, plus an id-less message if extra
 * is set. Returns NULL when out of memory. */
static struct MHD_Response *compose(hl_req *r, const char *extra, size_t elen) {
    hl_buf msgs, cur, body;
    hl_buf_init(&msgs);
    hl_buf_init(&cur);
    hl_buf_init(&body);
    size_t n = 0;
    collect(r, &msgs, &n);
    if (extra) append_msg(&msgs, &n, extra, elen);

    hl_cur_part parts[256];
    size_t np = r->nlinks < HL_ARRAY_LEN(parts) ? r->nlinks : HL_ARRAY_LEN(parts);
    for (size_t i = 0; i < np; i++)
        parts[i] = r->links[i].cur;
    hl_cursor_format(&cur, r->epoch, parts, np);

    hl_buf_puts(&body, "{\"cursor\":\"");
    if (cur.len) hl_buf_append(&body, cur.data, cur.len);
    hl_buf_puts(&body, "\",\"messages\":[");
    if (msgs.len) hl_buf_append(&body, msgs.data, msgs.len);
    hl_buf_printf(&body, "],\"missed\":%s}", r->missed ? "true" : "false");

    struct MHD_Response *resp = NULL;
    if (!msgs.oom && !cur.oom && !body.oom)
        resp = hl_http_poll_response(r->w, r->origin, &body, cur.len ? cur.data : "");
    hl_buf_free(&msgs);
    hl_buf_free(&cur);
    hl_buf_free(&body);
    return resp;
}

void hl_poll_detach(hl_req *r) {
    for (size_t i = 0; i < r->nlinks; i++) {
        hl_link *l = &r->links[i];
        free_msgs(l->got);
        l->got = NULL;
        if (l->c) hl_pubsub_detach(l);
    }
    r->phase = HL_POLL_OVER;
}

/* Answers a suspended poll with resp (NULL closes the connection). */
static void answer(hl_req *r, struct MHD_Response *resp) {
    hl_poll_detach(r);
    hl_http_answer_response(r, resp, MHD_HTTP_OK);
}

/* A channel with no history since its sync (its head is a point in
 * Redis time): is a client at `at` (compared with the head: k) up to
 * date? Behind the head, yes if `at` is less than a TTL older: no stream
 * existed at the head's time, and one holding messages after `at` could
 * not have expired by then. Ahead, yes if `at` is not in Redis's future:
 * another worker's head, moved by a later tick. */
static int quiet_up_to_date(const hl_worker *w, const hl_chan *c, hl_sid at, int k) {
    long long ttl_ms = (long long)w->cfg->history_ttl * 1000;
    if (k < 0) return (long long)at.ms + ttl_ms > (long long)c->last.ms + 1000;
    long long now = hl_pubsub_redis_now(w);
    return now > 0 && (long long)at.ms <= now + 1000;
}

static link_need classify(hl_req *r, hl_link *l) {
    hl_worker *w = r->w;
    hl_chan *c = l->c;
    if (l->got) return NEED_CACHE;
    switch (l->cur.kind) {
    case HL_CUR_NEW:
        /* Only newer messages: the client starts at the channel's last id,
         * labelled with the worker's epoch, so it must be the poll's. */
        if (r->epoch != w->epoch) return NEED_NOTHING;
        l->cur = (hl_cur_part){HL_CUR_AT, c->last};
        return NEED_NOTHING;
    case HL_CUR_ALL:
        if (!c->whole) return NEED_READ;
        if (c->cache.count > 0) return NEED_CACHE;
        l->cur = (hl_cur_part){HL_CUR_AT, c->last};
        return NEED_NOTHING;
    case HL_CUR_AT: break;
    }
    if (r->epoch != w->epoch) return l->level ? NEED_NOTHING : NEED_READ;
    int k = hl_sid_cmp(l->cur.id, c->last);
    if (k == 0) return NEED_NOTHING;
    if (c->empty && quiet_up_to_date(w, c, l->cur.id, k)) {
        if (k < 0) l->cur.id = c->last;
        return NEED_NOTHING;
    }
    if (k < 0 && hl_sid_cmp(l->cur.id, c->cache_from) >= 0 &&
        hl_msgcache_after(&c->cache, l->cur.id) < c->cache.count)
        return NEED_CACHE;
    /* Behind what the cache holds, or ahead of this worker (fine if Redis
     * confirmed the id: the message is still on its way here). A read
     * that found nothing is not repeated until the channel has news. */
    if (k > 0 && l->verified) return NEED_NOTHING;
    return l->level ? NEED_NOTHING : NEED_READ;
}

static eval_result eval(hl_req *r, struct MHD_Response **resp) {
    hl_worker *w = r->w;
    *resp = NULL;
    for (size_t i = 0; i < r->nlinks; i++) {
        if (r->links[i].c->sync != HL_SYNC_DONE) {
            r->phase = HL_POLL_PARKED;
            return EVAL_HELD;
        }
    }
    if (r->epoch == 0) r->epoch = w->epoch;
    link_need need[256];
    int cache = 0, reads = 0;
    for (size_t i = 0; i < r->nlinks; i++) {
        need[i] = classify(r, &r->links[i]);
        cache |= need[i] == NEED_CACHE;
        reads += need[i] == NEED_READ;
    }
    if (reads > 0 && !r->read_failed) {
        r->read_epoch = 0;
        for (size_t i = 0; i < r->nlinks; i++) {
            if (need[i] != NEED_READ) continue;
            if (hl_pubsub_read(w, &r->links[i], w->cfg->poll_max_messages) != HL_OK) {
                r->read_failed = 1;
                break;
            }
            r->links[i].reading = 1;
            r->reads++;
        }
        if (r->reads > 0) {
            r->phase = HL_POLL_READING;
            return EVAL_HELD;
        }
    }
    if (cache || r->missed) {
        *resp = compose(r, NULL, 0);
        return EVAL_ANSWER;
    }
    r->phase = HL_POLL_WAITING;
    return EVAL_HELD;
}

/* Evaluates a suspended poll again and answers it if it can be. */
static void reeval(hl_req *r) {
    struct MHD_Response *resp;
    if (eval(r, &resp) == EVAL_ANSWER) answer(r, resp);
}

struct MHD_Response *hl_poll_start(hl_req *r, const hl_span *chans, size_t n, uint64_t epoch,
                                   const hl_cur_part *parts, int *suspend) {
    hl_worker *w = r->w;
    *suspend = 0;
    r->links = n > 1 ? calloc(n, sizeof(*r->links)) : &r->link1;
    if (r->links == NULL) return NULL;
    r->epoch = epoch;
    for (size_t i = 0; i < n; i++) {
        hl_link *l = &r->links[i];
        l->r = r;
        l->cur = parts[i];
        if (hl_pubsub_attach(w, l, chans[i].p, chans[i].n) != HL_OK) {
            hl_poll_detach(r);
            return NULL;
        }
        r->nlinks = i + 1;
    }
    struct MHD_Response *resp;
    if (eval(r, &resp) == EVAL_ANSWER) {
        hl_poll_detach(r);
        return resp;
    }
    *suspend = 1;
    return NULL;
}

void hl_poll_on_read(hl_link *lk, const hl_stream_state *st, uint64_t epoch, hl_msg *msgs, int ok) {
    hl_req *r = lk->r;
    lk->reading = 0;
    if (r->phase != HL_POLL_READING) {
        free_msgs(msgs);
        return;
    }
    r->reads--;
    if (!ok) {
        r->read_failed = 1;
        free_msgs(msgs);
    } else {
        long long ttl_ms = (long long)r->w->cfg->history_ttl * 1000;
        int missed = 0;
        if (lk->cur.kind == HL_CUR_AT)
            missed = r->epoch != epoch || hl_history_missed(st, lk->cur.id, ttl_ms);
        r->missed |= missed;
        r->read_epoch = epoch;
        if (msgs) {
            lk->got = msgs;
        } else {
            hl_sid head = hl_history_head(st);
            if (missed || lk->cur.kind != HL_CUR_AT || hl_sid_cmp(head, lk->cur.id) > 0)
                lk->cur = (hl_cur_part){HL_CUR_AT, head};
            lk->level = !missed;
        }
        lk->verified = 1;
    }
    if (r->reads > 0) return;
    /* Every cursor the reads moved belongs to the epoch Redis reported. */
    if (r->read_epoch) r->epoch = r->read_epoch;
    int got = 0;
    for (size_t i = 0; i < r->nlinks; i++)
        got |= r->links[i].got != NULL;
    if (got || r->missed) {
        answer(r, compose(r, NULL, 0));
        return;
    }
    reeval(r);
}

void hl_poll_hangup(hl_req *r) {
    answer(r, NULL);
}

typedef struct foreach_ctx {
    void (*fn)(hl_req *r, void *ud);
    void *ud;
    unsigned share, shares; /* only channels whose hash falls in share (shares 0: all) */
} foreach_ctx;

static void foreach_chan(hl_chan *c, void *ud) {
    foreach_ctx *x = ud;
    if (x->shares > 0 && (unsigned)((c->hash >> 32) % x->shares) != x->share) return;
    hl_link *l = c->waiters;
    while (l) {
        /* fn may answer r, which takes its links off their lists. */
        hl_link *next = l->next;
        if (l == &l->r->links[0]) x->fn(l->r, x->ud);
        l = next;
    }
}

void hl_poll_foreach(hl_worker *w, void (*fn)(hl_req *r, void *ud), void *ud) {
    foreach_ctx x = {fn, ud, 0, 0};
    hl_chantab_foreach(&w->chans, foreach_chan, &x);
}

void hl_poll_foreach_share(hl_worker *w, unsigned share, unsigned shares,
                           void (*fn)(hl_req *r, void *ud), void *ud) {
    foreach_ctx x = {fn, ud, share, shares};
    hl_chantab_foreach(&w->chans, foreach_chan, &x);
}

void hl_poll_timeout(hl_req *r) {
    answer(r, compose(r, NULL, 0));
}

/* One answer shared by every waiter a message completes alike: the bytes
 * are built once, and one MHD response per CORS origin is queued to all
 * of them. */
typedef struct shared_answer {
    hl_shared *slots[HL_ORIGIN_SLOTS];
    hl_buf body;
    hl_buf cur;
} shared_answer;

static void shared_init(shared_answer *sa) {
    memset(sa->slots, 0, sizeof(sa->slots));
    hl_buf_init(&sa->body);
    hl_buf_init(&sa->cur);
}

/* Answers r with the message json and cursor `at` on its one channel. */
static void shared_answer_req(shared_answer *sa, hl_req *r, hl_sid at, const char *json,
                              size_t jlen) {
    hl_worker *w = r->w;
    if (sa->body.len == 0) {
        hl_cur_part p = {HL_CUR_AT, at};
        hl_cursor_format(&sa->cur, w->epoch, &p, 1);
        hl_buf_puts(&sa->body, "{\"cursor\":\"");
        hl_buf_append(&sa->body, sa->cur.data, sa->cur.len);
        hl_buf_puts(&sa->body, "\",\"messages\":[");
        hl_buf_append(&sa->body, json, jlen);
        hl_buf_puts(&sa->body, "],\"missed\":false}");
    }
    hl_shared **slot = &sa->slots[r->origin + 1];
    if (*slot == NULL && !sa->body.oom && !sa->cur.oom) {
        struct MHD_Response *resp = hl_http_poll_response(w, r->origin, &sa->body, sa->cur.data);
        *slot = resp ? hl_shared_new(resp, 1) : NULL;
        if (*slot == NULL && resp) MHD_destroy_response(resp);
    }
    if (*slot) (*slot)->refs++;
    r->links[0].cur = (hl_cur_part){HL_CUR_AT, at};
    hl_poll_detach(r);
    hl_http_answer(r, *slot, MHD_HTTP_OK);
}

/* Drops the builder's references; returns 1 if building ran out of
 * memory (those waiters were closed). */
static int shared_done(shared_answer *sa) {
    for (size_t i = 0; i < HL_ORIGIN_SLOTS; i++)
        hl_shared_release(sa->slots[i]);
    int oom = sa->body.oom || sa->cur.oom;
    hl_buf_free(&sa->body);
    hl_buf_free(&sa->cur);
    return oom;
}

/* A waiter on one channel at `at`, with nothing else to be told. */
static int alone_at(const hl_worker *w, const hl_req *r, const hl_link *l, hl_sid at) {
    return r->nlinks == 1 && l->cur.kind == HL_CUR_AT && sid_eq(l->cur.id, at) &&
           r->epoch == w->epoch;
}

/* When c last had news, for placing new connections (hl_accept.c). */
static void note_news(hl_chan *c) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    c->news_ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void hl_poll_message(hl_worker *w, hl_chan *c, hl_sid id, hl_sid prev, const char *json,
                     size_t jlen) {
    note_news(c);
    shared_answer sa;
    shared_init(&sa);
    size_t shared = 0, others = 0;
    hl_link *l = c->waiters;
    while (l) {
        /* Answering r detaches only r's own link from this list. */
        hl_link *next = l->next;
        hl_req *r = l->r;
        if (r->phase != HL_POLL_WAITING) {
            l = next;
            continue;
        }
        if (alone_at(w, r, l, prev)) {
            /* The common case: a client up to date on one channel. */
            shared_answer_req(&sa, r, id, json, jlen);
            shared++;
        } else {
            l->level = 0; /* news: worth a read again if the cache cannot answer */
            reeval(r);
            others++;
        }
        l = next;
    }
    if (shared_done(&sa)) hl_error("out of memory encoding a message for '%s'", c->name);
    hl_debug("worker %d: message on '%s': %zu waiters answered alike, %zu looked at again", w->id,
             c->name, shared, others);
}

void hl_poll_plain(hl_worker *w, hl_chan *c, const char *json, size_t jlen) {
    note_news(c);
    shared_answer sa;
    shared_init(&sa);
    hl_link *l = c->waiters;
    while (l) {
        hl_link *next = l->next;
        hl_req *r = l->r;
        if (r->phase == HL_POLL_WAITING) {
            /* Clients at the channel's head share one answer, as for
             * durable messages; the cursor does not move. */
            if (alone_at(w, r, l, c->last))
                shared_answer_req(&sa, r, c->last, json, jlen);
            else
                answer(r, compose(r, json, jlen));
        }
        l = next;
    }
    if (shared_done(&sa)) hl_error("out of memory encoding a message for '%s'", c->name);
}

static void retry_chan(hl_chan *c, void *ud) {
    (void)ud;
    hl_link *l = c->waiters;
    while (l) {
        hl_link *next = l->next;
        hl_req *r = l->r;
        if (r->phase == HL_POLL_WAITING && r->read_failed) {
            r->read_failed = 0;
            reeval(r);
        }
        l = next;
    }
}

void hl_poll_retry(hl_worker *w) {
    hl_chantab_foreach(&w->chans, retry_chan, NULL);
}

void hl_poll_synced(hl_worker *w, hl_chan *c) {
    (void)w;
    hl_link *l = c->waiters;
    while (l) {
        hl_link *next = l->next;
        if (l->r->phase == HL_POLL_PARKED) reeval(l->r);
        l = next;
    }
}

void hl_poll_unsync(hl_worker *w, hl_chan *c) {
    (void)w;
    for (hl_link *l = c->waiters; l; l = l->next)
        if (l->r->phase == HL_POLL_WAITING) l->r->phase = HL_POLL_PARKED;
}

static void answer_chan(hl_chan *c, void *ud) {
    (void)ud;
    while (c->waiters)
        hl_poll_timeout(c->waiters->r);
}

void hl_poll_answer_all(hl_worker *w) {
    hl_chantab_foreach(&w->chans, answer_chan, NULL);
}

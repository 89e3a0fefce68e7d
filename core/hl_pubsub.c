/* hl_pubsub.c -- a worker's channels: who waits on what, the Redis
 * subscriptions that feed them, fan-out of a message to all waiters of a
 * channel, and publishing.
 *
 * Subscriptions are per worker and per channel, however many waiters: the
 * first waiter subscribes, and the last one leaving arms a linger timer
 * that unsubscribes only if nobody came back meanwhile, so a client's
 * re-poll costs no SUBSCRIBE/UNSUBSCRIBE pair. Besides, each worker holds
 * one permanent subscription to a private control channel: hiredis 0.14
 * can assert when the last subscription goes away with replies in flight,
 * and the control channel means that never happens. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hl_common.h"
#include "hl_log.h"
#include "hl_worker.h"

static void on_sub_reply(redisAsyncContext *ac, void *reply_, void *privdata);

static void chan_subscribe(hl_worker *w, hl_chan *c) {
    if (!hl_rlink_is_up(&w->sub)) {
        /* hl_pubsub_sub_up subscribes every channel with waiters. */
        c->sub = HL_SUB_NONE;
        return;
    }
    /* hiredis keeps one callback per channel and routes that channel's
     * messages to it, so every SUBSCRIBE must name on_sub_reply. */
    redisAsyncCommand(w->sub.ac, on_sub_reply, w, "SUBSCRIBE %b%b", w->cfg->redis_prefix,
                      w->prefix_len, c->name, c->len);
    c->sub = HL_SUB_PENDING;
}

static void chan_remove(hl_worker *w, hl_chan *c) {
    if (c->linger) event_free(c->linger);
    hl_chantab_remove(&w->chans, c);
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
            c->sub = HL_SUB_LEAVING;
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

int hl_pubsub_wait(hl_worker *w, hl_req *r, const char *name, size_t len) {
    hl_chan *c = hl_chantab_find(&w->chans, name, len);
    if (c == NULL) {
        c = hl_chantab_add(&w->chans, name, len);
        if (c == NULL) return HL_ERR;
        c->owner = w;
        c->linger = evtimer_new(w->base, on_linger, c);
        if (c->linger == NULL) {
            hl_chantab_remove(&w->chans, c);
            return HL_ERR;
        }
    }
    if (c->linger_armed) {
        evtimer_del(c->linger);
        c->linger_armed = 0;
    }
    r->prev = NULL;
    r->next = c->waiters;
    if (c->waiters) c->waiters->prev = r;
    c->waiters = r;
    r->chan = c;
    c->nwaiters++;
    /* From LEAVING too: Redis runs commands in order, so a SUBSCRIBE sent
     * behind the UNSUBSCRIBE leaves the channel subscribed, with the
     * shortest possible gap. */
    if (c->sub == HL_SUB_NONE || c->sub == HL_SUB_LEAVING) chan_subscribe(w, c);
    return HL_OK;
}

void hl_pubsub_unwait(hl_req *r) {
    hl_chan *c = r->chan;
    if (c == NULL) return;
    if (r->prev)
        r->prev->next = r->next;
    else
        c->waiters = r->next;
    if (r->next) r->next->prev = r->prev;
    r->prev = r->next = NULL;
    r->chan = NULL;
    if (--c->nwaiters == 0) arm_linger(r->w, c);
}

/* Answers every waiter of c with one shared response per CORS origin: the
 * body is encoded once per message, not once per waiter. */
static void deliver(hl_worker *w, hl_chan *c, const char *data, size_t len) {
    hl_buf b;
    hl_buf_init(&b);
    hl_buf_puts(&b, "{\"cursor\":\"\",\"messages\":[{\"channel\":");
    hl_json_string(&b, c->name, c->len);
    hl_buf_puts(&b, ",\"id\":null,\"data\":");
    hl_json_string(&b, data, len);
    hl_buf_puts(&b, "}],\"missed\":false}");

    hl_shared *slots[HL_ORIGIN_SLOTS] = {0};
    hl_req *r = c->waiters;
    size_t n = c->nwaiters;
    c->waiters = NULL;
    c->nwaiters = 0;
    while (r) {
        hl_req *next = r->next;
        r->prev = r->next = NULL;
        r->chan = NULL;
        hl_shared **slot = &slots[r->origin + 1];
        if (*slot == NULL && !b.oom) {
            struct MHD_Response *resp =
                hl_http_response(w, r->origin, "application/json", b.data, b.len);
            *slot = resp ? hl_shared_new(resp, 1) : NULL;
            if (*slot == NULL && resp) MHD_destroy_response(resp);
        }
        if (*slot) (*slot)->refs++;
        hl_http_answer(r, *slot, 200);
        r = next;
    }
    for (size_t i = 0; i < HL_ORIGIN_SLOTS; i++)
        hl_shared_release(slots[i]);
    if (b.oom)
        hl_error("out of memory encoding a message for '%s': %zu waiters closed", c->name, n);
    hl_buf_free(&b);
    arm_linger(w, c);
    hl_debug("worker %d: message on '%s' to %zu waiters", w->id, c->name, n);
}

/* Returns the channel name inside a Redis channel name, or NULL if it does
 * not carry our prefix. */
static const char *strip_prefix(hl_worker *w, const redisReply *ch, size_t *len) {
    if (ch->type != REDIS_REPLY_STRING || ch->len <= w->prefix_len ||
        memcmp(ch->str, w->cfg->redis_prefix, w->prefix_len) != 0)
        return NULL;
    *len = ch->len - w->prefix_len;
    return ch->str + w->prefix_len;
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
        if (data->type == REDIS_REPLY_STRING && c->nwaiters > 0)
            deliver(w, c, data->str, data->len);
    } else if (strcasecmp(kind, "subscribe") == 0) {
        if (c->sub == HL_SUB_PENDING) c->sub = HL_SUB_LIVE;
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
    (void)ud;
    c->sub = HL_SUB_NONE;
}

void hl_pubsub_sub_down(hl_rlink *l, void *ud) {
    (void)l;
    hl_worker *w = ud;
    w->ctl_live = 0;
    hl_chantab_foreach(&w->chans, mark_unsubscribed, NULL);
    hl_worker_update_ready(w);
}

void hl_pubsub_cmd_up(hl_rlink *l, void *ud) {
    (void)l;
    hl_worker_update_ready(ud);
}

void hl_pubsub_cmd_down(hl_rlink *l, void *ud) {
    (void)l;
    hl_worker_update_ready(ud);
}

static void on_publish_reply(redisAsyncContext *ac, void *reply_, void *privdata) {
    (void)ac;
    hl_req *r = privdata;
    redisReply *reply = reply_;
    r->redis_pending = 0;
    if (r->orphaned) {
        /* The client went away; the request was kept only for us. */
        hl_buf_free(&r->body);
        free(r);
        return;
    }
    if (r->state != HL_REQ_PUBLISHING) return; /* the deadline answered already */
    if (reply == NULL) {
        hl_http_answer_error(r, 503, "redis_unavailable",
                             "the Redis connection was lost; the message may not have been sent");
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        hl_warn("PUBLISH to '%s' failed: %.*s", r->channel, (int)reply->len, reply->str);
        hl_http_answer_error(r, 503, "redis_error", reply->str);
        return;
    }
    hl_buf b;
    hl_buf_init(&b);
    hl_buf_puts(&b, "{\"channel\":");
    hl_json_string(&b, r->channel, strlen(r->channel));
    hl_buf_printf(&b, ",\"subscribers\":%lld}",
                  reply->type == REDIS_REPLY_INTEGER ? reply->integer : 0);
    struct MHD_Response *resp =
        b.oom ? NULL : hl_http_response(r->w, r->origin, "application/json", b.data, b.len);
    hl_buf_free(&b);
    hl_http_answer_response(r, resp, 201);
}

int hl_pubsub_publish(hl_worker *w, hl_req *r) {
    const char *data = r->body.data ? r->body.data : "";
    int rc = redisAsyncCommand(w->cmd.ac, on_publish_reply, r, "PUBLISH %b%s %b",
                               w->cfg->redis_prefix, w->prefix_len, r->channel, data, r->body.len);
    if (rc != REDIS_OK) return HL_ERR;
    r->redis_pending = 1;
    return HL_OK;
}

static void answer_waiters(hl_chan *c, void *ud) {
    (void)ud;
    while (c->waiters) {
        hl_req *r = c->waiters;
        hl_pubsub_unwait(r);
        hl_http_answer_empty(r);
    }
}

void hl_pubsub_answer_all(hl_worker *w) {
    hl_chantab_foreach(&w->chans, answer_waiters, NULL);
}

static void free_chan(hl_chan *c, void *ud) {
    chan_remove(ud, c);
}

void hl_pubsub_free(hl_worker *w) {
    hl_chantab_foreach(&w->chans, free_chan, w);
}

#include "hl_rlink.h"

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hl_common.h"
#include "hl_log.h"

static void link_connect(hl_rlink *l);

/* The next reconnect delay: min * 2^failures, capped at max, with +-25%
 * jitter so that the workers of many nodes do not reconnect in step after
 * a Redis restart. */
static int backoff_ms(const hl_rlink *l) {
    long d = l->cfg->redis_reconnect_min_ms;
    for (int i = 1; i < l->failures && d < l->cfg->redis_reconnect_max_ms; i++)
        d *= 2;
    if (d > l->cfg->redis_reconnect_max_ms) d = l->cfg->redis_reconnect_max_ms;
    long jitter = d / 4;
    if (jitter > 0) d += (random() % (2 * jitter + 1)) - jitter;
    return d < 1 ? 1 : (int)d;
}

static void arm_timer(hl_rlink *l, int ms) {
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(l->timer, &tv);
}

static void schedule_reconnect(hl_rlink *l, const char *why) {
    l->failures++;
    int ms = backoff_ms(l);
    /* The first failure of a run is worth a warning; the retries that
     * follow would only repeat it. */
    if (l->failures == 1)
        hl_warn("redis %s link to %s:%d down: %s; reconnecting", l->name, l->cfg->redis_host,
                l->cfg->redis_port, why);
    else
        hl_debug("redis %s link: attempt %d failed: %s; next in %d ms", l->name, l->failures, why,
                 ms);
    arm_timer(l, ms);
}

static void on_timer(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    hl_rlink *l = arg;
    if (l->ac != NULL && !l->connected) {
        /* The connect timed out. Freeing a context that never connected
         * calls neither onConnect nor onDisconnect. */
        redisAsyncContext *ac = l->ac;
        l->ac = NULL;
        redisAsyncFree(ac);
        schedule_reconnect(l, "connect timed out");
        return;
    }
    if (l->ac == NULL && !l->stopping) link_connect(l);
}

/* Closes a connection the link no longer trusts; on_disconnect then
 * reports it down and schedules the reconnect. Never called from inside a
 * hiredis callback. */
static void drop(hl_rlink *l, const char *why) {
    if (l->ac == NULL) return;
    l->drop_why = why;
    redisAsyncFree(l->ac); /* runs on_disconnect */
    l->drop_why = NULL;
}

void hl_rlink_reconnect(hl_rlink *l, const char *why) {
    drop(l, why);
}

/* A subscribed hiredis 0.14 context files the callback of every PING
 * under sub.invalid, where only an error reply would take it off again:
 * one leaked entry per heartbeat. Each pong takes one off (hiredis 0.14
 * allocates callbacks with plain malloc). */
static void forget_ping_callback(redisAsyncContext *ac) {
    redisCallback *cb = ac->sub.invalid.head;
    if (cb == NULL) return;
    ac->sub.invalid.head = cb->next;
    if (cb->next == NULL) ac->sub.invalid.tail = NULL;
    free(cb);
}

static void on_hb_reply(redisAsyncContext *ac, void *reply_, void *privdata) {
    hl_rlink *l = privdata;
    const redisReply *reply = reply_;
    if (reply == NULL) return;
    l->hb_unanswered = 0;
    if (l->hb_pattern && reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
        reply->element[0]->type == REDIS_REPLY_STRING &&
        strcasecmp(reply->element[0]->str, "pong") == 0)
        forget_ping_callback(ac);
}

static void on_hb_timer(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    hl_rlink *l = arg;
    if (!hl_rlink_is_up(l)) return;
    if (l->hb_unanswered >= HL_RLINK_HB_MISSES) {
        hl_warn("redis %s link to %s:%d: no answer to %d heartbeats in a row; closing it", l->name,
                l->cfg->redis_host, l->cfg->redis_port, l->hb_unanswered);
        drop(l, "heartbeat not answered");
        return;
    }
    if (l->hb_pattern)
        redisAsyncCommand(l->ac, NULL, NULL, "PING %s", l->hb_pattern);
    else
        redisAsyncCommand(l->ac, on_hb_reply, l, "PING");
    l->hb_unanswered++;
}

static void on_auth_reply(redisAsyncContext *ac, void *r, void *privdata) {
    (void)privdata;
    redisReply *reply = r;
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        hl_error("redis rejected AUTH/SELECT: %.*s", (int)reply->len, reply->str);
        redisAsyncDisconnect(ac);
    }
}

static void on_connect(const redisAsyncContext *cac, int status) {
    hl_rlink *l = cac->data;
    if (l == NULL) return;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback returns. */
        char why[128];
        snprintf(why, sizeof(why), "%s", cac->errstr ? cac->errstr : "connect failed");
        l->ac = NULL;
        evtimer_del(l->timer);
        if (!l->stopping) schedule_reconnect(l, why);
        return;
    }
    evtimer_del(l->timer);
    l->connected = 1;
    if (l->failures > 0 || l->reconnects > 0) {
        hl_info("redis %s link to %s:%d is back", l->name, l->cfg->redis_host, l->cfg->redis_port);
    }
    l->failures = 0;
    l->hb_unanswered = 0;
    /* Before on_up: the pattern's callback must exist before any PING. */
    if (l->hb_pattern) redisAsyncCommand(l->ac, on_hb_reply, l, "PSUBSCRIBE %s", l->hb_pattern);
    int ms = l->cfg->redis_heartbeat_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(l->hb_timer, &tv);
    l->on_up(l, l->ud);
}

static void on_disconnect(const redisAsyncContext *cac, int status) {
    (void)status;
    hl_rlink *l = cac->data;
    if (l == NULL) return;
    char why[128];
    snprintf(why, sizeof(why), "%s",
             l->drop_why                     ? l->drop_why
             : cac->errstr && cac->errstr[0] ? cac->errstr
                                             : "connection closed");
    l->ac = NULL;
    l->connected = 0;
    evtimer_del(l->hb_timer);
    if (l->stopping) return;
    l->reconnects++;
    l->on_down(l, l->ud);
    schedule_reconnect(l, why);
}

static void link_connect(hl_rlink *l) {
    redisAsyncContext *ac = redisAsyncConnect(l->cfg->redis_host, l->cfg->redis_port);
    if (ac == NULL) {
        schedule_reconnect(l, "out of memory");
        return;
    }
    if (ac->err) {
        char why[128];
        snprintf(why, sizeof(why), "%s", ac->errstr);
        redisAsyncFree(ac);
        schedule_reconnect(l, why);
        return;
    }
    ac->data = l;
    l->ac = ac;
    redisLibeventAttach(ac, l->base);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    /* Setting the connect callback also arms the first write event. */
    redisAsyncSetConnectCallback(ac, on_connect);
    /* Queued now, these go out first once the socket connects, ahead of
     * anything on_up sends. */
    if (l->cfg->redis_password[0])
        redisAsyncCommand(ac, on_auth_reply, NULL, "AUTH %s", l->cfg->redis_password);
    if (l->cfg->redis_db != 0)
        redisAsyncCommand(ac, on_auth_reply, NULL, "SELECT %d", l->cfg->redis_db);
    arm_timer(l, l->cfg->redis_connect_timeout_ms);
}

int hl_rlink_init(hl_rlink *l, const char *name, const hl_config *cfg, struct event_base *base,
                  hl_rlink_cb *on_up, hl_rlink_cb *on_down, void *ud) {
    memset(l, 0, sizeof(*l));
    l->name = name;
    l->cfg = cfg;
    l->base = base;
    l->on_up = on_up;
    l->on_down = on_down;
    l->ud = ud;
    l->timer = evtimer_new(base, on_timer, l);
    l->hb_timer = event_new(base, -1, EV_PERSIST, on_hb_timer, l);
    return l->timer && l->hb_timer ? HL_OK : HL_ERR;
}

void hl_rlink_set_pattern(hl_rlink *l, const char *pattern) {
    l->hb_pattern = pattern;
}

void hl_rlink_start(hl_rlink *l) {
    link_connect(l);
}

int hl_rlink_is_up(const hl_rlink *l) {
    return l->ac != NULL && l->connected;
}

void hl_rlink_stop(hl_rlink *l) {
    l->stopping = 1;
    if (l->ac != NULL) {
        redisAsyncContext *ac = l->ac;
        l->ac = NULL;
        redisAsyncFree(ac);
    }
    if (l->timer) {
        event_free(l->timer);
        l->timer = NULL;
    }
    if (l->hb_timer) {
        event_free(l->hb_timer);
        l->hb_timer = NULL;
    }
}

#include "hl_rlink.h"

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <stdlib.h>
#include <string.h>

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
    l->on_up(l, l->ud);
}

static void on_disconnect(const redisAsyncContext *cac, int status) {
    (void)status;
    hl_rlink *l = cac->data;
    if (l == NULL) return;
    char why[128];
    snprintf(why, sizeof(why), "%s",
             cac->errstr && cac->errstr[0] ? cac->errstr : "connection closed");
    l->ac = NULL;
    l->connected = 0;
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
    return l->timer ? HL_OK : HL_ERR;
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
}

#include "hl_rlink.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hl_common.h"
#include "hl_log.h"
#include "hl_rconn.h"
#include "hl_rreply.h"

static void link_connect(hl_rlink *l);
static void drop(hl_rlink *l, const char *why);

static void arm_timer(hl_rlink *l, int ms) {
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(l->timer, &tv);
}

static void schedule_reconnect(hl_rlink *l, const char *why) {
    l->failures++;
    arm_timer(l, hl_rconn_retry_ms(l->cfg, l->name, l->host, l->port, l->failures, why));
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
    if (l->ac != NULL && !l->up) {
        /* Connected, but ROLE did not answer in time. */
        drop(l, "no answer to ROLE in time");
        return;
    }
    if (l->ac == NULL && !l->stopping && !hl_sentinel_busy(&l->ask)) link_connect(l);
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

static void on_soon(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    hl_rlink *l = arg;
    /* Only the connection it was asked about: a newer one is innocent. */
    if (l->ac != NULL && l->ac == l->soon_ac) drop(l, l->soon_why);
    l->soon_ac = NULL;
}

void hl_rlink_reconnect(hl_rlink *l, const char *why) {
    if (l->ac == NULL || l->stopping) return;
    l->soon_ac = l->ac;
    l->soon_why = why;
    event_active(l->soon, EV_TIMEOUT, 0);
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
                l->host, l->port, l->hb_unanswered);
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

/* The link is up: heartbeats start and the owner may send. */
static void go_up(hl_rlink *l) {
    evtimer_del(l->timer);
    if (l->failures > 0 || l->reconnects > 0)
        hl_info("redis %s link to %s:%d is back", l->name, l->host, l->port);
    l->failures = 0;
    l->hb_unanswered = 0;
    l->up = 1;
    /* Before on_up: the pattern's callback must exist before any PING. */
    if (l->hb_pattern) redisAsyncCommand(l->ac, on_hb_reply, l, "PSUBSCRIBE %s", l->hb_pattern);
    int ms = l->cfg->redis_heartbeat_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(l->hb_timer, &tv);
    l->on_up(l, l->ud);
}

/* Sentinel mode: the server the sentinels named must say it is the
 * master, or their view is stale (a failover under way, a demoted master
 * back as a replica). */
static void on_role(redisAsyncContext *ac, void *reply_, void *privdata) {
    hl_rlink *l = privdata;
    const redisReply *reply = reply_;
    if (reply == NULL || l->ac != ac) return; /* lost: on_disconnect follows */
    hl_redis_role role = hl_rreply_role(reply);
    if (role == HL_ROLE_MASTER) {
        l->confirmed = 1;
        go_up(l);
        return;
    }
    l->drop_why = role == HL_ROLE_REPLICA ? "the server the sentinels named is a replica, not the "
                                            "master (ROLE); asking them again"
                  : reply->type == REDIS_REPLY_ERROR ? "ROLE was refused"
                                                     : "ROLE did not say master";
    redisAsyncDisconnect(ac); /* on_disconnect, after this returns */
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
    l->connected = 1;
    /* Sentinel mode waits for ROLE, under the connect timeout still. */
    if (!l->sentinel) go_up(l);
}

static void on_disconnect(const redisAsyncContext *cac, int status) {
    (void)status;
    hl_rlink *l = cac->data;
    if (l == NULL) return;
    char why[200];
    snprintf(why, sizeof(why), "%s",
             l->drop_why                     ? l->drop_why
             : cac->errstr && cac->errstr[0] ? cac->errstr
                                             : "connection closed");
    l->drop_why = NULL;
    l->ac = NULL;
    l->connected = 0;
    evtimer_del(l->hb_timer);
    evtimer_del(l->timer);
    int was_up = l->up;
    l->up = 0;
    if (l->stopping) return;
    if (was_up) {
        l->reconnects++;
        l->on_down(l, l->ud);
    }
    schedule_reconnect(l, why);
}

/* Connects to l->host:l->port. */
static void connect_to(hl_rlink *l) {
    char why[200];
    redisAsyncContext *ac =
        hl_rconn_open(l->base, l->host, l->port, l, on_connect, on_disconnect, why, sizeof(why));
    if (ac == NULL) {
        schedule_reconnect(l, why);
        return;
    }
    l->ac = ac;
    /* Queued now, these go out first once the socket connects, ahead of
     * anything on_up sends. */
    if (l->cfg->redis_password[0])
        redisAsyncCommand(ac, on_auth_reply, NULL, "AUTH %s", l->cfg->redis_password);
    if (l->cfg->redis_db != 0)
        redisAsyncCommand(ac, on_auth_reply, NULL, "SELECT %d", l->cfg->redis_db);
    if (l->client_name[0]) redisAsyncCommand(ac, NULL, NULL, "CLIENT SETNAME %s", l->client_name);
    if (l->sentinel) redisAsyncCommand(ac, on_role, l, "ROLE");
    arm_timer(l, l->cfg->redis_connect_timeout_ms);
}

static void on_master_named(void *ud, const char *host, int port, const char *why) {
    hl_rlink *l = ud;
    if (l->stopping) return;
    if (host != NULL) {
        if (l->confirmed && (strcmp(host, l->host) != 0 || port != l->port))
            hl_info("redis %s link: the sentinels name %s:%d as the master (was %s:%d)", l->name,
                    host, port, l->host, l->port);
        if (strcmp(host, l->host) != 0 || port != l->port) l->confirmed = 0;
        snprintf(l->host, sizeof(l->host), "%s", host);
        l->port = port;
        connect_to(l);
        return;
    }
    if (l->confirmed) {
        /* The master may well be where it was: the sentinels may be the
         * ones down. ROLE tells. */
        if (l->failures == 0)
            hl_warn("redis %s link: no sentinel answered (%s); trying the master last confirmed, "
                    "%s:%d",
                    l->name, why, l->host, l->port);
        connect_to(l);
        return;
    }
    char msg[600];
    snprintf(msg, sizeof(msg), "no sentinel named the master: %s", why);
    schedule_reconnect(l, msg);
}

static void link_connect(hl_rlink *l) {
    if (l->sentinel && l->next_port != 0) {
        snprintf(l->host, sizeof(l->host), "%s", l->next_host);
        l->port = l->next_port;
        l->next_port = 0;
        connect_to(l);
        return;
    }
    if (l->sentinel)
        hl_sentinel_start(&l->ask, on_master_named, l);
    else
        connect_to(l);
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
    snprintf(l->host, sizeof(l->host), "%s", cfg->redis_host);
    l->port = cfg->redis_port;
    l->sentinel = strcmp(cfg->redis_mode, "sentinel") == 0;
    if (l->sentinel) {
        /* Until the sentinels name one, logs say where they are. */
        snprintf(l->host, sizeof(l->host), "(the master named %s)", cfg->redis_master_name);
        l->port = 0;
    }
    l->timer = evtimer_new(base, on_timer, l);
    l->hb_timer = event_new(base, -1, EV_PERSIST, on_hb_timer, l);
    l->soon = event_new(base, -1, 0, on_soon, l);
    int ask = hl_sentinel_init(&l->ask, cfg, base);
    return l->timer && l->hb_timer && l->soon && ask == HL_OK ? HL_OK : HL_ERR;
}

void hl_rlink_move(hl_rlink *l, const char *host, int port, const char *why) {
    snprintf(l->next_host, sizeof(l->next_host), "%s", host);
    l->next_port = port;
    if (l->ac != NULL)
        hl_rlink_reconnect(l, why);
    else if (!l->stopping && !hl_sentinel_busy(&l->ask))
        arm_timer(l, 0); /* waiting to reconnect: now */
}

void hl_rlink_set_client_name(hl_rlink *l, const char *name) {
    snprintf(l->client_name, sizeof(l->client_name), "%s", name);
}

void hl_rlink_set_addr(hl_rlink *l, const char *host, int port) {
    snprintf(l->host, sizeof(l->host), "%s", host);
    l->port = port;
}

void hl_rlink_set_pattern(hl_rlink *l, const char *pattern) {
    l->hb_pattern = pattern;
}

void hl_rlink_start(hl_rlink *l) {
    link_connect(l);
}

int hl_rlink_is_up(const hl_rlink *l) {
    return l->ac != NULL && l->up;
}

void hl_rlink_stop(hl_rlink *l) {
    l->stopping = 1;
    hl_sentinel_free(&l->ask);
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
    if (l->soon) {
        event_free(l->soon);
        l->soon = NULL;
    }
}

/* hl_shard.c -- a worker's shards: their links, the library, the
 * epochs, the masters' clocks, ticks, the canary, and reads. What the
 * layers above it (publishing, the slot map) are told goes through the
 * store's hooks.
 *
 * Each shard's subscriber link holds one permanent subscription to the
 * worker's private control channel besides the channels its waiters
 * want: hiredis 0.14 can assert when the last subscription goes away with
 * replies in flight, and the control channel means that never happens. It
 * also carries the ticks (see hl_store_events.tick) and the canary's
 * probes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include "hl_common.h"
#include "hl_log.h"
#include "hl_rlib.h"
#include "hl_rreply.h"
#include "hl_store_int.h"
#include "hl_time.h"

static void send_probe(hl_shard *sh);

/* ---- Shards -------------------------------------------------------------- */

/* Cluster mode: the slot map is asked for soon (hl_scluster.c). */
static void refresh_map(hl_store *s, const char *why) {
    if (s->hooks.refresh) s->hooks.refresh(s, why);
}

hl_shard *hl__shard_of(const hl_store *s, unsigned slot) {
    if (!s->cluster) return s->shard[0];
    unsigned char i = slot < HL_SLOTS ? s->owner[slot] : HL_NO_SHARD;
    return i == HL_NO_SHARD ? NULL : s->shard[i];
}

int hl__shard_can_read(const hl_shard *sh) {
    return sh != NULL && sh->cmd_ready && hl_rlink_is_up(&sh->cmd);
}

static int sub_is_up(const hl_shard *sh) {
    return sh->s->cluster ? hl_slink_is_up(&sh->ssub) : hl_rlink_is_up(&sh->sub);
}

/* Where logs say a shard is: its master in cluster mode, else "Redis". */
static const char *where(const hl_shard *sh, char *buf, size_t len) {
    if (!sh->s->cluster) return "Redis";
    snprintf(buf, len, "Redis at %s:%d", sh->host, sh->port);
    return buf;
}

/* ---- Clock, epoch, trouble ---------------------------------------------- */

static void note_time(hl_shard *sh, long long ms) {
    sh->redis_ms = ms;
    sh->redis_at = hl_mono_ms();
}

static long long shard_now(const hl_shard *sh) {
    return sh->redis_ms > 0 ? sh->redis_ms + (hl_mono_ms() - sh->redis_at) : 0;
}

long long hl_store_redis_now(const hl_store *s, long slot) {
    if (slot >= 0) {
        const hl_shard *sh = hl__shard_of(s, (unsigned)slot);
        return sh ? shard_now(sh) : 0;
    }
    for (int i = 0; i < HL_MAX_SHARDS; i++)
        if (s->shard[i] && s->shard[i]->redis_ms > 0) return shard_now(s->shard[i]);
    return 0;
}

unsigned hl_store_slot(const hl_store *s, const char *name, size_t len) {
    if (!s->cluster) return 0;
    char ch[HL_RKEY_MAX];
    hl_rkeys_channel(&s->keys, name, len, ch);
    return hl_slot_of(ch, strlen(ch));
}

uint64_t hl_store_epoch(const hl_store *s, unsigned slot) {
    if (!s->cluster) return s->epoch;
    return slot < HL_SLOTS ? s->slot_epoch[slot] : 0;
}

int hl_store_can_read(const hl_store *s, unsigned slot) {
    return hl__shard_can_read(hl__shard_of(s, slot));
}

/* A random nonzero epoch to propose when Redis has none. */
static void new_proposal(hl_store *s) {
    uint64_t e = 0;
    if (getrandom(&e, sizeof(e), 0) != (ssize_t)sizeof(e)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        e = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 16);
    }
    snprintf(s->epoch_mine, sizeof(s->epoch_mine), "%llx", (unsigned long long)(e ? e : 1));
}

/* Redis reported epoch e for slot's data (-1: the one data set). */
static void adopt_epoch(hl_store *s, long slot, uint64_t e) {
    uint64_t *at = slot < 0 ? &s->epoch : &s->slot_epoch[slot];
    if (*at == e) return;
    if (*at != 0) {
        char sl[32] = "";
        if (slot >= 0) snprintf(sl, sizeof(sl), " of slot %ld", slot);
        hl_warn("worker %d: Redis's data set%s changed (epoch %llx, was %llx): history before it "
                "is gone; clients from before are told they missed messages",
                s->worker, sl, (unsigned long long)e, (unsigned long long)*at);
    }
    uint64_t was = *at;
    *at = e;
    /* Were Redis to lose its data again, this worker's proposal would be
     * the first to be stored; it must not be the epoch clients hold now,
     * or their old cursors would pass for current ones. */
    if (hl_rreply_epoch(s->epoch_mine, strlen(s->epoch_mine)) == e) new_proposal(s);
    /* The first epoch known of a slot replaces nothing: no channel of it
     * could be synced before. */
    if (was != 0) s->ev.epoch(s->ud, slot, e);
}

static void retry_later(hl_store *s) {
    if (evtimer_pending(s->retry, NULL)) return;
    struct timeval tv = hl_ms_tv(HL_RETRY_MS);
    evtimer_add(s->retry, &tv);
}

/* Redis refused something: the first refusal after good replies is a
 * warning, the ones that follow (every channel, every retry while Redis
 * loads its data) only debug lines. */
void hl__trouble(hl_shard *sh, const char *what, const redisReply *reply) {
    const char *why = reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply";
    char w[300];
    if (sh->trouble++ == 0)
        hl_warn("worker %d: %s: %s: %s; trying again every %d ms until it answers", sh->s->worker,
                where(sh, w, sizeof(w)), what, why, HL_RETRY_MS);
    else
        hl_debug("worker %d: %s: %s", sh->s->worker, what, why);
    retry_later(sh->s);
}

void hl__no_trouble(hl_shard *sh) {
    if (sh->trouble == 0) return;
    char w[300];
    hl_info("worker %d: %s answers again (after %d refusals)", sh->s->worker,
            where(sh, w, sizeof(w)), sh->trouble);
    sh->trouble = 0;
}

void hl__refused(hl_shard *sh, const char *what, const redisReply *reply) {
    if (reply == NULL) return; /* the link went down: it reconnects by itself */
    hl_store *s = sh->s;
    if (hl_rreply_readonly(reply) && sh->cmd.sentinel) {
        /* A master demoted under the links: the sentinels know the new one. */
        if (hl_rlink_is_up(&sh->cmd))
            hl_warn("worker %d: Redis at %s:%d is a read-only replica now (the master was "
                    "demoted); asking the sentinels for the new master",
                    s->worker, sh->cmd.host, sh->cmd.port);
        hl_rlink_reconnect(&sh->cmd, "the server became a read-only replica");
        return;
    }
    if (hl_rreply_library_missing(reply)) {
        /* Many replies may fail alike; one reload is enough. */
        if (sh->cmd_ready && hl_rlink_is_up(&sh->cmd)) {
            char w[300];
            hl_warn("worker %d: the Redis Function library is gone from %s; loading it again",
                    s->worker, where(sh, w, sizeof(w)));
            hl__load_library(sh);
        }
        return;
    }
    hl__trouble(sh, what, reply);
}

static void on_retry(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    hl_store *s = arg;
    int ready = 0;
    for (int i = 0; i < HL_MAX_SHARDS; i++) {
        hl_shard *sh = s->shard[i];
        if (sh == NULL || !hl_rlink_is_up(&sh->cmd)) continue; /* cmd_up starts over */
        if (!sh->cmd_ready) {
            if (!sh->loading) hl__load_library(sh);
            continue;
        }
        ready = 1;
    }
    if (ready) s->ev.ready(s->ud);
}

/* Why shard sh cannot serve now, or NULL. */
static const char *shard_not_ready(const hl_store *s, const hl_shard *sh) {
    if (sh->canary_failed) return s->canary_why;
    if (!sub_is_up(sh)) return "the Redis subscriber connection is down; reconnecting";
    if (!hl_rlink_is_up(&sh->cmd)) return "the Redis command connection is down; reconnecting";
    if (!sh->cmd_ready) return "loading holdline's Function library into Redis";
    if (!sh->ctl_live) return "waiting for Redis to confirm the subscriptions";
    if (!sh->canary_ok) return "waiting for the first canary probe to come back through Redis";
    return NULL;
}

const char *hl__shard_not_ready(const hl_shard *sh) {
    return shard_not_ready(sh->s, sh);
}

/* ---- The canary ---------------------------------------------------------- */

/* A link can be up and deliver nothing (a proxy that stopped forwarding,
 * a connection to a Redis that no longer gets the publishes, a replica
 * keeping stale shard subscriptions): the heartbeat's PING is answered
 * and pub/sub is silent. So each worker publishes a probe round each
 * shard's control channel, as the ticks go, and expects it back. */
static void send_probe(hl_shard *sh) {
    if (!sh->ctl_live || !hl_rlink_is_up(&sh->cmd)) return;
    redisAsyncCommand(sh->cmd.ac, NULL, NULL, "%s %s probe:%llu",
                      sh->s->cluster ? "SPUBLISH" : "PUBLISH", sh->ctl, ++sh->probe_seq);
    if (sh->probe_out == 0) sh->probe_out = hl_mono_ms();
}

static void probe_back(hl_shard *sh) {
    hl_store *s = sh->s;
    sh->probe_out = 0;
    if (sh->canary_ok) return;
    if (sh->canary_failed)
        hl_info("worker %d: canary probes come back through Redis again", s->worker);
    sh->canary_ok = 1;
    sh->canary_failed = 0;
    int all = 1;
    for (int i = 0; i < HL_MAX_SHARDS; i++)
        if (s->shard[i] && !s->shard[i]->canary_ok) all = 0;
    hl_metric_set(&s->m->canary_ok, all);
    s->ev.state(s->ud);
}

static void sub_reconnect(hl_shard *sh, const char *why) {
    if (sh->s->cluster)
        hl_slink_reconnect(&sh->ssub, why);
    else
        hl_rlink_reconnect(&sh->sub, why);
}

static void canary_shard(hl_shard *sh, long long now) {
    hl_store *s = sh->s;
    if (sh->probe_out > 0 && now - sh->probe_out >= s->cfg->redis_canary_timeout_ms &&
        sub_is_up(sh) && hl_rlink_is_up(&sh->cmd)) {
        char w[300];
        if (!sh->canary_failed)
            hl_warn("worker %d: canary probes published through %s have not come back on the "
                    "subscriber link for %lld ms while both links are up; reconnecting it",
                    s->worker, where(sh, w, sizeof(w)), now - sh->probe_out);
        sh->canary_ok = 0;
        sh->canary_failed = 1;
        sh->probe_out = 0;
        hl_metric_set(&s->m->canary_ok, 0);
        hl_metric_add(&s->m->canary_failures, 1);
        s->ev.state(s->ud);
        /* The waiters' channels are subscribed again and re-read from
         * their cursors when it is back (sub_down, sub_up). */
        sub_reconnect(sh, "canary probes did not come back");
        return;
    }
    send_probe(sh);
}

static void on_canary(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    hl_store *s = arg;
    long long now = hl_mono_ms();
    for (int i = 0; i < HL_MAX_SHARDS; i++)
        if (s->shard[i] && !s->shard[i]->retired) canary_shard(s->shard[i], now);
}

/* ---- Subscriber links ------------------------------------------------- */

/* holdline_redis_up: a kind of link counts as up when every shard's is. */
static void link_metrics(hl_store *s) {
    int sub = 1, cmd = 1, any = 0;
    for (int i = 0; i < HL_MAX_SHARDS; i++) {
        hl_shard *sh = s->shard[i];
        if (sh == NULL || sh->retired) continue;
        any = 1;
        sub &= sub_is_up(sh);
        cmd &= hl_rlink_is_up(&sh->cmd);
    }
    hl_metric_set(&s->m->redis_up[HL_LINK_SUBSCRIBER], any && sub);
    hl_metric_set(&s->m->redis_up[HL_LINK_COMMAND], any && cmd);
}

/* What came on sh's control channel (kind: "message" or "smessage"). */
static void on_ctl(hl_shard *sh, int confirmed, const char *p, size_t n) {
    hl_store *s = sh->s;
    long long ms;
    if (confirmed) {
        sh->ctl_live = 1;
        send_probe(sh); /* readiness waits for the first to come back */
        s->ev.state(s->ud);
    } else if (p != NULL && n > 6 && strncmp(p, "probe:", 6) == 0) {
        probe_back(sh);
    } else if (p != NULL && n > 5 && strncmp(p, "tick:", 5) == 0 &&
               (ms = strtoll(p + 5, NULL, 10)) > 0) {
        note_time(sh, ms);
        s->ev.tick(s->ud, sh->sub_gen, ms);
    }
}

static void on_sub_reply(redisAsyncContext *ac, void *reply_, void *privdata) {
    (void)ac;
    hl_shard *sh = privdata;
    hl_store *s = sh->s;
    redisReply *reply = reply_;
    /* NULL: the link is going down; sub_down follows. */
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = reply->element[0]->str;
    const redisReply *ch = reply->element[1];
    const redisReply *data = reply->element[2];
    int message = strcasecmp(kind, "message") == 0 && data->type == REDIS_REPLY_STRING;
    if (strcmp(ch->str, sh->ctl) == 0) {
        if (strcasecmp(kind, "subscribe") == 0)
            on_ctl(sh, 1, NULL, 0);
        else if (message)
            on_ctl(sh, 0, data->str, data->len);
        return;
    }
    size_t len;
    const char *name = hl_rkeys_strip(&s->keys, ch->str, ch->len, &len);
    if (name == NULL) return;
    if (message) {
        s->ev.message(s->ud, sh->sub_gen, name, len, data->str, data->len);
    } else if (strcasecmp(kind, "subscribe") == 0) {
        s->ev.subscribed(s->ud, sh->sub_gen, name, len);
    } else if (strcasecmp(kind, "unsubscribe") == 0) {
        s->ev.unsubscribed(s->ud, sh->sub_gen, name, len, HL_UNSUB_ASKED);
    }
}

/* The shard whose subscriber connection has link number link, or NULL. */
static hl_shard *shard_of_link(const hl_store *s, unsigned link) {
    for (int i = 0; i < HL_MAX_SHARDS; i++)
        if (s->shard[i] && s->shard[i]->sub_gen == link && link != 0) return s->shard[i];
    return NULL;
}

unsigned hl_store_subscribe(hl_store *s, const char *name, size_t len) {
    hl_shard *sh = hl__shard_of(s, hl_store_slot(s, name, len));
    if (sh == NULL || sh->retired || !sub_is_up(sh)) return 0;
    char ch[HL_RKEY_MAX];
    hl_rkeys_channel(&s->keys, name, len, ch);
    if (s->cluster) return hl_slink_subscribe(&sh->ssub, ch, strlen(ch)) == HL_OK ? sh->sub_gen : 0;
    /* hiredis keeps one callback per channel and routes that channel's
     * messages to it, so every SUBSCRIBE must name on_sub_reply. */
    redisAsyncCommand(sh->sub.ac, on_sub_reply, sh, "SUBSCRIBE %s", ch);
    return sh->sub_gen;
}

int hl_store_unsubscribe(hl_store *s, unsigned link, const char *name, size_t len) {
    hl_shard *sh = shard_of_link(s, link);
    if (sh == NULL || !sub_is_up(sh)) return HL_ERR;
    char ch[HL_RKEY_MAX];
    hl_rkeys_channel(&s->keys, name, len, ch);
    if (s->cluster) return hl_slink_unsubscribe(&sh->ssub, ch, strlen(ch));
    redisAsyncCommand(sh->sub.ac, NULL, NULL, "UNSUBSCRIBE %s", ch);
    return HL_OK;
}

/* A subscriber connection came up (both kinds). */
static void sub_went_up(hl_shard *sh) {
    hl_store *s = sh->s;
    if (sh->sub_ever) hl_metric_add(&s->m->redis_reconnects, 1);
    sh->sub_ever = 1;
    sh->sub_gen = ++s->links;
    link_metrics(s);
    if (s->cluster) {
        if (sh->ctl[0]) hl_slink_subscribe(&sh->ssub, sh->ctl, strlen(sh->ctl));
    } else
        redisAsyncCommand(sh->sub.ac, on_sub_reply, sh, "SUBSCRIBE %s", sh->ctl);
    s->ev.sub_up(s->ud);
    s->ev.state(s->ud);
}

static void sub_went_down(hl_shard *sh) {
    hl_store *s = sh->s;
    sh->ctl_live = 0;
    sh->probe_out = 0; /* nothing can come back now */
    unsigned link = sh->sub_gen;
    sh->sub_gen = 0;
    link_metrics(s);
    s->ev.sub_down(s->ud, link);
    if (s->cluster) refresh_map(s, "a subscriber link was lost");
    s->ev.state(s->ud);
}

static void sub_up(hl_rlink *l, void *ud) {
    (void)l;
    sub_went_up(ud);
}

static void sub_down(hl_rlink *l, void *ud) {
    (void)l;
    sub_went_down(ud);
}

static void ssub_up(hl_slink *l, void *ud) {
    (void)l;
    sub_went_up(ud);
}

static void ssub_down(hl_slink *l, void *ud) {
    (void)l;
    sub_went_down(ud);
}

static void ssub_subscribed(hl_slink *l, void *ud, const char *ch, size_t n) {
    (void)l;
    hl_shard *sh = ud;
    hl_store *s = sh->s;
    if (n == strlen(sh->ctl) && memcmp(ch, sh->ctl, n) == 0) {
        on_ctl(sh, 1, NULL, 0);
        return;
    }
    size_t len;
    const char *name = hl_rkeys_strip(&s->keys, ch, n, &len);
    if (name) s->ev.subscribed(s->ud, sh->sub_gen, name, len);
}

static void ssub_message(hl_slink *l, void *ud, const char *ch, size_t n, const char *p,
                         size_t plen) {
    (void)l;
    hl_shard *sh = ud;
    hl_store *s = sh->s;
    if (n == strlen(sh->ctl) && memcmp(ch, sh->ctl, n) == 0) {
        on_ctl(sh, 0, p, plen);
        return;
    }
    size_t len;
    const char *name = hl_rkeys_strip(&s->keys, ch, n, &len);
    if (name) s->ev.message(s->ud, sh->sub_gen, name, len, p, plen);
}

/* Redis ended a shard subscription: ours (an answer), or on its own
 * (the slot moved away, or this master was failed over). */
static void ssub_unsubscribed(hl_slink *l, void *ud, const char *ch, size_t n, int solicited) {
    (void)l;
    hl_shard *sh = ud;
    hl_store *s = sh->s;
    if (n == strlen(sh->ctl) && memcmp(ch, sh->ctl, n) == 0) {
        /* The control channel's slot moved: another is picked once the
         * map says which slots this master serves now. */
        sh->ctl_live = 0;
        refresh_map(s, "the control channel's slot moved");
        return;
    }
    size_t len;
    const char *name = hl_rkeys_strip(&s->keys, ch, n, &len);
    if (name == NULL) return;
    if (solicited) {
        s->ev.unsubscribed(s->ud, sh->sub_gen, name, len, HL_UNSUB_ASKED);
        return;
    }
    hl_debug("worker %d: Redis at %s:%d ended the subscription of '%.*s' (its slot moved)",
             s->worker, sh->host, sh->port, (int)len, name);
    s->ev.unsubscribed(s->ud, sh->sub_gen, name, len, HL_UNSUB_LOST);
    refresh_map(s, "a master ended a subscription");
}

/* An SSUBSCRIBE refused: MOVED says where the slot is now. */
static void ssub_refused(hl_slink *l, void *ud, const char *ch, size_t n, const char *err) {
    (void)l;
    hl_shard *sh = ud;
    hl_store *s = sh->s;
    if (n == strlen(sh->ctl) && memcmp(ch, sh->ctl, n) == 0) {
        sh->ctl_live = 0;
        refresh_map(s, "the control channel was refused");
        return;
    }
    size_t len;
    const char *name = hl_rkeys_strip(&s->keys, ch, n, &len);
    if (name == NULL) return;
    hl_debug("worker %d: Redis at %s:%d refused the subscription of '%.*s': %s", s->worker,
             sh->host, sh->port, (int)len, name, err);
    s->ev.unsubscribed(s->ud, sh->sub_gen, name, len, HL_UNSUB_LOST);
    refresh_map(s, "a subscription was refused");
}

static const hl_slink_events ssub_events = {
    ssub_up, ssub_down, ssub_subscribed, ssub_unsubscribed, ssub_message, ssub_refused,
};

/* ---- Ticks ------------------------------------------------------------- */

/* A master's clock T goes round the shard's control channel: when it
 * comes back, every message that master published before T has been
 * seen, since pub/sub keeps its order across channels on one
 * connection. */
static void on_tick_time(redisAsyncContext *ac, void *reply_, void *privdata) {
    (void)ac;
    hl_shard *sh = privdata;
    long long ms;
    if (hl_rreply_time(reply_, &ms) != HL_OK || !hl_rlink_is_up(&sh->cmd)) return;
    redisAsyncCommand(sh->cmd.ac, NULL, NULL, "%s %s tick:%lld",
                      sh->s->cluster ? "SPUBLISH" : "PUBLISH", sh->ctl, ms);
}

static void on_tick(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    hl_store *s = arg;
    for (int i = 0; i < HL_MAX_SHARDS; i++) {
        hl_shard *sh = s->shard[i];
        if (sh == NULL || sh->retired || !sh->cmd_ready || !sh->ctl_live ||
            !hl_rlink_is_up(&sh->cmd))
            continue;
        redisAsyncCommand(sh->cmd.ac, on_tick_time, sh, "TIME");
    }
}

/* ---- Command links: the library and the epoch ---------------------------- */

static void library_ready(hl_shard *sh) {
    hl_store *s = sh->s;
    hl__no_trouble(sh);
    sh->cmd_ready = 1;
    if (s->hooks.ready) s->hooks.ready(s);
    s->ev.ready(s->ud);
    s->ev.state(s->ud);
}

static void on_library_loaded(redisAsyncContext *ac, void *reply_, void *privdata) {
    (void)ac;
    hl_shard *sh = privdata;
    redisReply *reply = reply_;
    if (reply == NULL) return;
    if (reply->type != REDIS_REPLY_ERROR) {
        /* Cluster mode learns each slot's epoch with its reads. */
        if (sh->s->cluster) {
            sh->loading = 0;
            library_ready(sh);
        }
        return;
    }
    /* A Redis loading its data set refuses everything for a while; the
     * epoch read that follows (or, in cluster mode, the retry) reports
     * that and retries. */
    if (strncmp(reply->str, "LOADING", 7) == 0 || strncmp(reply->str, "BUSY", 4) == 0) {
        if (sh->s->cluster) {
            sh->loading = 0;
            hl__trouble(sh, "cannot load the Function library", reply);
        }
        return;
    }
    char w[300];
    if (hl_rreply_readonly(reply)) {
        /* A master turned replica (a failover, or the old master back):
         * the map, or the sentinels, say where the master is now. */
        hl_info("worker %d: %s is a replica now; finding the master", sh->s->worker,
                where(sh, w, sizeof(w)));
        if (sh->s->cluster) {
            sh->loading = 0;
            refresh_map(sh->s, "a master became a replica");
        } else {
            hl__refused(sh, "cannot load the Function library", reply);
        }
        return;
    }
    hl_error("worker %d: %s refused holdline's Function library (Redis 7 or later is needed): %s",
             sh->s->worker, where(sh, w, sizeof(w)), reply->str);
    if (sh->s->cluster) {
        sh->loading = 0;
        hl__trouble(sh, "cannot load the Function library", reply);
    }
}

static void on_epoch(redisAsyncContext *ac, void *reply_, void *privdata) {
    (void)ac;
    hl_shard *sh = privdata;
    hl_store *s = sh->s;
    redisReply *reply = reply_;
    sh->loading = 0;
    if (reply == NULL) return;
    if (reply->type == REDIS_REPLY_NIL) {
        adopt_epoch(s, -1, hl_rreply_epoch(s->epoch_mine, strlen(s->epoch_mine)));
    } else if (reply->type == REDIS_REPLY_STRING) {
        adopt_epoch(s, -1, hl_rreply_epoch(reply->str, reply->len));
    } else {
        hl__trouble(sh, "cannot load the Function library and read the epoch key", reply);
        return;
    }
    library_ready(sh);
}

/* Loads the library (then, outside cluster mode, learns the epoch);
 * commands on one connection run in order, so nothing sent after this
 * finds the library missing. */
void hl__load_library(hl_shard *sh) {
    hl_store *s = sh->s;
    hl_buf b;
    hl_buf_init(&b);
    hl_rlib_source(&b, s->cfg->history_length, (long long)s->cfg->history_ttl * 1000, s->cluster);
    if (b.oom) {
        hl_error("worker %d: out of memory building the Function library", s->worker);
        hl_buf_free(&b);
        return;
    }
    sh->cmd_ready = 0;
    sh->loading = 1;
    s->ev.state(s->ud);
    redisAsyncCommand(sh->cmd.ac, on_library_loaded, sh, "FUNCTION LOAD REPLACE %b", b.data, b.len);
    if (!s->cluster)
        redisAsyncCommand(sh->cmd.ac, on_epoch, sh, "SET %s %s NX GET", s->keys.epoch,
                          s->epoch_mine);
    hl_buf_free(&b);
}

static void cmd_up(hl_rlink *l, void *ud) {
    hl_shard *sh = ud;
    hl_store *s = sh->s;
    if (sh->cmd_ever) hl_metric_add(&s->m->redis_reconnects, 1);
    sh->cmd_ever = 1;
    sh->cmd_gen++;
    if (!s->cluster) {
        if (s->master_port != 0 && (s->master_port != l->port || strcmp(s->master, l->host) != 0)) {
            hl_metric_add(&s->m->master_changes, 1);
            hl_info("worker %d: Redis's master is now %s:%d (was %s:%d)", s->worker, l->host,
                    l->port, s->master, s->master_port);
        }
        snprintf(s->master, sizeof(s->master), "%s", l->host);
        s->master_port = l->port;
    }
    link_metrics(s);
    hl__load_library(sh);
    send_probe(sh);
}

static void cmd_down(hl_rlink *l, void *ud) {
    (void)l;
    hl_shard *sh = ud;
    hl_store *s = sh->s;
    sh->probe_out = 0; /* no probe can go out now */
    sh->cmd_ready = 0;
    sh->loading = 0;
    link_metrics(s);
    if (s->cluster) refresh_map(s, "a command link was lost");
    s->ev.state(s->ud);
}

/* ---- Making shards ------------------------------------------------------ */

hl_shard *hl__shard_new(hl_store *s, const char *host, int port) {
    int idx = -1;
    for (int i = 0; i < HL_MAX_SHARDS && idx < 0; i++)
        if (s->shard[i] == NULL) idx = i;
    if (idx < 0) return NULL;
    hl_shard *sh = calloc(1, sizeof(*sh));
    if (sh == NULL) return NULL;
    sh->s = s;
    sh->idx = idx;
    snprintf(sh->host, sizeof(sh->host), "%s", host ? host : "");
    sh->port = port;
    sh->unwaited_tail = &sh->unwaited;
    /* Cluster mode picks one in a slot the master serves. */
    snprintf(sh->ctl, sizeof(sh->ctl), "%s", s->cluster ? "" : s->keys.ctl);
    sh->wait_ev = event_new(s->base, -1, 0, s->hooks.wait_turn, sh);
    snprintf(sh->cmd_name, sizeof(sh->cmd_name), "command");
    snprintf(sh->sub_name, sizeof(sh->sub_name), "subscriber");
    int ok = sh->wait_ev != NULL &&
             hl_rlink_init(&sh->cmd, sh->cmd_name, s->cfg, s->base, cmd_up, cmd_down, sh) == HL_OK;
    if (ok && s->cluster)
        ok = hl_slink_init(&sh->ssub, sh->sub_name, s->cfg, s->base, &ssub_events, sh) == HL_OK;
    else if (ok)
        ok = hl_rlink_init(&sh->sub, sh->sub_name, s->cfg, s->base, sub_up, sub_down, sh) == HL_OK;
    if (!ok) {
        /* Nothing connected yet: the links only hold events. */
        hl_rlink_stop(&sh->cmd);
        if (s->cluster)
            hl_slink_stop(&sh->ssub);
        else
            hl_rlink_stop(&sh->sub);
        if (sh->wait_ev) event_free(sh->wait_ev);
        free(sh);
        return NULL;
    }
    char name[128];
    hl_rkeys_client_name(&s->keys, "cmd", name, sizeof(name));
    hl_rlink_set_client_name(&sh->cmd, name);
    hl_rkeys_client_name(&s->keys, "sub", name, sizeof(name));
    if (s->cluster) {
        hl_rlink_set_addr(&sh->cmd, host, port);
        hl_slink_set_addr(&sh->ssub, host, port);
        hl_slink_set_client_name(&sh->ssub, name);
    } else {
        hl_rlink_set_pattern(&sh->sub, s->keys.hb);
        hl_rlink_set_client_name(&sh->sub, name);
    }
    s->shard[idx] = sh;
    return sh;
}

void hl__shard_start(hl_shard *sh) {
    if (sh->s->cluster)
        hl_slink_start(&sh->ssub);
    else
        hl_rlink_start(&sh->sub);
    hl_rlink_start(&sh->cmd);
}

void hl__shard_free(hl_shard *sh) {
    if (sh == NULL) return;
    hl_store *s = sh->s;
    hl_rlink_stop(&sh->cmd);
    if (s->cluster)
        hl_slink_stop(&sh->ssub);
    else
        hl_rlink_stop(&sh->sub);
    /* Publishes whose WAIT was not sent yet. */
    if (s->hooks.shard_gone) s->hooks.shard_gone(sh);
    if (sh->wait_ev) event_free(sh->wait_ev);
    if (s->shard[sh->idx] == sh) s->shard[sh->idx] = NULL;
    free(sh);
}

/* ---- Ops --------------------------------------------------------------- */

hl_store_op *hl__op_new(hl_store *s, hl_op_kind kind, const char *name, size_t len, void *cb,
                        void *ud) {
    hl_store_op *op = calloc(1, sizeof(*op) + len + 1);
    if (op == NULL) return NULL;
    op->s = s;
    op->kind = kind;
    op->cb = cb;
    op->ud = ud;
    op->from = HL_READ_START;
    op->len = len;
    memcpy(op->name, name, len);
    op->name[len] = '\0';
    op->slot = hl_store_slot(s, name, len);
    return op;
}

void hl__op_free(hl_store_op *op) {
    free(op->data);
    free(op->idem);
    free(op);
}

void hl_store_cancel(hl_store_op *op) {
    /* The reply (or the link's loss) frees it. */
    if (op) op->cancelled = 1;
}

/* The epoch key of op's data. */
static void epoch_key(const hl_store *s, const hl_store_op *op, char *out) {
    if (s->cluster)
        hl_rkeys_slot_epoch(&s->keys, s->tags->tag[op->slot], out);
    else
        snprintf(out, HL_RKEY_MAX, "%s", s->keys.epoch);
}

static void on_read(redisAsyncContext *ac, void *reply_, void *privdata) {
    (void)ac;
    hl_store_op *op = privdata;
    hl_store *s = op->s;
    hl_shard *sh = op->sh;
    const redisReply *reply = reply_;
    hl_read_result res;
    memset(&res, 0, sizeof(res));
    const redisReply *entries;
    if (hl_rreply_read(reply, &res.st, &res.epoch, &entries) != HL_OK) {
        if (s->cluster && !op->cancelled && s->hooks.redirect(sh, op, reply)) return;
        hl__refused(sh, "cannot read a channel's history", reply);
    } else {
        res.ok = 1;
        hl__no_trouble(sh);
        note_time(sh, res.st.now_ms);
        /* Callers see the epoch change (and may cancel this very op)
         * before they see what was read under it. */
        adopt_epoch(s, s->cluster ? (long)op->slot : -1, res.epoch);
    }
    if (op->cancelled || !res.ok) {
        if (!op->cancelled) ((hl_read_cb *)op->cb)(op->ud, &res);
        hl__op_free(op);
        return;
    }
    /* Oldest first; HL_READ_LATEST gets them newest first (XREVRANGE). */
    res.entries = entries ? entries->elements : 0;
    hl_msg **tail = &res.msgs;
    for (size_t k = 0; k < res.entries; k++) {
        size_t i = op->from == HL_READ_LATEST ? res.entries - 1 - k : k;
        hl_msg *m = hl_rreply_entry(entries->element[i], op->name, op->len);
        if (m == NULL) {
            res.bad++;
            continue;
        }
        *tail = m;
        tail = &m->next;
    }
    ((hl_read_cb *)op->cb)(op->ud, &res);
    hl__op_free(op);
}

static void on_info(redisAsyncContext *ac, void *reply_, void *privdata) {
    (void)ac;
    hl_store_op *op = privdata;
    hl_store *s = op->s;
    hl_shard *sh = op->sh;
    const redisReply *reply = reply_;
    hl_info_result res = {0, HL_E_REDIS_ERROR, "unexpected reply", {0}};
    uint64_t epoch;
    const redisReply *entries;
    if (hl_rreply_read(reply, &res.st, &epoch, &entries) == HL_OK) {
        res.ok = 1;
        hl__no_trouble(sh);
        adopt_epoch(s, s->cluster ? (long)op->slot : -1, epoch);
    } else if (reply == NULL) {
        res.err = HL_E_REDIS_UNAVAILABLE;
        res.detail = "the Redis connection was lost";
    } else {
        if (s->cluster && !op->cancelled && s->hooks.redirect(sh, op, reply)) return;
        if (reply->type == REDIS_REPLY_ERROR) res.detail = reply->str;
        if (hl_rreply_library_missing(reply)) hl__refused(sh, "a channel read failed", reply);
    }
    if (!op->cancelled) ((hl_info_cb *)op->cb)(op->ud, &res);
    hl__op_free(op);
}

int hl__send_read(hl_shard *sh, hl_store_op *op) {
    hl_store *s = sh->s;
    char key[HL_RKEY_MAX], ekey[HL_RKEY_MAX], at[HL_SID_MAXLEN + 1] = "0";
    hl_rkeys_stream(&s->keys, op->name, op->len, key);
    epoch_key(s, op, ekey);
    op->sh = sh;
    if (op->kind == HL_OP_INFO)
        return redisAsyncCommand(sh->cmd.ac, on_info, op, "FCALL holdline_read 2 %s %s + 0 %s", key,
                                 ekey, s->epoch_mine) == REDIS_OK
                   ? HL_OK
                   : HL_ERR;
    if (op->from == HL_READ_AFTER) hl_sid_format(op->after, at);
    if (op->from == HL_READ_LATEST) strcpy(at, "+");
    return redisAsyncCommand(sh->cmd.ac, on_read, op, "FCALL holdline_read 2 %s %s %s %d %s", key,
                             ekey, at, op->count, s->epoch_mine) == REDIS_OK
               ? HL_OK
               : HL_ERR;
}

hl_store_op *hl_store_read(hl_store *s, const char *name, size_t len, hl_read_from from,
                           hl_sid after, int count, hl_read_cb *cb, void *ud) {
    hl_store_op *op = hl__op_new(s, HL_OP_READ, name, len, (void *)cb, ud);
    if (op == NULL) return NULL;
    hl_shard *sh = hl__shard_of(s, op->slot);
    op->from = from;
    op->after = after;
    op->count = count;
    if (!hl__shard_can_read(sh) || hl__send_read(sh, op) != HL_OK) {
        hl__op_free(op);
        return NULL;
    }
    return op;
}

hl_store_op *hl_store_info(hl_store *s, const char *name, size_t len, hl_info_cb *cb, void *ud) {
    hl_store_op *op = hl__op_new(s, HL_OP_INFO, name, len, (void *)cb, ud);
    if (op == NULL) return NULL;
    hl_shard *sh = hl__shard_of(s, op->slot);
    if (!hl__shard_can_read(sh) || hl__send_read(sh, op) != HL_OK) {
        hl__op_free(op);
        return NULL;
    }
    return op;
}

/* ---- The shards' timers ------------------------------------------------ */

int hl__shards_init(hl_store *s) {
    new_proposal(s);
    s->retry = evtimer_new(s->base, on_retry, s);
    s->tick = event_new(s->base, -1, EV_PERSIST, on_tick, s);
    s->canary = event_new(s->base, -1, EV_PERSIST, on_canary, s);
    snprintf(s->canary_why, sizeof(s->canary_why),
             "probes published through Redis have not come back on the subscriber link for %d "
             "ms; reconnecting it",
             s->cfg->redis_canary_timeout_ms);
    return s->retry && s->tick && s->canary ? HL_OK : HL_ERR;
}

void hl__shards_start(hl_store *s) {
    /* Often enough that a quiet channel's head is never near a TTL old. */
    long long ms = (long long)s->cfg->history_ttl * 1000 / 4;
    if (ms < 250) ms = 250;
    if (ms > 300000) ms = 300000;
    struct timeval tv = hl_ms_tv(ms);
    event_add(s->tick, &tv);
    struct timeval ctv = hl_ms_tv(s->cfg->redis_canary_ms);
    event_add(s->canary, &ctv);
}

void hl__shards_stop(hl_store *s) {
    if (s->tick) event_del(s->tick);
    if (s->canary) event_del(s->canary);
    if (s->retry) evtimer_del(s->retry);
}

void hl__shards_free(hl_store *s) {
    if (s->tick) event_free(s->tick);
    if (s->canary) event_free(s->canary);
    if (s->retry) event_free(s->retry);
}

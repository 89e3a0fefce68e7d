/* hl_store.c -- a worker's Redis side: the store's life, its readiness,
 * and in sentinel mode the watch on the sentinels. It makes the layers
 * below it (hl_shard.c, hl_spublish.c, hl_scluster.c) and ties them
 * together with the hooks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl_common.h"
#include "hl_log.h"
#include "hl_store_int.h"
#include "hl_time.h"

const char *hl_store_not_ready(const hl_store *s) {
    if (!s->cluster) return hl__shard_not_ready(s->shard[0]);
    return hl__cluster_not_ready(s);
}

const char *hl_store_degraded(const hl_store *s) {
    if (s->sentinels_silent || (s->cluster && s->degraded_why[0])) return s->degraded_why;
    return NULL;
}

/* ---- Sentinel mode: following the master --------------------------------- */

/* A link up on a server the sentinels no longer name as the master is
 * moved: a manual failover leaves the old master up and writable until
 * the sentinels reconfigure it, seconds later. */
static void move_if_elsewhere(hl_store *s, hl_rlink *l, const char *host, int port) {
    if (!hl_rlink_is_up(l) || (strcmp(l->host, host) == 0 && l->port == port)) return;
    hl_info("worker %d: the sentinels name %s:%d as the master; moving the %s link from %s:%d",
            s->worker, host, port, l->name, l->host, l->port);
    snprintf(s->moved_why, sizeof(s->moved_why), "the sentinels name another master");
    hl_rlink_move(l, host, port, s->moved_why);
}

static void on_watch(void *ud, const char *host, int port, const char *why) {
    hl_store *s = ud;
    hl_shard *sh = s->shard[0];
    if (host == NULL) {
        if (s->sentinels_silent) return;
        hl_warn("worker %d: no sentinel answers (%s); serving on the master last confirmed, %s:%d",
                s->worker, why, sh->cmd.host, sh->cmd.port);
        /* Written once per episode: other threads read it (/readyz). */
        snprintf(s->degraded_why, sizeof(s->degraded_why),
                 "no sentinel answers (%.400s); serving on the master last confirmed, %.200s:%d, "
                 "but a failover would not be followed",
                 why, sh->cmd.host, sh->cmd.port);
        s->sentinels_silent = 1;
        hl_metric_set(&s->m->sentinels_ok, 0);
        s->ev.state(s->ud);
        return;
    }
    if (s->sentinels_silent) {
        hl_info("worker %d: the sentinels answer again", s->worker);
        s->sentinels_silent = 0;
        hl_metric_set(&s->m->sentinels_ok, 1);
        s->ev.state(s->ud);
    }
    move_if_elsewhere(s, &sh->sub, host, port);
    move_if_elsewhere(s, &sh->cmd, host, port);
}

static void on_watch_timer(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    hl_store *s = arg;
    hl_sentinel_start(&s->watch, on_watch, s); /* a round still running: nothing */
}

void hl_store_set_metrics(hl_store *s, hl_metrics *m) {
    s->m = m;
    hl_metric_set(&m->sentinels_ok, !s->sentinels_silent);
}

/* ---- Life ------------------------------------------------------------- */

hl_store *hl_store_new(const hl_config *cfg, struct event_base *base, int worker,
                       const hl_store_events *ev, void *ud, char *err, size_t errlen) {
    hl_store *s = calloc(1, sizeof(*s));
    if (s == NULL) goto oom;
    s->cfg = cfg;
    s->base = base;
    s->worker = worker;
    s->ev = *ev;
    s->ud = ud;
    s->cluster = strcmp(cfg->redis_mode, "cluster") == 0;
    hl_rkeys_init(&s->keys, cfg->redis_prefix, cfg->node_name, worker);
    /* The layers below tell of what they see through these. */
    s->hooks = (hl_store_hooks){s->cluster ? hl__cluster_refresh : NULL, hl__cluster_redirect,
                                hl__fence_check, hl__wait_flush, hl__on_wait_turn};
    if (hl__shards_init(s) != HL_OK) goto oom;
    s->watch_timer = event_new(base, -1, EV_PERSIST, on_watch_timer, s);
    s->m = &hl_metrics_void;
    if (s->watch_timer == NULL || hl_sentinel_init(&s->watch, cfg, base) != HL_OK ||
        hl_sentinel_feed_init(&s->feed, cfg, base, hl__on_sentinel_event, s) != HL_OK)
        goto oom;
    hl__fence_init(s);
    if (s->fence_timer == NULL || s->fence_poll == NULL) goto oom;
    if (s->cluster) {
        if (hl__cluster_init(s) != HL_OK) goto oom;
    } else if (hl__shard_new(s, NULL, 0) == NULL) {
        goto oom;
    }
    return s;
oom:
    hl_set_error(err, errlen, "out of memory");
    hl_store_free(s);
    return NULL;
}

void hl_store_start(hl_store *s) {
    if (s->cluster)
        hl__cluster_start(s);
    else
        hl__shard_start(s->shard[0]);
    hl__shards_start(s);
    if (s->shard[0] && s->shard[0]->cmd.sentinel) {
        struct timeval wtv = hl_ms_tv(s->cfg->redis_sentinel_check_ms);
        event_add(s->watch_timer, &wtv);
        hl_sentinel_feed_start(&s->feed);
    }
}

void hl_store_stop(hl_store *s) {
    hl_sentinel_cancel(&s->watch);
    if (s->watch_timer) event_del(s->watch_timer);
    hl_sentinel_feed_stop(&s->feed);
    if (s->cluster) hl__cluster_stop(s);
    for (int i = 0; i < HL_MAX_SHARDS; i++)
        if (s->shard[i]) {
            hl_rlink_stop(&s->shard[i]->cmd);
            if (s->cluster)
                hl_slink_stop(&s->shard[i]->ssub);
            else
                hl_rlink_stop(&s->shard[i]->sub);
        }
    /* Held publishes are refused now that nothing can send them. */
    hl__unfence(s, "the node is stopping");
    for (int i = 0; i < HL_MAX_SHARDS; i++)
        if (s->shard[i]) hl__wait_flush(s->shard[i]);
    hl__shards_stop(s);
}

void hl_store_free(hl_store *s) {
    if (s == NULL) return;
    hl_store_stop(s);
    for (int i = 0; i < HL_MAX_SHARDS; i++)
        hl__shard_free(s->shard[i]);
    hl__cluster_free(s);
    hl__shards_free(s);
    if (s->fence_timer) event_free(s->fence_timer);
    if (s->fence_poll) event_free(s->fence_poll);
    if (s->watch_timer) event_free(s->watch_timer);
    hl_sentinel_free(&s->watch);
    free(s);
}

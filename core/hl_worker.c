/* hl_worker.c -- one worker thread: its event loop, its parts (the
 * listening socket and MHD daemons of hl_accept.c, the Redis links, the
 * timers) and the stop sequence. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "hl_common.h"
#include "hl_log.h"
#include "hl_node.h"
#include "hl_worker.h"

void hl_worker_mhd_log(void *cls, const char *fmt, va_list ap) {
    hl_worker *w = cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    /* What MHD says of every connection holdline closes on purpose (a
     * client that hung up, a request deadline) is not worth a warning. */
    if (strncmp(msg, "Application reported internal error", 35) == 0 ||
        strstr(msg, "detected connection closure") != NULL)
        hl_debug("worker %d: http: %s", w->id, msg);
    else
        hl_warn("worker %d: http: %s", w->id, msg);
}

/* The end of a stop: Redis links closed (which answers publishes still in
 * flight), every connection closed, the loop left. Never called from
 * inside MHD_run, since it stops the daemon. */
static void finish(hl_worker *w) {
    if (w->finished) return;
    w->finished = 1;
    if (w->reqs > 0)
        hl_warn("worker %d: drain time over with %zu requests open; closing them", w->id, w->reqs);
    hl_rlink_stop(&w->cmd);
    hl_rlink_stop(&w->sub);
    /* Waiters that came in since the stop began were answered at once, so
     * nothing is suspended any more, which MHD_stop_daemon requires. */
    hl_poll_answer_all(w);
    event_del(w->tick);
    evtimer_del(w->retry);
    event_del(w->sweep);
    hl_accept_free(w);
    hl_pubsub_free(w);
    event_base_loopbreak(w->base);
}

static void on_tick(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    hl_pubsub_tick(arg);
}

static void on_sweep(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    hl_http_sweep(arg);
}

static void on_due(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    hl_http_on_due(arg);
}

static void on_retry(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    hl_pubsub_retry(arg);
}

static void on_drain(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    finish(arg);
}

void hl_worker_maybe_finish(hl_worker *w) {
    if (!w->stopping || w->finished || w->reqs > 0) return;
    /* Called from MHD's completion callback: finish on the next loop
     * turn, outside MHD_run. */
    struct timeval now = {0, 0};
    evtimer_add(w->drain_timer, &now);
}

static void on_stop(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    hl_worker *w = arg;
    if (w->stopping) return;
    w->stopping = 1;
    hl_worker_update_ready(w);
    /* MHD_quiesce_daemon does nothing on daemons without a listening
     * socket: closing ours is what stops new connections. */
    hl_accept_close(w);
    hl_poll_answer_all(w);
    hl_http_close_owing(w);
    int ms = w->drain_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(w->drain_timer, &tv);
    hl_worker_maybe_finish(w);
    hl_worker_kick(w);
}

void hl_worker_update_ready(hl_worker *w) {
    hl_not_ready why = w->stopping                       ? HL_NR_STOPPING
                       : !hl_rlink_is_up(&w->sub)        ? HL_NR_SUB_DOWN
                       : !hl_rlink_is_up(&w->cmd)        ? HL_NR_CMD_DOWN
                       : !w->cmd_ready                   ? HL_NR_LIBRARY
                       : !w->ctl_live || w->subs_pending ? HL_NR_SUBSCRIBING
                                                         : HL_READY;
    __atomic_store_n(&w->not_ready, (int)why, __ATOMIC_RELAXED);
}

const char *hl_worker_not_ready(const hl_worker *w) {
    switch ((hl_not_ready)__atomic_load_n(&w->not_ready, __ATOMIC_RELAXED)) {
    case HL_READY: return NULL;
    case HL_NR_STOPPING: return "the node is stopping";
    case HL_NR_SUB_DOWN: return "the Redis subscriber connection is down; reconnecting";
    case HL_NR_CMD_DOWN: return "the Redis command connection is down; reconnecting";
    case HL_NR_LIBRARY: return "loading holdline's Function library into Redis";
    case HL_NR_SUBSCRIBING: return "waiting for Redis to confirm the subscriptions";
    }
    return "unknown";
}

/* A random nonzero epoch to propose when Redis has none. */
static uint64_t new_epoch(void) {
    uint64_t e = 0;
    if (getrandom(&e, sizeof(e), 0) != (ssize_t)sizeof(e)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        e = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 16);
    }
    return e ? e : 1;
}

void hl_worker_new_proposal(hl_worker *w) {
    snprintf(w->epoch_mine, sizeof(w->epoch_mine), "%llx", (unsigned long long)new_epoch());
}

hl_worker *hl_worker_new(struct hl_node *node, int id, const hl_config *cfg, char *err,
                         size_t errlen) {
    hl_worker *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        hl_set_error(err, errlen, "out of memory");
        return NULL;
    }
    w->id = id;
    w->listen_fd = -1;
    w->node = node;
    w->cfg = cfg;
    w->prefix_len = strlen(cfg->redis_prefix);
    hl_chantab_init(&w->chans);
    /* '#' can never be part of a channel name, so no client can poll or
     * publish on this channel. */
    snprintf(w->ctl_channel, sizeof(w->ctl_channel), "%s#ctl:%s:%d", cfg->redis_prefix,
             cfg->node_name, id);
    snprintf(w->hb_pattern, sizeof(w->hb_pattern), "%s#hb:%s:%d", cfg->redis_prefix, cfg->node_name,
             id);
    w->not_ready = HL_NR_SUB_DOWN;
    snprintf(w->epoch_key, sizeof(w->epoch_key), "%sepoch", cfg->redis_prefix);
    hl_worker_new_proposal(w);

    /* Without PRECISE_TIMER libevent reads CLOCK_MONOTONIC_COARSE, whose
     * ticks of a few ms let a poll's timeout fire before it is due. */
    struct event_config *ec = event_config_new();
    if (ec != NULL) {
        event_config_set_flag(ec, EVENT_BASE_FLAG_PRECISE_TIMER);
        w->base = event_base_new_with_config(ec);
        event_config_free(ec);
    }
    if (w->base == NULL) {
        hl_set_error(err, errlen, "cannot create an event base");
        goto err;
    }

    unsigned limit = (unsigned)(cfg->http_max_connections / cfg->http_workers);
    if (limit == 0) limit = 1;
    w->conn_limit = limit;
    if (hl_accept_init(w, err, errlen) != HL_OK) goto err;
    w->stop_ev = event_new(w->base, -1, 0, on_stop, w);
    w->drain_timer = evtimer_new(w->base, on_drain, w);
    w->tick = event_new(w->base, -1, EV_PERSIST, on_tick, w);
    w->retry = evtimer_new(w->base, on_retry, w);
    w->sweep = event_new(w->base, -1, EV_PERSIST, on_sweep, w);
    w->due_timer = evtimer_new(w->base, on_due, w);
    w->ndues = (size_t)hl_http_max_due_secs(cfg) + 1;
    w->dues = calloc(w->ndues, sizeof(*w->dues));
    if (!w->stop_ev || !w->drain_timer || !w->tick || !w->retry || !w->sweep || !w->due_timer ||
        !w->dues) {
        hl_set_error(err, errlen, "out of memory");
        goto err;
    }
    if (hl_rlink_init(&w->sub, "subscriber", cfg, w->base, hl_pubsub_sub_up, hl_pubsub_sub_down,
                      w) != HL_OK ||
        hl_rlink_init(&w->cmd, "command", cfg, w->base, hl_pubsub_cmd_up, hl_pubsub_cmd_down, w) !=
            HL_OK) {
        hl_set_error(err, errlen, "out of memory");
        goto err;
    }
    hl_rlink_set_pattern(&w->sub, w->hb_pattern);
    return w;
err:
    hl_worker_free(w);
    return NULL;
}

void hl_worker_free(hl_worker *w) {
    if (w == NULL) return;
    hl_accept_free(w); /* never started, or finished: nothing is suspended */
    hl_rlink_stop(&w->sub);
    hl_rlink_stop(&w->cmd);
    hl_pubsub_free(w);
    hl_chantab_free(&w->chans);
    if (w->stop_ev) event_free(w->stop_ev);
    if (w->drain_timer) event_free(w->drain_timer);
    if (w->tick) event_free(w->tick);
    if (w->retry) event_free(w->retry);
    if (w->sweep) event_free(w->sweep);
    if (w->due_timer) event_free(w->due_timer);
    free(w->dues);
    if (w->base) event_base_free(w->base);
    free(w);
}

static void *worker_main(void *arg) {
    hl_worker *w = arg;
    hl_rlink_start(&w->sub);
    hl_rlink_start(&w->cmd);
    hl_accept_start(w);
    /* Often enough that a quiet channel's head is never near a TTL old. */
    long ms = (long)w->cfg->history_ttl * 1000 / 4;
    if (ms < 250) ms = 250;
    if (ms > 300000) ms = 300000;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(w->tick, &tv);
    struct timeval quarter = {0, 250000};
    event_add(w->sweep, &quarter);
    event_base_dispatch(w->base);
    return NULL;
}

int hl_worker_start(hl_worker *w, char *err, size_t errlen) {
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    if (rc != 0) return hl_set_error(err, errlen, "cannot start a thread: %s", strerror(rc));
    return HL_OK;
}

void hl_worker_request_stop(hl_worker *w, int drain_ms) {
    w->drain_ms = drain_ms;
    /* Thread-safe because the node enabled libevent's pthread locking
     * before creating any base. */
    event_active(w->stop_ev, EV_TIMEOUT, 0);
}

void hl_worker_join(hl_worker *w) {
    pthread_join(w->thread, NULL);
}

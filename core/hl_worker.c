/* hl_worker.c -- one worker thread: its event loop, the glue that lets
 * libevent drive an MHD daemon in external epoll mode, and the stop
 * sequence.
 *
 * MHD exposes one epoll fd per daemon; libevent watches it and calls
 * MHD_run when it is readable, and a timer follows MHD_get_timeout for
 * connection timeouts. A resume does not make that epoll fd readable in
 * external epoll mode (seen on MHD 0.9.75), so whoever resumes a
 * connection calls hl_worker_kick() to run MHD on the next loop turn. */
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

static void run_mhd(hl_worker *w) {
    if (w->mhd == NULL) return;
    w->kicked = 0;
    MHD_run(w->mhd);
    MHD_UNSIGNED_LONG_LONG ms;
    if (MHD_get_timeout(w->mhd, &ms) == MHD_YES) {
        struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
        evtimer_add(w->mhd_timer, &tv);
    } else {
        evtimer_del(w->mhd_timer);
    }
}

void hl_worker_kick(hl_worker *w) {
    /* A fan-out resumes thousands of connections in one go; one MHD run
     * serves them all, so only the first resume arms the timer. */
    if (w->kicked) return;
    w->kicked = 1;
    struct timeval now = {0, 0};
    evtimer_add(w->mhd_timer, &now);
}

static void on_mhd_event(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    run_mhd(arg);
}

static void mhd_logger(void *cls, const char *fmt, va_list ap) {
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
    event_del(w->mhd_io);
    evtimer_del(w->mhd_timer);
    event_del(w->tick);
    evtimer_del(w->retry);
    event_del(w->sweep);
    struct MHD_Daemon *d = w->mhd;
    w->mhd = NULL;
    MHD_stop_daemon(d);
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
    MHD_socket lfd = MHD_quiesce_daemon(w->mhd);
    if (lfd != MHD_INVALID_SOCKET) close(lfd);
    hl_poll_answer_all(w);
    hl_http_close_owing(w);
    int ms = w->drain_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(w->drain_timer, &tv);
    hl_worker_maybe_finish(w);
    run_mhd(w);
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

    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)cfg->http_port);
    if (inet_pton(AF_INET, cfg->http_bind, &sa.sin_addr) != 1) {
        hl_set_error(err, errlen, "http.bind: '%s' is not an IPv4 address", cfg->http_bind);
        goto err;
    }
    unsigned limit = (unsigned)(cfg->http_max_connections / cfg->http_workers);
    if (limit == 0) limit = 1;
    w->conn_limit = limit;
    /* MHD itself closes connections beyond its limit without a word; past
     * ours, requests are answered 503. The margin between the two is what
     * a flood of connections may take before silence. */
    unsigned margin = limit / 8 > 16 ? limit / 8 : 16;
    errno = 0;
    w->mhd = MHD_start_daemon(
        MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, (uint16_t)cfg->http_port,
        NULL, NULL, hl_http_on_request, w, MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, w,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_LISTENING_ADDRESS_REUSE,
        (unsigned)1, MHD_OPTION_CONNECTION_LIMIT, limit + margin,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)cfg->http_connection_memory,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->http_connection_timeout,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)4096, MHD_OPTION_NOTIFY_COMPLETED,
        hl_http_on_completed, w, MHD_OPTION_UNESCAPE_CALLBACK, hl_http_unescape, NULL,
        MHD_OPTION_NOTIFY_CONNECTION, hl_http_on_connection, w, MHD_OPTION_URI_LOG_CALLBACK,
        hl_http_on_uri, w, MHD_OPTION_STRICT_FOR_CLIENT, (int)1, MHD_OPTION_END);
    if (w->mhd == NULL) {
        hl_set_error(err, errlen, "cannot listen on %s:%d: %s", cfg->http_bind, cfg->http_port,
                     errno ? strerror(errno) : "libmicrohttpd refused to start");
        goto err;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(w->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    if (info == NULL) {
        hl_set_error(err, errlen, "libmicrohttpd has no epoll fd");
        goto err;
    }
    w->mhd_io = event_new(w->base, info->epoll_fd, EV_READ | EV_PERSIST, on_mhd_event, w);
    w->mhd_timer = evtimer_new(w->base, on_mhd_event, w);
    w->stop_ev = event_new(w->base, -1, 0, on_stop, w);
    w->drain_timer = evtimer_new(w->base, on_drain, w);
    w->tick = event_new(w->base, -1, EV_PERSIST, on_tick, w);
    w->retry = evtimer_new(w->base, on_retry, w);
    w->sweep = event_new(w->base, -1, EV_PERSIST, on_sweep, w);
    w->due_timer = evtimer_new(w->base, on_due, w);
    w->ndues = (size_t)hl_http_max_due_secs(cfg) + 1;
    w->dues = calloc(w->ndues, sizeof(*w->dues));
    if (!w->mhd_io || !w->mhd_timer || !w->stop_ev || !w->drain_timer || !w->tick || !w->retry ||
        !w->sweep || !w->due_timer || !w->dues) {
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
    if (w->mhd) MHD_stop_daemon(w->mhd); /* never started: nothing is suspended */
    hl_rlink_stop(&w->sub);
    hl_rlink_stop(&w->cmd);
    hl_pubsub_free(w);
    hl_chantab_free(&w->chans);
    if (w->mhd_io) event_free(w->mhd_io);
    if (w->mhd_timer) event_free(w->mhd_timer);
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
    event_add(w->mhd_io, NULL);
    /* Often enough that a quiet channel's head is never near a TTL old. */
    long ms = (long)w->cfg->history_ttl * 1000 / 4;
    if (ms < 250) ms = 250;
    if (ms > 300000) ms = 300000;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(w->tick, &tv);
    struct timeval second = {1, 0};
    event_add(w->sweep, &second);
    run_mhd(w);
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

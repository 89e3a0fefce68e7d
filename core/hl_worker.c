/* hl_worker.c -- the composition root of one worker: it makes the store,
 * the engine and the HTTP side on one event base, passes each what it
 * needs of the others, and owns the thread, the deadline timer, readiness
 * and the stop sequence. */
#include "hl_worker.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "hl_common.h"
#include "hl_deadline.h"
#include "hl_engine.h"
#include "hl_http.h"
#include "hl_log.h"
#include "hl_store.h"
#include "hl_time.h"

/* Why a worker is not ready (GET /readyz). */
typedef enum hl_not_ready {
    NR_READY = 0,
    NR_STOPPING,
    NR_STORE,
    NR_SUBSCRIBING,
} hl_not_ready;

struct hl_worker {
    int id;
    const hl_config *cfg; /* the node's copy; read-only */
    hl_ready_fn *ready;
    hl_scrape_fn *scrape;
    void *ready_ud;
    hl_metrics m; /* written by this thread only */
    struct event_base *base;
    hl_deadlines dl;        /* poll timeouts, heartbeats, Redis deadlines */
    struct event *dl_timer; /* fires at the earliest of them */
    hl_store *store;
    hl_engine *engine;
    hl_http *http;
    struct event *stop_ev;     /* activated by hl_worker_request_stop from another thread */
    struct event *drain_timer; /* the drain deadline */
    int stopping;
    int finished;
    int drain_ms;
    /* Readiness as other threads read it: an hl_not_ready, and the store's
     * reason when that is NR_STORE (a string constant). */
    int not_ready;
    const char *store_why;
    const char *degraded_why; /* the store's, or NULL: serving, but degraded */
    pthread_t thread;
};

static void update_ready(hl_worker *w) {
    const char *store_why = w->store ? hl_store_not_ready(w->store) : "starting";
    hl_not_ready why = w->stopping                                      ? NR_STOPPING
                       : store_why                                      ? NR_STORE
                       : w->engine && hl_engine_subs_pending(w->engine) ? NR_SUBSCRIBING
                                                                        : NR_READY;
    __atomic_store_n(&w->store_why, store_why, __ATOMIC_RELAXED);
    __atomic_store_n(&w->degraded_why, w->store ? hl_store_degraded(w->store) : NULL,
                     __ATOMIC_RELEASE);
    __atomic_store_n(&w->not_ready, (int)why, __ATOMIC_RELEASE);
}

const char *hl_worker_not_ready(const hl_worker *w) {
    switch ((hl_not_ready)__atomic_load_n(&w->not_ready, __ATOMIC_ACQUIRE)) {
    case NR_READY: return NULL;
    case NR_STOPPING: return "the node is stopping";
    case NR_STORE: return __atomic_load_n(&w->store_why, __ATOMIC_RELAXED);
    case NR_SUBSCRIBING: return "waiting for Redis to confirm the subscriptions";
    }
    return "unknown";
}

const char *hl_worker_degraded(const hl_worker *w) {
    return __atomic_load_n(&w->degraded_why, __ATOMIC_ACQUIRE);
}

static int node_ready(void *ud, char *why, size_t whylen) {
    hl_worker *w = ud;
    return w->ready(w->ready_ud, why, whylen);
}

static void node_scrape(void *ud, hl_buf *out) {
    hl_worker *w = ud;
    w->scrape(w->ready_ud, out);
}

const hl_metrics *hl_worker_metrics(const hl_worker *w) {
    return &w->m;
}

static void on_state(void *ud) {
    update_ready(ud);
}

/* ---- Deadlines --------------------------------------------------------- */

static void watch_deadline(void *ud, long long at) {
    hl_worker *w = ud;
    long long ms = at - hl_mono_ms();
    if (ms < 1) ms = 1;
    struct timeval tv = hl_ms_tv(ms);
    /* Inside a callback libevent measures from the time cached when the
     * loop turn began; a busy turn would fire early (the handler then
     * only watches again). */
    event_base_update_cache_time(w->base);
    evtimer_add(w->dl_timer, &tv);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    hl_worker *w = arg;
    hl_deadlines_run(&w->dl, hl_mono_ms());
}

/* ---- Stop -------------------------------------------------------------- */

/* The end of a stop: Redis links closed (which answers publishes still in
 * flight), every waiter answered, every daemon stopped, the loop left.
 * Never called from inside MHD_run, since it stops the daemons. */
static void finish(hl_worker *w) {
    if (w->finished) return;
    w->finished = 1;
    size_t open = hl_http_open_requests(w->http);
    if (open > 0)
        hl_warn("worker %d: drain time over with %zu requests open; closing them", w->id, open);
    hl_store_stop(w->store);
    /* Waiters that came in since the stop began were answered at once, so
     * nothing is suspended any more, which MHD_stop_daemon requires. */
    hl_engine_end_all(w->engine);
    hl_http_free(w->http);
    w->http = NULL;
    event_base_loopbreak(w->base);
}

static void on_drain(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    finish(arg);
}

static void on_request_done(void *ud) {
    hl_worker *w = ud;
    if (!w->stopping || w->finished || hl_http_open_requests(w->http) > 0) return;
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
    update_ready(w);
    hl_http_stop_accepting(w->http);
    hl_engine_end_all(w->engine);
    struct timeval tv = hl_ms_tv(w->drain_ms);
    evtimer_add(w->drain_timer, &tv);
    on_request_done(w);
}

/* ---- Life ------------------------------------------------------------- */

hl_worker *hl_worker_new(int id, const hl_config *cfg, hl_ready_fn *ready, hl_scrape_fn *scrape,
                         void *ready_ud, char *err, size_t errlen) {
    hl_worker *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        hl_set_error(err, errlen, "out of memory");
        return NULL;
    }
    w->id = id;
    w->cfg = cfg;
    w->ready = ready;
    w->scrape = scrape;
    w->ready_ud = ready_ud;
    w->not_ready = NR_STORE;
    w->store_why = "starting";

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
        goto fail;
    }
    w->stop_ev = event_new(w->base, -1, 0, on_stop, w);
    w->drain_timer = evtimer_new(w->base, on_drain, w);
    w->dl_timer = evtimer_new(w->base, on_deadline, w);
    if (!w->stop_ev || !w->drain_timer || !w->dl_timer ||
        hl_deadlines_init(&w->dl, hl_http_max_deadline(cfg), watch_deadline, w) != 0) {
        hl_set_error(err, errlen, "out of memory");
        goto fail;
    }
    hl_engine_hooks eh = {on_state};
    w->engine = hl_engine_new(cfg, w->base, id, &w->dl, &eh, w, err, errlen);
    if (w->engine == NULL) goto fail;
    hl_engine_set_metrics(w->engine, &w->m);
    w->store = hl_store_new(cfg, w->base, id, &hl_engine_store_events, w->engine, err, errlen);
    if (w->store == NULL) goto fail;
    hl_store_set_metrics(w->store, &w->m);
    hl_engine_set_store(w->engine, w->store);
    hl_http_hooks hh = {node_ready, on_request_done, node_scrape};
    w->http = hl_http_new(cfg, w->base, id, w->engine, w->store, &w->dl, &hh, w, err, errlen);
    if (w->http == NULL) goto fail;
    hl_http_set_metrics(w->http, &w->m);
    return w;
fail:
    hl_worker_free(w);
    return NULL;
}

void hl_worker_free(hl_worker *w) {
    if (w == NULL) return;
    /* Never started, or finished: nothing is suspended. */
    hl_http_free(w->http);
    hl_store_free(w->store);
    hl_engine_free(w->engine);
    hl_deadlines_free(&w->dl);
    if (w->stop_ev) event_free(w->stop_ev);
    if (w->drain_timer) event_free(w->drain_timer);
    if (w->dl_timer) event_free(w->dl_timer);
    if (w->base) event_base_free(w->base);
    free(w);
}

static void *worker_main(void *arg) {
    hl_worker *w = arg;
    hl_store_start(w->store);
    hl_http_start(w->http);
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

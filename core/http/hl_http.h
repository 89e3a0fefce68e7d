/* hl_http.h -- a worker's HTTP side: its listening socket, the
 * libmicrohttpd daemons its connections are handed to, the request phases
 * and routes, and the transports (long-poll and Server-Sent Events) that
 * carry the engine's deliveries.
 *
 * It sits above the engine and the store and calls them; what it needs
 * from above (is the node ready, a request ended while stopping) comes
 * through hl_http_hooks. Everything runs on the worker's thread. */
#ifndef HL_HTTP_H
#define HL_HTTP_H

#include <event2/event.h>
#include <stddef.h>

#include "hl_config.h"
#include "hl_deadline.h"
#include "hl_engine.h"
#include "hl_json.h"
#include "hl_metrics.h"
#include "hl_store.h"

typedef struct hl_http hl_http;

typedef struct hl_http_hooks {
    /* 1 if the node is ready (why: empty, or what is degraded), else 0
     * with why (GET /readyz). */
    int (*ready)(void *ud, char *why, size_t whylen);
    /* A request ended (the worker finishes a stop once none is open). */
    void (*request_done)(void *ud);
    /* Appends the node's Prometheus text to out (GET /metrics). */
    void (*metrics)(void *ud, hl_buf *out);
} hl_http_hooks;

/* Opens the listening socket and starts the daemons; nothing runs until
 * hl_http_start and the loop. Returns NULL with err. */
hl_http *hl_http_new(const hl_config *cfg, struct event_base *base, int worker, hl_engine *engine,
                     hl_store *store, hl_deadlines *dl, const hl_http_hooks *hooks, void *ud,
                     char *err, size_t errlen);
/* Adds the socket, the daemons and the sweep to the loop. */
void hl_http_start(hl_http *h);
/* Stopping: no new connection is taken (the listening socket and every
 * connection still being peeked are closed), connections that owe a
 * request are closed, and every answer from now on closes its connection. */
void hl_http_stop_accepting(hl_http *h);
/* The worker's metrics (HTTP answers, polls, deliveries, publishes,
 * waiters, connections); before this call they go to hl_metrics_void. */
void hl_http_set_metrics(hl_http *h, hl_metrics *m);
/* Requests open (started and not yet completed). */
size_t hl_http_open_requests(const hl_http *h);
/* Stops every daemon (no connection may be suspended: end the waiters
 * first) and frees it all. hl_http_free(NULL) is a no-op. Never from
 * inside an MHD callback. */
void hl_http_free(hl_http *h);

/* The longest deadline a request can be armed with, in seconds (for the
 * worker's deadline set). */
unsigned hl_http_max_deadline(const hl_config *cfg);

#endif

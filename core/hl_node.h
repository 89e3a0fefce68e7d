/* hl_node.h -- a holdline node: the worker threads and their lifecycle.
 *
 * A node runs cfg->http_workers shared-nothing workers. Each worker owns,
 * on its own thread, a libevent base, a libmicrohttpd daemon in external
 * epoll mode bound to the shared port (SO_REUSEPORT spreads connections),
 * two Redis links (subscriber and command) and its table of waiters.
 * Nothing is shared between workers but the read-only configuration and
 * a few atomic flags for /readyz. */
#ifndef HL_NODE_H
#define HL_NODE_H

#include <stddef.h>

#include "hl_config.h"

typedef struct hl_node hl_node;

/* Creates the workers and binds the port; nothing runs yet. cfg is copied.
 * Returns NULL with a reason in err (port in use, out of memory...). */
hl_node *hl_node_new(const hl_config *cfg, char *err, size_t errlen);

/* Starts the worker threads. Returns HL_OK or HL_ERR with err. */
int hl_node_start(hl_node *n, char *err, size_t errlen);

/* Graceful stop, callable from any thread: every worker stops accepting,
 * answers its waiters (a poll gets the "no event" answer), lets requests
 * in flight finish for at most drain_ms, closes its connections and
 * exits. Blocks until every worker thread has ended. */
void hl_node_stop(hl_node *n, int drain_ms);

/* Frees a stopped (or never started) node. hl_node_free(NULL) is a no-op. */
void hl_node_free(hl_node *n);

/* 1 when every worker's Redis links are up and its subscriptions live;
 * else 0 with the first reason found in why. */
int hl_node_ready(const hl_node *n, char *why, size_t whylen);

#endif

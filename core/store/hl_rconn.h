/* hl_rconn.h -- opening one hiredis async connection on an event base,
 * the way every Redis and Sentinel connection of a worker is opened. */
#ifndef HL_RCONN_H
#define HL_RCONN_H

#include <hiredis/async.h>
#include <stddef.h>

#include "hl_config.h"

struct event_base;

/* Starts connecting to host:port on base, with data as the context's
 * data and the two callbacks set (on_connect tells how the connect went).
 * Returns the context, or NULL with why (whylen bytes). */
redisAsyncContext *hl_rconn_open(struct event_base *base, const char *host, int port, void *data,
                                 redisConnectCallback *on_connect,
                                 redisDisconnectCallback *on_disconnect, char *why, size_t whylen);

/* hl_rconn_open to addr, "host:port" (a port required). */
redisAsyncContext *hl_rconn_open_addr(struct event_base *base, const char *addr, void *data,
                                      redisConnectCallback *on_connect,
                                      redisDisconnectCallback *on_disconnect, char *why,
                                      size_t whylen);

/* A link to host:port (name: "subscriber", "command", ...) failed for
 * the failures-th time in a row (why): logs it (the first of a run as a
 * warning, the retries that follow as debug lines) and returns the delay
 * before the next attempt: redis.reconnect_min_ms * 2^(failures-1),
 * capped at reconnect_max_ms, with +-25% jitter so that the workers of
 * many nodes do not reconnect in step after a Redis restart. */
int hl_rconn_retry_ms(const hl_config *cfg, const char *name, const char *host, int port,
                      int failures, const char *why);

#endif

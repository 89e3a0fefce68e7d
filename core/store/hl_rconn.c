#include "hl_rconn.h"

#include <hiredis/adapters/libevent.h>
#include <stdio.h>
#include <stdlib.h>

#include "hl_common.h"
#include "hl_config.h"
#include "hl_log.h"

redisAsyncContext *hl_rconn_open(struct event_base *base, const char *host, int port, void *data,
                                 redisConnectCallback *on_connect,
                                 redisDisconnectCallback *on_disconnect, char *why, size_t whylen) {
    redisAsyncContext *ac = redisAsyncConnect(host, port);
    if (ac == NULL) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    if (ac->err) {
        snprintf(why, whylen, "%s", ac->errstr);
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = data;
    redisLibeventAttach(ac, base);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    /* Setting the connect callback also arms the first write event. */
    redisAsyncSetConnectCallback(ac, on_connect);
    return ac;
}

redisAsyncContext *hl_rconn_open_addr(struct event_base *base, const char *addr, void *data,
                                      redisConnectCallback *on_connect,
                                      redisDisconnectCallback *on_disconnect, char *why,
                                      size_t whylen) {
    char host[256];
    int port = 0;
    if (hl_config_parse_addr(addr, host, sizeof(host), &port, why, whylen) != HL_OK) return NULL;
    if (port == 0) {
        snprintf(why, whylen, "not host:port");
        return NULL;
    }
    return hl_rconn_open(base, host, port, data, on_connect, on_disconnect, why, whylen);
}

int hl_rconn_retry_ms(const hl_config *cfg, const char *name, const char *host, int port,
                      int failures, const char *why) {
    long d = cfg->redis_reconnect_min_ms;
    for (int i = 1; i < failures && d < cfg->redis_reconnect_max_ms; i++)
        d *= 2;
    if (d > cfg->redis_reconnect_max_ms) d = cfg->redis_reconnect_max_ms;
    long jitter = d / 4;
    if (jitter > 0) d += (random() % (2 * jitter + 1)) - jitter;
    int ms = d < 1 ? 1 : (int)d;
    if (failures == 1)
        hl_warn("redis %s link to %s:%d down: %s; reconnecting", name, host, port, why);
    else
        hl_debug("redis %s link to %s:%d: attempt %d failed: %s; next in %d ms", name, host, port,
                 failures, why, ms);
    return ms;
}

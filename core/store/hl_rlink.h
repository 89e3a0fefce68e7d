/* hl_rlink.h -- one Redis connection that keeps itself alive.
 *
 * A link wraps a hiredis async context on a worker's event base: it
 * connects with a timeout of its own (hiredis 0.14 has none for async
 * connects), authenticates and selects the database, and after any loss
 * reconnects with exponential backoff and jitter. The owner learns about
 * the two transitions through on_up and on_down.
 *
 * A heartbeat pings the server every redis.heartbeat_ms; a link that
 * leaves HL_RLINK_HB_MISSES pings in a row unanswered is taken for dead
 * (a network that drops packets silently, a frozen server), closed and
 * reconnected like any lost link. hiredis 0.14 drops PING replies on a
 * subscribed connection, so a subscriber link first subscribes to a
 * private pattern and pings with that pattern as the argument: Redis's
 * ["pong", pattern] reply is then routed to the pattern's callback.
 *
 * In sentinel mode (redis.mode) every connect, the first and each
 * reconnect, first asks the sentinels where the master is, then confirms
 * with ROLE on the server itself before the link is up; a server that
 * says it is a replica is left and the sentinels are asked again. When no
 * sentinel answers, the link tries the master it last confirmed.
 *
 * Only the thread that owns the event base may touch a link. While a link
 * is down, l->ac is NULL: callers check hl_rlink_is_up() before sending.
 * On a loss hiredis calls every pending reply callback with a NULL reply
 * before on_down runs. */
#ifndef HL_RLINK_H
#define HL_RLINK_H

#include <hiredis/async.h>

#include "hl_config.h"
#include "hl_sentinel.h"

struct event_base;
struct event;
typedef struct hl_rlink hl_rlink;

typedef void hl_rlink_cb(hl_rlink *l, void *ud);

#define HL_RLINK_HB_MISSES 3

struct hl_rlink {
    const char *name;         /* "sub" or "cmd", for logs */
    const hl_config *cfg;     /* not owned; outlives the link */
    struct event_base *base;  /* not owned */
    redisAsyncContext *ac;    /* NULL while down; owned by hiredis once connected */
    int connected;            /* 1 between onConnect(OK) and onDisconnect */
    int up;                   /* 1 between on_up and on_down */
    int stopping;             /* 1 after hl_rlink_stop: never reconnect */
    int failures;             /* consecutive failed attempts, for backoff and logs */
    struct event *timer;      /* connect timeout, then reconnect delay */
    hl_rlink_cb *on_up;       /* connected (commands may be sent) */
    hl_rlink_cb *on_down;     /* lost; reconnect is already scheduled */
    void *ud;                 /* passed to the callbacks */
    unsigned long reconnects; /* successful connects after the first */
    struct event *hb_timer;   /* the heartbeat, every redis.heartbeat_ms while connected */
    int hb_unanswered;        /* pings sent since the last reply */
    const char *hb_pattern;   /* subscriber links: the private pattern (not owned) */
    const char *drop_why;     /* why the link itself closed the connection */
    char host[256];           /* the server it connects (or is connected) to */
    int port;
    char client_name[128];      /* CLIENT SETNAME, so CLIENT LIST tells links apart */
    int sentinel;               /* redis.mode is sentinel */
    hl_sentinel_ask ask;        /* sentinel mode: where the master is */
    int confirmed;              /* host:port once answered ROLE with master */
    char next_host[256];        /* hl_rlink_move: where the next connect goes, unasked */
    int next_port;              /* 0: ask the sentinels as usual */
    struct event *soon;         /* hl_rlink_reconnect's deferred close */
    redisAsyncContext *soon_ac; /* the connection it closes */
    const char *soon_why;
};

/* Prepares l; nothing connects until hl_rlink_start. Returns HL_OK or
 * HL_ERR (out of memory). */
int hl_rlink_init(hl_rlink *l, const char *name, const hl_config *cfg, struct event_base *base,
                  hl_rlink_cb *on_up, hl_rlink_cb *on_down, void *ud);

/* Makes l a subscriber link whose heartbeat uses pattern, which must
 * stay valid and match no channel anyone publishes to. Call before
 * hl_rlink_start. */
void hl_rlink_set_pattern(hl_rlink *l, const char *pattern);

/* Names the link's connections (CLIENT SETNAME name; a word, no spaces).
 * Call before hl_rlink_start. */
void hl_rlink_set_client_name(hl_rlink *l, const char *name);

/* Closes the connection (if any) as one no longer trusted, on the next
 * turn of the loop: on_down follows and a reconnect is scheduled; why (a
 * string that stays valid) is logged. May be called from anywhere on the
 * link's thread, a hiredis callback included. */
void hl_rlink_reconnect(hl_rlink *l, const char *why);

/* Sentinel mode: hl_rlink_reconnect, and the next connect goes to
 * host:port (named by a sentinel's +switch-master) without asking the
 * sentinels first, some of which may not know of the switch yet. ROLE
 * still confirms it. */
void hl_rlink_move(hl_rlink *l, const char *host, int port, const char *why);

/* Makes host:port the server l connects to (cluster mode: a master).
 * Call before hl_rlink_start. */
void hl_rlink_set_addr(hl_rlink *l, const char *host, int port);

/* Starts the first connection attempt. */
void hl_rlink_start(hl_rlink *l);

int hl_rlink_is_up(const hl_rlink *l);

/* Closes the connection for good: pending callbacks get a NULL reply, no
 * reconnect follows, on_down is not called. Must not be called from inside
 * a hiredis callback. Then frees the timer; l may be discarded after. */
void hl_rlink_stop(hl_rlink *l);

#endif

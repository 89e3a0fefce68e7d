/* hl_slink.h -- one Redis Cluster connection for sharded pub/sub.
 *
 * hiredis 0.14's async API cannot carry SSUBSCRIBE: it files the reply
 * under the wrong callback, drops every smessage or aborts on the first
 * one, and closes the whole connection on a -MOVED
 * (shared/research/redis-cluster-and-hiredis.md, 1.1-1.2). A shard link therefore uses hiredis only
 * for its buffers and its RESP parser: a non-blocking redisContext driven by two libevent events of
 * the link's own (read, always; write, while output is pending, and first to learn that the connect
 * completed), and a dispatcher of its own that reads each reply.
 *
 * To tell a reply from a push, the link keeps the commands it sent that
 * await an answer in order (AUTH, CLIENT SETNAME, SSUBSCRIBE ch,
 * SUNSUBSCRIBE ch, PING) and compares each reply with the oldest:
 *
 *   ["smessage", ch, payload]    message; the list is not touched
 *   ["ssubscribe", ch, k]        answers SSUBSCRIBE ch (one channel per
 *                                command, so one push per command)
 *   ["sunsubscribe", ch, k]      answers SUNSUBSCRIBE ch when that is the
 *                                oldest; otherwise Redis sent it on its own
 *                                (the slot moved away, a failover demoted
 *                                the node) and nothing is taken off
 *   ["pong", x], x, PONG         answers PING (subscribed, or not: the
 *                                connection leaves pub/sub mode once Redis
 *                                has unsubscribed its last channel)
 *   an error                     answers the oldest; an SSUBSCRIBE or
 *                                SUNSUBSCRIBE refused (MOVED, CLUSTERDOWN,
 *                                ...) is reported and the link stays up;
 *                                AUTH refused closes it
 *   anything else                the link is out of step with Redis: it
 *                                closes the connection and reconnects
 *
 * If Redis drops a channel on its own just as the owner unsubscribes it,
 * the two sunsubscribe pushes cannot be told apart: the first counts as
 * the answer and the second as unsolicited. Either way the channel is no
 * longer subscribed.
 *
 * Like hl_rlink: a connect timeout (redis.connect_timeout_ms), AUTH with
 * redis.password, CLIENT SETNAME, reconnects with exponential backoff
 * and jitter (redis.reconnect_min_ms..max_ms), and a heartbeat every
 * redis.heartbeat_ms: HL_RLINK_HB_MISSES pings in a row unanswered close
 * the connection as dead. No SELECT: a cluster has database 0 only.
 * After a loss nothing is resubscribed: the owner subscribes again when
 * up is called.
 *
 * Only the thread that owns the event base may touch a link. Strings a
 * callback receives point into the reply, which is freed when the
 * callback returns. Callbacks may call every function here except
 * hl_slink_stop. */
#ifndef HL_SLINK_H
#define HL_SLINK_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#include "hl_config.h"

struct event_base;
struct event;
typedef struct hl_slink hl_slink;

typedef struct hl_slink_events {
    /* Connected, AUTH and CLIENT SETNAME queued: SSUBSCRIBEs may be sent. */
    void (*up)(hl_slink *l, void *ud);
    /* Lost, or closed by hl_slink_reconnect or hl_slink_set_addr; the
     * reconnect is already scheduled (hl_slink_set_addr may still move
     * it). Never called by hl_slink_stop. */
    void (*down)(hl_slink *l, void *ud);
    /* ["ssubscribe", ch, k]: ch is subscribed. */
    void (*subscribed)(hl_slink *l, void *ud, const char *ch, size_t n);
    /* ["sunsubscribe", ch, k]: solicited is 1 when it answers our
     * hl_slink_unsubscribe of ch, 0 when Redis sent it on its own. */
    void (*unsubscribed)(hl_slink *l, void *ud, const char *ch, size_t n, int solicited);
    /* ["smessage", ch, payload]; the payload may hold any byte. */
    void (*message)(hl_slink *l, void *ud, const char *ch, size_t n, const char *p, size_t len);
    /* Redis refused our SSUBSCRIBE or SUNSUBSCRIBE of ch with err (the
     * error text without its '-', such as "MOVED 15811 127.0.0.1:7003");
     * the link stays up. */
    void (*refused)(hl_slink *l, void *ud, const char *ch, size_t n, const char *err);
} hl_slink_events;

/* A command sent that awaits its answer. */
typedef struct hl_slink_sent hl_slink_sent;

struct hl_slink {
    const char *name;         /* "shard", for logs ("redis shard link to ..."); not owned */
    const hl_config *cfg;     /* not owned; outlives the link */
    struct event_base *base;  /* not owned */
    hl_slink_events ev;       /* the owner's callbacks (a copy) */
    void *ud;                 /* passed to them */
    redisContext *c;          /* NULL while down; owned */
    struct event *rev;        /* EV_READ, persistent, once connected */
    struct event *wev;        /* EV_WRITE, persistent, added while output is pending */
    int writing;              /* wev is added */
    int connected;            /* the socket's connect completed */
    int up;                   /* 1 between up and down */
    int started;              /* hl_slink_start was called */
    int stopping;             /* 1 after hl_slink_stop: never reconnect */
    int condemned;            /* hl_slink_reconnect: close this connection next turn */
    int auth_failing;         /* AUTH was refused; backoff continues over connects */
    int failures;             /* consecutive failed attempts, for backoff and logs */
    unsigned gen;             /* connections that came up */
    unsigned long reconnects; /* connections up after the first */
    struct event *timer;      /* connect timeout, then reconnect delay */
    struct event *hb_timer;   /* the heartbeat, every redis.heartbeat_ms while up */
    int hb_unanswered;        /* pings sent since the last answer to one */
    struct event *soon;       /* hl_slink_reconnect's deferred close */
    const char *soon_why;     /* not owned; stays valid */
    hl_slink_sent *head;      /* the commands awaiting an answer, oldest first; owned */
    hl_slink_sent *tail;
    size_t pending; /* how many */
    char host[256]; /* where it connects (or is connected) */
    int port;
    char next_host[256];   /* hl_slink_set_addr while connected: the next connect's */
    int next_port;         /* 0: none */
    char client_name[128]; /* CLIENT SETNAME on each connect; "" = none */
    char why[128];         /* the reason of a close the link composed itself */
};

/* Prepares l to report to ev's callbacks (copied; a NULL one is not
 * called) with ud; nothing connects until hl_slink_set_addr and
 * hl_slink_start. Returns HL_OK, or HL_ERR (out of memory; hl_slink_stop
 * frees what was made). name is not copied. */
int hl_slink_init(hl_slink *l, const char *name, const hl_config *cfg, struct event_base *base,
                  const hl_slink_events *ev, void *ud);

/* Names the link's connections (CLIENT SETNAME name; a word, no spaces),
 * from the next connect on. */
void hl_slink_set_client_name(hl_slink *l, const char *name);

/* Where to connect: a numeric address or a name (hiredis resolves names
 * with a blocking getaddrinfo). Connected or connecting elsewhere, it
 * behaves like hl_slink_reconnect; waiting to reconnect, it connects at
 * once. */
void hl_slink_set_addr(hl_slink *l, const char *host, int port);

/* Starts the first connection attempt. */
void hl_slink_start(hl_slink *l);

int hl_slink_is_up(const hl_slink *l);

/* Counts the connections that came up: a new number for each up. A
 * subscription taken under one number is gone once it changes. */
unsigned hl_slink_gen(const hl_slink *l);

/* Commands sent that await their answer. */
size_t hl_slink_pending(const hl_slink *l);

/* Queues SSUBSCRIBE ch (n bytes, any byte allowed). Returns HL_OK, or
 * HL_ERR when the link is down or memory ran out. The answer comes
 * through subscribed or refused, or the link goes down first. */
int hl_slink_subscribe(hl_slink *l, const char *ch, size_t n);

/* Queues SUNSUBSCRIBE ch, like hl_slink_subscribe; answered through
 * unsubscribed (solicited 1) or refused. */
int hl_slink_unsubscribe(hl_slink *l, const char *ch, size_t n);

/* Closes the connection (if any) on the next turn of the loop: down
 * follows and a reconnect is scheduled with backoff; why (a string that
 * stays valid) is logged. From the call on, no reply of that connection
 * is delivered. Safe from inside l's callbacks. */
void hl_slink_reconnect(hl_slink *l, const char *why);

/* Closes the connection for good: no callback after, no reconnect; frees
 * the events and everything pending. l may be discarded after. Must not
 * be called from inside l's callbacks. */
void hl_slink_stop(hl_slink *l);

/* ---- Test hooks: the dispatcher without a server ---------------------- */

/* Brings l up on no socket, as if a connect had just completed: AUTH and
 * CLIENT SETNAME are queued (into l->c->obuf, where the queued commands
 * can be read) and up is called. Replies then come from hl_slink_feed.
 * Returns HL_OK, or HL_ERR (out of memory). */
int hl_slink_test_up(hl_slink *l);

/* Hands n bytes to the connection's reader as if read from the socket
 * and dispatches every complete reply; a partial one waits for more.
 * Returns HL_OK, or HL_ERR when the link is down, or closed its
 * connection on these bytes (not RESP, or a reply out of step). */
int hl_slink_feed(hl_slink *l, const char *bytes, size_t n);

#endif

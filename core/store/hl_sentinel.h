/* hl_sentinel.h -- asking Redis Sentinel where the master is.
 *
 * One ask is one round over redis.sentinels: each sentinel in turn gets
 * a connection of its own, AUTH when a password is set, and SENTINEL
 * GET-MASTER-ADDR-BY-NAME redis.master_name, with redis.sentinel_timeout_ms
 * for all of it. The first answer ends the round, and the next round
 * starts at the sentinel that gave it. A round in which no sentinel
 * answers ends with what each one did wrong.
 *
 * The answer is only the sentinels' view: the caller confirms it with
 * ROLE on the master itself. Everything runs on the event base's thread;
 * the callback may start the next round. */
#ifndef HL_SENTINEL_H
#define HL_SENTINEL_H

#include <hiredis/async.h>

#include "hl_config.h"

struct event_base;
struct event;

/* host and port of the master the sentinels name, or host NULL and why
 * (valid during the call) when none answered. */
typedef void hl_sentinel_cb(void *ud, const char *host, int port, const char *why);

typedef struct hl_sentinel_ask {
    const hl_config *cfg;    /* not owned */
    struct event_base *base; /* not owned */
    redisAsyncContext *ac;   /* the sentinel being asked; NULL between */
    struct event *timer;     /* its time is up */
    int at;                  /* index in cfg->redis_sentinels of the one being asked */
    int tried;               /* sentinels asked in this round */
    int first;               /* where a round starts: the last one that answered */
    int active;              /* a round is running: its callback will come */
    hl_sentinel_cb *cb;
    void *ud;
    char why[512]; /* what the sentinels asked so far did wrong */
} hl_sentinel_ask;

/* Prepares q. Returns HL_OK or HL_ERR (out of memory). */
int hl_sentinel_init(hl_sentinel_ask *q, const hl_config *cfg, struct event_base *base);

/* Starts a round whose end calls cb(ud, ...). While one runs this does
 * nothing: the running round's callback (with its cb and ud) will come. */
void hl_sentinel_start(hl_sentinel_ask *q, hl_sentinel_cb *cb, void *ud);

/* 1 while a round runs. */
int hl_sentinel_busy(const hl_sentinel_ask *q);

/* Ends a running round without its callback. Not from inside hiredis's
 * callbacks of q's own connection. */
void hl_sentinel_cancel(hl_sentinel_ask *q);

/* Cancels, and frees what q holds. */
void hl_sentinel_free(hl_sentinel_ask *q);

#endif

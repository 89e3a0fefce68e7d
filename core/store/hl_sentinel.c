#include "hl_sentinel.h"

#include <event2/event.h>
#include <stdio.h>
#include <string.h>

#include "hl_common.h"
#include "hl_rconn.h"
#include "hl_rreply.h"
#include "hl_time.h"

static void ask_next(hl_sentinel_ask *q);

/* Appends "host:port: what" to the round's reasons. */
static void note(hl_sentinel_ask *q, const char *what) {
    size_t n = strlen(q->why);
    if (n + 4 >= sizeof(q->why)) return;
    snprintf(q->why + n, sizeof(q->why) - n, "%s%s: %s", n ? "; " : "",
             q->cfg->redis_sentinels[q->at], what);
}

/* Lets go of the sentinel connection: no callback of it reaches q again.
 * in_callback: called from one of its hiredis callbacks, where it may
 * only be disconnected, not freed. */
static void let_go(hl_sentinel_ask *q, int in_callback) {
    redisAsyncContext *ac = q->ac;
    evtimer_del(q->timer);
    if (ac == NULL) return;
    q->ac = NULL;
    ac->data = NULL;
    if (in_callback)
        redisAsyncDisconnect(ac);
    else
        redisAsyncFree(ac);
}

static void finish(hl_sentinel_ask *q, const char *host, int port) {
    q->active = 0;
    q->cb(q->ud, host, port, q->why);
}

/* The sentinel asked did not answer: the next one, or the end. */
static void failed(hl_sentinel_ask *q, const char *what, int in_callback) {
    note(q, what);
    let_go(q, in_callback);
    q->at = (q->at + 1) % q->cfg->redis_sentinels_count;
    if (++q->tried >= q->cfg->redis_sentinels_count) {
        finish(q, NULL, 0);
        return;
    }
    ask_next(q);
}

static void on_auth(redisAsyncContext *ac, void *reply_, void *privdata) {
    hl_sentinel_ask *q = privdata;
    const redisReply *reply = reply_;
    if (q->ac != ac || reply == NULL || reply->type != REDIS_REPLY_ERROR) return;
    char what[160];
    snprintf(what, sizeof(what), "refused AUTH: %.100s", reply->str);
    failed(q, what, 1);
}

static void on_addr(redisAsyncContext *ac, void *reply_, void *privdata) {
    hl_sentinel_ask *q = privdata;
    const redisReply *reply = reply_;
    if (q->ac != ac) return; /* let go of already */
    if (reply == NULL) {
        /* The connection is being freed: hiredis does it. */
        q->ac = NULL;
        failed(q, ac->errstr[0] ? ac->errstr : "connection lost", 0);
        return;
    }
    char host[256], what[200];
    int port;
    if (hl_rreply_master_addr(reply, host, sizeof(host), &port) == HL_OK) {
        let_go(q, 1);
        q->first = q->at;
        finish(q, host, port);
        return;
    }
    if (reply->type == REDIS_REPLY_NIL)
        snprintf(what, sizeof(what), "monitors no master named '%s'", q->cfg->redis_master_name);
    else if (reply->type == REDIS_REPLY_ERROR)
        snprintf(what, sizeof(what), "%.150s", reply->str);
    else
        snprintf(what, sizeof(what), "an answer that is not an address");
    failed(q, what, 1);
}

static void on_connect(const redisAsyncContext *cac, int status) {
    hl_sentinel_ask *q = cac->data;
    if (q == NULL || q->ac != cac || status == REDIS_OK) return;
    /* hiredis frees the context after this returns. */
    char what[160];
    snprintf(what, sizeof(what), "%.150s", cac->errstr[0] ? cac->errstr : "connect failed");
    q->ac = NULL;
    failed(q, what, 0);
}

static void on_disconnect(const redisAsyncContext *cac, int status) {
    (void)cac;
    (void)status;
    /* Nothing to do: a lost connection's pending reply came first, with
     * NULL, to on_addr; one let go of has no data. */
}

static void on_timer(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    hl_sentinel_ask *q = arg;
    if (q->ac == NULL) return;
    failed(q, "no answer in time", 0);
}

static void ask_next(hl_sentinel_ask *q) {
    char err[200];
    redisAsyncContext *ac = hl_rconn_open_addr(q->base, q->cfg->redis_sentinels[q->at], q,
                                               on_connect, on_disconnect, err, sizeof(err));
    if (ac == NULL) {
        failed(q, err, 0);
        return;
    }
    q->ac = ac;
    const char *pw = q->cfg->redis_sentinel_password[0] ? q->cfg->redis_sentinel_password
                                                        : q->cfg->redis_password;
    if (pw[0]) redisAsyncCommand(ac, on_auth, q, "AUTH %s", pw);
    redisAsyncCommand(ac, on_addr, q, "SENTINEL GET-MASTER-ADDR-BY-NAME %s",
                      q->cfg->redis_master_name);
    struct timeval tv = hl_ms_tv(q->cfg->redis_sentinel_timeout_ms);
    evtimer_add(q->timer, &tv);
}

int hl_sentinel_init(hl_sentinel_ask *q, const hl_config *cfg, struct event_base *base) {
    memset(q, 0, sizeof(*q));
    q->cfg = cfg;
    q->base = base;
    q->timer = evtimer_new(base, on_timer, q);
    return q->timer ? HL_OK : HL_ERR;
}

void hl_sentinel_start(hl_sentinel_ask *q, hl_sentinel_cb *cb, void *ud) {
    if (q->active) return;
    q->active = 1;
    q->cb = cb;
    q->ud = ud;
    q->tried = 0;
    q->why[0] = '\0';
    q->at = q->cfg->redis_sentinels_count > 0 ? q->first % q->cfg->redis_sentinels_count : 0;
    if (q->cfg->redis_sentinels_count == 0) {
        snprintf(q->why, sizeof(q->why), "redis.sentinels lists none");
        finish(q, NULL, 0);
        return;
    }
    ask_next(q);
}

int hl_sentinel_busy(const hl_sentinel_ask *q) {
    return q->active;
}

void hl_sentinel_cancel(hl_sentinel_ask *q) {
    q->active = 0;
    if (q->timer) let_go(q, 0);
}

void hl_sentinel_free(hl_sentinel_ask *q) {
    hl_sentinel_cancel(q);
    if (q->timer) {
        event_free(q->timer);
        q->timer = NULL;
    }
}

/* ---- The sentinels' events ---------------------------------------------- */

/* Which sentinel a connection is to: its slot in f->ac. */
static int feed_slot(const hl_sentinel_feed *f, const redisAsyncContext *ac) {
    for (int i = 0; i < f->cfg->redis_sentinels_count; i++)
        if (f->ac[i] == ac) return i;
    return -1;
}

static void on_feed_message(redisAsyncContext *ac, void *reply_, void *privdata) {
    hl_sentinel_feed *f = privdata;
    const redisReply *r = reply_;
    int i = feed_slot(f, ac);
    if (r == NULL || i < 0 || r->type != REDIS_REPLY_ARRAY || r->elements != 3) return;
    const redisReply *kind = r->element[0], *ch = r->element[1], *msg = r->element[2];
    if (kind->type != REDIS_REPLY_STRING || strcmp(kind->str, "message") != 0 ||
        ch->type != REDIS_REPLY_STRING || msg->type != REDIS_REPLY_STRING)
        return;
    f->cb(f->ud, i, ch->str, msg->str, msg->len);
}

static void on_feed_auth(redisAsyncContext *ac, void *reply_, void *privdata) {
    (void)privdata;
    const redisReply *r = reply_;
    /* The SUBSCRIBE behind it is refused too; a fresh connection later. */
    if (r != NULL && r->type == REDIS_REPLY_ERROR) redisAsyncDisconnect(ac);
}

static void on_feed_connect(const redisAsyncContext *cac, int status) {
    hl_sentinel_feed *f = cac->data;
    if (f == NULL || status == REDIS_OK) return;
    int i = feed_slot(f, cac);
    if (i >= 0) f->ac[i] = NULL; /* hiredis frees it */
}

static void on_feed_disconnect(const redisAsyncContext *cac, int status) {
    (void)status;
    hl_sentinel_feed *f = cac->data;
    if (f == NULL) return;
    int i = feed_slot(f, cac);
    if (i >= 0) f->ac[i] = NULL;
}

static void feed_connect(hl_sentinel_feed *f, int i) {
    char err[200];
    redisAsyncContext *ac =
        hl_rconn_open_addr(f->base, f->cfg->redis_sentinels[i], f, on_feed_connect,
                           on_feed_disconnect, err, sizeof(err));
    if (ac == NULL) return; /* tried again at the next check */
    f->ac[i] = ac;
    const char *pw = f->cfg->redis_sentinel_password[0] ? f->cfg->redis_sentinel_password
                                                        : f->cfg->redis_password;
    if (pw[0]) redisAsyncCommand(ac, on_feed_auth, f, "AUTH %s", pw);
    redisAsyncCommand(ac, on_feed_message, f, "SUBSCRIBE " HL_SENTINEL_EVENTS);
}

static void on_feed_timer(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    hl_sentinel_feed *f = arg;
    for (int i = 0; i < f->cfg->redis_sentinels_count; i++)
        if (f->ac[i] == NULL) feed_connect(f, i);
}

int hl_sentinel_feed_init(hl_sentinel_feed *f, const hl_config *cfg, struct event_base *base,
                          hl_sentinel_event_cb *cb, void *ud) {
    memset(f, 0, sizeof(*f));
    f->cfg = cfg;
    f->base = base;
    f->cb = cb;
    f->ud = ud;
    f->timer = event_new(base, -1, EV_PERSIST, on_feed_timer, f);
    return f->timer ? HL_OK : HL_ERR;
}

void hl_sentinel_feed_start(hl_sentinel_feed *f) {
    on_feed_timer(-1, 0, f);
    struct timeval tv = hl_ms_tv(f->cfg->redis_sentinel_check_ms);
    event_add(f->timer, &tv);
}

void hl_sentinel_feed_stop(hl_sentinel_feed *f) {
    if (f->cfg == NULL) return;
    if (f->timer) {
        event_free(f->timer);
        f->timer = NULL;
    }
    for (int i = 0; i < f->cfg->redis_sentinels_count; i++) {
        redisAsyncContext *ac = f->ac[i];
        if (ac == NULL) continue;
        f->ac[i] = NULL;
        ac->data = NULL;
        redisAsyncFree(ac); /* its callbacks get NULL and find no slot */
    }
}

#include "hl_slink.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "hl_common.h"
#include "hl_log.h"
#include "hl_rconn.h"
#include "hl_rlink.h"

/* What a command sent awaits. */
enum { SENT_AUTH, SENT_SETNAME, SENT_SSUB, SENT_SUNSUB, SENT_PING };

static const char *const sent_names[] = {"AUTH", "CLIENT SETNAME", "SSUBSCRIBE", "SUNSUBSCRIBE",
                                         "PING"};

struct hl_slink_sent {
    hl_slink_sent *next;
    int op;    /* SENT_* */
    size_t n;  /* the channel's length; 0 for commands without one */
    char ch[]; /* n bytes and a NUL */
};

static void connect_to(hl_slink *l);

/* ---- The commands awaiting an answer ------------------------------------ */

/* Queues a command whose answer the dispatcher will read as op. Returns
 * HL_OK, or HL_ERR (out of memory: nothing is queued). */
static int queue(hl_slink *l, int op, const char *ch, size_t n, int argc, const char **argv,
                 const size_t *lens) {
    hl_slink_sent *s = malloc(sizeof(*s) + n + 1);
    if (s == NULL) return HL_ERR;
    s->next = NULL;
    s->op = op;
    s->n = n;
    if (n > 0) memcpy(s->ch, ch, n);
    s->ch[n] = '\0';
    if (redisAppendCommandArgv(l->c, argc, argv, lens) != REDIS_OK) {
        free(s);
        return HL_ERR;
    }
    if (l->tail != NULL)
        l->tail->next = s;
    else
        l->head = s;
    l->tail = s;
    l->pending++;
    if (l->wev != NULL && !l->writing) {
        event_add(l->wev, NULL);
        l->writing = 1;
    }
    return HL_OK;
}

/* Takes the oldest off; the caller frees it (after any callback that
 * reads its channel, which may queue more behind it). */
static hl_slink_sent *pop(hl_slink *l) {
    hl_slink_sent *s = l->head;
    l->head = s->next;
    if (l->head == NULL) l->tail = NULL;
    l->pending--;
    return s;
}

static void forget_all(hl_slink *l) {
    while (l->head != NULL)
        free(pop(l));
}

/* AUTH and CLIENT SETNAME, queued before anything the owner sends. */
static int queue_hello(hl_slink *l) {
    if (l->cfg->redis_password[0]) {
        const char *argv[] = {"AUTH", l->cfg->redis_password};
        if (queue(l, SENT_AUTH, NULL, 0, 2, argv, NULL) != HL_OK) return HL_ERR;
    }
    if (l->client_name[0]) {
        const char *argv[] = {"CLIENT", "SETNAME", l->client_name};
        if (queue(l, SENT_SETNAME, NULL, 0, 3, argv, NULL) != HL_OK) return HL_ERR;
    }
    return HL_OK;
}

/* ---- Connection state --------------------------------------------------- */

static void arm_timer(hl_slink *l, int ms) {
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(l->timer, &tv);
}

static void schedule_reconnect(hl_slink *l, const char *why) {
    l->failures++;
    arm_timer(l, hl_rconn_retry_ms(l->cfg, l->name, l->host, l->port, l->failures, why));
}

/* Frees the connection and all that belongs to it; the events go first,
 * because redisFree closes the descriptor they watch. */
static void close_conn(hl_slink *l) {
    if (l->rev != NULL) {
        event_free(l->rev);
        l->rev = NULL;
    }
    if (l->wev != NULL) {
        event_free(l->wev);
        l->wev = NULL;
    }
    if (l->c != NULL) {
        redisFree(l->c);
        l->c = NULL;
    }
    if (l->hb_timer != NULL) evtimer_del(l->hb_timer);
    l->writing = 0;
    l->connected = 0;
    l->condemned = 0;
    forget_all(l);
}

/* The connection is gone or no longer trusted: closes it, schedules the
 * reconnect, then tells the owner if it was up. why may point into the
 * connection (its errstr), so it is copied first. */
static void lost(hl_slink *l, const char *why) {
    char reason[200];
    snprintf(reason, sizeof(reason), "%s", why && why[0] ? why : "connection closed");
    int was_up = l->up;
    close_conn(l);
    l->up = 0;
    if (l->stopping) return;
    if (was_up) l->reconnects++;
    schedule_reconnect(l, reason);
    if (was_up && l->ev.down) l->ev.down(l, l->ud);
}

/* The link is up: heartbeats start and the owner may send. */
static void go_up(hl_slink *l) {
    evtimer_del(l->timer);
    /* A refused AUTH comes after the connect: the backoff it started goes
     * on until AUTH is accepted. */
    if (!l->auth_failing) {
        if (l->failures > 0 || l->reconnects > 0)
            hl_info("redis %s link to %s:%d is back", l->name, l->host, l->port);
        l->failures = 0;
    }
    l->up = 1;
    l->gen++;
    l->hb_unanswered = 0;
    int ms = l->cfg->redis_heartbeat_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(l->hb_timer, &tv);
    if (l->ev.up) l->ev.up(l, l->ud);
}

/* ---- Reading replies ---------------------------------------------------- */

/* e is a string equal to word, in any case. */
static int is_word(const redisReply *e, const char *word) {
    size_t n = strlen(word);
    return (e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS) && e->len == n &&
           strncasecmp(e->str, word, n) == 0;
}

static int is_str(const redisReply *e) {
    return e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS;
}

/* The oldest command sent is op on channel ch. */
static int head_is(const hl_slink *l, int op, const redisReply *ch) {
    const hl_slink_sent *h = l->head;
    return h != NULL && h->op == op && h->n == ch->len && memcmp(h->ch, ch->str, ch->len) == 0;
}

/* A reply the commands sent do not explain: from here on every answer
 * could be taken for another's, so the connection must go. */
static const char *out_of_step(hl_slink *l, const char *what) {
    snprintf(l->why, sizeof(l->why), "reply out of step (%s while awaiting %s)", what,
             l->head ? sent_names[l->head->op] : "nothing");
    return l->why;
}

static const char *on_error(hl_slink *l, const redisReply *r) {
    if (l->head == NULL) return out_of_step(l, "an error");
    hl_slink_sent *s = pop(l);
    switch (s->op) {
    case SENT_AUTH:
        if (!l->auth_failing)
            hl_error("redis %s link to %s:%d: AUTH refused: %s", l->name, l->host, l->port, r->str);
        else
            hl_debug("redis %s link to %s:%d: AUTH refused again: %s", l->name, l->host, l->port,
                     r->str);
        l->auth_failing = 1;
        free(s);
        return "AUTH refused";
    case SENT_SETNAME:
        hl_warn("redis %s link to %s:%d: CLIENT SETNAME refused: %s", l->name, l->host, l->port,
                r->str);
        break;
    case SENT_PING: l->hb_unanswered = 0; break; /* an answer all the same */
    default:
        hl_debug("redis %s link to %s:%d: %s %.*s refused: %s", l->name, l->host, l->port,
                 sent_names[s->op], (int)s->n, s->ch, r->str);
        if (l->ev.refused) l->ev.refused(l, l->ud, s->ch, s->n, r->str);
        break;
    }
    free(s);
    return NULL;
}

/* A reply that is neither an error nor an array: the answer to AUTH,
 * CLIENT SETNAME, or to a PING outside pub/sub mode (its argument, or
 * PONG). */
static const char *on_plain(hl_slink *l) {
    if (l->head == NULL) return out_of_step(l, "a reply");
    if (l->head->op == SENT_SSUB || l->head->op == SENT_SUNSUB)
        return out_of_step(l, "a reply that is not a push");
    hl_slink_sent *s = pop(l);
    if (s->op == SENT_PING) l->hb_unanswered = 0;
    if (s->op == SENT_AUTH && l->auth_failing) {
        l->auth_failing = 0;
        l->failures = 0;
        hl_info("redis %s link to %s:%d: AUTH accepted, the link is back", l->name, l->host,
                l->port);
    }
    free(s);
    return NULL;
}

static const char *on_push(hl_slink *l, const redisReply *r) {
    if (r->elements == 0 || !is_str(r->element[0])) return out_of_step(l, "an array");
    const redisReply *kind = r->element[0];
    if (is_word(kind, "smessage")) {
        if (r->elements != 3 || !is_str(r->element[1]) || !is_str(r->element[2]))
            return out_of_step(l, "a malformed smessage");
        if (l->ev.message)
            l->ev.message(l, l->ud, r->element[1]->str, r->element[1]->len, r->element[2]->str,
                          r->element[2]->len);
        return NULL;
    }
    if (is_word(kind, "pong")) {
        if (l->head == NULL || l->head->op != SENT_PING) return out_of_step(l, "a pong");
        free(pop(l));
        l->hb_unanswered = 0;
        return NULL;
    }
    int sub = is_word(kind, "ssubscribe");
    if (!sub && !is_word(kind, "sunsubscribe")) return out_of_step(l, "an unknown push");
    if (r->elements != 3 || !is_str(r->element[1]) || r->element[2]->type != REDIS_REPLY_INTEGER)
        return out_of_step(l, sub ? "a malformed ssubscribe" : "a malformed sunsubscribe");
    const redisReply *ch = r->element[1];
    if (sub) {
        if (!head_is(l, SENT_SSUB, ch)) return out_of_step(l, "an ssubscribe");
        hl_slink_sent *s = pop(l);
        if (l->ev.subscribed) l->ev.subscribed(l, l->ud, ch->str, ch->len);
        free(s);
        return NULL;
    }
    if (head_is(l, SENT_SUNSUB, ch)) {
        hl_slink_sent *s = pop(l);
        if (l->ev.unsubscribed) l->ev.unsubscribed(l, l->ud, ch->str, ch->len, 1);
        free(s);
        return NULL;
    }
    /* Redis dropped the channel itself: nothing of ours is answered. */
    hl_debug("redis %s link to %s:%d: Redis unsubscribed %.*s", l->name, l->host, l->port,
             (int)ch->len, ch->str);
    if (l->ev.unsubscribed) l->ev.unsubscribed(l, l->ud, ch->str, ch->len, 0);
    return NULL;
}

/* Classifies one reply, calling the owner's callback. Returns NULL, or
 * why the connection must close. */
static const char *classify(hl_slink *l, const redisReply *r) {
    if (r->type == REDIS_REPLY_ERROR) return on_error(l, r);
    if (r->type != REDIS_REPLY_ARRAY) return on_plain(l);
    return on_push(l, r);
}

/* Classifies every complete reply in the reader. Returns HL_OK, or HL_ERR
 * when it closed the connection. Once the owner condemned the connection
 * (hl_slink_reconnect, from a callback), the rest is left unread. */
static int dispatch(hl_slink *l) {
    redisContext *c = l->c;
    while (!l->condemned) {
        void *r = NULL;
        if (redisGetReplyFromReader(c, &r) != REDIS_OK) {
            lost(l, c->errstr);
            return HL_ERR;
        }
        if (r == NULL) break;
        const char *why = classify(l, r);
        freeReplyObject(r);
        if (why != NULL) {
            lost(l, why);
            return HL_ERR;
        }
    }
    return HL_OK;
}

/* ---- Events ------------------------------------------------------------- */

static void on_read(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    hl_slink *l = arg;
    if (redisBufferRead(l->c) != REDIS_OK) {
        lost(l, l->c->errstr);
        return;
    }
    dispatch(l);
}

static void flush(hl_slink *l) {
    int done = 0;
    if (redisBufferWrite(l->c, &done) != REDIS_OK) {
        lost(l, l->c->errstr);
        return;
    }
    if (done && l->writing) {
        event_del(l->wev);
        l->writing = 0;
    }
}

/* The first writability of a non-blocking connect says it completed;
 * SO_ERROR says how (hiredis 0.14 checks it only in its async API). */
static void on_write(evutil_socket_t fd, short what, void *arg) {
    (void)what;
    hl_slink *l = arg;
    if (!l->connected) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
        if (err != 0) {
            snprintf(l->why, sizeof(l->why), "cannot connect: %s", strerror(err));
            close_conn(l);
            schedule_reconnect(l, l->why);
            return;
        }
        l->connected = 1;
        l->rev = event_new(l->base, fd, EV_READ | EV_PERSIST, on_read, l);
        if (l->rev == NULL || event_add(l->rev, NULL) != 0) {
            lost(l, "out of memory");
            return;
        }
        go_up(l);
    }
    if (l->c != NULL && !l->condemned) flush(l);
}

static void on_timer(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    hl_slink *l = arg;
    if (l->c != NULL && !l->connected) {
        close_conn(l);
        schedule_reconnect(l, "connect timed out");
        return;
    }
    if (l->c == NULL && !l->stopping) connect_to(l);
}

static void on_hb_timer(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    hl_slink *l = arg;
    if (!hl_slink_is_up(l) || l->condemned) return;
    if (l->hb_unanswered >= HL_RLINK_HB_MISSES) {
        snprintf(l->why, sizeof(l->why), "no answer to %d heartbeats in a row", l->hb_unanswered);
        lost(l, l->why);
        return;
    }
    /* With an argument, so that the answer reads the same in pub/sub
     * mode (["pong", x]) and out of it (x). */
    const char *argv[] = {"PING", "holdline"};
    if (queue(l, SENT_PING, NULL, 0, 2, argv, NULL) == HL_OK) l->hb_unanswered++;
}

static void on_soon(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    hl_slink *l = arg;
    if (l->c != NULL && l->condemned) lost(l, l->soon_why);
}

/* Connects to l->host:l->port, or first moves there. */
static void connect_to(hl_slink *l) {
    if (l->next_port != 0) {
        snprintf(l->host, sizeof(l->host), "%s", l->next_host);
        l->port = l->next_port;
        l->next_port = 0;
    }
    redisContext *c = redisConnectNonBlock(l->host, l->port);
    if (c == NULL) {
        schedule_reconnect(l, "out of memory");
        return;
    }
    if (c->err) {
        snprintf(l->why, sizeof(l->why), "%s", c->errstr);
        redisFree(c);
        schedule_reconnect(l, l->why);
        return;
    }
    l->c = c;
    l->wev = event_new(l->base, c->fd, EV_WRITE | EV_PERSIST, on_write, l);
    /* Queued now, these go out first once the socket connects, ahead of
     * anything up sends. */
    if (l->wev == NULL || queue_hello(l) != HL_OK) {
        close_conn(l);
        schedule_reconnect(l, "out of memory");
        return;
    }
    if (!l->writing) {
        event_add(l->wev, NULL);
        l->writing = 1;
    }
    arm_timer(l, l->cfg->redis_connect_timeout_ms);
}

/* ---- The interface ------------------------------------------------------ */

int hl_slink_init(hl_slink *l, const char *name, const hl_config *cfg, struct event_base *base,
                  const hl_slink_events *ev, void *ud) {
    memset(l, 0, sizeof(*l));
    l->name = name;
    l->cfg = cfg;
    l->base = base;
    if (ev != NULL) l->ev = *ev;
    l->ud = ud;
    l->timer = evtimer_new(base, on_timer, l);
    l->hb_timer = event_new(base, -1, EV_PERSIST, on_hb_timer, l);
    l->soon = event_new(base, -1, 0, on_soon, l);
    return l->timer && l->hb_timer && l->soon ? HL_OK : HL_ERR;
}

void hl_slink_set_client_name(hl_slink *l, const char *name) {
    snprintf(l->client_name, sizeof(l->client_name), "%s", name);
}

void hl_slink_set_addr(hl_slink *l, const char *host, int port) {
    const char *to = l->next_port ? l->next_host : l->host;
    int to_port = l->next_port ? l->next_port : l->port;
    if (strcmp(to, host) == 0 && to_port == port) return;
    if (l->c == NULL) {
        snprintf(l->host, sizeof(l->host), "%s", host);
        l->port = port;
        l->next_port = 0;
        if (l->started && !l->stopping) arm_timer(l, 0); /* waiting to reconnect: now */
        return;
    }
    /* Until the connection closes, logs name the server it is to. */
    snprintf(l->next_host, sizeof(l->next_host), "%s", host);
    l->next_port = port;
    hl_slink_reconnect(l, "moved to another address");
}

void hl_slink_start(hl_slink *l) {
    if (l->started || l->stopping) return;
    l->started = 1;
    connect_to(l);
}

int hl_slink_is_up(const hl_slink *l) {
    return l->c != NULL && l->up;
}

unsigned hl_slink_gen(const hl_slink *l) {
    return l->gen;
}

size_t hl_slink_pending(const hl_slink *l) {
    return l->pending;
}

int hl_slink_subscribe(hl_slink *l, const char *ch, size_t n) {
    if (!hl_slink_is_up(l)) return HL_ERR;
    const char *argv[] = {"SSUBSCRIBE", ch};
    const size_t lens[] = {10, n};
    return queue(l, SENT_SSUB, ch, n, 2, argv, lens);
}

int hl_slink_unsubscribe(hl_slink *l, const char *ch, size_t n) {
    if (!hl_slink_is_up(l)) return HL_ERR;
    const char *argv[] = {"SUNSUBSCRIBE", ch};
    const size_t lens[] = {12, n};
    return queue(l, SENT_SUNSUB, ch, n, 2, argv, lens);
}

void hl_slink_reconnect(hl_slink *l, const char *why) {
    if (l->c == NULL || l->stopping || l->condemned) return;
    l->condemned = 1;
    l->soon_why = why;
    event_active(l->soon, EV_TIMEOUT, 0);
}

void hl_slink_stop(hl_slink *l) {
    l->stopping = 1;
    close_conn(l);
    l->up = 0;
    if (l->timer != NULL) {
        event_free(l->timer);
        l->timer = NULL;
    }
    if (l->hb_timer != NULL) {
        event_free(l->hb_timer);
        l->hb_timer = NULL;
    }
    if (l->soon != NULL) {
        event_free(l->soon);
        l->soon = NULL;
    }
}

int hl_slink_test_up(hl_slink *l) {
    if (l->c != NULL || l->stopping) return HL_ERR;
    /* No descriptor: redisFree closes only a positive one. */
    l->c = redisConnectFd(-1);
    if (l->c == NULL) return HL_ERR;
    l->connected = 1;
    if (queue_hello(l) != HL_OK) {
        close_conn(l);
        return HL_ERR;
    }
    go_up(l);
    return HL_OK;
}

int hl_slink_feed(hl_slink *l, const char *bytes, size_t n) {
    if (l->c == NULL) return HL_ERR;
    if (redisReaderFeed(l->c->reader, bytes, n) != REDIS_OK) {
        lost(l, "out of memory");
        return HL_ERR;
    }
    return dispatch(l);
}

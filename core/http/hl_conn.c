/* hl_conn.c -- connections as the limits see them: the deadline by which
 * each must send a whole request, the checks on a request target that
 * libmicrohttpd gets wrong, and hang-ups of clients whose requests are
 * held. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "hl_common.h"
#include "hl_http_int.h"
#include "hl_log.h"
#include "hl_time.h"

static void owing_remove(hl_conn *hc) {
    if (!hc->owing) return;
    hl_http *h = hc->h;
    if (hc->prev)
        hc->prev->next = hc->next;
    else
        h->owing_head = hc->next;
    if (hc->next)
        hc->next->prev = hc->prev;
    else
        h->owing_tail = hc->prev;
    hc->prev = hc->next = NULL;
    hc->owing = 0;
}

/* Every deadline is http.connection_timeout from when it is set, so
 * appending keeps the list in deadline order. */
void hl__conn_owing(hl_conn *hc) {
    hl_http *h = hc->h;
    owing_remove(hc);
    hc->deadline = hl_mono_ms() + (long long)h->cfg->http_connection_timeout * 1000;
    hc->prev = h->owing_tail;
    hc->next = NULL;
    if (h->owing_tail)
        h->owing_tail->next = hc;
    else
        h->owing_head = hc;
    h->owing_tail = hc;
    hc->owing = 1;
}

void hl__conn_paid(hl_conn *hc) {
    owing_remove(hc);
}

void hl__conn_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                            enum MHD_ConnectionNotificationCode toe) {
    hl_http *h = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        /* Made by hl_accept.c just before MHD_add_connection. */
        hl_conn *hc = h->handing;
        h->handing = NULL;
        *socket_context = hc;
        if (hc == NULL) return;
        hc->mc = conn;
        hc->d->conns++;
        h->admitted++;
        hl_metric_set(&h->m->connections, h->admitted);
        hl__conn_owing(hc);
        return;
    }
    hl_conn *hc = *socket_context;
    *socket_context = NULL;
    if (hc == NULL) return;
    hc->d->conns--;
    h->admitted--;
    hl_metric_set(&h->m->connections, h->admitted);
    owing_remove(hc);
    free(hc);
}

hl_conn *hl__conn_of(struct MHD_Connection *conn) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

int hl__req_fd(const hl_req *r) {
    return r->hc ? r->hc->fd : -1;
}

/* Called with the request target as soon as the request line is in,
 * before MHD splits off the query. Two things MHD 0.9.75 gets wrong are
 * caught here (the target lies in MHD's read buffer, writable, and MHD
 * has ended it with a NUL where the " HTTP/1.x" began):
 *   - a NUL byte inside the target: MHD would serve the part before it,
 *     so "/poll/a<NUL>b" would poll "a";
 *   - many query parameters: MHD stores each in the connection's memory
 *     pool and, when that runs out, leaves the connection hanging with no
 *     answer. Past HL_MAX_QUERY_PARAMS the '&'s are blanked out, so MHD
 *     stores one parameter; the request is refused with 400 anyway. */
void *hl__conn_on_uri(void *cls, const char *uri, struct MHD_Connection *conn) {
    (void)cls;
    hl_conn *hc = hl__conn_of(conn);
    if (hc == NULL) return NULL;
    size_t n = strnlen(uri, 1u << 30);
    hc->url_len = (unsigned)n;
    hc->bad_target = strncmp(uri + n + 1, "HTTP/", 5) != 0;
    const char *q = memchr(uri, '?', n);
    if (q != NULL) {
        size_t params = 1;
        for (const char *p = q; p < uri + n; p++)
            params += *p == '&';
        if (params > HL_MAX_QUERY_PARAMS) {
            hc->bad_target = 1;
            for (char *p = (char *)q; p < uri + n; p++)
                if (*p == '&') *p = ';';
        }
    }
    return NULL; /* the request's context is made by the access handler */
}

static void check_hangup(hl_waiter *w, void *ud) {
    size_t *gone = ud;
    hl_req *r = (hl_req *)((char *)w - offsetof(hl_req, u.wt));
    int fd = hl__req_fd(r);
    /* Streams too: a heartbeat would find a client that left only after
     * two writes (up to 30 s), while it still weighs on every run of its
     * daemon. (A libevent EV_CLOSED watch per stream finds it at once but
     * costs some 200 bytes a stream, more than the peeks' CPU is worth.) */
    if (fd < 0 || (r->state != HL_REQ_WAITING && r->state != HL_REQ_STREAM)) return;
    char b;
    ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    /* 0 is the client's FIN; an error other than "nothing yet" is a reset.
     * Bytes waiting (a pipelined request) mean the client is still there. */
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        const hl_sink_ops *ops = w->ops;
        hl_waiter_stop(w);
        ops->end(w, HL_END_ERROR); /* closes the connection */
        (*gone)++;
    }
}

void hl__conn_close_owing(hl_http *h) {
    size_t n = 0;
    while (h->owing_head) {
        hl_conn *hc = h->owing_head;
        owing_remove(hc);
        if (hc->fd >= 0) shutdown(hc->fd, SHUT_RDWR);
        n++;
    }
    if (n > 0) {
        hl_debug("worker %d: stopping: closed %zu connections without a complete request",
                 h->worker, n);
        hl__kick_all(h);
    }
}

/* Held requests are peeked for a hang-up every 4 s (HANGUP_SHARES sweeps
 * of 250 ms): one recv per held request each time, about 0.1% of a core
 * per 10,000, against a poll timeout of 30 s by default. Each sweep takes
 * the waiters of one share of the channels, so that neither the peeks nor
 * the release of many clients gone at once (a proxy restarted) stall the
 * loop in one go. */
#define HANGUP_SHARES 16

void hl__conn_sweep(hl_http *h) {
    long long now = hl_mono_ms();
    size_t late = 0;
    while (h->owing_head && h->owing_head->deadline <= now) {
        hl_conn *hc = h->owing_head;
        owing_remove(hc);
        /* MHD has no call to close a connection it is reading from; a
         * shutdown makes its next read see the end and close it. */
        if (hc->fd >= 0) shutdown(hc->fd, SHUT_RDWR);
        late++;
    }
    if (late > 0) {
        hl_debug("worker %d: closed %zu connections that sent no complete request within %d s",
                 h->worker, late, h->cfg->http_connection_timeout);
        hl__kick_all(h);
    }
    size_t gone = 0;
    hl_engine_foreach(h->engine, h->sweeps++ % HANGUP_SHARES, HANGUP_SHARES, check_hangup, &gone);
    if (gone > 0)
        hl_debug("worker %d: released %zu held requests whose clients hung up", h->worker, gone);
}

/* hl_accept.c -- how sockets reach libmicrohttpd. Each worker accepts on
 * its own listening socket (SO_REUSEPORT spreads connections over the
 * workers, TCP_DEFER_ACCEPT hands them over with their first bytes),
 * peeks at the first request's head (MSG_PEEK: the bytes stay for MHD)
 * and hands the socket with MHD_add_connection to one of its daemons:
 *
 *   - the pool class is the smallest whose memory pool fits the request by
 *     libmicrohttpd's own accounting (hl_peek_pool_need): a short request
 *     from a service gets 1.5 KiB, a browser with 12 KB of cookies 64 KiB.
 *     A kept-alive connection keeps its pool as long as it lives, and MHD
 *     zeroes the whole pool at every keep-alive reset, so the pool is what
 *     a re-polling waiter costs;
 *   - within the class, the daemon is picked by a hash of the first
 *     channel the request names, so that one message resumes waiters of
 *     one daemon, and an MHD_run after resumes walks only that daemon's
 *     suspended connections (MHD 0.9.75 walks all of them). Spreading
 *     connections evenly would make every batch of resumes touch every
 *     daemon (shared/research/engine-probe-multi-daemon.md). Channels with
 *     news and quiet ones hash to separate daemons, so idle waiters are
 *     never walked for a message (a connection that changes sides is
 *     answered with "Connection: close" and placed again: hl_http.c and
 *     hl__daemon_promote). A
 *     daemon grown well past its tier's mean spills to the emptiest one.
 *
 * Requests that cannot be served (a head larger than the limits or than
 * the largest pool, a node at http.max_connections) are answered here
 * with holdline's JSON errors; MHD would close them without an answer or
 * send a doubled 431. Only daemons that had a connection resumed are run
 * (hl__daemon_kick): a resume does not wake MHD's epoll fd. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "hl_common.h"
#include "hl_log.h"
#include "hl_peek.h"
#include "hl_time.h"
#include "hl_http_int.h"

/* Accepts per wake-up, so a flood does not starve the rest of the loop. */
#define ACCEPT_BATCH 64
/* Peeks one connection may take before its head is complete: each one
 * reads the whole head again, so a client trickling a byte at a time is
 * cut here rather than at its deadline. */
#define MAX_PEEK_ROUNDS 64
/* How long a connection holdline answered itself may go on sending
 * before it is closed anyway, in ms. */
#define CLOSING_MS 2000
/* A daemon whose connections pass this many times the class's mean (and
 * SPILL_MIN) takes no more: new ones go to the class's emptiest daemon. */
#define SPILL_FACTOR 2
#define SPILL_MIN 64

/* ---- The daemons ------------------------------------------------------ */

/* A run walks every suspended connection of d to answer the resumed
 * ones; past this many walked per answer, the waiters a message answered
 * on a quiet daemon move to the busy tier. A fan-out to many waiters of
 * one channel answers most of what it walks and stays put. */
#define PROMOTE_WASTE 16
/* Moves cost a reconnect each (accept, peek, a new MHD connection: some
 * 40 us of a core), so a worker makes at most PROMOTE_RATE of them a
 * second, in bursts of at most PROMOTE_BURST: a thousand channels waking
 * at once then move over seconds instead of in one reconnect storm, and
 * moving never takes more than about 1% of a core. */
#define PROMOTE_RATE 256
#define PROMOTE_BURST 64

/* Takes one move from the worker's budget; 0 if it is spent. */
static int promote_token(hl_http *h) {
    long long now = hl_mono_ms();
    if (h->promote_at == 0) {
        h->promote_at = now;
        h->promote_tokens = PROMOTE_BURST;
    }
    long long add = (now - h->promote_at) * PROMOTE_RATE / 1000;
    if (add > 0) {
        h->promote_tokens += add;
        if (h->promote_tokens > PROMOTE_BURST) h->promote_tokens = PROMOTE_BURST;
        h->promote_at += add * 1000 / PROMOTE_RATE;
    }
    if (h->promote_tokens <= 0) return 0;
    h->promote_tokens--;
    return 1;
}

void hl__daemon_promote(hl_daemon *d, hl_req *r) {
    r->promoting = 1;
    r->promote_next = d->promote;
    d->promote = r;
}

static void run_daemon(hl_daemon *d) {
    d->kicked = 0;
    int move = d->conns > PROMOTE_WASTE * d->resumed;
    for (hl_req *r = d->promote, *next; r; r = next) {
        next = r->promote_next;
        r->promote_next = NULL;
        r->promoting = 0;
        if (move && promote_token(d->h))
            MHD_set_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONNECTION, "close");
    }
    d->promote = NULL;
    d->resumed = 0;
    MHD_run(d->mhd);
    MHD_UNSIGNED_LONG_LONG ms;
    if (MHD_get_timeout(d->mhd, &ms) == MHD_YES) {
        struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
        evtimer_add(d->run, &tv);
    } else {
        evtimer_del(d->run);
    }
}

static void on_daemon(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    run_daemon(arg);
}

void hl__daemon_kick(hl_daemon *d) {
    /* A fan-out resumes many connections of a daemon in one go; one run
     * serves them all, so only the first resume arms the timer. */
    if (d->kicked) return;
    d->kicked = 1;
    struct timeval now = {0, 0};
    evtimer_add(d->run, &now);
}

void hl__kick_all(hl_http *h) {
    for (size_t i = 0; i < h->ndaemons; i++)
        if (h->daemons[i].mhd) hl__daemon_kick(&h->daemons[i]);
}

/* ---- Pending sockets -------------------------------------------------- */

static void pending_unlink(hl_pending *p) {
    hl_http *h = p->h;
    if (p->prev)
        p->prev->next = p->next;
    else
        h->pending = p->next;
    if (p->next) p->next->prev = p->prev;
    p->prev = p->next = NULL;
    h->npending--;
}

static void pending_free(hl_pending *p, int close_fd) {
    pending_unlink(p);
    if (p->ev) event_free(p->ev);
    if (close_fd && p->fd >= 0) close(p->fd);
    free(p);
}

static void on_pending(evutil_socket_t fd, short what, void *arg);

/* Watches p for bytes until its deadline, once: the peeked bytes stay in
 * the socket, so the watch is edge-triggered (only new bytes wake it) and
 * persistent (re-adding it would report the old bytes again at once).
 * Returns HL_OK, or HL_ERR (p is then freed with its socket). */
static int pending_watch(hl_pending *p) {
    long long ms = p->deadline - hl_mono_ms();
    if (ms < 1) ms = 1;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    p->ev = event_new(p->h->base, p->fd, EV_READ | EV_PERSIST | EV_ET, on_pending, p);
    if (p->ev == NULL || event_add(p->ev, &tv) != 0) {
        pending_free(p, 1);
        return HL_ERR;
    }
    return HL_OK;
}

/* The socket leaves the worker's own watch before it is handed over or
 * answered: MHD adds it to its epoll set. */
static void unwatch(hl_pending *p) {
    if (p != NULL && p->ev != NULL) event_del(p->ev);
}

static hl_pending *pending_new(hl_http *h, int fd, const struct sockaddr_storage *addr,
                               socklen_t addrlen) {
    hl_pending *p = calloc(1, sizeof(*p));
    if (p == NULL) return NULL;
    p->h = h;
    p->fd = fd;
    p->addr = *addr;
    p->addrlen = addrlen;
    p->next = h->pending;
    if (h->pending) h->pending->prev = p;
    h->pending = p;
    h->npending++;
    return p;
}

/* Reads and drops what the client sent; returns 1 once it has closed
 * (or failed), 0 while it may send more. */
static int drain(int fd) {
    char buf[4096];
    for (int i = 0; i < 64; i++) {
        ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return 0;
        return 1;
    }
    return 0;
}

/* Answers on the raw socket with a JSON error, then closes it gently:
 * what the client sent is read first and our side shut down, so the
 * answer is not destroyed by a reset, and the socket is closed once the
 * client closes (or CLOSING_MS passes). Takes fd over. */
static void answer_raw(hl_http *h, int fd, const struct sockaddr_storage *addr, socklen_t alen,
                       const hl_peek *pk, unsigned status, const char *reason, const char *code,
                       const char *detail, const char *extra) {
    hl_buf body, out;
    hl_buf_init(&body);
    hl_buf_init(&out);
    hl_codec_error(&body, code, detail);
    char head[512];
    int origin = pk ? hl__origin_index(h->cfg, pk->origin.p, pk->origin.n) : HL_ORIGIN_NONE;
    int hn = snprintf(head, sizeof(head),
                      "HTTP/1.1 %u %s\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\nCache-Control: no-store\r\nConnection: close\r\n%s",
                      status, reason, body.len, extra ? extra : "");
    hl_buf_append(&out, head, (size_t)hn);
    const char *allow = hl__cors_allow(h->cfg, origin);
    if (allow) {
        hl_buf_puts(&out, "Access-Control-Allow-Origin: ");
        hl_buf_puts(&out, allow);
        hl_buf_puts(&out, origin >= 0 ? "\r\nVary: Origin\r\n" : "\r\n");
    }
    hl_buf_puts(&out, "\r\n");
    if (body.len) hl_buf_append(&out, body.data, body.len);
    /* The socket's send buffer is empty: a few hundred bytes go out whole. */
    if (!out.oom) (void)!send(fd, out.data, out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
    hl_metrics_http(h->m, status);
    hl_buf_free(&body);
    hl_buf_free(&out);
    if (drain(fd)) {
        close(fd);
        return;
    }
    shutdown(fd, SHUT_WR);
    hl_pending *p = pending_new(h, fd, addr, alen);
    if (p == NULL) {
        close(fd);
        return;
    }
    p->closing = 1;
    p->deadline = hl_mono_ms() + CLOSING_MS;
    pending_watch(p);
}

/* Whether channel ch had news lately on this worker: within a default
 * poll timeout, so its waiters are answered by messages rather than by
 * their timeouts. */
static int channel_busy(hl_http *h, hl_span ch) {
    long long news = hl_engine_channel_news(h->engine, ch.p, ch.n);
    return news != 0 && hl_mono_coarse_ms() - news < (long long)h->cfg->poll_default_timeout * 1000;
}

/* The daemons of a class: the first takes what is not a poll (publishes,
 * health checks: resumed all the time, their runs then walk no idle
 * waiters); the rest are split into busy ones, for channels with news,
 * and quiet ones, each channel hashed to one daemon of its tier. A batch
 * of resumes for a message then walks only the waiters of busy channels
 * that share its daemon, however many idle waiters the node holds. With
 * fewer than 3 daemons there are no tiers. Sets *busy to the tier. */
static hl_daemon *pick_daemon(hl_http *h, size_t cls, hl_span ch, int *busy) {
    hl_daemon *first = &h->daemons[cls * h->per_class];
    *busy = 0;
    if (h->per_class == 1 || ch.n == 0) return first;
    hl_daemon *tier = first + 1;
    size_t n = h->per_class - 1;
    if (h->per_class >= 3) {
        size_t nbusy = n / 2;
        *busy = channel_busy(h, ch);
        if (*busy) {
            n = nbusy;
        } else {
            tier += nbusy;
            n -= nbusy;
        }
    }
    hl_daemon *d = &tier[hl_peek_hash(ch.p, ch.n) % n];
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += tier[i].conns;
    if (d->conns < SPILL_MIN || d->conns <= SPILL_FACTOR * (total / n)) return d;
    hl_daemon *least = &tier[0];
    for (size_t i = 1; i < n; i++)
        if (tier[i].conns < least->conns) least = &tier[i];
    return least;
}

/* The two size limits' refusals, as hl_http.c words them for a later
 * request on a kept-alive connection. Take fd over. */
static void refuse_url(hl_http *h, int fd, const struct sockaddr_storage *addr, socklen_t alen,
                       const hl_peek *pk) {
    char detail[96];
    snprintf(detail, sizeof(detail), "the request target is longer than %d bytes",
             h->cfg->http_max_url_bytes);
    answer_raw(h, fd, addr, alen, pk, 414, "URI Too Long", "url_too_long", detail, NULL);
}

static void refuse_headers(hl_http *h, int fd, const struct sockaddr_storage *addr, socklen_t alen,
                           const hl_peek *pk) {
    char detail[96];
    snprintf(detail, sizeof(detail), "the request headers are larger than %d bytes",
             h->cfg->http_max_header_bytes);
    answer_raw(h, fd, addr, alen, pk, 431, "Request Header Fields Too Large", "headers_too_large",
               detail, NULL);
}

/* The head of fd's first request is in: refuse it, or hand it to its
 * daemon. Takes fd over. */
static void route(hl_http *h, int fd, const struct sockaddr_storage *addr, socklen_t alen,
                  const hl_peek *pk) {
    const hl_config *cfg = h->cfg;
    char detail[160];
    if (pk->target.n > (size_t)cfg->http_max_url_bytes) {
        refuse_url(h, fd, addr, alen, pk);
        return;
    }
    if (pk->header_bytes > (size_t)cfg->http_max_header_bytes) {
        refuse_headers(h, fd, addr, alen, pk);
        return;
    }
    size_t need = hl_peek_pool_need(pk), cls = 0;
    while (cls < h->nclasses && (size_t)h->pools[cls] < need)
        cls++;
    if (cls == h->nclasses) {
        snprintf(detail, sizeof(detail),
                 "the request headers need %zu bytes to parse, more than the largest "
                 "connection pool (%d): fewer cookies or header lines",
                 need, h->pools[h->nclasses - 1]);
        answer_raw(h, fd, addr, alen, pk, 431, "Request Header Fields Too Large",
                   "headers_too_large", detail, NULL);
        return;
    }
    if (h->admitted >= h->conn_limit) {
        if (h->refusals++ == 0)
            hl_warn("worker %d: %zu connections open, http.max_connections reached: refusing "
                    "new ones with 503",
                    h->worker, h->admitted);
        answer_raw(h, fd, addr, alen, pk, 503, "Service Unavailable", "overloaded",
                   "the node holds as many connections as http.max_connections allows; try "
                   "again shortly or another node",
                   "Retry-After: 1\r\n");
        return;
    }
    if (h->refusals > 0 && h->admitted < h->conn_limit * 9 / 10) {
        hl_info("worker %d: below the connection limit again after %zu refusals", h->worker,
                h->refusals);
        h->refusals = 0;
    }
    hl_conn *hc = calloc(1, sizeof(*hc));
    if (hc == NULL) {
        close(fd);
        return;
    }
    int busy;
    hl_daemon *d = pick_daemon(h, cls, pk->channel, &busy);
    hc->h = h;
    hc->d = d;
    hc->fd = fd;
    hc->pool = (size_t)h->pools[cls];
    hc->by_channel = pk->channel.n > 0;
    hc->busy = busy;
    /* MHD calls hl__conn_on_connection from inside MHD_add_connection,
     * which takes hc from here; on failure MHD has closed fd. */
    h->handing = hc;
    enum MHD_Result ok = MHD_add_connection(d->mhd, fd, (const struct sockaddr *)addr, alen);
    if (h->handing != NULL) {
        h->handing = NULL;
        free(hc);
    }
    if (ok != MHD_YES) {
        hl_debug("worker %d: a connection could not be handed to its daemon: %s", h->worker,
                 strerror(errno));
        return;
    }
    /* The request is already in the socket: run the daemon at once rather
     * than wait for its epoll fd to tell. */
    hl__daemon_kick(d);
}

/* Looks at fd's first bytes. Returns 1 if fd was taken over (handed,
 * answered or closed), 0 if the head is not complete yet. */
static int peek(hl_http *h, int fd, const struct sockaddr_storage *addr, socklen_t alen,
                hl_pending *p) {
    ssize_t n = recv(fd, h->peek_buf, h->peek_size, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        unwatch(p);
        close(fd); /* closed or reset before a whole request */
        return 1;
    }
    if (n < 0) return 0;
    hl_peek pk;
    if (hl_peek_parse(h->peek_buf, (size_t)n, &pk) == HL_PEEK_DONE) {
        unwatch(p);
        route(h, fd, addr, alen, &pk);
        return 1;
    }
    if ((size_t)n < h->peek_size) return 0;
    unwatch(p);
    /* The buffer is full and the head goes on: too large whatever it is. */
    if (pk.line_len > (size_t)h->cfg->http_max_url_bytes + 32)
        refuse_url(h, fd, addr, alen, &pk);
    else
        refuse_headers(h, fd, addr, alen, &pk);
    return 1;
}

static void on_pending(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    hl_pending *p = arg;
    hl_http *h = p->h;
    /* A persistent watch moves its timeout with every wake-up, so the
     * deadline is checked here too. */
    int late = (what & EV_TIMEOUT) || hl_mono_ms() >= p->deadline;
    if (p->closing) {
        if (late || drain(p->fd) || ++p->rounds > MAX_PEEK_ROUNDS) pending_free(p, 1);
        return;
    }
    if (late) {
        /* No whole request within http.connection_timeout (slowloris, or a
         * client that connected and said nothing). */
        pending_free(p, 1);
        return;
    }
    if (++p->rounds > MAX_PEEK_ROUNDS) {
        hl_debug("worker %d: closed a connection that sent its head in more than %d pieces",
                 h->worker, MAX_PEEK_ROUNDS);
        pending_free(p, 1);
        return;
    }
    struct sockaddr_storage addr = p->addr;
    if (peek(h, p->fd, &addr, p->addrlen, p)) {
        p->fd = -1;
        pending_free(p, 0);
    }
}

static void on_accept_again(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    hl_http *h = arg;
    if (h->listen_fd >= 0) event_add(h->accept_ev, NULL);
}

static void on_accept(evutil_socket_t lfd, short what, void *arg) {
    (void)what;
    hl_http *h = arg;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage addr;
        socklen_t alen = sizeof(addr);
        int fd = accept4(lfd, (struct sockaddr *)&addr, &alen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of files: the connection stays in the backlog; try
                 * again shortly instead of spinning on the listening
                 * socket. */
                hl_warn("worker %d: cannot accept: %s; pausing 100 ms", h->worker, strerror(errno));
                event_del(h->accept_ev);
                struct timeval tv = {0, 100000};
                evtimer_add(h->accept_wait, &tv);
            }
            return;
        }
        /* Sockets still owing their first head have a budget of their
         * own, or a flood of silent connections would take every file. */
        if (h->npending >= h->conn_limit / 8 + 16) {
            close(fd);
            continue;
        }
        if (peek(h, fd, &addr, alen, NULL)) continue;
        hl_pending *p = pending_new(h, fd, &addr, alen);
        if (p == NULL) {
            close(fd);
            continue;
        }
        p->deadline = hl_mono_ms() + (long long)h->cfg->http_connection_timeout * 1000;
        pending_watch(p);
    }
}

/* ---- Set-up and stop -------------------------------------------------- */

static int open_listener(hl_http *h, char *err, size_t errlen) {
    const hl_config *cfg = h->cfg;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)cfg->http_port);
    if (inet_pton(AF_INET, cfg->http_bind, &sa.sin_addr) != 1)
        return hl_set_error(err, errlen, "http.bind: '%s' is not an IPv4 address", cfg->http_bind);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return hl_set_error(err, errlen, "cannot make a socket: %s", strerror(errno));
    int one = 1;
    /* Every worker binds the same port; the kernel spreads connections. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 4096) != 0) {
        int e = errno;
        close(fd);
        return hl_set_error(err, errlen, "cannot listen on %s:%d: %s", cfg->http_bind,
                            cfg->http_port, strerror(e));
    }
    /* A connection reaches accept with its first bytes, so most peeks
     * find the whole head at once. */
    setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &one, sizeof(one));
    h->listen_fd = fd;
    return HL_OK;
}

static int start_daemon(hl_http *h, hl_daemon *d, unsigned cls, char *err, size_t errlen) {
    const hl_config *cfg = h->cfg;
    d->h = h;
    d->cls = cls;
    errno = 0;
    /* holdline refuses connections past its own limit before MHD sees
     * them; MHD's default limit (FD_SETSIZE - 4, even in epoll mode)
     * must not cut in first. */
    d->mhd = MHD_start_daemon(
        MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET, 0,
        NULL, NULL, hl__http_on_request, h, MHD_OPTION_EXTERNAL_LOGGER, hl__http_mhd_log, h,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)h->conn_limit + 1,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)h->pools[cls], MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)cfg->http_connection_timeout, MHD_OPTION_NOTIFY_COMPLETED, hl__http_on_completed,
        h, MHD_OPTION_UNESCAPE_CALLBACK, hl__http_unescape, NULL, MHD_OPTION_NOTIFY_CONNECTION,
        hl__conn_on_connection, h, MHD_OPTION_URI_LOG_CALLBACK, hl__conn_on_uri, h,
        MHD_OPTION_STRICT_FOR_CLIENT, (int)1, MHD_OPTION_END);
    if (d->mhd == NULL)
        return hl_set_error(err, errlen, "libmicrohttpd refused to start a daemon: %s",
                            errno ? strerror(errno) : "no reason given");
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    if (info == NULL) return hl_set_error(err, errlen, "libmicrohttpd has no epoll fd");
    d->io = event_new(h->base, info->epoll_fd, EV_READ | EV_PERSIST, on_daemon, d);
    d->run = evtimer_new(h->base, on_daemon, d);
    if (d->io == NULL || d->run == NULL) return hl_set_error(err, errlen, "out of memory");
    return HL_OK;
}

int hl__accept_init(hl_http *h, char *err, size_t errlen) {
    const hl_config *cfg = h->cfg;
    h->listen_fd = -1;
    for (int i = 0; i < HL_CONFIG_POOL_CLASSES; i++)
        if (cfg->http_pool[i] > 0) h->pools[h->nclasses++] = cfg->http_pool[i];
    if (h->nclasses == 0) return hl_set_error(err, errlen, "no connection pool class is on");
    h->per_class = (size_t)cfg->http_daemons;
    /* A peek must hold the largest head the limits allow, or its end
     * could never be seen. */
    h->peek_size = (size_t)cfg->http_max_url_bytes + (size_t)cfg->http_max_header_bytes + 256;
    h->peek_buf = malloc(h->peek_size);
    h->ndaemons = h->nclasses * h->per_class;
    h->daemons = calloc(h->ndaemons, sizeof(*h->daemons));
    h->accept_wait = evtimer_new(h->base, on_accept_again, h);
    if (h->peek_buf == NULL || h->daemons == NULL || h->accept_wait == NULL)
        return hl_set_error(err, errlen, "out of memory");
    if (open_listener(h, err, errlen) != HL_OK) return HL_ERR;
    h->accept_ev = event_new(h->base, h->listen_fd, EV_READ | EV_PERSIST, on_accept, h);
    if (h->accept_ev == NULL) return hl_set_error(err, errlen, "out of memory");
    for (size_t i = 0; i < h->ndaemons; i++)
        if (start_daemon(h, &h->daemons[i], (unsigned)(i / h->per_class), err, errlen) != HL_OK)
            return HL_ERR;
    return HL_OK;
}

void hl__accept_start(hl_http *h) {
    event_add(h->accept_ev, NULL);
    for (size_t i = 0; i < h->ndaemons; i++)
        event_add(h->daemons[i].io, NULL);
}

void hl__accept_close(hl_http *h) {
    if (h->accept_ev) event_del(h->accept_ev);
    if (h->accept_wait) evtimer_del(h->accept_wait);
    if (h->listen_fd >= 0) close(h->listen_fd);
    h->listen_fd = -1;
    while (h->pending)
        pending_free(h->pending, 1);
}

void hl__accept_free(hl_http *h) {
    hl__accept_close(h);
    for (size_t i = 0; h->daemons && i < h->ndaemons; i++) {
        hl_daemon *d = &h->daemons[i];
        if (d->io) event_free(d->io);
        if (d->run) event_free(d->run);
        d->io = d->run = NULL;
        if (d->mhd) MHD_stop_daemon(d->mhd);
        d->mhd = NULL;
    }
    free(h->daemons);
    h->daemons = NULL;
    h->ndaemons = 0;
    if (h->accept_ev) event_free(h->accept_ev);
    if (h->accept_wait) event_free(h->accept_wait);
    h->accept_ev = h->accept_wait = NULL;
    free(h->peek_buf);
    h->peek_buf = NULL;
}

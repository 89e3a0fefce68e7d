#include "hb_net.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 512
#define READ_FIRST 1024 /* bytes of a connection's first read buffer */
#define READ_MIN 256    /* grow the buffer when less than this is free */

long long hb_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

long long hb_wall_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int hb_loop_init(hb_loop *l) {
    memset(l, 0, sizeof(*l));
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    return l->epfd < 0 ? -1 : 0;
}

void hb_loop_close(hb_loop *l) {
    if (l->epfd >= 0) close(l->epfd);
    l->epfd = -1;
    free(l->scratch);
    l->scratch = NULL;
}

int hb_loop_watch(hb_loop *l, hb_watch *w, unsigned events) {
    struct epoll_event ev = {.events = events, .data.ptr = w};
    return epoll_ctl(l->epfd, EPOLL_CTL_ADD, w->fd, &ev);
}

int hb_loop_run(hb_loop *l, int timeout_ms) {
    struct epoll_event evs[MAX_EVENTS];
    int n = epoll_wait(l->epfd, evs, MAX_EVENTS, timeout_ms);
    if (n < 0) return errno == EINTR ? 0 : -1;
    for (int i = 0; i < n; i++) {
        hb_watch *w = evs[i].data.ptr;
        /* A callback earlier in this batch may have closed it. */
        if (w->fd >= 0) w->on_event(w, evs[i].events);
    }
    return n;
}

/* ------------------------------------------------------------------ */
/* Connections                                                        */

static void conn_event(hb_watch *w, unsigned events);

void hb_conn_init(hb_conn *c, hb_loop *l, const struct sockaddr_in *dst,
                  const struct sockaddr_in *src) {
    memset(c, 0, sizeof(*c));
    c->w.fd = -1;
    c->w.on_event = conn_event;
    c->loop = l;
    c->dst = dst;
    c->src = src;
    c->state = HB_CLOSED;
}

static void set_mask(hb_conn *c, unsigned mask) {
    if (c->mask == mask) return;
    struct epoll_event ev = {.events = mask, .data.ptr = &c->w};
    epoll_ctl(c->loop->epfd, EPOLL_CTL_MOD, c->w.fd, &ev);
    c->mask = mask;
}

void hb_conn_close(hb_conn *c) {
    if (c->state == HB_CONNECTING) c->loop->connecting--;
    if (c->state == HB_AWAIT || c->state == HB_STREAMING) c->loop->awaiting--;
    if (c->w.fd >= 0) close(c->w.fd); /* close() also leaves the epoll set */
    c->w.fd = -1;
    c->mask = 0;
    c->in_len = c->dec_len = 0;
    c->state = HB_CLOSED;
}

void hb_conn_free(hb_conn *c) {
    hb_conn_close(c);
    free(c->out);
    free(c->in);
    c->out = c->in = NULL;
    c->out_cap = c->in_cap = 0;
}

static void fail(hb_conn *c, const char *why) {
    hb_conn_close(c);
    c->loop->on_fail(c, why);
}

/* Writes what is left of the request. Returns 0, or -1 after fail(). */
static int flush(hb_conn *c) {
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->w.fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_mask(c, EPOLLIN | EPOLLOUT);
            return 0;
        }
        if (w < 0) {
            fail(c, strerror(errno));
            return -1;
        }
        c->out_off += (size_t)w;
    }
    set_mask(c, EPOLLIN);
    c->state = HB_AWAIT;
    c->loop->awaiting++;
    c->sent_us = c->loop->last_io_us = hb_now_us();
    return 0;
}

static int open_socket(hb_conn *c) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (c->src != NULL) {
        /* Without this, bind() would pick the port now and could not reuse
         * it towards another destination: each source address would give
         * only ~28k connections in total instead of ~28k per node. */
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        struct sockaddr_in src = *c->src;
        src.sin_port = 0;
        if (bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0) {
            int e = errno;
            close(fd);
            return -e;
        }
    }
    int r = connect(fd, (const struct sockaddr *)c->dst, sizeof(*c->dst));
    if (r != 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        return -e;
    }
    c->w.fd = fd;
    c->mask = EPOLLIN | EPOLLOUT;
    struct epoll_event ev = {.events = c->mask, .data.ptr = &c->w};
    if (epoll_ctl(c->loop->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        int e = errno;
        close(fd);
        c->w.fd = -1;
        return -e;
    }
    if (c->opened++ > 0) c->loop->reconnects++;
    c->in_len = 0;
    if (r == 0) {
        c->state = HB_SENDING;
    } else {
        c->state = HB_CONNECTING;
        c->loop->connecting++;
    }
    return 0;
}

static int start_request(hb_conn *c, const char *req, size_t len, int stream) {
    if (c->state != HB_CLOSED && c->state != HB_IDLE) return -EBUSY;
    c->want_stream = stream;
    if (len > c->out_cap) {
        char *p = realloc(c->out, len);
        if (p == NULL) return -ENOMEM;
        c->out = p;
        c->out_cap = len;
    }
    memcpy(c->out, req, len);
    c->out_len = len;
    c->out_off = 0;
    if (c->state == HB_CLOSED) {
        int r = open_socket(c);
        if (r != 0) return r;
        if (c->state == HB_CONNECTING) return 0;
    }
    c->state = HB_SENDING;
    /* A failure here has already been reported through on_fail. */
    flush(c);
    return 0;
}

int hb_conn_request(hb_conn *c, const char *req, size_t len) {
    return start_request(c, req, len, 0);
}

int hb_conn_stream(hb_conn *c, const char *req, size_t len) {
    return start_request(c, req, len, 1);
}

/* The stream's body is over. Its connection is closed even after a last
 * chunk: holdline closes it once a stream ends (and says so only then, not
 * in the head), so a request sent on it would race the server's FIN; the
 * next request opens a new one, as a browser's EventSource does. */
static void stream_end(hb_conn *c) {
    hb_loop *l = c->loop;
    l->last_io_us = hb_now_us();
    hb_conn_close(c); /* the stream no longer counts as awaiting */
    l->on_stream_end(c);
}

/* Decodes what was read of a stream and hands over every whole block. */
static void stream_feed(hb_conn *c) {
    hb_loop *l = c->loop;
    long rest = -2;
    if (c->body == HB_BODY_CHUNKED) {
        size_t n = c->in_len - c->dec_len;
        rest = hb_chunked_decode(&c->chunk, c->in + c->dec_len, &n);
        if (rest == -1) {
            fail(c, "a stream's chunked body is malformed");
            return;
        }
        c->dec_len += n;
    } else {
        c->dec_len = c->in_len;
    }
    size_t used = 0;
    long r;
    hb_sse_event ev;
    while ((r = hb_sse_next(&c->sse, c->in + used, c->dec_len - used, &ev)) > 0) {
        used += (size_t)r;
        /* Heartbeats are not progress: a stream that only has those is
         * idle, and waiting for quiet must not wait for them. */
        if (ev.fields > 0) l->last_io_us = hb_now_us();
        l->on_event(c, &ev);
        if (c->w.fd < 0 || c->state != HB_STREAMING) return;
    }
    if (r == -1) {
        fail(c, "an event stream block longer than HB_SSE_BLOCK_MAX");
        return;
    }
    /* Keep the unfinished block, and anything after the body's end. */
    size_t after = rest > 0 ? (size_t)rest : 0;
    memmove(c->in, c->in + used, c->dec_len - used + after);
    c->dec_len -= used;
    c->in_len = c->dec_len + after;
    if (rest < 0) return;
    if (after > 0) {
        fail(c, "bytes after the end of a stream");
        return;
    }
    stream_end(c);
}

/* Turns an answer's head into an open stream; what follows it is body. */
static void stream_start(hb_conn *c, const hb_http_head *h) {
    c->state = HB_STREAMING;
    c->body = h->body;
    hb_chunked_init(&c->chunk);
    memset(&c->sse, 0, sizeof(c->sse));
    memmove(c->in, c->in + h->head_len, c->in_len - h->head_len);
    c->in_len -= h->head_len;
    c->dec_len = 0;
    c->loop->last_io_us = hb_now_us();
}

/* Delivers every complete answer at the front of c->in. */
static void deliver(hb_conn *c) {
    hb_loop *l = c->loop;
    while (c->in_len > 0 && c->w.fd >= 0) {
        if (c->state == HB_STREAMING) {
            stream_feed(c);
            return;
        }
        hb_http_head h;
        long hl = hb_parse_head(c->in, c->in_len, &h);
        if (hl == -2) return;
        if (hl > 0 && c->want_stream && c->state == HB_AWAIT && h.status == 200 &&
            h.body != HB_BODY_LENGTH) {
            if (!h.event_stream) {
                fail(c, "a stream answered 200 without Content-Type: text/event-stream");
                return;
            }
            stream_start(c, &h);
            continue;
        }
        if (hl < 0 || h.body != HB_BODY_LENGTH) {
            fail(c, "answer is not HTTP/1.1 with a Content-Length");
            return;
        }
        size_t total = h.head_len + (size_t)h.content_length;
        if (c->in_len < total) return;
        if (c->state != HB_AWAIT) {
            fail(c, "answer without a request");
            return;
        }
        /* The body is handed over in a copy: the callback may send the
         * next request, or reconnect, before it is done with it. */
        size_t blen = (size_t)h.content_length;
        if (blen + 1 > l->scratch_cap) {
            char *p = realloc(l->scratch, blen + 1);
            if (p == NULL) {
                fail(c, "out of memory");
                return;
            }
            l->scratch = p;
            l->scratch_cap = blen + 1;
        }
        memcpy(l->scratch, c->in + h.head_len, blen);
        l->scratch[blen] = '\0';
        memmove(c->in, c->in + total, c->in_len - total);
        c->in_len -= total;
        l->awaiting--;
        l->last_io_us = hb_now_us();
        c->state = HB_IDLE;
        if (h.close) {
            if (c->in_len > 0) {
                fail(c, "bytes after an answer with Connection: close");
                return;
            }
            hb_conn_close(c);
        }
        l->on_answer(c, &h, l->scratch, blen);
        /* The callback may have sent the next request or closed c. */
        if (c->in_len > 0 && c->state != HB_AWAIT && c->w.fd >= 0) {
            fail(c, "bytes nobody asked for");
            return;
        }
    }
}

static void on_readable(hb_conn *c) {
    for (;;) {
        /* Buffers start small: a worker keeps one per waiter, and most
         * answers are a few hundred bytes. */
        if (c->in_cap - c->in_len < READ_MIN) {
            size_t cap = c->in_cap ? c->in_cap * 2 : READ_FIRST;
            char *p = realloc(c->in, cap);
            if (p == NULL) {
                fail(c, "out of memory");
                return;
            }
            c->in = p;
            c->in_cap = cap;
        }
        size_t room = c->in_cap - c->in_len;
        ssize_t r = recv(c->w.fd, c->in + c->in_len, room, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (r <= 0) {
            if (r == 0 && c->state == HB_STREAMING && c->body == HB_BODY_CLOSE) {
                /* The end of a stream that had no length. */
                stream_end(c);
            } else if (c->state == HB_IDLE && c->in_len == 0) {
                /* An idle keep-alive connection the server let go of (or
                 * reset): nothing was lost; the next request reconnects. */
                hb_conn_close(c);
            } else {
                fail(c, r == 0 ? "connection closed by the server" : strerror(errno));
            }
            return;
        }
        c->in_len += (size_t)r;
        deliver(c);
        if (c->w.fd < 0 || (size_t)r < room) return;
    }
}

static void conn_event(hb_watch *w, unsigned events) {
    hb_conn *c = (hb_conn *)w;
    if (c->state == HB_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof(err);
        if (getsockopt(c->w.fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0) err = errno;
        if (err != 0) {
            fail(c, strerror(err));
            return;
        }
        /* A stale event (the socket was replaced earlier in this batch)
         * may arrive before the connect completed. */
        struct sockaddr_in peer;
        socklen_t pl = sizeof(peer);
        if (getpeername(c->w.fd, (struct sockaddr *)&peer, &pl) != 0) return;
        c->loop->connecting--;
        c->state = HB_SENDING;
        if (flush(c) != 0) return;
    } else if (c->state == HB_SENDING && (events & EPOLLOUT)) {
        if (flush(c) != 0) return;
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(c);
}

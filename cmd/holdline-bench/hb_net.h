/* hb_net.h -- a single-threaded epoll loop and keep-alive HTTP/1.1 client
 * connections for holdline-bench. A connection carries one request at a
 * time; giving it a request while it is closed (never opened, or closed by
 * the server after an answer) connects first, from a chosen source address
 * if one is given. Answers and failures come back through callbacks on the
 * loop. A request may also open a Server-Sent Events stream, whose blocks
 * come back one by one while it lasts. Everything runs on the caller's
 * thread; nothing here blocks. */
#ifndef HB_NET_H
#define HB_NET_H

#include <netinet/in.h>
#include <stddef.h>

#include "hb_parse.h"

/* Anything the loop watches: a connection, or a pipe to a worker. */
typedef struct hb_watch hb_watch;
struct hb_watch {
    int fd;
    void (*on_event)(hb_watch *w, unsigned events); /* epoll events */
};

typedef struct hb_conn hb_conn;

typedef struct hb_loop {
    int epfd;
    void *ud; /* the caller's */
    /* A complete answer arrived. The connection is idle again (closed if
     * the server said Connection: close) and may be given its next request
     * from inside the callback. body is valid only during the call. */
    void (*on_answer)(hb_conn *c, const hb_http_head *h, const char *body, size_t len);
    /* The connection failed: refused, reset, closed with a request
     * outstanding, or an answer that is not HTTP. It is closed; a new
     * request would reconnect. why is a short phrase. */
    void (*on_fail)(hb_conn *c, const char *why);
    /* A block of an event stream (hb_conn_stream) arrived; ev points into
     * the connection's buffer, valid only during the call. The callback may
     * close c, and must not give it a request (it is still busy). */
    void (*on_event)(hb_conn *c, const hb_sse_event *ev);
    /* The stream's body ended: its last chunk, or the server closed a
     * stream that had no length. An unfinished block is dropped. The
     * connection is closed (servers close it after a stream) and may be
     * given its next request, which reconnects, from inside the callback. */
    void (*on_stream_end)(hb_conn *c);
    long connecting;      /* connections whose connect() has not completed */
    long awaiting;        /* requests written whose answer is not complete (an
                           * open event stream counts until it ends) */
    long reconnects;      /* connections reopened after the first */
    long long last_io_us; /* monotonic time of the last request written or answer read */
    char *scratch;        /* a copy of the answer being delivered */
    size_t scratch_cap;
} hb_loop;

enum hb_conn_state {
    HB_CLOSED,     /* no socket */
    HB_CONNECTING, /* connect() in progress, request waiting */
    HB_SENDING,    /* part of the request written */
    HB_AWAIT,      /* request written, answer not complete */
    HB_STREAMING,  /* an event stream's head arrived; reading its blocks */
    HB_IDLE        /* connected, nothing outstanding */
};

struct hb_conn {
    hb_watch w; /* first, so a watch is its connection */
    hb_loop *loop;
    const struct sockaddr_in *dst; /* not owned; must outlive the conn */
    const struct sockaddr_in *src; /* NULL: the kernel picks */
    enum hb_conn_state state;
    unsigned mask; /* epoll events registered */
    int opened;    /* connections made so far */
    char *out;     /* the request */
    size_t out_len, out_off, out_cap;
    char *in; /* bytes read, not yet a complete answer */
    size_t in_len, in_cap;
    long long sent_us; /* monotonic time the request's last byte was written */
    int want_stream;   /* the request asked for an event stream (hb_conn_stream) */
    /* HB_STREAMING: in[0..dec_len) is decoded body that holds no whole block
     * yet; in[dec_len..in_len) bytes read and not yet decoded. */
    hb_body body;     /* how the stream's body is delimited */
    hb_chunked chunk; /* its chunked decoder */
    hb_sse sse;       /* its block reader */
    size_t dec_len;
};

/* Monotonic and wall-clock time in microseconds. */
long long hb_now_us(void);
long long hb_wall_us(void);

/* Returns 0, or -1 with errno. */
int hb_loop_init(hb_loop *l);
void hb_loop_close(hb_loop *l);

/* Watches w->fd for events (EPOLLIN ...). Returns 0 or -1 with errno. */
int hb_loop_watch(hb_loop *l, hb_watch *w, unsigned events);

/* Waits up to timeout_ms for events and dispatches them. Returns the
 * number of events, or -1 with errno (EINTR is returned as 0). */
int hb_loop_run(hb_loop *l, int timeout_ms);

void hb_conn_init(hb_conn *c, hb_loop *l, const struct sockaddr_in *dst,
                  const struct sockaddr_in *src);

/* Sends a request (copied), connecting first if the connection is closed.
 * Returns 0, or a negative errno when it cannot even start (EBUSY: a
 * request is outstanding; EMFILE, EADDRNOTAVAIL ... from socket, bind or
 * connect); the callbacks are not called then. */
int hb_conn_request(hb_conn *c, const char *req, size_t len);

/* Like hb_conn_request, for a request answered by an event stream: a 200
 * text/event-stream answer that is chunked or runs until the server closes
 * is read block by block (on_event) until it ends (on_stream_end). Any
 * other answer, an error status or one with a Content-Length, comes to
 * on_answer as usual. */
int hb_conn_stream(hb_conn *c, const char *req, size_t len);

/* Closes the socket without calling anything; the connection may be
 * given a request again. */
void hb_conn_close(hb_conn *c);

/* Closes and frees the buffers. */
void hb_conn_free(hb_conn *c);

#endif

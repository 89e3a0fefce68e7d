/* hl_http_int.h -- what the files of core/http/ share (not for other
 * layers):
 *
 *   hl_accept.c    the listening socket, the peek at each new connection's
 *                  first request, the daemon it is handed to (pool class,
 *                  channel hash), the daemons' libevent glue
 *   hl_conn.c      connections: request deadlines, hang-ups, URI checks
 *   hl_http.c      the request phases (limits -> CORS -> auth -> handler)
 *                  and the route handlers
 *   hl_cors.c      the CORS origin of a request
 *   hl_response.c  responses: common headers, shared answers,
 *                  answering a suspended request
 *   hl_longpoll.c  the long-poll sink
 *   hl_sse.c       the Server-Sent Events sink */
#ifndef HL_HTTP_INT_H
#define HL_HTTP_INT_H

#include <microhttpd.h>
#include <stdarg.h>
#include <sys/socket.h>

#include "hl_auth.h"
#include "hl_errors.h"
#include "hl_http.h"
#include "hl_json.h"
#include "hl_metrics.h"
#include "hl_request.h"

/* The CORS origin of a request: HL_ORIGIN_NONE (no header or not
 * allowed), HL_ORIGIN_ANY (config allows "*"), or an index into
 * cfg->http_cors_origins. */
#define HL_ORIGIN_NONE (-1)
#define HL_ORIGIN_ANY HL_CONFIG_MAX_CORS
#define HL_ORIGIN_SLOTS (HL_CONFIG_MAX_CORS + 2)

/* A publish or channel read Redis has not answered after this long gets
 * a 503: the message may or may not have gone out, and the client must
 * know it was not confirmed. */
#define HL_REDIS_DEADLINE_S 5

/* An answer several requests share: one MHD response, queued to each of
 * them (MHD counts its own references per queue), plus ours, dropped by
 * the last request that queues it or goes away without. */
typedef struct hl_shared {
    struct MHD_Response *resp; /* owned; destroyed when refs drops to 0 */
    unsigned refs;             /* requests that still hold it */
} hl_shared;

/* What a request is doing; a connection is suspended exactly in the
 * WAITING, REDIS and STREAMING (with nothing to send) states. */
typedef enum hl_req_state {
    HL_REQ_NEW = 0,  /* first call of the access handler */
    HL_REQ_HEADERS,  /* headers in; started on the next call (not publish) */
    HL_REQ_BODY,     /* publish: receiving the body */
    HL_REQ_WAITING,  /* poll: suspended until the engine delivers */
    HL_REQ_REDIS,    /* publish or channel info: suspended, the store op in flight */
    HL_REQ_ANSWERED, /* resumed with `answer`, not yet queued */
    HL_REQ_DONE,     /* a response was queued */
    HL_REQ_STREAM,   /* SSE: the stream's response is queued */
} hl_req_state;

struct hl_req;
struct hl_sse;

/* One MHD daemon of a worker. Each serves one pool class (the memory
 * pool every connection of it gets) and, within the class, the channels
 * that hash to it, so that a message resumes connections of one daemon:
 * an MHD_run after a resume walks every suspended connection of the
 * daemon (resume_suspended_connections, MHD 0.9.75). */
typedef struct hl_daemon {
    struct hl_http *h;
    struct MHD_Daemon *mhd;
    struct event *io;       /* MHD's epoll fd is readable */
    struct event *run;      /* MHD_get_timeout(), or at once after a resume */
    int kicked;             /* a run is already due */
    size_t resumed;         /* connections resumed since the last run */
    struct hl_req *promote; /* quiet-tier polls answered by a message since the last run */
    unsigned cls;           /* index into hl_http.pools */
    size_t conns;           /* connections it holds */
} hl_daemon;

/* A socket the worker accepted whose first request head is not complete
 * yet, or that holdline answered itself (431, 414, 503) and is closing:
 * what the client still sends is read and dropped until it closes, so the
 * answer is not lost to a reset. */
typedef struct hl_pending {
    struct hl_http *h;
    int fd;
    struct event *ev;   /* readable, or the deadline */
    long long deadline; /* monotonic ms */
    unsigned rounds;    /* peeks (or drains) so far */
    int closing;        /* answered; draining until the client closes */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    struct hl_pending *prev, *next; /* the pending list */
} hl_pending;

/* One client connection, from its hand-over to MHD to close (MHD's socket
 * context): what the limits and the hang-up check need to know about it. */
typedef struct hl_conn {
    struct hl_http *h;
    struct MHD_Connection *mc;
    hl_daemon *d;   /* the daemon that serves it */
    size_t pool;    /* its memory pool, bytes */
    int by_channel; /* placed by the channel of its first request (a poll or stream) */
    int busy;       /* in the busy tier of daemons (its channel had news) */
    int fd;
    unsigned url_len;            /* the current request's target, as sent */
    long long deadline;          /* monotonic ms by which a request must be in */
    struct hl_conn *prev, *next; /* the list of connections owing a request */
    int owing;                   /* on that list */
    int bad_target;              /* the request target holds a NUL or too many parameters */
} hl_conn;

typedef struct hl_req {
    struct hl_http *h;
    struct MHD_Connection *conn;
    hl_conn *hc;
    hl_shared *answer; /* set with ANSWERED; one reference is ours */
    struct hl_req *promote_next;
    struct hl_sse *sse; /* stream */
    hl_req_state state;
    hl_route_kind kind;
    int origin;              /* HL_ORIGIN_* or an origin index */
    unsigned status;         /* HTTP status of answer */
    unsigned char timed_out; /* a poll answered by its timeout */
    unsigned char promoting; /* on its daemon's promote list (until the next run) */
    unsigned char waiter;    /* u.wt is started (stop it when the request ends) */
    unsigned char redis;     /* u.rd is in use */
    unsigned char got;       /* a poll whose answer holds messages */
    /* Wall-clock ms until which the request's token is accepted (its exp
     * plus auth.leeway_s); 0 without a token. A stream ends there. */
    long long token_until;
    /* A request is a waiter or a round trip to Redis, never both: a held
     * poll carries no publish fields. */
    union {
        hl_waiter wt; /* poll and stream */
        struct {
            hl_deadline due; /* the Redis deadline */
            hl_store_op *op; /* REDIS: the publish or read in flight */
            hl_buf body;     /* publish: the message so far */
            char *idem;      /* publish: the Idempotency-Key header's value, or NULL */
            char *channel;   /* the channel */
            int too_large;   /* publish: the body went over the limit */
            long long t0_us; /* publish: monotonic us the whole body was in */
        } rd;                /* publish and channel info */
    } u;
} hl_req;

struct hl_http {
    const hl_config *cfg;
    struct event_base *base;
    int worker;
    hl_engine *engine;
    hl_store *store;
    hl_deadlines *dl;
    hl_auth *auth; /* owned: this worker's token verifier */
    hl_metrics *m; /* the worker's */
    hl_http_hooks hooks;
    void *ud;
    int listen_fd;             /* this worker's own socket on the port (SO_REUSEPORT) */
    struct event *accept_ev;   /* listen_fd is readable */
    struct event *accept_wait; /* accepting again after running out of files */
    /* The enabled pool classes, smallest first, and per_class daemons of
     * each: daemons[cls * per_class + i]. */
    int pools[HL_CONFIG_POOL_CLASSES];
    size_t nclasses;
    size_t per_class;
    hl_daemon *daemons;
    size_t ndaemons;
    hl_conn *handing;         /* the connection MHD_add_connection is making */
    long long promote_tokens; /* moves to the busy tier left in the budget */
    long long promote_at;     /* monotonic ms the budget was last filled up to */
    hl_pending *pending;      /* sockets whose first request is not in yet */
    size_t npending;
    char *peek_buf; /* one peek at a time */
    size_t peek_size;
    int stopping;        /* answers close their connections; no new ones */
    size_t reqs;         /* live hl_req objects */
    size_t admitted;     /* connections handed to the daemons and not yet closed */
    size_t conn_limit;   /* http.max_connections / workers: beyond it requests get 503 */
    size_t refusals;     /* requests refused since the limit was last reached */
    hl_conn *owing_head; /* connections owing a request, oldest deadline first */
    hl_conn *owing_tail;
    struct event *sweep; /* every 250 ms: request deadlines, and a share of the hang-ups */
    unsigned sweeps;
};

/* hl_accept.c */
int hl__accept_init(hl_http *h, char *err, size_t errlen);
void hl__accept_start(hl_http *h);
void hl__accept_close(hl_http *h);
void hl__accept_free(hl_http *h);
/* Runs d on the next loop turn (after resuming one of its connections). */
void hl__daemon_kick(hl_daemon *d);
/* Runs every daemon on the next turn (rare paths: stop, sweeps). */
void hl__kick_all(hl_http *h);
/* r, a poll on a quiet-tier connection of d, is answered by a message: at
 * d's next run, if that run walks many more waiters than it answers, r's
 * answer closes its connection so that the client's next poll goes to the
 * busy tier. r stays valid until then: MHD completes it only inside that
 * run, which takes the list first. */
void hl__daemon_promote(hl_daemon *d, hl_req *r);

/* hl_conn.c */
void hl__conn_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                            enum MHD_ConnectionNotificationCode toe);
void *hl__conn_on_uri(void *cls, const char *uri, struct MHD_Connection *conn);
hl_conn *hl__conn_of(struct MHD_Connection *conn);
/* The connection owes a whole request within http.connection_timeout. */
void hl__conn_owing(hl_conn *hc);
/* It sent one. */
void hl__conn_paid(hl_conn *hc);
/* Closes connections past their request deadline, and ends the waiters
 * of one share of the channels whose client hung up. */
void hl__conn_sweep(hl_http *h);
void hl__conn_close_owing(hl_http *h);
/* The connection's fd, or -1. */
int hl__req_fd(const hl_req *r);

/* hl_http.c */
enum MHD_Result hl__http_on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                    const char *method, const char *version,
                                    const char *upload_data, size_t *upload_data_size,
                                    void **con_cls);
void hl__http_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                           enum MHD_RequestTerminationCode toe);
size_t hl__http_unescape(void *cls, struct MHD_Connection *conn, char *s);
void hl__http_mhd_log(void *cls, const char *fmt, va_list ap);

/* hl_cors.c */
/* The Access-Control-Allow-Origin value for an HL_ORIGIN_* or index, or
 * NULL for none (an index also needs "Vary: Origin"). */
const char *hl__cors_allow(const hl_config *cfg, int origin);
/* The HL_ORIGIN_* or index of an Origin header value o[0..n). */
int hl__origin_index(const hl_config *cfg, const char *o, size_t n);

/* hl_response.c */
/* Adds holdline's common headers to resp. */
void hl__common_headers(const hl_http *h, int origin, struct MHD_Response *resp, const char *ctype);
/* A response with holdline's common headers for an origin; data copied
 * (or, persistent, kept). NULL when out of memory. */
struct MHD_Response *hl__response(const hl_http *h, int origin, const char *ctype, const void *data,
                                  size_t len, int persistent);
/* The JSON error of row e with detail. */
struct MHD_Response *hl__error_response(const hl_http *h, int origin, hl_error e,
                                        const char *detail);
/* A poll answer: JSON plus the Holdline-Cursor header. */
struct MHD_Response *hl__poll_response(const hl_http *h, int origin, const hl_buf *body,
                                       const char *cursor);
hl_shared *hl__shared_new(struct MHD_Response *resp, unsigned refs);
void hl__shared_release(hl_shared *s);
/* Queues resp as the answer to r now (inside the access handler). */
enum MHD_Result hl__reply(hl_req *r, unsigned status, struct MHD_Response *resp);
enum MHD_Result hl__reply_error(hl_req *r, hl_error e, const char *detail);
/* Resumes a suspended request with answer (r takes one reference of it;
 * NULL closes the connection) and status. */
void hl__answer(hl_req *r, hl_shared *answer, unsigned status);
/* The same with a response of its own (taken over). */
void hl__answer_response(hl_req *r, struct MHD_Response *resp, unsigned status);
void hl__answer_error(hl_req *r, hl_error e, const char *detail);
/* Resumes r so MHD runs it (a stream with data to send). */
void hl__resume(hl_req *r);

/* hl_guard.c: the auth phase. Each returns 0 if r may go on to its
 * handler, or 1 with *ret set to the refusal (401, 403) it queued. */
int hl__guard_subscribe(hl_req *r, hl_span arg, enum MHD_Result *ret);
int hl__guard_publish(hl_req *r, hl_span arg, enum MHD_Result *ret);

/* hl_response.c: what an answer with status counts (HTTP codes, polls by
 * outcome), and what a delivery to r does (messages, missed, the live
 * message's lag). */
void hl__count_answer(hl_req *r, unsigned status);
void hl__count_delivery(hl_req *r, const hl_delivery *d, hl_transport t);

/* hl_longpoll.c, hl_sse.c */
extern const hl_sink_ops hl__longpoll_ops;
extern const hl_sink_ops hl__sse_ops;
/* GET /events: r's stream, opened with the client's cursor (clen 0:
 * none given); token_ends says its deadline is its token's expiry, to be
 * announced with "event: token_expired". Returns HL_OK or HL_ERR (out of
 * memory). */
int hl__sse_new(hl_req *r, const char *cursor, size_t clen, int token_ends);
/* The response that carries it (NULL: out of memory). */
struct MHD_Response *hl__sse_response(hl_req *r);
/* The request is over: frees the stream. */
void hl__sse_free(hl_req *r);

#endif

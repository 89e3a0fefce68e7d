/* hl_worker.h -- the internals of one worker, shared by the three files
 * that make it up (not part of the core's public API):
 *
 *   hl_worker.c  the thread, the event loop, stop
 *   hl_accept.c  the worker's listening socket, the peek at each new
 *                connection's first request, the MHD daemons it is handed
 *                to (pool class, channel hash) and their libevent glue
 *   hl_http.c    the MHD access handler: routes, validation, answers
 *   hl_pubsub.c  channels, Redis subscriptions, fan-out, publish
 *
 * Everything here runs on the worker's own thread. The one exception is
 * `ready`, read by other workers' /readyz. */
#ifndef HL_WORKER_H
#define HL_WORKER_H

#include <event2/event.h>
#include <event2/event_struct.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/socket.h>

#include "hl_chantab.h"
#include "hl_config.h"
#include "hl_cursor.h"
#include "hl_history.h"
#include "hl_json.h"
#include "hl_request.h"
#include "hl_rlink.h"

struct hl_node;

/* An answer several requests share: one MHD response, queued to each of
 * them (MHD counts its own references per queue), plus ours, dropped by
 * the last request that queues it or goes away without. */
typedef struct hl_shared {
    struct MHD_Response *resp; /* owned; destroyed when refs drops to 0 */
    unsigned refs;             /* requests that still hold it */
} hl_shared;

/* What a request is doing; a connection is suspended exactly in the
 * WAITING and PUBLISHING states. */
typedef enum hl_req_state {
    HL_REQ_NEW = 0,    /* first call of the access handler */
    HL_REQ_HEADERS,    /* headers in; started on the next call (not publish) */
    HL_REQ_BODY,       /* publish: receiving the body */
    HL_REQ_WAITING,    /* poll or channel info: suspended */
    HL_REQ_PUBLISHING, /* publish: suspended, the FCALL in flight */
    HL_REQ_ANSWERED,   /* resumed with `answer`, not yet queued */
    HL_REQ_DONE,       /* a response was queued */
} hl_req_state;

/* Where a suspended poll stands (hl_poll.c). */
typedef enum hl_poll_phase {
    HL_POLL_PARKED = 0, /* some channel is not synced yet: evaluated once it is */
    HL_POLL_READING,    /* reads of Redis history are in flight */
    HL_POLL_WAITING,    /* up to date on every channel: a message answers it */
    HL_POLL_OVER,       /* answered (or gone); late read replies are dropped */
} hl_poll_phase;

/* The CORS origin of a request: HL_ORIGIN_NONE (no header or not
 * allowed), HL_ORIGIN_ANY (config allows "*"), or an index into
 * cfg->http_cors_origins. */
#define HL_ORIGIN_NONE (-1)
#define HL_ORIGIN_ANY HL_CONFIG_MAX_CORS
#define HL_ORIGIN_SLOTS (HL_CONFIG_MAX_CORS + 2)

/* One channel of a poll: the request's place in the channel's list and
 * the client's position on that channel. */
typedef struct hl_link {
    struct hl_req *r;
    hl_chan *c;                  /* NULL once detached */
    struct hl_link *prev, *next; /* c's list */
    hl_cur_part cur;             /* where the client stands on c */
    int verified;                /* cur was checked against Redis: it may be ahead of c's cache */
    int level;                   /* a read found nothing after cur: no new read until news */
    int reading;                 /* a history read for this link is in flight */
    struct hl_link *read_next;   /* the next link sharing that read */
    hl_msg *got;                 /* what that read returned, oldest first; the link's */
} hl_link;

/* One MHD daemon of a worker. Each serves one pool class (the memory
 * pool every connection of it gets) and, within the class, the channels
 * that hash to it, so that a message resumes connections of one daemon:
 * an MHD_run after a resume walks every suspended connection of the
 * daemon (resume_suspended_connections, MHD 0.9.75). */
typedef struct hl_daemon {
    struct hl_worker *w;
    struct MHD_Daemon *mhd;
    struct event *io;       /* MHD's epoll fd is readable */
    struct event *run;      /* MHD_get_timeout(), or at once after a resume */
    int kicked;             /* a run is already due */
    size_t resumed;         /* connections resumed since the last run */
    struct hl_req *promote; /* quiet-tier polls answered by a message since the last run */
    unsigned cls;           /* index into hl_worker.pools */
    size_t conns;           /* connections it holds */
} hl_daemon;

/* A socket the worker accepted whose first request head is not complete
 * yet, or that holdline answered itself (431, 414, 503) and is closing:
 * what the client still sends is read and dropped until it closes, so the
 * answer is not lost to a reset. */
typedef struct hl_pending {
    struct hl_worker *w;
    int fd;
    struct event *ev;   /* readable, or the deadline */
    long long deadline; /* monotonic ms */
    unsigned rounds;    /* peeks (or drains) so far */
    int closing;        /* answered; draining until the client closes */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    struct hl_pending *prev, *next; /* the worker's pending list */
} hl_pending;

/* One client connection, from its hand-over to MHD to close (MHD's socket
 * context): what the limits and the hang-up check need to know about it. */
typedef struct hl_conn {
    struct hl_worker *w;
    struct MHD_Connection *mc;
    hl_daemon *d;   /* the daemon that serves it */
    size_t pool;    /* its memory pool, bytes */
    int by_channel; /* placed by the channel of its first request (a poll) */
    int busy;       /* in the busy tier of daemons (its channel had news); with
                       by_channel and 3 daemons or more a class has tiers */
    int fd;
    unsigned url_len;            /* the current request's target, as sent */
    long long deadline;          /* monotonic ms by which a request must be in */
    struct hl_conn *prev, *next; /* the worker's list of connections owing a request */
    int owing;                   /* on that list */
    int bad_target;              /* the request target holds a NUL or too many parameters */
} hl_conn;

typedef struct hl_req {
    struct hl_worker *w;
    struct MHD_Connection *conn;
    hl_conn *hc;
    hl_req_state state;
    hl_route_kind kind;
    int origin; /* HL_ORIGIN_* or an origin index */
    /* The poll's timeout or the publish's deadline: monotonic ms (0: none),
     * on the worker's list for its duration (see hl_worker.dues). */
    long long due;
    struct hl_req *due_prev, *due_next;
    unsigned due_secs;
    hl_shared *answer; /* set with ANSWERED; one reference is ours */
    int timed_out;     /* answered by its timeout */
    int promoting;     /* on its daemon's promote list (until the next run) */
    struct hl_req *promote_next;
    unsigned status;        /* HTTP status of answer */
    unsigned redis_pending; /* hiredis callbacks that still hold this req */
    int orphaned;           /* connection gone: the last of those callbacks frees the req */
    /* poll */
    hl_poll_phase phase;
    hl_link *links; /* nlinks of them: &link1, or an array of the req's */
    size_t nlinks;
    hl_link link1;
    uint64_t epoch;      /* the epoch the links' AT cursors belong to (0: none yet) */
    uint64_t read_epoch; /* the epoch Redis reported to this poll's reads */
    unsigned reads;      /* history reads in flight */
    int missed;          /* a read found messages gone since the client's cursor */
    int read_failed;     /* a read failed: wait rather than read again */
    /* publish */
    hl_buf body;   /* the message so far */
    int too_large; /* the body went over the limit */
    char *idem;    /* the Idempotency-Key header's value, or NULL */
    char *channel; /* publish and channel info: the channel */
} hl_req;

/* The requests armed with one duration, in arming order, which is also
 * deadline order. */
typedef struct hl_due_list {
    struct hl_req *head, *tail;
} hl_due_list;

typedef struct hl_worker {
    int id;
    struct hl_node *node; /* owner; for /readyz */
    const hl_config *cfg; /* the node's copy; read-only */
    struct event_base *base;
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
    long long promote_tokens; /* moves to the busy tier left in the budget (hl_accept.c) */
    long long promote_at;     /* monotonic ms the budget was last filled up to */
    hl_pending *pending;      /* sockets whose first request is not in yet */
    size_t npending;
    char *peek_buf; /* one peek at a time: the worker's own buffer */
    size_t peek_size;
    struct event *stop_ev;     /* activated by hl_node_stop from another thread */
    struct event *drain_timer; /* the drain deadline */
    hl_rlink sub;              /* subscriber link */
    hl_rlink cmd;              /* command link */
    hl_chantab chans;
    char ctl_channel[160]; /* this worker's permanent private subscription */
    char hb_pattern[160];  /* the subscriber link's heartbeat pattern */
    int ctl_live;          /* Redis confirmed ctl_channel */
    size_t subs_pending;   /* channels whose SUBSCRIBE Redis has not confirmed yet */
    int cmd_ready;         /* the command link loaded the library and learned the epoch */
    int loading;           /* the library load and epoch read are in flight */
    int redis_trouble;     /* Redis answered with errors since the last good reply */
    struct event *retry;   /* loads, syncs and reads that Redis refused, tried again */
    /* Poll timeouts and publish deadlines: one list per duration in whole
     * seconds (the index), each sorted by deadline as it is armed in time
     * order, so one timer watching the lists' heads serves them all. A
     * waiter costs two pointers here instead of a libevent timer of its
     * own and a heap insert. */
    hl_due_list *dues;
    size_t ndues;
    struct event *due_timer;
    long long due_at;    /* when due_timer fires, monotonic ms (0: not armed) */
    uint64_t epoch;      /* the Redis data set's epoch as last seen (0: not yet) */
    char epoch_key[96];  /* <prefix>epoch */
    char epoch_mine[17]; /* the epoch this worker proposes if Redis has none (hex) */
    unsigned sync_seq;   /* numbers sync reads, so stale replies are known */
    long long redis_ms;  /* Redis's clock at the last reply that told it (0: never) */
    long long redis_at;  /* this host's monotonic ms when that reply came */
    struct event *tick;  /* asks Redis's time now and then (hl_pubsub_tick) */
    int stopping;        /* stop requested: answer and drain */
    int finished;        /* the loop is leaving */
    int drain_ms;        /* set by hl_worker_request_stop */
    size_t reqs;         /* live hl_req objects */
    size_t admitted;     /* connections handed to the daemons and not yet closed */
    size_t conn_limit;   /* http.max_connections / workers: beyond it requests get 503 */
    size_t refusals;     /* requests refused since the limit was last reached */
    hl_conn *owing_head; /* connections owing a request, oldest deadline first */
    hl_conn *owing_tail;
    struct event *sweep; /* every 250 ms: request deadlines, and a share of the hang-ups */
    unsigned sweeps;
    size_t prefix_len; /* strlen(cfg->redis_prefix) */
    int not_ready;     /* an hl_not_ready reason; HL_READY when ready (atomic) */
    pthread_t thread;
} hl_worker;

/* Why a worker is not ready (GET /readyz). */
typedef enum hl_not_ready {
    HL_READY = 0,
    HL_NR_STOPPING,
    HL_NR_SUB_DOWN,
    HL_NR_CMD_DOWN,
    HL_NR_LIBRARY,
    HL_NR_SUBSCRIBING,
} hl_not_ready;

/* hl_worker.c */
hl_worker *hl_worker_new(struct hl_node *node, int id, const hl_config *cfg, char *err,
                         size_t errlen);
void hl_worker_free(hl_worker *w);
int hl_worker_start(hl_worker *w, char *err, size_t errlen);
void hl_worker_request_stop(hl_worker *w, int drain_ms); /* any thread */
void hl_worker_join(hl_worker *w);
void hl_worker_maybe_finish(hl_worker *w); /* called when a request ends */
/* Draws a new epoch_mine: the next data set this worker finds empty
 * must not get an epoch any client already holds. */
void hl_worker_new_proposal(hl_worker *w);
/* MHD's logger for the worker's daemons (cls is the worker). */
void hl_worker_mhd_log(void *cls, const char *fmt, va_list ap);
/* Makes the loop run every daemon on its next turn (rare paths: stop,
 * connections shut down by the sweep). */
void hl_worker_kick(hl_worker *w);

/* hl_accept.c */
/* Opens the worker's listening socket and starts its daemons (nothing
 * runs until the loop does). Returns HL_OK or HL_ERR with err. */
int hl_accept_init(hl_worker *w, char *err, size_t errlen);
/* Adds the listening socket and the daemons to the loop. */
void hl_accept_start(hl_worker *w);
/* Stopping: closes the listening socket and every pending socket, so no
 * new connection comes in; the daemons go on serving theirs. */
void hl_accept_close(hl_worker *w);
/* Stops every daemon (nothing may be suspended) and frees what
 * hl_accept_init made. Never from inside an MHD callback. */
void hl_accept_free(hl_worker *w);
/* Runs d on the next loop turn (after resuming one of its connections). */
void hl_daemon_kick(hl_daemon *d);
/* r, a poll on a quiet-tier connection of d, is answered by a message: at
 * d's next run, if that run walks many more waiters than it answers, r's
 * answer closes its connection so that the client's next poll goes to the
 * busy tier. r stays valid until then: MHD completes it only inside that
 * run, which takes the list first. */
void hl_daemon_promote(hl_daemon *d, hl_req *r);
/* NULL if the worker is ready, else why not, for people (any thread). */
const char *hl_worker_not_ready(const hl_worker *w);
void hl_worker_update_ready(hl_worker *w);

/* hl_http.c */
enum MHD_Result hl_http_on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                   const char *method, const char *version, const char *upload_data,
                                   size_t *upload_data_size, void **con_cls);
void hl_http_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                          enum MHD_RequestTerminationCode toe);
size_t hl_http_unescape(void *cls, struct MHD_Connection *conn, char *s);
void hl_http_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                           enum MHD_ConnectionNotificationCode toe);
void *hl_http_on_uri(void *cls, const char *uri, struct MHD_Connection *conn);
/* Closes connections past their request deadline, and releases the held
 * polls of one share of the channels whose client hung up. */
void hl_http_sweep(hl_worker *w);
/* The due timer fired: answers the polls past their timeout and the
 * publishes past their deadline, then watches the next. */
void hl_http_on_due(hl_worker *w);
/* The longest duration a request can be armed with, in seconds. */
int hl_http_max_due_secs(const hl_config *cfg);
/* Stopping: closes every connection that has not sent a whole request
 * (idle keep-alive, a publish body half sent), so none holds up the
 * drain. */
void hl_http_close_owing(hl_worker *w);
/* The Access-Control-Allow-Origin value for an HL_ORIGIN_* or index, or
 * NULL for none (an index also needs "Vary: Origin"). */
const char *hl_http_cors_allow(const hl_config *cfg, int origin);
/* The HL_ORIGIN_* or index of an Origin header value o[0..n). */
int hl_http_origin_index(const hl_config *cfg, const char *o, size_t n);
/* Builds a response with holdline's common headers for a given origin.
 * data is copied. Returns NULL when out of memory. */
struct MHD_Response *hl_http_response(const hl_worker *w, int origin, const char *ctype,
                                      const void *data, size_t len);
/* The same for a poll answer: JSON, plus the Holdline-Cursor header. */
struct MHD_Response *hl_http_poll_response(const hl_worker *w, int origin, const hl_buf *body,
                                           const char *cursor);
hl_shared *hl_shared_new(struct MHD_Response *resp, unsigned refs);
void hl_shared_release(hl_shared *s);
/* Resumes a suspended request with answer (the req takes one reference
 * of it) and status. */
void hl_http_answer(hl_req *r, hl_shared *answer, unsigned status);
/* Resumes a suspended request with its own response (taken over; NULL,
 * for out of memory, closes the connection instead). */
void hl_http_answer_response(hl_req *r, struct MHD_Response *resp, unsigned status);
/* Answers a suspended request with the JSON in b (copied). */
void hl_http_answer_json(hl_req *r, const hl_buf *b, unsigned status);
/* Answers a suspended request with a JSON error made on the spot. */
void hl_http_answer_error(hl_req *r, unsigned status, const char *code, const char *detail);
/* Frees a request nobody holds any more. */
void hl_http_req_free(hl_req *r);
/* Called by a hiredis callback that held r: drops that hold and returns 1
 * if r was orphaned (and is now freed or still held by others): the
 * callback must then leave r alone. */
int hl_http_req_release(hl_req *r);

/* hl_poll.c: polls against the worker's channels */
/* Starts a poll on chans[0..n) from parts (the client's cursor, of
 * epoch). Returns a response to queue at once, or NULL with *suspend set
 * to 1 (the poll waits; suspend the connection) or 0 (out of memory). */
struct MHD_Response *hl_poll_start(hl_req *r, const hl_span *chans, size_t n, uint64_t epoch,
                                   const hl_cur_part *parts, int *suspend);
/* The client hung up: close the connection, free the poll. */
void hl_poll_hangup(hl_req *r);
/* Calls fn for every held poll of the worker, once each. fn may answer it. */
void hl_poll_foreach(hl_worker *w, void (*fn)(hl_req *r, void *ud), void *ud);
/* The same for the polls whose first channel falls in share `share` of
 * `shares` (by its hash), so that a sweep can take them a share at a time. */
void hl_poll_foreach_share(hl_worker *w, unsigned share, unsigned shares,
                           void (*fn)(hl_req *r, void *ud), void *ud);
/* The poll's timeout: answers with no messages and its current cursor. */
void hl_poll_timeout(hl_req *r);
/* The connection went away (or the node stops): leave every channel. */
void hl_poll_detach(hl_req *r);
/* Answers every held poll with no messages (stop). */
void hl_poll_answer_all(hl_worker *w);
/* A channel became DONE: evaluates its parked polls. */
void hl_poll_synced(hl_worker *w, hl_chan *c);
/* A durable message (id, its answer JSON) was added to c, whose last id
 * was prev before: answers the polls it completes. */
void hl_poll_message(hl_worker *w, hl_chan *c, hl_sid id, hl_sid prev, const char *json,
                     size_t jlen);
/* A plain (id-less) message: every poll waiting on c gets it as-is. */
void hl_poll_plain(hl_worker *w, hl_chan *c, const char *json, size_t jlen);
/* c lost its sync (subscription lost or epoch changed): its waiting polls
 * park until it is synced again. */
void hl_poll_unsync(hl_worker *w, hl_chan *c);

/* hl_pubsub.c: channels, subscriptions, history and publishing */
void hl_pubsub_sub_up(hl_rlink *l, void *ud);
void hl_pubsub_sub_down(hl_rlink *l, void *ud);
void hl_pubsub_cmd_up(hl_rlink *l, void *ud);
void hl_pubsub_cmd_down(hl_rlink *l, void *ud);
/* Finds or creates channel name and links lk into it, subscribing if
 * needed. Returns HL_OK or HL_ERR (out of memory). */
int hl_pubsub_attach(hl_worker *w, hl_link *lk, const char *name, size_t len);
/* Unlinks lk from its channel (arming the linger on the last one). */
void hl_pubsub_detach(hl_link *lk);
/* Sends a history read for lk (cursor lk->cur); the reply goes to
 * hl_poll_on_read. Returns HL_OK, or HL_ERR if the link is down. */
int hl_pubsub_read(hl_worker *w, hl_link *lk, int count);
/* The reply to such a read: ok 0 if it failed; else Redis's state of
 * the stream, the epoch, and the entries after the cursor (oldest first,
 * taken over; NULL if none). */
void hl_poll_on_read(hl_link *lk, const hl_stream_state *st, uint64_t epoch, hl_msg *msgs, int ok);
/* Sends r->body to r->channel through holdline_publish; r is answered
 * when Redis replies. Returns HL_OK, or HL_ERR if the link is down. */
int hl_pubsub_publish(hl_worker *w, hl_req *r);
/* GET /channels/{ch}: asks Redis about r->channel; r is answered when it
 * replies. Returns HL_OK, or HL_ERR if the link is down. */
int hl_pubsub_channel_info(hl_worker *w, hl_req *r);
/* Asks Redis for its time and sends it round the worker's control
 * channel; when it comes back, quiet channels move their head to it. */
void hl_pubsub_tick(hl_worker *w);
/* Redis's clock now, as estimated from the last reply that told it. */
long long hl_pubsub_redis_now(const hl_worker *w);
/* Polls whose read failed (Redis was away) are evaluated again. */
void hl_poll_retry(hl_worker *w);
/* Tries again, a little later, what Redis refused (a data set still
 * loading, a full memory): the library load, syncs and history reads. */
void hl_pubsub_retry_later(hl_worker *w);
void hl_pubsub_retry(hl_worker *w);
/* Frees channels and their linger timers (after the polls are gone). */
void hl_pubsub_free(hl_worker *w);

#endif

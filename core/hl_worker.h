/* hl_worker.h -- the internals of one worker, shared by the three files
 * that make it up (not part of the core's public API):
 *
 *   hl_worker.c  the thread, the event loop, MHD <-> libevent glue, stop
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

#include "hl_chantab.h"
#include "hl_config.h"
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
    HL_REQ_BODY,       /* publish: receiving the body */
    HL_REQ_WAITING,    /* poll: suspended, linked into its channel */
    HL_REQ_PUBLISHING, /* publish: suspended, PUBLISH in flight */
    HL_REQ_ANSWERED,   /* resumed with `answer`, not yet queued */
    HL_REQ_DONE,       /* a response was queued */
} hl_req_state;

/* The CORS origin of a request: HL_ORIGIN_NONE (no header or not
 * allowed), HL_ORIGIN_ANY (config allows "*"), or an index into
 * cfg->http_cors_origins. */
#define HL_ORIGIN_NONE (-1)
#define HL_ORIGIN_ANY HL_CONFIG_MAX_CORS
#define HL_ORIGIN_SLOTS (HL_CONFIG_MAX_CORS + 2)

typedef struct hl_req {
    struct hl_worker *w;
    struct MHD_Connection *conn;
    hl_req_state state;
    hl_route_kind kind;
    int origin;                           /* HL_ORIGIN_* or an origin index */
    struct hl_req *prev, *next;           /* the channel's waiter list, while WAITING */
    hl_chan *chan;                        /* while WAITING */
    struct event timer;                   /* poll timeout or publish deadline */
    hl_shared *answer;                    /* set with ANSWERED; one reference is ours */
    unsigned status;                      /* HTTP status of answer */
    hl_buf body;                          /* publish: the message so far */
    int too_large;                        /* publish: body went over the limit */
    int redis_pending;                    /* a hiredis callback still holds this req */
    int orphaned;                         /* connection gone: that callback frees the req */
    char channel[HL_CHANNEL_MAX_LEN + 1]; /* publish: the target channel */
} hl_req;

typedef struct hl_worker {
    int id;
    struct hl_node *node; /* owner; for /readyz */
    const hl_config *cfg; /* the node's copy; read-only */
    struct event_base *base;
    struct MHD_Daemon *mhd;
    struct event *mhd_io;      /* MHD's epoll fd is readable */
    struct event *mhd_timer;   /* MHD_get_timeout() */
    struct event *stop_ev;     /* activated by hl_node_stop from another thread */
    struct event *drain_timer; /* the drain deadline */
    hl_rlink sub;              /* subscriber link */
    hl_rlink cmd;              /* command link */
    hl_chantab chans;
    char ctl_channel[160]; /* this worker's permanent private subscription */
    int ctl_live;          /* Redis confirmed ctl_channel */
    int stopping;          /* stop requested: answer and drain */
    int finished;          /* the loop is leaving */
    int drain_ms;          /* set by hl_worker_request_stop */
    int kicked;            /* an MHD run is already due (hl_worker_kick) */
    size_t reqs;           /* live hl_req objects */
    size_t prefix_len;     /* strlen(cfg->redis_prefix) */
    int ready;             /* links up and subscriptions live (atomic) */
    pthread_t thread;
} hl_worker;

/* hl_worker.c */
hl_worker *hl_worker_new(struct hl_node *node, int id, const hl_config *cfg, char *err,
                         size_t errlen);
void hl_worker_free(hl_worker *w);
int hl_worker_start(hl_worker *w, char *err, size_t errlen);
void hl_worker_request_stop(hl_worker *w, int drain_ms); /* any thread */
void hl_worker_join(hl_worker *w);
void hl_worker_maybe_finish(hl_worker *w); /* called when a request ends */
/* Makes the loop run MHD on its next turn (after resuming connections). */
void hl_worker_kick(hl_worker *w);
int hl_worker_ready(const hl_worker *w); /* any thread */
void hl_worker_update_ready(hl_worker *w);

/* hl_http.c */
enum MHD_Result hl_http_on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                   const char *method, const char *version, const char *upload_data,
                                   size_t *upload_data_size, void **con_cls);
void hl_http_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                          enum MHD_RequestTerminationCode toe);
size_t hl_http_unescape(void *cls, struct MHD_Connection *conn, char *s);
/* Builds a response with holdline's common headers for a given origin.
 * data is copied. Returns NULL when out of memory. */
struct MHD_Response *hl_http_response(const hl_worker *w, int origin, const char *ctype,
                                      const void *data, size_t len);
hl_shared *hl_shared_new(struct MHD_Response *resp, unsigned refs);
void hl_shared_release(hl_shared *s);
/* Resumes a suspended request with answer (the req takes one reference
 * of it) and status. */
void hl_http_answer(hl_req *r, hl_shared *answer, unsigned status);
/* Resumes a suspended request with its own response (taken over; NULL,
 * for out of memory, closes the connection instead). */
void hl_http_answer_response(hl_req *r, struct MHD_Response *resp, unsigned status);
/* Answers a suspended request with a JSON error made on the spot. */
void hl_http_answer_error(hl_req *r, unsigned status, const char *code, const char *detail);
/* The "no event" answer of a poll. */
void hl_http_answer_empty(hl_req *r);

/* hl_pubsub.c */
void hl_pubsub_sub_up(hl_rlink *l, void *ud);
void hl_pubsub_sub_down(hl_rlink *l, void *ud);
void hl_pubsub_cmd_up(hl_rlink *l, void *ud);
void hl_pubsub_cmd_down(hl_rlink *l, void *ud);
/* Registers a poll as a waiter on the channel and subscribes if needed.
 * Returns HL_OK or HL_ERR (out of memory). */
int hl_pubsub_wait(hl_worker *w, hl_req *r, const char *name, size_t len);
/* Unlinks a waiter from its channel (arming the linger on the last one). */
void hl_pubsub_unwait(hl_req *r);
/* Sends r->body to r->channel; r is answered when Redis replies. Returns
 * HL_OK, or HL_ERR if the command could not be queued (link going down). */
int hl_pubsub_publish(hl_worker *w, hl_req *r);
/* Answers every waiter with "no event" (stop). */
void hl_pubsub_answer_all(hl_worker *w);
/* Frees channels and their linger timers (after the waiters are gone). */
void hl_pubsub_free(hl_worker *w);

#endif

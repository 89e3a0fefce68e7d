/* hl_http.c -- the libmicrohttpd side of a worker: every request enters
 * through hl_http_on_request, is validated here, and either answered at
 * once or suspended (a poll waiting for a message, a publish waiting for
 * Redis). A suspended request is answered by hl_http_answer(), which
 * stores the answer and resumes the connection; MHD then calls the access
 * handler again and the answer is queued there, the only place MHD allows
 * it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "hl_assets.h"
#include "hl_common.h"
#include "hl_log.h"
#include "hl_node.h"
#include "hl_peek.h"
#include "hl_worker.h"

#define JSON_TYPE "application/json"

/* A publish that Redis has not answered after this long gets a 503: the
 * message may or may not have gone out, and the client must know it was
 * not confirmed. */
#define PUBLISH_DEADLINE_S 5

static void due_remove(hl_req *r);

static struct MHD_Response *make_response(const hl_worker *w, int origin, const char *ctype,
                                          const void *data, size_t len,
                                          enum MHD_ResponseMemoryMode mode) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)data, mode);
    if (resp == NULL) return NULL;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    const char *allow = hl_http_cors_allow(w->cfg, origin);
    if (allow) MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_ORIGIN, allow);
    if (origin >= 0) MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Origin");
    if (origin != HL_ORIGIN_NONE)
        MHD_add_response_header(resp, "Access-Control-Expose-Headers", "Holdline-Cursor");
    /* While draining, close keep-alive connections after each answer so
     * clients move to another node instead of coming back here. */
    if (w->stopping) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    return resp;
}

struct MHD_Response *hl_http_response(const hl_worker *w, int origin, const char *ctype,
                                      const void *data, size_t len) {
    return make_response(w, origin, ctype, data, len, MHD_RESPMEM_MUST_COPY);
}

struct MHD_Response *hl_http_poll_response(const hl_worker *w, int origin, const hl_buf *body,
                                           const char *cursor) {
    struct MHD_Response *resp = hl_http_response(w, origin, JSON_TYPE, body->data, body->len);
    if (resp != NULL) MHD_add_response_header(resp, "Holdline-Cursor", cursor);
    return resp;
}

hl_shared *hl_shared_new(struct MHD_Response *resp, unsigned refs) {
    hl_shared *s = malloc(sizeof(*s));
    if (s == NULL) return NULL;
    s->resp = resp;
    s->refs = refs;
    return s;
}

void hl_shared_release(hl_shared *s) {
    if (s == NULL || --s->refs > 0) return;
    MHD_destroy_response(s->resp);
    free(s);
}

/* Queues resp as the answer to r now (we are inside the access handler)
 * and drops our reference to it. */
static enum MHD_Result reply(hl_req *r, unsigned status, struct MHD_Response *resp) {
    if (resp == NULL) return MHD_NO; /* out of memory: MHD closes the connection */
    enum MHD_Result ret = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    r->state = HL_REQ_DONE;
    return ret;
}

static enum MHD_Result reply_json(hl_req *r, unsigned status, const char *json) {
    return reply(r, status, hl_http_response(r->w, r->origin, JSON_TYPE, json, strlen(json)));
}

static struct MHD_Response *error_response(const hl_worker *w, int origin, const char *code,
                                           const char *detail) {
    hl_buf b;
    hl_buf_init(&b);
    hl_json_error(&b, code, detail);
    struct MHD_Response *resp =
        b.oom ? NULL : hl_http_response(w, origin, JSON_TYPE, b.data, b.len);
    hl_buf_free(&b);
    return resp;
}

static enum MHD_Result reply_error(hl_req *r, unsigned status, const char *code,
                                   const char *detail) {
    return reply(r, status, error_response(r->w, r->origin, code, detail));
}

/* A poll's connection sits in the busy or the quiet tier of daemons
 * (hl_accept.c). A timeout answering a connection of the busy tier means
 * its channel fell quiet: the answer closes the connection, so the
 * client's next poll is placed again. A message answering one of the
 * quiet tier is left to the daemon's run to judge (hl_daemon_promote):
 * moving is only worth a reconnect when the run would walk many more
 * waiters than it answers. */
static void replace_if_moved(hl_req *r) {
    hl_conn *hc = r->hc;
    if (r->kind != HL_ROUTE_POLL || hc == NULL || !hc->by_channel || hc->w->per_class < 3) return;
    if (hc->busy && r->timed_out)
        MHD_set_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONNECTION, "close");
    else if (!hc->busy && !r->timed_out && !r->promoting)
        hl_daemon_promote(hc->d, r);
}

void hl_http_answer(hl_req *r, hl_shared *answer, unsigned status) {
    due_remove(r);
    replace_if_moved(r);
    r->answer = answer;
    r->status = status;
    r->state = HL_REQ_ANSWERED;
    MHD_resume_connection(r->conn);
    if (r->hc) {
        r->hc->d->resumed++;
        hl_daemon_kick(r->hc->d);
    } else {
        hl_worker_kick(r->w);
    }
}

/* Out of memory while answering a suspended request: resuming it without
 * an answer makes the access handler return MHD_NO, which closes the
 * connection rather than leaving the client hanging. */
void hl_http_answer_response(hl_req *r, struct MHD_Response *resp, unsigned status) {
    hl_shared *s = resp ? hl_shared_new(resp, 1) : NULL;
    if (s == NULL && resp != NULL) MHD_destroy_response(resp);
    hl_http_answer(r, s, status);
}

void hl_http_answer_json(hl_req *r, const hl_buf *b, unsigned status) {
    hl_http_answer_response(
        r, b->oom ? NULL : hl_http_response(r->w, r->origin, JSON_TYPE, b->data, b->len), status);
}

void hl_http_answer_error(hl_req *r, unsigned status, const char *code, const char *detail) {
    hl_http_answer_response(r, error_response(r->w, r->origin, code, detail), status);
}

void hl_http_req_free(hl_req *r) {
    hl_buf_free(&r->body);
    free(r->idem);
    free(r->channel);
    if (r->links != &r->link1) free(r->links);
    free(r);
}

int hl_http_req_release(hl_req *r) {
    r->redis_pending--;
    if (!r->orphaned) return 0;
    if (r->redis_pending == 0) hl_http_req_free(r);
    return 1;
}

/* ---- Connections: request deadlines and hang-ups ------------------------ */

static long long mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void owing_remove(hl_conn *hc) {
    if (!hc->owing) return;
    hl_worker *w = hc->w;
    if (hc->prev)
        hc->prev->next = hc->next;
    else
        w->owing_head = hc->next;
    if (hc->next)
        hc->next->prev = hc->prev;
    else
        w->owing_tail = hc->prev;
    hc->prev = hc->next = NULL;
    hc->owing = 0;
}

/* The connection must now send a whole request within
 * http.connection_timeout. Every deadline is that far from when it is
 * set, so appending keeps the list in deadline order. */
static void owing_add(hl_conn *hc) {
    hl_worker *w = hc->w;
    owing_remove(hc);
    hc->deadline = mono_ms() + (long long)w->cfg->http_connection_timeout * 1000;
    hc->prev = w->owing_tail;
    hc->next = NULL;
    if (w->owing_tail)
        w->owing_tail->next = hc;
    else
        w->owing_head = hc;
    w->owing_tail = hc;
    hc->owing = 1;
}

void hl_http_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                           enum MHD_ConnectionNotificationCode toe) {
    hl_worker *w = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        /* Made by hl_accept.c just before MHD_add_connection. */
        hl_conn *hc = w->handing;
        w->handing = NULL;
        *socket_context = hc;
        if (hc == NULL) return;
        hc->mc = conn;
        hc->d->conns++;
        w->admitted++;
        owing_add(hc);
        return;
    }
    hl_conn *hc = *socket_context;
    *socket_context = NULL;
    if (hc == NULL) return;
    hc->d->conns--;
    w->admitted--;
    owing_remove(hc);
    free(hc);
}

static hl_conn *conn_of(struct MHD_Connection *conn) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* No holdline request has more query parameters than this. */
#define MAX_QUERY_PARAMS 16

/* Called with the request target as soon as the request line is in,
 * before MHD splits off the query. Two things MHD 0.9.75 gets wrong are
 * caught here (the target lies in MHD's read buffer, writable, and MHD
 * has ended it with a NUL where the " HTTP/1.x" began):
 *   - a NUL byte inside the target: MHD would serve the part before it,
 *     so "/poll/a<NUL>b" would poll "a";
 *   - many query parameters: MHD stores each in the connection's memory
 *     pool and, when that runs out, leaves the connection hanging with no
 *     answer. Past MAX_QUERY_PARAMS the '&'s are blanked out, so MHD
 *     stores one parameter; the request is refused with 400 anyway. */
void *hl_http_on_uri(void *cls, const char *uri, struct MHD_Connection *conn) {
    (void)cls;
    hl_conn *hc = conn_of(conn);
    if (hc == NULL) return NULL;
    size_t n = strnlen(uri, 1u << 30);
    hc->url_len = (unsigned)n;
    hc->bad_target = strncmp(uri + n + 1, "HTTP/", 5) != 0;
    const char *q = memchr(uri, '?', n);
    if (q != NULL) {
        size_t params = 1;
        for (const char *p = q; p < uri + n; p++)
            params += *p == '&';
        if (params > MAX_QUERY_PARAMS) {
            hc->bad_target = 1;
            for (char *p = (char *)q; p < uri + n; p++)
                if (*p == '&') *p = ';';
        }
    }
    return NULL; /* the request's context is made by the access handler */
}

static void check_hangup(hl_req *r, void *ud) {
    size_t *gone = ud;
    if (r->hc == NULL || r->hc->fd < 0 || r->state != HL_REQ_WAITING) return;
    char b;
    ssize_t n = recv(r->hc->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    /* 0 is the client's FIN; an error other than "nothing yet" is a reset.
     * Bytes waiting (a pipelined request) mean the client is still there. */
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        hl_poll_hangup(r);
        (*gone)++;
    }
}

void hl_http_close_owing(hl_worker *w) {
    size_t n = 0;
    while (w->owing_head) {
        hl_conn *hc = w->owing_head;
        owing_remove(hc);
        if (hc->fd >= 0) shutdown(hc->fd, SHUT_RDWR);
        n++;
    }
    if (n > 0) {
        hl_debug("worker %d: stopping: closed %zu connections without a complete request", w->id,
                 n);
        hl_worker_kick(w);
    }
}

/* Held polls are peeked for a hang-up every 4 s (HANGUP_SHARES sweeps of
 * 250 ms): one recv per held poll each time, about 0.1% of a core per
 * 10,000 polls, against a poll timeout of 30 s by default. Each sweep
 * takes the polls of one share of the channels, so that neither the
 * peeks nor the release of many clients gone at once (a proxy restarted)
 * stall the loop in one go. */
#define HANGUP_SHARES 16

void hl_http_sweep(hl_worker *w) {
    long long now = mono_ms();
    size_t late = 0;
    while (w->owing_head && w->owing_head->deadline <= now) {
        hl_conn *hc = w->owing_head;
        owing_remove(hc);
        /* MHD has no call to close a connection it is reading from; a
         * shutdown makes its next read see the end and close it. */
        if (hc->fd >= 0) shutdown(hc->fd, SHUT_RDWR);
        late++;
    }
    if (late > 0) {
        hl_debug("worker %d: closed %zu connections that sent no complete request within %d s",
                 w->id, late, w->cfg->http_connection_timeout);
        hl_worker_kick(w);
    }
    size_t gone = 0;
    hl_poll_foreach_share(w, w->sweeps++ % HANGUP_SHARES, HANGUP_SHARES, check_hangup, &gone);
    if (gone > 0) hl_debug("worker %d: released %zu held polls whose clients hung up", w->id, gone);
}

/* ---- Requests -------------------------------------------------------- */

const char *hl_http_cors_allow(const hl_config *cfg, int origin) {
    if (origin == HL_ORIGIN_ANY) return "*";
    return origin >= 0 ? cfg->http_cors_origins[origin] : NULL;
}

int hl_http_origin_index(const hl_config *cfg, const char *o, size_t n) {
    if (cfg->http_cors_origins_count == 0 || o == NULL) return HL_ORIGIN_NONE;
    for (int i = 0; i < cfg->http_cors_origins_count; i++) {
        if (strcmp(cfg->http_cors_origins[i], "*") == 0) return HL_ORIGIN_ANY;
        if (strlen(cfg->http_cors_origins[i]) == n && memcmp(cfg->http_cors_origins[i], o, n) == 0)
            return i;
    }
    return HL_ORIGIN_NONE;
}

static int origin_of(const hl_worker *w, struct MHD_Connection *conn) {
    if (w->cfg->http_cors_origins_count == 0) return HL_ORIGIN_NONE;
    const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
    return hl_http_origin_index(w->cfg, origin, origin ? strlen(origin) : 0);
}

static void on_publish_deadline(hl_req *r) {
    /* The hiredis callback still holds r (redis_pending); it will see the
     * state is no longer PUBLISHING and leave the answer alone. */
    hl_warn("a request on '%s' got no answer from Redis within %d s", r->channel,
            PUBLISH_DEADLINE_S);
    hl_http_answer_error(
        r, MHD_HTTP_SERVICE_UNAVAILABLE, "redis_timeout",
        r->kind == HL_ROUTE_PUBLISH
            ? "Redis did not confirm the publish in time; it may not have been sent"
            : "Redis did not answer in time");
}

/* ---- Deadlines (hl_worker.dues) -------------------------------------- */

int hl_http_max_due_secs(const hl_config *cfg) {
    return cfg->poll_max_timeout > PUBLISH_DEADLINE_S ? cfg->poll_max_timeout : PUBLISH_DEADLINE_S;
}

/* Makes the due timer fire at `at` unless it already fires sooner. */
static void due_watch(hl_worker *w, long long at) {
    if (w->due_at != 0 && w->due_at <= at) return;
    long long ms = at - mono_ms();
    if (ms < 1) ms = 1;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    /* Inside a callback libevent measures from the time cached when the
     * loop turn began; a busy turn would fire early (the handler then
     * only watches again). */
    event_base_update_cache_time(w->base);
    evtimer_add(w->due_timer, &tv);
    w->due_at = at;
}

static void due_remove(hl_req *r) {
    if (r->due == 0) return;
    hl_due_list *l = &r->w->dues[r->due_secs];
    if (r->due_prev)
        r->due_prev->due_next = r->due_next;
    else
        l->head = r->due_next;
    if (r->due_next)
        r->due_next->due_prev = r->due_prev;
    else
        l->tail = r->due_prev;
    r->due_prev = r->due_next = NULL;
    r->due = 0;
}

/* Arms r to expire `secs` seconds from now (1 <= secs <= ndues - 1). */
static void due_add(hl_req *r, int secs) {
    hl_worker *w = r->w;
    due_remove(r);
    r->due = mono_ms() + (long long)secs * 1000;
    r->due_secs = (unsigned)secs;
    hl_due_list *l = &w->dues[secs];
    r->due_prev = l->tail;
    r->due_next = NULL;
    if (l->tail)
        l->tail->due_next = r;
    else
        l->head = r;
    l->tail = r;
    due_watch(w, r->due);
}

void hl_http_on_due(hl_worker *w) {
    w->due_at = 0;
    long long now = mono_ms(), next = 0;
    for (size_t i = 0; i < w->ndues; i++) {
        hl_due_list *l = &w->dues[i];
        while (l->head && l->head->due <= now) {
            hl_req *r = l->head;
            due_remove(r);
            if (r->kind == HL_ROUTE_POLL) {
                r->timed_out = 1;
                hl_poll_timeout(r);
            } else
                on_publish_deadline(r);
        }
        if (l->head && (next == 0 || l->head->due < next)) next = l->head->due;
    }
    if (next) due_watch(w, next);
}

/* The "no event" answer of a node that is stopping: the client's own
 * cursor back, so it loses nothing by moving to another node. */
static enum MHD_Result reply_stopping(hl_req *r, uint64_t epoch, const hl_cur_part *parts,
                                      size_t n) {
    hl_buf cur, body;
    hl_buf_init(&cur);
    hl_buf_init(&body);
    hl_cursor_format(&cur, epoch, parts, n);
    hl_buf_puts(&body, "{\"cursor\":\"");
    if (cur.len) hl_buf_append(&body, cur.data, cur.len);
    hl_buf_puts(&body, "\",\"messages\":[],\"missed\":false}");
    struct MHD_Response *resp =
        cur.oom || body.oom
            ? NULL
            : hl_http_poll_response(r->w, r->origin, &body, cur.len ? cur.data : "");
    hl_buf_free(&cur);
    hl_buf_free(&body);
    return reply(r, MHD_HTTP_OK, resp);
}

static enum MHD_Result start_poll(hl_req *r, hl_span arg) {
    hl_worker *w = r->w;
    const hl_config *cfg = w->cfg;
    char err[128];
    hl_span chans[256];
    hl_cur_part parts[256];
    size_t max = (size_t)cfg->poll_max_channels;
    if (max > HL_ARRAY_LEN(chans)) max = HL_ARRAY_LEN(chans);
    size_t n = 1;
    for (size_t i = 0; i < arg.n; i++)
        n += arg.p[i] == ',';
    if (n > (size_t)cfg->poll_max_channels) {
        snprintf(err, sizeof(err), "at most %d channels per poll (poll.max_channels)",
                 cfg->poll_max_channels);
        return reply_error(r, MHD_HTTP_BAD_REQUEST, "too_many_channels", err);
    }
    if (hl_channels_parse(arg.p, arg.n, chans, max, &n, err, sizeof(err)) != HL_OK)
        return reply_error(r, MHD_HTTP_BAD_REQUEST, "bad_channel", err);
    int timeout;
    const char *ts = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "timeout");
    if (hl_timeout_parse(ts, cfg->poll_default_timeout, cfg->poll_max_timeout, &timeout, err,
                         sizeof(err)) != HL_OK)
        return reply_error(r, MHD_HTTP_BAD_REQUEST, "bad_timeout", err);
    /* EventSource-style clients resume with Last-Event-ID; an explicit
     * cursor parameter wins. */
    const char *cs = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "cursor");
    if (cs == NULL) cs = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Last-Event-ID");
    uint64_t epoch;
    if (hl_cursor_parse(cs ? cs : "", cs ? strlen(cs) : 0, n, &epoch, parts, err, sizeof(err)) !=
        HL_OK)
        return reply_error(r, MHD_HTTP_BAD_REQUEST, "bad_cursor", err);

    if (w->stopping) return reply_stopping(r, epoch, parts, n);
    /* A poll on a connection placed for something else (a publish, a
     * health check) sits in a daemon its channel does not hash to: its
     * answer closes the connection, so the client's next poll is placed
     * by channel. */
    if (r->hc && !r->hc->by_channel)
        MHD_set_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONNECTION, "close");
    r->state = HL_REQ_WAITING;
    int suspend;
    struct MHD_Response *resp = hl_poll_start(r, chans, n, epoch, parts, &suspend);
    if (!suspend) {
        if (resp == NULL)
            return reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "out_of_memory",
                               "the node cannot hold another waiter");
        return reply(r, MHD_HTTP_OK, resp);
    }
    due_add(r, timeout);
    MHD_suspend_connection(r->conn);
    return MHD_YES;
}

/* GET /channels/{ch}: what Redis holds of the channel's history. */
static enum MHD_Result start_channel_info(hl_req *r, hl_span arg) {
    if (!hl_channel_valid(arg.p, arg.n))
        return reply_error(r, MHD_HTTP_BAD_REQUEST, "bad_channel",
                           "channel names are 1 to 200 bytes of A-Z a-z 0-9 . _ ~ : -");
    r->channel = strndup(arg.p, arg.n);
    if (r->channel == NULL)
        return reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "out_of_memory",
                           "the node cannot take this request now");
    if (hl_pubsub_channel_info(r->w, r) != HL_OK)
        return reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "redis_unavailable",
                           "Redis is not reachable");
    due_add(r, PUBLISH_DEADLINE_S);
    r->state = HL_REQ_PUBLISHING;
    MHD_suspend_connection(r->conn);
    return MHD_YES;
}

static enum MHD_Result start_publish(hl_req *r, hl_span arg) {
    const hl_config *cfg = r->w->cfg;
    if (!cfg->publish_enabled)
        return reply_error(r, MHD_HTTP_FORBIDDEN, "publish_disabled",
                           "publishing over HTTP is disabled on this node");
    if (cfg->publish_key[0]) {
        const char *auth = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
        if (auth == NULL || strncmp(auth, "Bearer ", 7) != 0 ||
            strcmp(auth + 7, cfg->publish_key) != 0)
            return reply_error(r, MHD_HTTP_UNAUTHORIZED, "unauthorized",
                               "publishing needs the header 'Authorization: Bearer <publish.key>'");
    }
    if (!hl_channel_valid(arg.p, arg.n))
        return reply_error(r, MHD_HTTP_BAD_REQUEST, "bad_channel",
                           "channel names are 1 to 200 bytes of A-Z a-z 0-9 . _ ~ : -");
    const char *cl =
        MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl != NULL && strtoull(cl, NULL, 10) > (unsigned long long)cfg->publish_max_message_bytes)
        return reply_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "too_large",
                           "the message is larger than publish.max_message_bytes");
    const char *idem = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Idempotency-Key");
    if (idem != NULL) {
        if (!hl_idempotency_key_valid(idem))
            return reply_error(r, MHD_HTTP_BAD_REQUEST, "bad_idempotency_key",
                               "Idempotency-Key must be 1 to 64 bytes of A-Z a-z 0-9 . _ : -");
        r->idem = strdup(idem);
        if (r->idem == NULL)
            return reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "out_of_memory",
                               "the node cannot take this publish now");
    }
    r->channel = strndup(arg.p, arg.n);
    if (r->channel == NULL)
        return reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "out_of_memory",
                           "the node cannot take this publish now");
    r->state = HL_REQ_BODY;
    return MHD_YES;
}

static enum MHD_Result receive_body(hl_req *r, const char *data, size_t *size) {
    hl_worker *w = r->w;
    if (*size > 0) {
        size_t n = *size;
        *size = 0;
        /* MHD 0.9.75 refuses a response queued while the body is still
         * arriving, so an oversized chunked body is read to its end and
         * dropped, then answered 413. A declared Content-Length too large
         * was already refused before any byte was read. */
        if (r->too_large || r->body.len + n > (size_t)w->cfg->publish_max_message_bytes) {
            r->too_large = 1;
            hl_buf_free(&r->body);
            return MHD_YES;
        }
        hl_buf_append(&r->body, data, n);
        return MHD_YES;
    }
    if (r->hc) owing_remove(r->hc); /* the whole request is in */
    if (r->too_large)
        return reply_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "too_large",
                           "the message is larger than publish.max_message_bytes");
    if (r->body.oom)
        return reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "out_of_memory",
                           "the node cannot buffer this message");
    /* The whole body is in. */
    if (w->stopping)
        return reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting_down",
                           "this node is shutting down; publish through another");
    if (hl_pubsub_publish(w, r) != HL_OK)
        return reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "redis_unavailable",
                           "Redis is not reachable; the message was not published");
    due_add(r, PUBLISH_DEADLINE_S);
    r->state = HL_REQ_PUBLISHING;
    MHD_suspend_connection(r->conn);
    return MHD_YES;
}

static enum MHD_Result reply_ready(hl_req *r) {
    char why[160];
    if (hl_node_ready(r->w->node, why, sizeof(why)))
        return reply_json(r, MHD_HTTP_OK, "{\"status\":\"ready\"}");
    return reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "not_ready", why);
}

static enum MHD_Result reply_preflight(hl_req *r, hl_route_kind kind) {
    struct MHD_Response *resp = hl_http_response(r->w, r->origin, "text/plain", "", 0);
    if (resp == NULL) return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_METHODS,
                            hl_route_allow(kind));
    MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                            "Content-Type, Authorization, Last-Event-ID, Idempotency-Key");
    MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
    return reply(r, MHD_HTTP_NO_CONTENT, resp);
}

static enum MHD_Result start(hl_req *r, const char *url, const char *method) {
    hl_route route;
    hl_route_match(url, &route);
    r->kind = route.kind;
    if (route.kind == HL_ROUTE_NONE)
        return reply_error(r, MHD_HTTP_NOT_FOUND, "not_found", "no such path");
    if (strcmp(method, "OPTIONS") == 0) return reply_preflight(r, route.kind);
    if (!hl_route_method_ok(route.kind, method)) {
        struct MHD_Response *resp = error_response(r->w, r->origin, "method_not_allowed",
                                                   "this path does not take that method");
        if (resp) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, hl_route_allow(route.kind));
        return reply(r, MHD_HTTP_METHOD_NOT_ALLOWED, resp);
    }
    switch (route.kind) {
    case HL_ROUTE_INDEX:
    case HL_ROUTE_CLIENT_JS: {
        const hl_asset *a = hl_asset_find(url);
        if (a == NULL) return reply_error(r, MHD_HTTP_NOT_FOUND, "not_found", "no such path");
        /* A page load's connection was placed for the page; the page's
         * polls get connections of their own, placed by their channels
         * and sized by their own headers. */
        struct MHD_Response *resp = make_response(r->w, r->origin, a->content_type, a->data, a->len,
                                                  MHD_RESPMEM_PERSISTENT);
        if (resp) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
        return reply(r, MHD_HTTP_OK, resp);
    }
    case HL_ROUTE_HEALTHZ: return reply_json(r, MHD_HTTP_OK, "{\"status\":\"ok\"}");
    case HL_ROUTE_READYZ: return reply_ready(r);
    case HL_ROUTE_POLL: return start_poll(r, route.arg);
    case HL_ROUTE_PUBLISH: return start_publish(r, route.arg);
    case HL_ROUTE_CHANNEL: return start_channel_info(r, route.arg);
    case HL_ROUTE_NONE: break;
    }
    return reply_error(r, MHD_HTTP_NOT_FOUND, "not_found", "no such path");
}

/* What a parsed request takes of its connection's pool. */
typedef struct hl_head_size {
    size_t bytes;        /* name + value + 4 per header line */
    unsigned count;      /* records: header lines, cookies, arguments */
    size_t cookie_bytes; /* the Cookie header's value */
    size_t origin_bytes; /* the Origin header's value, which CORS answers repeat */
} hl_head_size;

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    size_t key_size, const char *value, size_t value_size) {
    (void)value;
    hl_head_size *hs = cls;
    hs->count++;
    if (kind != MHD_HEADER_KIND) return MHD_YES;
    hs->bytes += key_size + value_size + 4; /* ": " and CRLF */
    if (key_size == 6 && strncasecmp(key, "Cookie", 6) == 0) hs->cookie_bytes += value_size;
    if (key_size == 6 && strncasecmp(key, "Origin", 6) == 0) hs->origin_bytes += value_size;
    return MHD_YES;
}

/* The limits a request is checked against as soon as its headers are in.
 * Returns 1 with *ret set if r was refused. */
static int refused(hl_req *r, enum MHD_Result *ret) {
    hl_worker *w = r->w;
    const hl_config *cfg = w->cfg;
    if (r->hc && r->hc->url_len > (unsigned)cfg->http_max_url_bytes) {
        char detail[96];
        snprintf(detail, sizeof(detail), "the request target is longer than %d bytes",
                 cfg->http_max_url_bytes);
        *ret = reply_error(r, MHD_HTTP_URI_TOO_LONG, "url_too_long", detail);
        return 1;
    }
    if (r->hc && r->hc->bad_target) {
        *ret = reply_error(r, MHD_HTTP_BAD_REQUEST, "bad_request",
                           "the request target holds a NUL byte or more than 16 parameters");
        return 1;
    }
    hl_head_size hs = {0, 0, 0, 0};
    MHD_get_connection_values_n(r->conn, MHD_HEADER_KIND | MHD_COOKIE_KIND | MHD_GET_ARGUMENT_KIND,
                                count_header, &hs);
    /* The connection's pool was chosen for its first request. When this
     * one comes close to its end (more cookies, a longer cursor), the
     * answer closes the connection, so the next request is peeked and
     * placed again instead of overflowing the pool: MHD would then close
     * it without an answer. MHD honours a "close" token in any
     * Connection header of the request, this one included. */
    if (r->hc && hl_peek_pool_need_parsed(hs.bytes + r->hc->url_len + 32, hs.count, hs.cookie_bytes,
                                          r->hc->url_len + hs.origin_bytes) > r->hc->pool)
        MHD_set_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONNECTION, "close");
    if (hs.bytes > (size_t)cfg->http_max_header_bytes) {
        char detail[96];
        snprintf(detail, sizeof(detail), "the request headers are larger than %d bytes",
                 cfg->http_max_header_bytes);
        *ret =
            reply_error(r, MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE, "headers_too_large", detail);
        return 1;
    }
    return 0;
}

enum MHD_Result hl_http_on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                   const char *method, const char *version, const char *upload_data,
                                   size_t *upload_data_size, void **con_cls) {
    (void)version;
    hl_worker *w = cls;
    hl_req *r = *con_cls;
    if (r == NULL) {
        r = calloc(1, sizeof(*r));
        if (r == NULL) return MHD_NO;
        r->w = w;
        r->conn = conn;
        r->hc = conn_of(conn);
        r->origin = origin_of(w, conn);
        w->reqs++;
        *con_cls = r;
        enum MHD_Result ret;
        if (refused(r, &ret)) return ret;
        /* MHD 0.9.75 closes a connection whose response was queued in the
         * first call (it cannot know the request is complete), so only a
         * publish, which may have to refuse its body early, starts here;
         * everything else is answered in the next call, which MHD makes
         * at once for a request without a body. */
        if (strcmp(method, MHD_HTTP_METHOD_POST) == 0) return start(r, url, method);
        if (r->hc) owing_remove(r->hc); /* the whole request is in */
        r->state = HL_REQ_HEADERS;
        return MHD_YES;
    }
    switch (r->state) {
    case HL_REQ_HEADERS:
        if (*upload_data_size > 0) {
            *upload_data_size = 0; /* a body where none belongs is read and dropped */
            return MHD_YES;
        }
        return start(r, url, method);
    case HL_REQ_BODY: return receive_body(r, upload_data, upload_data_size);
    case HL_REQ_ANSWERED: {
        hl_shared *s = r->answer;
        r->answer = NULL;
        r->state = HL_REQ_DONE;
        if (s == NULL) return MHD_NO;
        enum MHD_Result ret = MHD_queue_response(conn, r->status, s->resp);
        hl_shared_release(s);
        return ret;
    }
    default:
        /* Body bytes after an early answer (413, 4xx) are read and dropped. */
        *upload_data_size = 0;
        return MHD_YES;
    }
}

void hl_http_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                          enum MHD_RequestTerminationCode toe) {
    (void)conn;
    (void)toe;
    hl_worker *w = cls;
    hl_req *r = *con_cls;
    if (r == NULL) return;
    *con_cls = NULL;
    hl_poll_detach(r);
    due_remove(r);
    hl_shared_release(r->answer);
    r->answer = NULL;
    hl_buf_free(&r->body);
    w->reqs--;
    /* Next, on a kept-alive connection: the following request. */
    if (r->hc) owing_add(r->hc);
    /* A Redis command still in flight holds r as its privdata; the last
     * such callback frees r when it comes. */
    if (r->redis_pending)
        r->orphaned = 1;
    else
        hl_http_req_free(r);
    hl_worker_maybe_finish(w);
}

size_t hl_http_unescape(void *cls, struct MHD_Connection *conn, char *s) {
    (void)cls;
    (void)conn;
    return hl_percent_decode(s);
}

/* hl_http.c -- every request enters through hl__http_on_request and goes
 * through the same phases before its route's handler:
 *
 *   limits   the target's and headers' size, a NUL or too many parameters
 *   CORS     the request's origin, which every answer repeats
 *   auth     what the route asks of the client: a token granting its
 *            channels, or publish.key (hl_guard.c)
 *   handler  parse, then hand the work to the engine or the store
 *
 * A handler answers at once or leaves the request suspended: a poll until
 * the engine delivers to its long-poll sink, a publish or a channel read
 * until the store calls back, a stream for as long as it lasts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "hl_assets.h"
#include "hl_codec.h"
#include "hl_common.h"
#include "hl_http_int.h"
#include "hl_log.h"
#include "hl_peek.h"
#include "hl_time.h"

#define JSON_TYPE "application/json"

static const char CHANNEL_RULE[] = "channel names are 1 to 200 bytes of A-Z a-z 0-9 . _ ~ : -";

void hl__http_mhd_log(void *cls, const char *fmt, va_list ap) {
    hl_http *h = cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    /* What MHD says of every connection holdline closes on purpose (a
     * client that hung up, a request deadline) is not worth a warning. */
    if (strncmp(msg, "Application reported internal error", 35) == 0 ||
        strstr(msg, "detected connection closure") != NULL)
        hl_debug("worker %d: http: %s", h->worker, msg);
    else
        hl_warn("worker %d: http: %s", h->worker, msg);
}

static enum MHD_Result reply_json(hl_req *r, unsigned status, const char *json) {
    return hl__reply(r, status, hl__response(r->h, r->origin, JSON_TYPE, json, strlen(json), 0));
}

/* Queues what a waiter was answered with while it started. */
static enum MHD_Result reply_answer(hl_req *r) {
    hl_shared *s = r->answer;
    r->answer = NULL;
    r->state = HL_REQ_DONE;
    if (s == NULL) return MHD_NO;
    hl__count_answer(r, r->status);
    enum MHD_Result ret = MHD_queue_response(r->conn, r->status, s->resp);
    hl__shared_release(s);
    return ret;
}

/* ---- Redis round trips: publish and channel info ------------------------ */

static void on_redis_deadline(hl_deadline *d) {
    hl_req *r = (hl_req *)((char *)d - offsetof(hl_req, u.rd.due));
    hl_store_cancel(r->u.rd.op);
    r->u.rd.op = NULL;
    hl_warn("a request on '%s' got no answer from Redis within %d s", r->u.rd.channel,
            HL_REDIS_DEADLINE_S);
    if (r->kind == HL_ROUTE_PUBLISH) hl_metric_add(&r->h->m->publishes[HL_PUBLISHES_ERROR], 1);
    hl__answer_error(r, HL_E_REDIS_TIMEOUT,
                     r->kind == HL_ROUTE_PUBLISH
                         ? "Redis did not confirm the publish in time; it may not have been sent"
                         : "Redis did not answer in time");
}

/* r waits for its store op. */
static enum MHD_Result suspend_for_redis(hl_req *r) {
    r->u.rd.due.fire = on_redis_deadline;
    hl_deadline_arm(r->h->dl, &r->u.rd.due, HL_REDIS_DEADLINE_S, hl_mono_ms());
    r->state = HL_REQ_REDIS;
    MHD_suspend_connection(r->conn);
    return MHD_YES;
}

/* Answers a suspended request with the JSON in b (freed; out of memory
 * closes the connection). */
static void answer_json(hl_req *r, hl_buf *b, unsigned status) {
    hl__answer_response(
        r, b->oom ? NULL : hl__response(r->h, r->origin, JSON_TYPE, b->data, b->len, 0), status);
    hl_buf_free(b);
}

static void on_info(void *ud, const hl_info_result *res) {
    hl_req *r = ud;
    r->u.rd.op = NULL;
    if (!res->ok) {
        hl__answer_error(r, res->err, res->detail);
        return;
    }
    hl_buf b;
    hl_buf_init(&b);
    hl_codec_channel_info(&b, r->u.rd.channel, strlen(r->u.rd.channel),
                          res->st.exists ? &res->st.last : NULL, res->st.length);
    answer_json(r, &b, MHD_HTTP_OK);
}

static void on_published(void *ud, const hl_publish_result *res) {
    hl_req *r = ud;
    r->u.rd.op = NULL;
    hl_metrics *m = r->h->m;
    hl_metric_add(
        &m->publishes[res->ok ? (res->duplicate ? HL_PUBLISHES_DUPLICATE : HL_PUBLISHES_OK)
                      : res->err == HL_E_REDIS_UNCONFIRMED ? HL_PUBLISHES_UNCONFIRMED
                                                           : HL_PUBLISHES_ERROR],
        1);
    hl_histo_observe(&m->publish_duration, hl_mono_us() - r->u.rd.t0_us);
    if (!res->ok) {
        hl__answer_error(r, res->err, res->detail);
        return;
    }
    hl_buf b;
    hl_buf_init(&b);
    hl_codec_publish_answer(&b, r->u.rd.channel, strlen(r->u.rd.channel), res->id, res->idlen,
                            res->duplicate);
    answer_json(r, &b, MHD_HTTP_CREATED);
}

/* ---- Handlers ---------------------------------------------------------- */

/* The channels and cursor of a poll or stream. Returns 1 with *ret set if
 * r was refused. */
static int parse_waiter(hl_req *r, hl_span arg, hl_span *chans, size_t *n, uint64_t *epoch,
                        hl_cur_part *parts, const char **cursor, enum MHD_Result *ret) {
    const hl_config *cfg = r->h->cfg;
    char err[128];
    size_t count = 1;
    for (size_t i = 0; i < arg.n; i++)
        count += arg.p[i] == ',';
    if (count > (size_t)cfg->poll_max_channels) {
        snprintf(err, sizeof(err), "at most %d channels per poll (poll.max_channels)",
                 cfg->poll_max_channels);
        *ret = hl__reply_error(r, HL_E_TOO_MANY_CHANNELS, err);
        return 1;
    }
    if (hl_channels_parse(arg.p, arg.n, chans, (size_t)cfg->poll_max_channels, n, err,
                          sizeof(err)) != HL_OK) {
        *ret = hl__reply_error(r, HL_E_BAD_CHANNEL, err);
        return 1;
    }
    /* A poll's explicit cursor parameter wins over Last-Event-ID. A
     * stream's Last-Event-ID wins: EventSource reconnects to the URL it
     * was opened with, so its ?cursor= is where the stream began, and
     * Last-Event-ID, which only a reconnect sends, is where it got to. */
    const char *arg_cs = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "cursor");
    const char *hdr_cs = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Last-Event-ID");
    const char *cs =
        r->kind == HL_ROUTE_EVENTS ? (hdr_cs ? hdr_cs : arg_cs) : (arg_cs ? arg_cs : hdr_cs);
    if (hl_cursor_parse(cs ? cs : "", cs ? strlen(cs) : 0, *n, epoch, parts, err, sizeof(err)) !=
        HL_OK) {
        *ret = hl__reply_error(r, HL_E_BAD_CURSOR, err);
        return 1;
    }
    *cursor = cs ? cs : "";
    return 0;
}

/* A waiter on a connection placed for something else (a publish, a
 * health check) sits in a daemon its channel does not hash to: its answer
 * closes the connection, so the client's next request is placed by
 * channel. */
static void close_if_misplaced(hl_req *r) {
    if (r->hc && !r->hc->by_channel)
        MHD_set_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONNECTION, "close");
}

/* The "no event" answer of a node that is stopping: the client's own
 * cursor back, so it loses nothing by moving to another node. */
static enum MHD_Result reply_stopping(hl_req *r, uint64_t epoch, const hl_cur_part *parts,
                                      size_t n) {
    hl_buf cur, body;
    hl_buf_init(&cur);
    hl_buf_init(&body);
    hl_cursor_format(&cur, epoch, parts, n);
    hl_codec_poll_answer(&body, cur.data ? cur.data : "", cur.len, NULL, 0, 0);
    struct MHD_Response *resp =
        cur.oom || body.oom ? NULL
                            : hl__poll_response(r->h, r->origin, &body, cur.data ? cur.data : "");
    hl_buf_free(&cur);
    hl_buf_free(&body);
    return hl__reply(r, MHD_HTTP_OK, resp);
}

static enum MHD_Result start_poll(hl_req *r, hl_span arg) {
    const hl_config *cfg = r->h->cfg;
    hl_span chans[HL_MAX_CHANNELS];
    hl_cur_part parts[HL_MAX_CHANNELS];
    size_t n;
    uint64_t epoch;
    const char *cursor;
    enum MHD_Result ret;
    if (parse_waiter(r, arg, chans, &n, &epoch, parts, &cursor, &ret)) return ret;
    int timeout;
    char err[128];
    const char *ts = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "timeout");
    if (hl_timeout_parse(ts, cfg->poll_default_timeout, cfg->poll_max_timeout, &timeout, err,
                         sizeof(err)) != HL_OK)
        return hl__reply_error(r, HL_E_BAD_TIMEOUT, err);
    /* A poll is held no longer than its token is good: it is then answered
     * "no event", and the client comes back with a fresh token. */
    if (r->token_until > 0) {
        long long left_s = (r->token_until - hl_wall_ms()) / 1000;
        if (left_s < timeout) timeout = left_s > 1 ? (int)left_s : 1;
    }
    if (r->h->stopping) return reply_stopping(r, epoch, parts, n);
    close_if_misplaced(r);
    r->state = HL_REQ_HEADERS; /* answered while starting: ANSWERED, not resumed */
    if (hl_waiter_start(r->h->engine, &r->u.wt, &hl__longpoll_ops, chans, n, epoch, parts,
                        (unsigned)timeout, 0) != HL_OK)
        return hl__reply_error(r, HL_E_OUT_OF_MEMORY, "the node cannot hold another waiter");
    r->waiter = 1;
    hl_metric_add(&r->h->m->waiters[HL_TR_POLL], 1);
    if (r->state == HL_REQ_ANSWERED) return reply_answer(r);
    r->state = HL_REQ_WAITING;
    MHD_suspend_connection(r->conn);
    return MHD_YES;
}

/* GET /events/{ch}: a stream of the channels' messages from the cursor. */
static enum MHD_Result start_events(hl_req *r, hl_span arg) {
    const hl_config *cfg = r->h->cfg;
    hl_span chans[HL_MAX_CHANNELS];
    hl_cur_part parts[HL_MAX_CHANNELS];
    size_t n;
    uint64_t epoch;
    const char *cursor;
    enum MHD_Result ret;
    if (parse_waiter(r, arg, chans, &n, &epoch, parts, &cursor, &ret)) return ret;
    close_if_misplaced(r);
    /* A stream lasts sse.max_duration_s, or until its token runs out. */
    long long now = hl_mono_ms();
    long long until = now + (long long)cfg->sse_max_duration_s * 1000;
    int token_ends = 0;
    if (r->token_until > 0 && now + (r->token_until - hl_wall_ms()) < until) {
        until = now + (r->token_until - hl_wall_ms());
        token_ends = 1;
    }
    if (hl__sse_new(r, cursor, strlen(cursor), token_ends) != HL_OK)
        return hl__reply_error(r, HL_E_OUT_OF_MEMORY, "the node cannot hold another stream");
    struct MHD_Response *resp = hl__sse_response(r);
    if (resp == NULL) return MHD_NO;
    r->state = HL_REQ_STREAM;
    if (r->h->stopping) {
        /* Open and end at once: the client comes back with its cursor,
         * to another node. */
        hl__sse_ops.end(&r->u.wt, HL_END_STOPPING);
    } else if (hl_waiter_start(r->h->engine, &r->u.wt, &hl__sse_ops, chans, n, epoch, parts,
                               (unsigned)cfg->sse_heartbeat_s, until) != HL_OK) {
        MHD_destroy_response(resp);
        return hl__reply_error(r, HL_E_OUT_OF_MEMORY, "the node cannot hold another stream");
    } else {
        r->waiter = 1;
        hl_metric_add(&r->h->m->waiters[HL_TR_SSE], 1);
    }
    hl__count_answer(r, MHD_HTTP_OK);
    enum MHD_Result q = MHD_queue_response(r->conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return q;
}

/* GET /channels/{ch}: what Redis holds of the channel's history. */
static enum MHD_Result start_channel_info(hl_req *r, hl_span arg) {
    if (!hl_channel_valid(arg.p, arg.n)) return hl__reply_error(r, HL_E_BAD_CHANNEL, CHANNEL_RULE);
    r->redis = 1;
    r->u.rd.channel = strndup(arg.p, arg.n);
    if (r->u.rd.channel == NULL)
        return hl__reply_error(r, HL_E_OUT_OF_MEMORY, "the node cannot take this request now");
    r->u.rd.op = hl_store_info(r->h->store, arg.p, arg.n, on_info, r);
    if (r->u.rd.op == NULL)
        return hl__reply_error(r, HL_E_REDIS_UNAVAILABLE, "Redis is not reachable");
    return suspend_for_redis(r);
}

static enum MHD_Result start_publish(hl_req *r, hl_span arg) {
    const hl_config *cfg = r->h->cfg;
    if (!hl_channel_valid(arg.p, arg.n)) return hl__reply_error(r, HL_E_BAD_CHANNEL, CHANNEL_RULE);
    const char *cl =
        MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl != NULL && strtoull(cl, NULL, 10) > (unsigned long long)cfg->publish_max_message_bytes)
        return hl__reply_error(r, HL_E_TOO_LARGE,
                               "the message is larger than publish.max_message_bytes");
    r->redis = 1;
    const char *idem = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Idempotency-Key");
    if (idem != NULL) {
        if (!hl_idempotency_key_valid(idem))
            return hl__reply_error(r, HL_E_BAD_IDEMPOTENCY_KEY,
                                   "Idempotency-Key must be 1 to 64 bytes of A-Z a-z 0-9 . _ : -");
        r->u.rd.idem = strdup(idem);
        if (r->u.rd.idem == NULL)
            return hl__reply_error(r, HL_E_OUT_OF_MEMORY, "the node cannot take this publish now");
    }
    r->u.rd.channel = strndup(arg.p, arg.n);
    if (r->u.rd.channel == NULL)
        return hl__reply_error(r, HL_E_OUT_OF_MEMORY, "the node cannot take this publish now");
    r->state = HL_REQ_BODY;
    return MHD_YES;
}

static enum MHD_Result receive_body(hl_req *r, const char *data, size_t *size) {
    hl_http *h = r->h;
    if (*size > 0) {
        size_t n = *size;
        *size = 0;
        /* MHD 0.9.75 refuses a response queued while the body is still
         * arriving, so an oversized chunked body is read to its end and
         * dropped, then answered 413. A declared Content-Length too large
         * was already refused before any byte was read. */
        if (r->u.rd.too_large || r->u.rd.body.len + n > (size_t)h->cfg->publish_max_message_bytes) {
            r->u.rd.too_large = 1;
            hl_buf_free(&r->u.rd.body);
            return MHD_YES;
        }
        hl_buf_append(&r->u.rd.body, data, n);
        return MHD_YES;
    }
    if (r->hc) hl__conn_paid(r->hc); /* the whole request is in */
    if (r->u.rd.too_large)
        return hl__reply_error(r, HL_E_TOO_LARGE,
                               "the message is larger than publish.max_message_bytes");
    if (r->u.rd.body.oom)
        return hl__reply_error(r, HL_E_OUT_OF_MEMORY, "the node cannot buffer this message");
    if (h->stopping)
        return hl__reply_error(r, HL_E_SHUTTING_DOWN,
                               "this node is shutting down; publish through another");
    r->u.rd.t0_us = hl_mono_us();
    r->u.rd.op = hl_store_publish(h->store, r->u.rd.channel, strlen(r->u.rd.channel),
                                  r->u.rd.body.data ? r->u.rd.body.data : "", r->u.rd.body.len,
                                  r->u.rd.idem, on_published, r);
    if (r->u.rd.op == NULL) {
        hl_metric_add(&h->m->publishes[HL_PUBLISHES_ERROR], 1);
        return hl__reply_error(r, HL_E_REDIS_UNAVAILABLE,
                               "Redis is not reachable; the message was not published");
    }
    return suspend_for_redis(r);
}

static enum MHD_Result serve_asset(hl_req *r, hl_span arg, const char *url) {
    (void)arg;
    const hl_asset *a = hl_asset_find(url);
    if (a == NULL) return hl__reply_error(r, HL_E_NOT_FOUND, "no such path");
    /* A page load's connection was placed for the page; the page's
     * requests get connections of their own, placed by their channels
     * and sized by their own headers. */
    struct MHD_Response *resp = hl__response(r->h, r->origin, a->content_type, a->data, a->len, 1);
    if (resp) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    return hl__reply(r, MHD_HTTP_OK, resp);
}

static enum MHD_Result reply_health(hl_req *r, hl_span arg, const char *url) {
    (void)arg;
    (void)url;
    return reply_json(r, MHD_HTTP_OK, "{\"status\":\"ok\"}");
}

static enum MHD_Result reply_ready(hl_req *r, hl_span arg, const char *url) {
    (void)arg;
    (void)url;
    char why[800] = "";
    if (r->h->hooks.ready == NULL || !r->h->hooks.ready(r->h->ud, why, sizeof(why)))
        return hl__reply_error(r, HL_E_NOT_READY, why[0] ? why : "not ready");
    hl_buf b;
    hl_buf_init(&b);
    hl_codec_ready(&b, why); /* why: what is degraded, if anything */
    enum MHD_Result ret = b.oom ? MHD_NO : reply_json(r, MHD_HTTP_OK, b.data);
    hl_buf_free(&b);
    return ret;
}

static enum MHD_Result reply_metrics(hl_req *r, hl_span arg, const char *url) {
    (void)arg;
    (void)url;
    hl_buf b;
    hl_buf_init(&b);
    if (r->h->hooks.metrics) r->h->hooks.metrics(r->h->ud, &b);
    struct MHD_Response *resp =
        b.oom ? NULL
              : hl__response(r->h, r->origin, "text/plain; version=0.0.4; charset=utf-8",
                             b.data ? b.data : "", b.len, 0);
    hl_buf_free(&b);
    if (resp == NULL)
        return hl__reply_error(r, HL_E_OUT_OF_MEMORY, "the node cannot build its metrics now");
    return hl__reply(r, MHD_HTTP_OK, resp);
}

static enum MHD_Result poll_handler(hl_req *r, hl_span arg, const char *url) {
    (void)url;
    return start_poll(r, arg);
}

static enum MHD_Result events_handler(hl_req *r, hl_span arg, const char *url) {
    (void)url;
    return start_events(r, arg);
}

static enum MHD_Result publish_handler(hl_req *r, hl_span arg, const char *url) {
    (void)url;
    return start_publish(r, arg);
}

static enum MHD_Result channel_handler(hl_req *r, hl_span arg, const char *url) {
    (void)url;
    return start_channel_info(r, arg);
}

/* ---- Phases ------------------------------------------------------------ */

typedef struct route_def {
    enum MHD_Result (*handler)(hl_req *r, hl_span arg, const char *url);
    int (*auth)(hl_req *r, hl_span arg, enum MHD_Result *ret); /* NULL: open */
} route_def;

/* Indexed by hl_route_kind; the paths and methods are hl_request.c's. */
static const route_def routes[] = {
    [HL_ROUTE_INDEX] = {serve_asset, NULL},
    [HL_ROUTE_CLIENT_JS] = {serve_asset, NULL},
    [HL_ROUTE_POLL] = {poll_handler, hl__guard_subscribe},
    [HL_ROUTE_EVENTS] = {events_handler, hl__guard_subscribe},
    [HL_ROUTE_PUBLISH] = {publish_handler, hl__guard_publish},
    [HL_ROUTE_CHANNEL] = {channel_handler, hl__guard_subscribe},
    [HL_ROUTE_HEALTHZ] = {reply_health, NULL},
    [HL_ROUTE_READYZ] = {reply_ready, NULL},
    [HL_ROUTE_METRICS] = {reply_metrics, NULL},
};

static enum MHD_Result reply_preflight(hl_req *r, hl_route_kind kind) {
    struct MHD_Response *resp = hl__response(r->h, r->origin, "text/plain", "", 0, 0);
    if (resp == NULL) return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_METHODS,
                            hl_route_allow(kind));
    MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                            "Content-Type, Authorization, Last-Event-ID, Idempotency-Key");
    MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
    return hl__reply(r, MHD_HTTP_NO_CONTENT, resp);
}

/* Route, method, auth, handler. */
static enum MHD_Result start(hl_req *r, const char *url, const char *method) {
    hl_route route;
    hl_route_match(url, &route);
    r->kind = route.kind;
    if (route.kind == HL_ROUTE_NONE || (size_t)route.kind >= HL_ARRAY_LEN(routes) ||
        routes[route.kind].handler == NULL)
        return hl__reply_error(r, HL_E_NOT_FOUND, "no such path");
    if (strcmp(method, "OPTIONS") == 0) return reply_preflight(r, route.kind);
    if (!hl_route_method_ok(route.kind, method)) {
        struct MHD_Response *resp = hl__error_response(r->h, r->origin, HL_E_METHOD_NOT_ALLOWED,
                                                       "this path does not take that method");
        if (resp) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, hl_route_allow(route.kind));
        return hl__reply(r, MHD_HTTP_METHOD_NOT_ALLOWED, resp);
    }
    const route_def *def = &routes[route.kind];
    enum MHD_Result ret;
    if (def->auth && def->auth(r, route.arg, &ret)) return ret;
    return def->handler(r, route.arg, url);
}

/* What a parsed request takes of its connection's pool. */
typedef struct hl_head_size {
    size_t bytes;        /* name + value + 4 per header line */
    unsigned count;      /* records: header lines, cookies, arguments */
    size_t cookie_bytes; /* the Cookie header's value */
    size_t origin_bytes; /* the Origin header's value, which CORS answers repeat */
    const char *origin;  /* that value */
} hl_head_size;

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    size_t key_size, const char *value, size_t value_size) {
    hl_head_size *hs = cls;
    hs->count++;
    if (kind != MHD_HEADER_KIND) return MHD_YES;
    hs->bytes += key_size + value_size + 4; /* ": " and CRLF */
    if (key_size == 6 && strncasecmp(key, "Cookie", 6) == 0) hs->cookie_bytes += value_size;
    if (key_size == 6 && strncasecmp(key, "Origin", 6) == 0) {
        hs->origin_bytes += value_size;
        hs->origin = value;
    }
    return MHD_YES;
}

/* The limits phase, as soon as the headers are in; it also finds the
 * origin (the CORS phase), which every answer from here on repeats.
 * Returns 1 with *ret set if r was refused. */
static int limits(hl_req *r, enum MHD_Result *ret) {
    hl_http *h = r->h;
    const hl_config *cfg = h->cfg;
    hl_head_size hs = {0, 0, 0, 0, NULL};
    MHD_get_connection_values_n(r->conn, MHD_HEADER_KIND | MHD_COOKIE_KIND | MHD_GET_ARGUMENT_KIND,
                                count_header, &hs);
    r->origin = hs.origin ? hl__origin_index(cfg, hs.origin, hs.origin_bytes) : HL_ORIGIN_NONE;
    if (r->hc && r->hc->url_len > (unsigned)cfg->http_max_url_bytes) {
        char detail[96];
        snprintf(detail, sizeof(detail), "the request target is longer than %d bytes",
                 cfg->http_max_url_bytes);
        *ret = hl__reply_error(r, HL_E_URL_TOO_LONG, detail);
        return 1;
    }
    if (r->hc && r->hc->bad_target) {
        char detail[96];
        snprintf(detail, sizeof(detail),
                 "the request target holds a NUL byte or more than %d parameters",
                 HL_MAX_QUERY_PARAMS);
        *ret = hl__reply_error(r, HL_E_BAD_REQUEST, detail);
        return 1;
    }
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
        *ret = hl__reply_error(r, HL_E_HEADERS_TOO_LARGE, detail);
        return 1;
    }
    return 0;
}

enum MHD_Result hl__http_on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                    const char *method, const char *version,
                                    const char *upload_data, size_t *upload_data_size,
                                    void **con_cls) {
    (void)version;
    hl_http *h = cls;
    hl_req *r = *con_cls;
    if (r == NULL) {
        r = calloc(1, sizeof(*r));
        if (r == NULL) return MHD_NO;
        r->h = h;
        r->conn = conn;
        r->hc = hl__conn_of(conn);
        r->origin = HL_ORIGIN_NONE;
        h->reqs++;
        *con_cls = r;
        enum MHD_Result ret;
        if (limits(r, &ret)) return ret;
        /* MHD 0.9.75 closes a connection whose response was queued in the
         * first call (it cannot know the request is complete), so only a
         * publish, which may have to refuse its body early, starts here;
         * everything else is answered in the next call, which MHD makes
         * at once for a request without a body. */
        if (strcmp(method, MHD_HTTP_METHOD_POST) == 0) return start(r, url, method);
        if (r->hc) hl__conn_paid(r->hc); /* the whole request is in */
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
    case HL_REQ_ANSWERED: return reply_answer(r);
    default:
        /* Body bytes after an early answer (413, 4xx) are read and dropped. */
        *upload_data_size = 0;
        return MHD_YES;
    }
}

void hl__http_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                           enum MHD_RequestTerminationCode toe) {
    (void)conn;
    (void)toe;
    hl_http *h = cls;
    hl_req *r = *con_cls;
    if (r == NULL) return;
    *con_cls = NULL;
    if (r->waiter) {
        hl_waiter_stop(&r->u.wt);
        hl_metric_sub(&h->m->waiters[r->kind == HL_ROUTE_EVENTS ? HL_TR_SSE : HL_TR_POLL], 1);
    }
    if (r->redis) {
        hl_store_cancel(r->u.rd.op);
        hl_deadline_cancel(h->dl, &r->u.rd.due);
        hl_buf_free(&r->u.rd.body);
        free(r->u.rd.idem);
        free(r->u.rd.channel);
    }
    hl__shared_release(r->answer);
    /* A stream that ended closes its connection, so that the client comes
     * back on a new one, possibly to another node (hl_sse.c). MHD chose
     * keep-alive when the stream's head went out, which makes the "close"
     * sse_end adds to the request too late; the last chunk is sent by
     * now, and a shutdown makes MHD's next read see the end and close. */
    if (r->sse != NULL && r->hc != NULL && r->hc->fd >= 0) shutdown(r->hc->fd, SHUT_RDWR);
    hl__sse_free(r);
    /* Next, on a kept-alive connection: the following request. */
    if (r->hc) hl__conn_owing(r->hc);
    free(r);
    h->reqs--;
    if (h->hooks.request_done) h->hooks.request_done(h->ud);
}

size_t hl__http_unescape(void *cls, struct MHD_Connection *conn, char *s) {
    (void)cls;
    (void)conn;
    return hl_percent_decode(s);
}

/* ---- The server --------------------------------------------------------- */

unsigned hl_http_max_deadline(const hl_config *cfg) {
    unsigned m = HL_REDIS_DEADLINE_S;
    if ((unsigned)cfg->poll_max_timeout > m) m = (unsigned)cfg->poll_max_timeout;
    if ((unsigned)cfg->sse_heartbeat_s > m) m = (unsigned)cfg->sse_heartbeat_s;
    return m;
}

static void on_sweep(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    hl__conn_sweep(arg);
}

hl_http *hl_http_new(const hl_config *cfg, struct event_base *base, int worker, hl_engine *engine,
                     hl_store *store, hl_deadlines *dl, const hl_http_hooks *hooks, void *ud,
                     char *err, size_t errlen) {
    hl_http *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        hl_set_error(err, errlen, "out of memory");
        return NULL;
    }
    h->cfg = cfg;
    h->base = base;
    h->worker = worker;
    h->engine = engine;
    h->store = store;
    h->dl = dl;
    if (hooks) h->hooks = *hooks;
    h->ud = ud;
    h->listen_fd = -1;
    unsigned limit = (unsigned)(cfg->http_max_connections / cfg->http_workers);
    h->conn_limit = limit ? limit : 1;
    h->sweep = event_new(base, -1, EV_PERSIST, on_sweep, h);
    if (h->sweep == NULL) {
        hl_set_error(err, errlen, "out of memory");
        goto fail;
    }
    h->m = &hl_metrics_void;
    h->auth = hl_auth_new(cfg, err, errlen);
    if (h->auth == NULL) goto fail;
    if (hl__accept_init(h, err, errlen) != HL_OK) goto fail;
    return h;
fail:
    hl_http_free(h);
    return NULL;
}

void hl_http_start(hl_http *h) {
    hl__accept_start(h);
    struct timeval quarter = hl_ms_tv(250);
    event_add(h->sweep, &quarter);
}

void hl_http_stop_accepting(hl_http *h) {
    h->stopping = 1;
    /* MHD_quiesce_daemon does nothing on daemons without a listening
     * socket: closing ours is what stops new connections. */
    hl__accept_close(h);
    hl__conn_close_owing(h);
    hl__kick_all(h);
}

void hl_http_set_metrics(hl_http *h, hl_metrics *m) {
    h->m = m;
}

size_t hl_http_open_requests(const hl_http *h) {
    return h->reqs;
}

void hl_http_free(hl_http *h) {
    if (h == NULL) return;
    if (h->sweep) event_free(h->sweep);
    hl__accept_free(h);
    hl_auth_free(h->auth);
    free(h);
}

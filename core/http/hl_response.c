/* hl_response.c -- what every answer carries (content type, no caching,
 * CORS, "Connection: close" while stopping), answers shared by many
 * requests, and answering a suspended request: the answer is stored and
 * the connection resumed; MHD then calls the access handler again and the
 * answer is queued there, the only place MHD allows it. */
#include <stdlib.h>
#include <string.h>

#include "hl_codec.h"
#include "hl_http_int.h"

#define JSON_TYPE "application/json"

void hl__common_headers(const hl_http *h, int origin, struct MHD_Response *resp,
                        const char *ctype) {
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    const char *allow = hl__cors_allow(h->cfg, origin);
    if (allow) MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_ORIGIN, allow);
    if (origin >= 0) MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Origin");
    if (origin != HL_ORIGIN_NONE)
        MHD_add_response_header(resp, "Access-Control-Expose-Headers",
                                "Holdline-Cursor, WWW-Authenticate");
    /* With tokens in cookies, a page of a listed origin sends them
     * (credentials: "include", EventSource withCredentials) and may read
     * the answer; browsers never allow that with "*". */
    if (origin >= 0 && hl_auth_on(h->auth))
        MHD_add_response_header(resp, "Access-Control-Allow-Credentials", "true");
    /* While draining, close keep-alive connections after each answer so
     * clients move to another node instead of coming back here. */
    if (h->stopping) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
}

struct MHD_Response *hl__response(const hl_http *h, int origin, const char *ctype, const void *data,
                                  size_t len, int persistent) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, (void *)data, persistent ? MHD_RESPMEM_PERSISTENT : MHD_RESPMEM_MUST_COPY);
    if (resp != NULL) hl__common_headers(h, origin, resp, ctype);
    return resp;
}

struct MHD_Response *hl__error_response(const hl_http *h, int origin, hl_error e,
                                        const char *detail) {
    hl_buf b;
    hl_buf_init(&b);
    hl_codec_error(&b, hl_error_get(e)->code, detail);
    struct MHD_Response *resp = b.oom ? NULL : hl__response(h, origin, JSON_TYPE, b.data, b.len, 0);
    hl_buf_free(&b);
    return resp;
}

struct MHD_Response *hl__poll_response(const hl_http *h, int origin, const hl_buf *body,
                                       const char *cursor) {
    struct MHD_Response *resp = hl__response(h, origin, JSON_TYPE, body->data, body->len, 0);
    if (resp != NULL) MHD_add_response_header(resp, "Holdline-Cursor", cursor);
    return resp;
}

hl_shared *hl__shared_new(struct MHD_Response *resp, unsigned refs) {
    hl_shared *s = malloc(sizeof(*s));
    if (s == NULL) return NULL;
    s->resp = resp;
    s->refs = refs;
    return s;
}

void hl__shared_release(hl_shared *s) {
    if (s == NULL || --s->refs > 0) return;
    MHD_destroy_response(s->resp);
    free(s);
}

void hl__count_answer(hl_req *r, unsigned status) {
    hl_metrics *m = r->h->m;
    hl_metrics_http(m, status);
    if (r->kind != HL_ROUTE_POLL) return;
    if (status >= 400)
        hl_metric_add(&m->polls[HL_POLL_ERROR], 1);
    else if (status == MHD_HTTP_OK)
        hl_metric_add(&m->polls[r->got ? HL_POLL_MESSAGE : HL_POLL_TIMEOUT], 1);
}

void hl__count_delivery(hl_req *r, const hl_delivery *d, hl_transport t) {
    hl_metrics *m = r->h->m;
    if (d->n > 0) hl_metric_add(&m->delivered[t], d->n);
    if (d->missed) hl_metric_add(&m->missed, 1);
    /* The lag of live messages only: a client catching up from an old
     * cursor gets old messages, which says nothing of how fast news go. */
    if (d->live_ms > 0) {
        long long now = hl_store_redis_now(r->h->store, -1);
        if (now > 0) hl_histo_observe(&m->delivery_lag, (now - d->live_ms) * 1000);
    }
}

enum MHD_Result hl__reply(hl_req *r, unsigned status, struct MHD_Response *resp) {
    if (resp == NULL) return MHD_NO; /* out of memory: MHD closes the connection */
    hl__count_answer(r, status);
    enum MHD_Result ret = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    r->state = HL_REQ_DONE;
    return ret;
}

enum MHD_Result hl__reply_error(hl_req *r, hl_error e, const char *detail) {
    return hl__reply(r, hl_error_get(e)->status, hl__error_response(r->h, r->origin, e, detail));
}

/* A poll's connection sits in the busy or the quiet tier of daemons
 * (hl_accept.c). A timeout answering a connection of the busy tier means
 * its channel fell quiet: the answer closes the connection, so the
 * client's next poll is placed again. A message answering one of the
 * quiet tier is left to the daemon's run to judge (hl__daemon_promote):
 * moving is only worth a reconnect when the run would walk many more
 * waiters than it answers. */
static void replace_if_moved(hl_req *r) {
    hl_conn *hc = r->hc;
    if (r->kind != HL_ROUTE_POLL || hc == NULL || !hc->by_channel || hc->h->per_class < 3) return;
    if (hc->busy && r->timed_out)
        MHD_set_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONNECTION, "close");
    else if (!hc->busy && !r->timed_out && !r->promoting)
        hl__daemon_promote(hc->d, r);
}

void hl__resume(hl_req *r) {
    MHD_resume_connection(r->conn);
    if (r->hc) {
        r->hc->d->resumed++;
        hl__daemon_kick(r->hc->d);
    } else {
        hl__kick_all(r->h);
    }
}

void hl__answer(hl_req *r, hl_shared *answer, unsigned status) {
    if (r->redis) hl_deadline_cancel(r->h->dl, &r->u.rd.due);
    replace_if_moved(r);
    r->answer = answer;
    r->status = status;
    r->state = HL_REQ_ANSWERED;
    hl__resume(r);
}

/* Out of memory while answering a suspended request: resuming it without
 * an answer makes the access handler return MHD_NO, which closes the
 * connection rather than leaving the client hanging. */
void hl__answer_response(hl_req *r, struct MHD_Response *resp, unsigned status) {
    hl_shared *s = resp ? hl__shared_new(resp, 1) : NULL;
    if (s == NULL && resp != NULL) MHD_destroy_response(resp);
    hl__answer(r, s, status);
}

void hl__answer_error(hl_req *r, hl_error e, const char *detail) {
    hl__answer_response(r, hl__error_response(r->h, r->origin, e, detail), hl_error_get(e)->status);
}

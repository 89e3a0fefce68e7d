/* hl_sse.c -- the Server-Sent Events transport: a waiter that stays
 * attached, each delivery written to one open response as events.
 *
 *   retry: <ms>            the stream's opening, with the client's cursor
 *   id: <cursor>           if it gave one; then its position once known
 *
 *   id: <cursor after it>  one event per message; data is the message
 *   data: {"channel":..,"id":..,"data":..}   object of /poll's answers
 *
 *   event: missed          continuity could not be proved
 *   : hb                   every sse.heartbeat_s with nothing to say
 *
 * The response is a libmicrohttpd callback response. With nothing to
 * send, the callback suspends the connection and returns 0 (returning 0
 * without suspending busy-loops MHD 0.9.75 at 100% CPU); a delivery
 * appends to the stream's buffer and resumes it. An idle stream therefore
 * costs what a held poll costs (its connection's pool, the request) plus
 * a 64-byte response block; its buffer is freed whenever it drains. A
 * client that went away is found by the hang-up check, which peeks at
 * held streams as at held polls (hl_conn.c), or by a failed write. The
 * stream ends after sse.max_duration_s, when its token expires (with an
 * "event: token_expired" first) and when the node stops, and its
 * connection closes, so the client reconnects with Last-Event-ID,
 * possibly to another node. */
#include <stdlib.h>
#include <string.h>

#include "hl_codec.h"
#include "hl_common.h"
#include "hl_http_int.h"
#include "hl_log.h"

#define SSE_TYPE "text/event-stream"
/* The response's own buffer, used only without chunked encoding
 * (HTTP/1.0); with it the callback writes into the connection's pool. */
#define SSE_BLOCK 64
/* The fan-out slot of a message's event bytes (after long-poll's). */
#define SLOT_SSE (HL_FANOUT_SLOTS - 1)

typedef struct hl_sse {
    hl_req *r;
    hl_buf out;     /* bytes to send */
    size_t off;     /* of which sent */
    int suspended;  /* inside the callback, for want of bytes */
    int ended;      /* end the stream once out is sent */
    int token_ends; /* its time runs out with its token, not sse.max_duration_s */
    hl_buf last_id; /* the id the client holds (the last one written) */
} hl_sse;

static hl_req *req_of(hl_waiter *w) {
    return (hl_req *)((char *)w - offsetof(hl_req, u.wt));
}

/* New bytes are in (or the end): let MHD call the callback again. */
static void wake(hl_sse *s) {
    if (!s->suspended) return;
    s->suspended = 0;
    hl__resume(s->r);
}

static int same_id(const hl_sse *s, const char *cur, size_t n) {
    return s->last_id.len == n && (n == 0 || memcmp(s->last_id.data, cur, n) == 0);
}

static void set_id(hl_sse *s, const char *cur, size_t n) {
    s->last_id.len = 0;
    hl_buf_append(&s->last_id, cur, n);
}

static ssize_t on_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    hl_sse *s = cls;
    if (s->off < s->out.len) {
        size_t n = s->out.len - s->off;
        if (n > max) n = max;
        memcpy(buf, s->out.data + s->off, n);
        s->off += n;
        if (s->off == s->out.len) {
            /* An idle stream keeps no buffer. */
            hl_buf_free(&s->out);
            s->off = 0;
        }
        return (ssize_t)n;
    }
    if (s->ended || s->out.oom) return MHD_CONTENT_READER_END_OF_STREAM;
    MHD_suspend_connection(s->r->conn);
    s->suspended = 1;
    return 0;
}

static void drop_bytes(void *memo) {
    hl_buf *b = memo;
    hl_buf_free(b);
    free(b);
}

static void sse_deliver(hl_waiter *w, const hl_delivery *d) {
    hl_req *r = req_of(w);
    hl_sse *s = r->sse;
    if (s == NULL || s->ended) return;
    hl__count_delivery(r, d, HL_TR_SSE);
    if (d->fan && d->n == 1 && !d->missed) {
        /* The same event for every stream of the fan-out. */
        hl_buf *b = d->fan->memo[SLOT_SSE];
        if (b == NULL && (b = malloc(sizeof(*b))) != NULL) {
            hl_buf_init(b);
            hl_codec_sse_message(b, d->item_cursors[0].json, d->item_cursors[0].len,
                                 d->items[0].json, d->items[0].len);
            d->fan->memo[SLOT_SSE] = b;
            d->fan->drop[SLOT_SSE] = drop_bytes;
        }
        if (b && !b->oom) {
            hl_buf_append(&s->out, b->data, b->len);
            set_id(s, d->cursor, d->clen);
            wake(s);
            return;
        }
    }
    if (d->missed) hl_codec_sse_missed(&s->out, d->cursor, d->clen, d->n == 0);
    for (size_t i = 0; i < d->n; i++) {
        const hl_codec_item *c = &d->item_cursors[i];
        /* A plain message does not move the cursor: no id line. */
        int fresh = !same_id(s, c->json, c->len);
        hl_codec_sse_message(&s->out, fresh ? c->json : "", fresh ? c->len : 0, d->items[i].json,
                             d->items[i].len);
        if (fresh) set_id(s, c->json, c->len);
    }
    if (d->n == 0 && !d->missed) {
        if (same_id(s, d->cursor, d->clen))
            hl_codec_sse_heartbeat(&s->out);
        else
            hl_codec_sse_position(&s->out, d->cursor, d->clen);
    }
    set_id(s, d->cursor, d->clen);
    if (s->out.oom || s->last_id.oom) {
        hl_error("worker %d: out of memory writing a stream; ending it", r->h->worker);
        s->ended = 1;
    }
    wake(s);
}

static void sse_end(hl_waiter *w, hl_end_reason why) {
    hl_req *r = req_of(w);
    hl_sse *s = r->sse;
    if (s == NULL) return;
    s->ended = 1;
    if (why == HL_END_DURATION && s->token_ends)
        hl_codec_sse_token_expired(&s->out, s->last_id.data ? s->last_id.data : "", s->last_id.len);
    /* The client reconnects with its cursor; on a new connection, so it
     * may land on another node. */
    if (r->state == HL_REQ_STREAM)
        MHD_set_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONNECTION, "close");
    wake(s);
}

const hl_sink_ops hl__sse_ops = {sse_deliver, sse_end, 0, 1};

int hl__sse_new(hl_req *r, const char *cursor, size_t clen, int token_ends) {
    hl_sse *s = calloc(1, sizeof(*s));
    if (s == NULL) return HL_ERR;
    s->r = r;
    s->token_ends = token_ends;
    hl_buf_init(&s->out);
    hl_buf_init(&s->last_id);
    hl_codec_sse_open(&s->out, r->h->cfg->sse_retry_ms, cursor, clen);
    set_id(s, cursor, clen);
    r->sse = s;
    if (s->out.oom || s->last_id.oom) {
        hl__sse_free(r);
        return HL_ERR;
    }
    return HL_OK;
}

struct MHD_Response *hl__sse_response(hl_req *r) {
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, SSE_BLOCK, on_read, r->sse, NULL);
    if (resp != NULL) hl__common_headers(r->h, r->origin, resp, SSE_TYPE);
    return resp;
}

void hl__sse_free(hl_req *r) {
    hl_sse *s = r->sse;
    if (s == NULL) return;
    hl_buf_free(&s->out);
    hl_buf_free(&s->last_id);
    free(s);
    r->sse = NULL;
}

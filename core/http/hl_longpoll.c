/* hl_longpoll.c -- the long-poll transport: a waiter that is done after
 * one delivery, answered with {"cursor","messages","missed"} and the
 * cursor in the Holdline-Cursor header.
 *
 * In a fan-out (one message answering many waiters alike) the body is
 * encoded once and one MHD response is made per CORS origin, queued to
 * every request of that origin. */
#include <stdlib.h>

#include "hl_codec.h"
#include "hl_http_int.h"
#include "hl_log.h"

/* Fan-out slots: the body, then one shared response per origin. */
#define SLOT_BODY 0
#define SLOT_ORIGIN(o) (1 + (o) + 1)

static hl_req *req_of(hl_waiter *w) {
    return (hl_req *)((char *)w - offsetof(hl_req, u.wt));
}

static void drop_body(void *memo) {
    hl_buf *b = memo;
    hl_buf_free(b);
    free(b);
}

static void drop_shared(void *memo) {
    hl__shared_release(memo);
}

/* Hands r its answer: resumed if suspended, or kept for the access
 * handler to queue when the waiter was answered while starting. */
static void give(hl_req *r, hl_shared *s, unsigned status) {
    if (r->state == HL_REQ_WAITING) {
        hl__answer(r, s, status);
        return;
    }
    r->answer = s;
    r->status = status;
    r->state = HL_REQ_ANSWERED;
}

static hl_shared *build(hl_req *r, const hl_delivery *d, const hl_buf *body) {
    struct MHD_Response *resp =
        body->oom ? NULL : hl__poll_response(r->h, r->origin, body, d->cursor);
    hl_shared *s = resp ? hl__shared_new(resp, 1) : NULL;
    if (s == NULL && resp) MHD_destroy_response(resp);
    return s;
}

static void lp_deliver(hl_waiter *w, const hl_delivery *d) {
    hl_req *r = req_of(w);
    r->timed_out = d->timed_out;
    r->got = d->n > 0;
    hl__count_delivery(r, d, HL_TR_POLL);
    if (d->fan == NULL) {
        hl_buf body;
        hl_buf_init(&body);
        hl_codec_poll_answer(&body, d->cursor, d->clen, d->items, d->n, d->missed);
        give(r, build(r, d, &body), MHD_HTTP_OK);
        hl_buf_free(&body);
        return;
    }
    hl_fanout *fan = d->fan;
    if (fan->memo[SLOT_BODY] == NULL) {
        hl_buf *body = malloc(sizeof(*body));
        if (body != NULL) {
            hl_buf_init(body);
            hl_codec_poll_answer(body, d->cursor, d->clen, d->items, d->n, d->missed);
            fan->memo[SLOT_BODY] = body;
            fan->drop[SLOT_BODY] = drop_body;
        }
    }
    int slot = SLOT_ORIGIN(r->origin);
    hl_shared *s = fan->memo[slot];
    if (s == NULL && fan->memo[SLOT_BODY] != NULL) {
        s = build(r, d, fan->memo[SLOT_BODY]);
        fan->memo[slot] = s;
        fan->drop[slot] = drop_shared;
    }
    if (s)
        s->refs++;
    else
        hl_error("worker %d: out of memory answering a poll", r->h->worker);
    give(r, s, MHD_HTTP_OK);
}

static void lp_end(hl_waiter *w, hl_end_reason why) {
    hl_req *r = req_of(w);
    if (why == HL_END_ERROR) {
        give(r, NULL, 0); /* no answer: the connection closes */
        return;
    }
    /* The client's cursor back with no messages: it resumes elsewhere. */
    hl_buf cur, body;
    hl_buf_init(&cur);
    hl_buf_init(&body);
    hl_waiter_cursor(w, &cur);
    hl_codec_poll_answer(&body, cur.data ? cur.data : "", cur.len, NULL, 0, 0);
    hl_delivery d = {NULL, 0, NULL, cur.data ? cur.data : "", cur.len, 0, 0, NULL, 0};
    give(r, cur.oom ? NULL : build(r, &d, &body), MHD_HTTP_OK);
    hl_buf_free(&cur);
    hl_buf_free(&body);
}

const hl_sink_ops hl__longpoll_ops = {lp_deliver, lp_end, 1, 0};

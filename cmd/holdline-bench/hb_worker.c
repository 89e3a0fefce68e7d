/* hb_worker.c -- one worker process: its share of the waiters, each a
 * keep-alive connection that polls, follows the cursor of every answer and
 * polls again at once (or, with SSE, keeps one event stream open and
 * follows the id of every event), checking what it receives against what
 * the parent's publisher sends (see hb_bench.h for the protocol). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "hb_bench.h"
#include "hb_net.h"
#include "hb_parse.h"

/* Connects in flight at once: more only overflow the nodes' accept queues,
 * and a dropped SYN costs a one-second retransmit. */
#define MAX_CONNECTING 256
#define CURSOR_MAX 160
/* Failures reported one by one on stderr; the rest are only counted. */
#define LOG_FAILURES 5
/* Stream: how often the fewest re-polls are checked for a PROGRESS line. */
#define PROGRESS_MS 100
/* A poll's request line, Host and nchan's cursor lines, besides the
 * browser headers. */
#define POLL_HEAD_MAX 1024

typedef struct waiter {
    hb_conn conn; /* first: the callbacks' hb_conn is the waiter */
    long long chan;
    long long next_seq;      /* stream: the seq expected next (from 1) */
    long long round;         /* fanout: the last round received */
    int dead;                /* failed; not polling any more */
    int caught_up;           /* stream, stopping: has every seq up to the last */
    int repoll;              /* fanout: answered this round; polls again when it ends */
    int idle;                /* stream: on an idle channel, which nobody publishes to */
    long long polls;         /* polls (SSE: streams) sent */
    long long events;        /* SSE: message events received */
    int open;                /* SSE: its stream has sent a block since it was opened */
    char cursor[CURSOR_MAX]; /* where to poll from; SSE: the stream's last event id */
} waiter;

typedef struct worker {
    const hb_opts *o;
    int idx;
    hb_loop loop;
    hb_watch ctl; /* the socket to the parent */
    char ctl_buf[HB_LINE_MAX];
    size_t ctl_len;
    waiter *w;
    long long n;      /* waiters of this worker */
    long long opened; /* waiters given their first poll */
    long long live;   /* waiters not dead */
    long long open;   /* SSE: live waiters whose stream has sent a block */
    const char *kind; /* channel kind: "" or "bg" */
    char host[HB_MAX_NODES][32];
    char *extra[HB_MAX_NODES]; /* per node: the browser and Cookie lines, or "" */
    char *req;                 /* scratch for one poll request */
    size_t req_cap;
    hb_stats st;

    int settling;    /* waiting to be idle, then READY */
    long long round; /* fanout: the round waited for (from 1) */
    long long round_recv;
    int pub_seen;          /* fanout: PUB for `round` arrived */
    long long deadline_us; /* fanout: the round ends then */
    long long repolls;     /* fanout: waiters with repoll set */

    int stopping;           /* stream: STOP arrived */
    long long last_seq;     /* stream: the last seq published on every channel */
    long long caught_up;    /* stream: live waiters with every seq */
    long long drain_until;  /* stream: give up waiting then */
    long long progress_due; /* stream: when the fewest re-polls is looked at next */
    long long progress_min; /* stream: the fewest re-polls last sent, -1 before */
    long long progress_n;   /* stream: live stream waiters last sent */

    int end; /* END arrived, or the drain finished */
    long long failures;
} worker;

static void waiter_fail(worker *k, waiter *w, const char *why) {
    if (w->dead) return;
    w->dead = 1;
    k->live--;
    k->st.errors++;
    if (w->caught_up) k->caught_up--;
    if (w->open) k->open--;
    w->open = 0;
    hb_conn_close(&w->conn);
    if (++k->failures <= LOG_FAILURES)
        hb_warn("waiter %lld: %s", (long long)(w - k->w) * k->o->procs + k->idx, why);
}

/* Writes the request that opens w's event stream, from its last event id
 * (holdline: cursor 0 at first, as a first poll; nchan: none, so it starts
 * at the oldest message, as a first long-poll). Returns its length. */
static int stream_request(worker *k, waiter *w, const char *ch, const char *host,
                          const char *extra) {
    if (k->o->server == HB_SERVER_NCHAN) {
        char resume[CURSOR_MAX + 32] = "";
        if (w->cursor[0] != '\0')
            snprintf(resume, sizeof(resume), "Last-Event-ID: %s\r\n", w->cursor);
        return snprintf(k->req, k->req_cap,
                        "GET /sub/%s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n%s%s"
                        "\r\n",
                        ch, host, extra, resume);
    }
    return snprintf(k->req, k->req_cap,
                    "GET /events/%s?cursor=%s HTTP/1.1\r\nHost: %s\r\nAccept: "
                    "text/event-stream\r\n%s\r\n",
                    ch, w->cursor, host, extra);
}

static void send_poll(worker *k, waiter *w) {
    const hb_opts *o = k->o;
    char ch[160];
    char *req = k->req;
    long long g = (long long)(w - k->w) * o->procs + k->idx;
    const char *extra = k->extra[g % o->nnodes];
    hb_channel_name(o, w->idle ? "idle" : k->kind, w->chan, ch, sizeof(ch));
    int n;
    if (o->transport == HB_SSE) {
        n = stream_request(k, w, ch, k->host[g % o->nnodes], extra);
    } else if (o->server == HB_SERVER_NCHAN) {
        /* The cursor is "<Last-Modified>\n<Etag>" of the last message, or
         * "" before the first: then nchan starts at the oldest message it
         * holds (nchan_subscriber_first_message oldest), which on a fresh
         * channel is the first one published, as holdline's cursor 0. */
        char cond[CURSOR_MAX + 64] = "";
        const char *nl = strchr(w->cursor, '\n');
        if (nl != NULL)
            snprintf(cond, sizeof(cond), "If-Modified-Since: %.*s\r\nIf-None-Match: %s\r\n",
                     (int)(nl - w->cursor), w->cursor, nl + 1);
        n = snprintf(req, k->req_cap, "GET /sub/%s HTTP/1.1\r\nHost: %s\r\n%s%s\r\n", ch,
                     k->host[g % o->nnodes], extra, cond);
    } else {
        n = snprintf(req, k->req_cap,
                     "GET /poll/%s?timeout=%d&cursor=%s HTTP/1.1\r\nHost: %s\r\n%s\r\n", ch,
                     o->timeout_s, w->cursor, k->host[g % o->nnodes], extra);
    }
    int r = -E2BIG;
    if (n > 0 && (size_t)n < k->req_cap)
        r = o->transport == HB_SSE ? hb_conn_stream(&w->conn, req, (size_t)n)
                                   : hb_conn_request(&w->conn, req, (size_t)n);
    if (r == 0) {
        w->polls++;
        return;
    }
    char why[128];
    snprintf(why, sizeof(why), "cannot send a %s: %s", o->transport == HB_SSE ? "stream" : "poll",
             strerror(-r));
    waiter_fail(k, w, why);
}

/* The next poll after an answer. In a fan-out round it waits for the end
 * of the round, so the round measures the servers' fan-out alone and not
 * also their handling of the re-polls arriving in the middle of it (which
 * is what immediate re-polls would add, to either server alike). */
static void poll_again(worker *k, waiter *w) {
    if (k->o->mode == HB_FANOUT && !k->settling) {
        if (!w->repoll) {
            w->repoll = 1;
            k->repolls++;
        }
        return;
    }
    send_poll(k, w);
}

static void repoll_all(worker *k) {
    for (long long i = 0; i < k->n && k->repolls > 0; i++) {
        waiter *w = &k->w[i];
        if (!w->repoll) continue;
        w->repoll = 0;
        k->repolls--;
        if (!w->dead) send_poll(k, w);
    }
    k->repolls = 0;
}

static void note_delivery(worker *k, long long wall_us, long long sent_us) {
    hb_hist_add(&k->st.lat, wall_us - sent_us);
    if (k->st.first_us == 0) k->st.first_us = wall_us;
    k->st.last_us = wall_us;
}

static void on_fanout_message(worker *k, waiter *w, const hb_msg *m, long long wall_us) {
    long long r, ch, t;
    if (hb_data_field(m->data, 'r', &r) != 0 || hb_data_field(m->data, 'k', &ch) != 0 ||
        hb_data_field(m->data, 't', &t) != 0 || ch != w->chan || r > k->round) {
        waiter_fail(k, w, "a message this run did not publish there");
        return;
    }
    if (r <= w->round) {
        k->st.dups++;
    } else if (r == k->round) {
        w->round = r;
        k->round_recv++;
        k->st.received++;
        note_delivery(k, wall_us, t);
    } else {
        /* An earlier round's message, after that round's deadline. */
        w->round = r;
        k->st.late++;
    }
}

static void on_stream_message(worker *k, waiter *w, const hb_msg *m, long long wall_us) {
    long long s, ch, t;
    if (hb_data_field(m->data, 's', &s) != 0 || hb_data_field(m->data, 'k', &ch) != 0 ||
        hb_data_field(m->data, 't', &t) != 0 || ch != w->chan || s < 1) {
        waiter_fail(k, w, "a message this run did not publish there");
        return;
    }
    if (s < w->next_seq) {
        k->st.dups++;
        return;
    }
    k->st.gaps += s - w->next_seq;
    w->next_seq = s + 1;
    k->st.deliveries++;
    note_delivery(k, wall_us, t);
    if (k->stopping && !w->caught_up && w->next_seq > k->last_seq) {
        w->caught_up = 1;
        k->caught_up++;
    }
}

static void on_message(worker *k, waiter *w, const hb_msg *m, long long wall_us) {
    if (w->idle)
        waiter_fail(k, w, "a message on an idle channel, which nobody publishes to");
    else if (k->o->mode == HB_FANOUT)
        on_fanout_message(k, w, m, wall_us);
    else if (k->o->mode == HB_STREAM)
        on_stream_message(k, w, m, wall_us);
    else
        waiter_fail(k, w, "a message on a channel nobody publishes to");
}

/* An nchan long-poll answer: 200 with one message (the body is its data,
 * Last-Modified and Etag its id), or 408 when nchan_subscriber_timeout
 * passed without one (no id: poll again with the same cursor). */
static void on_nchan_answer(worker *k, waiter *w, const hb_http_head *h, const char *body,
                            size_t len) {
    char why[256];
    if (w->idle) k->st.idle_answers++;
    if (h->status == 408 || h->status == 304) {
        poll_again(k, w);
        return;
    }
    if (h->status != 200) {
        snprintf(why, sizeof(why), "poll answered %d: %.150s", h->status, body);
        waiter_fail(k, w, why);
        return;
    }
    size_t lm = strlen(h->last_modified), et = strlen(h->etag);
    if (lm == 0 || et == 0 || lm + 1 + et >= CURSOR_MAX) {
        waiter_fail(k, w, "a message without a usable Last-Modified and Etag");
        return;
    }
    snprintf(w->cursor, sizeof(w->cursor), "%s\n%s", h->last_modified, h->etag);
    hb_msg m;
    memset(&m, 0, sizeof(m));
    m.data.p = body;
    m.data.n = len;
    on_message(k, w, &m, hb_wall_us());
    if (w->dead) return;
    poll_again(k, w);
}

static int str_eq(hb_str s, const char *lit) {
    return s.p != NULL && s.n == strlen(lit) && memcmp(s.p, lit, s.n) == 0;
}

/* A block of w's event stream: its id is the cursor to resume from; an
 * event with data is a message (holdline: the message as JSON; nchan: the
 * raw data), or "missed" when history ran out. Comments (heartbeats) and
 * blocks without data (retry, the position) only show the stream is
 * open. */
static void on_event(hb_conn *c, const hb_sse_event *ev) {
    worker *k = c->loop->ud;
    waiter *w = (waiter *)c;
    char why[256];
    if (!w->open) {
        w->open = 1;
        k->open++;
    }
    if (ev->id.p != NULL) {
        if (ev->id.n >= CURSOR_MAX) {
            waiter_fail(k, w, "an event id too long to resume from");
            return;
        }
        memcpy(w->cursor, ev->id.p, ev->id.n);
        w->cursor[ev->id.n] = '\0';
    }
    /* Counted with or without data: holdline sends the cursor as data. */
    if (str_eq(ev->event, "missed")) {
        k->st.missed++;
        return;
    }
    if (ev->data_lines == 0) return;
    if (ev->event.p != NULL && !str_eq(ev->event, "message")) {
        snprintf(why, sizeof(why), "an event named '%.*s'",
                 (int)(ev->event.n > 100 ? 100 : ev->event.n), ev->event.p);
        waiter_fail(k, w, why);
        return;
    }
    if (ev->data_lines > 1) {
        waiter_fail(k, w, "an event with more than one data line, which this run never sends");
        return;
    }
    hb_msg m;
    memset(&m, 0, sizeof(m));
    if (k->o->server == HB_SERVER_NCHAN) {
        m.data = ev->data;
    } else if (hb_parse_msg(ev->data.p, ev->data.n, &m) != 0 || m.data.p == NULL) {
        snprintf(why, sizeof(why), "an event whose data is not a message: %.*s",
                 (int)(ev->data.n > 150 ? 150 : ev->data.n), ev->data.p);
        waiter_fail(k, w, why);
        return;
    }
    w->events++;
    on_message(k, w, &m, hb_wall_us());
}

/* The server ended w's stream (holdline: sse.max_duration_s; nchan:
 * nchan_subscriber_timeout): open it again from the last id, as a
 * browser's EventSource would. */
static void on_stream_end(hb_conn *c) {
    worker *k = c->loop->ud;
    waiter *w = (waiter *)c;
    k->st.stream_ends++;
    if (w->idle) k->st.idle_answers++;
    if (w->open) k->open--;
    w->open = 0;
    send_poll(k, w);
}

static void on_answer(hb_conn *c, const hb_http_head *h, const char *body, size_t len) {
    worker *k = c->loop->ud;
    waiter *w = (waiter *)c;
    char why[256];
    if (k->o->transport == HB_SSE) {
        snprintf(why, sizeof(why), "a stream answered %d, not an event stream: %.150s", h->status,
                 body);
        waiter_fail(k, w, why);
        return;
    }
    if (k->o->server == HB_SERVER_NCHAN) {
        on_nchan_answer(k, w, h, body, len);
        return;
    }
    if (w->idle) k->st.idle_answers++;
    if (h->status != 200) {
        snprintf(why, sizeof(why), "poll answered %d: %.150s", h->status, body);
        waiter_fail(k, w, why);
        return;
    }
    hb_answer a;
    if (hb_scan_answer(body, len, &a) != 0 || a.cursor.n >= CURSOR_MAX) {
        snprintf(why, sizeof(why), "not a poll answer: %.150s", body);
        waiter_fail(k, w, why);
        return;
    }
    memcpy(w->cursor, a.cursor.p, a.cursor.n);
    w->cursor[a.cursor.n] = '\0';
    if (a.missed) k->st.missed++;
    long long wall = hb_wall_us();
    hb_msg m;
    int r;
    while ((r = hb_next_msg(&a, &m)) == 1) {
        on_message(k, w, &m, wall);
        if (w->dead) return;
    }
    if (r < 0) {
        waiter_fail(k, w, "malformed messages array");
        return;
    }
    poll_again(k, w);
}

static void on_fail(hb_conn *c, const char *why) {
    worker *k = c->loop->ud;
    waiter_fail(k, (waiter *)c, why);
}

static int send_line(worker *k, const char *line) {
    size_t n = strlen(line);
    const char *p = line;
    while (n > 0) {
        ssize_t w = write(k->ctl.fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void on_command(worker *k, const char *line) {
    long long v;
    if (sscanf(line, "PUB %lld", &v) == 1) {
        if (v == k->round && !k->settling) {
            k->pub_seen = 1;
            k->deadline_us = hb_now_us() + (long long)k->o->round_timeout_ms * 1000;
        }
    } else if (sscanf(line, "STOP %lld", &v) == 1) {
        k->stopping = 1;
        k->last_seq = v;
        k->drain_until = hb_now_us() + (long long)k->o->drain_ms * 1000;
        for (long long i = 0; i < k->n; i++) {
            waiter *w = &k->w[i];
            /* Idle waiters have nothing to catch up on. */
            if (!w->dead && (w->idle || w->next_seq > v)) {
                w->caught_up = 1;
                k->caught_up++;
            }
        }
    } else if (strcmp(line, "END") == 0) {
        k->end = 1;
    } else {
        hb_warn("worker %d: unknown command '%s'", k->idx, line);
    }
}

static void on_ctl(hb_watch *wt, unsigned events) {
    worker *k = (worker *)((char *)wt - offsetof(worker, ctl));
    (void)events;
    ssize_t r = read(wt->fd, k->ctl_buf + k->ctl_len, sizeof(k->ctl_buf) - 1 - k->ctl_len);
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) return;
    if (r <= 0) {
        /* The parent is gone: nobody will read the results. */
        _exit(1);
    }
    k->ctl_len += (size_t)r;
    k->ctl_buf[k->ctl_len] = '\0';
    char *line = k->ctl_buf, *nl;
    while ((nl = strchr(line, '\n')) != NULL) {
        *nl = '\0';
        on_command(k, line);
        line = nl + 1;
    }
    k->ctl_len = strlen(line);
    memmove(k->ctl_buf, line, k->ctl_len);
}

static int settled(worker *k, long long now) {
    return k->opened == k->n && k->loop.connecting == 0 && k->loop.awaiting == k->live &&
           (k->o->transport != HB_SSE || k->open == k->live) &&
           now - k->loop.last_io_us >= (long long)k->o->settle_ms * 1000;
}

/* Stream: tells the parent the fewest re-polls among the live stream
 * waiters (PROGRESS), when it or their number changed, so that it can start
 * the steady window once every waiter of every worker is past the first
 * few polls. */
static void progress(worker *k, long long now) {
    if (k->o->mode != HB_STREAM || now < k->progress_due) return;
    k->progress_due = now + PROGRESS_MS * 1000LL;
    long long min = -1, n = 0;
    for (long long i = 0; i < k->n; i++) {
        const waiter *w = &k->w[i];
        if (w->dead || w->idle) continue;
        long long re = k->o->transport == HB_SSE ? w->events : w->polls > 0 ? w->polls - 1 : 0;
        if (min < 0 || re < min) min = re;
        n++;
    }
    if (min < 0) min = 0;
    if (min == k->progress_min && n == k->progress_n) return;
    char line[64];
    snprintf(line, sizeof(line), "PROGRESS %lld %lld\n", min, n);
    if (send_line(k, line) != 0) _exit(1);
    k->progress_min = min;
    k->progress_n = n;
}

/* Moves the worker along; returns how long the loop may sleep (ms). */
static int tick(worker *k) {
    const hb_opts *o = k->o;
    while (k->opened < k->n && k->loop.connecting < MAX_CONNECTING) {
        waiter *w = &k->w[k->opened++];
        send_poll(k, w);
    }
    long long now = hb_now_us();
    if (o->mode == HB_FANOUT && !k->settling &&
        (k->round_recv >= k->n || (k->pub_seen && now >= k->deadline_us))) {
        /* Round done: wait for the re-polls to be held, then READY. */
        k->settling = 1;
        k->pub_seen = 0;
        k->round_recv = 0;
        k->round++;
        repoll_all(k);
    }
    if (k->settling && settled(k, now)) {
        char line[64];
        snprintf(line, sizeof(line), "READY %lld %lld\n", k->round - 1, k->live);
        if (send_line(k, line) != 0) _exit(1);
        k->settling = 0;
    }
    progress(k, now);
    if (k->stopping && (k->caught_up >= k->live || now >= k->drain_until)) k->end = 1;
    if (k->opened < k->n || k->settling || k->pub_seen || k->stopping) return 10;
    return o->mode == HB_FANOUT ? 10 : o->mode == HB_STREAM ? PROGRESS_MS : 500;
}

static void report(worker *k) {
    k->st.waiters = k->n;
    k->st.held = k->live;
    k->st.reconnects = k->loop.reconnects;
    if (k->o->mode == HB_STREAM) {
        /* What never arrived counts as a gap too. */
        for (long long i = 0; i < k->n; i++) {
            const waiter *w = &k->w[i];
            if (w->idle) {
                if (!w->dead) k->st.idle_held++;
            } else if (w->next_seq <= k->last_seq) {
                k->st.gaps += k->last_seq - w->next_seq + 1;
            }
        }
    }
    if (hb_stats_write(k->ctl.fd, &k->st) != 0 || send_line(k, "END\n") != 0) _exit(1);
}

void hb_worker_main(const hb_opts *o, int idx, int ctl) {
    static worker k; /* one per process; too big for the stack */
    memset(&k, 0, sizeof(k));
    k.o = o;
    k.idx = idx;
    k.kind = o->mode == HB_PUBLISH ? "bg" : "";
    k.settling = 1;
    k.round = 1;
    k.progress_min = k.progress_n = -1;
    if (hb_loop_init(&k.loop) != 0) {
        hb_warn("worker %d: epoll: %s", idx, strerror(errno));
        _exit(1);
    }
    k.loop.ud = &k;
    k.loop.on_answer = on_answer;
    k.loop.on_fail = on_fail;
    k.loop.on_event = on_event;
    k.loop.on_stream_end = on_stream_end;
    k.loop.last_io_us = hb_now_us();
    k.ctl.fd = ctl;
    k.ctl.on_event = on_ctl;
    if (hb_loop_watch(&k.loop, &k.ctl, EPOLLIN) != 0) _exit(1);
    for (int i = 0; i < o->nnodes; i++) {
        char ip[16];
        unsigned a = ntohl(o->nodes[i].sin_addr.s_addr);
        snprintf(ip, sizeof(ip), "%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
        snprintf(k.host[i], sizeof(k.host[i]), "%s:%u", ip, ntohs(o->nodes[i].sin_port));
        /* The browser's lines name the node in their Referer, as a page
         * served by it would; built once, they are the same every poll. */
        size_t auth = o->token ? strlen(o->token) + 32 : 0;
        size_t cap = HB_BROWSER_HEADERS_MAX(o->cookie_bytes) + auth;
        k.extra[i] = malloc(cap);
        long n = k.extra[i] == NULL ? -1
                                    : hb_browser_headers(k.extra[i], cap - auth, k.host[i],
                                                         o->browser, o->cookie_bytes);
        if (n < 0) {
            hb_warn("worker %d: cannot build the browser headers", idx);
            _exit(1);
        }
        if (o->token)
            snprintf(k.extra[i] + n, cap - (size_t)n, "Authorization: Bearer %s\r\n", o->token);
    }
    k.req_cap = POLL_HEAD_MAX + HB_BROWSER_HEADERS_MAX(o->cookie_bytes) +
                (o->token ? strlen(o->token) + 32 : 0);
    k.req = malloc(k.req_cap);
    if (k.req == NULL) _exit(1);

    /* Waiters g = idx, idx + procs, idx + 2 procs, ... */
    long long all = hb_all_waiters(o);
    k.n = all > idx ? (all - idx + o->procs - 1) / o->procs : 0;
    k.w = calloc((size_t)(k.n ? k.n : 1), sizeof(waiter));
    if (k.w == NULL) {
        hb_warn("worker %d: out of memory for %lld waiters", idx, k.n);
        _exit(1);
    }
    for (long long i = 0; i < k.n; i++) {
        long long g = i * o->procs + idx;
        waiter *w = &k.w[i];
        const struct sockaddr_in *src = o->nsources ? &o->sources[g % o->nsources] : NULL;
        hb_conn_init(&w->conn, &k.loop, &o->nodes[g % o->nnodes], src);
        w->idle = g >= o->waiters;
        w->chan = w->idle                 ? (g - o->waiters) % o->idle_channels
                  : o->mode == HB_PUBLISH ? g
                                          : g % o->channels;
        w->next_seq = 1;
        snprintf(w->cursor, sizeof(w->cursor), "%s", o->server == HB_SERVER_NCHAN ? "" : "0");
    }
    k.live = k.n;

    while (!k.end) {
        int ms = tick(&k);
        if (k.end) break;
        if (hb_loop_run(&k.loop, ms) < 0) {
            hb_warn("worker %d: epoll_wait: %s", idx, strerror(errno));
            break;
        }
    }
    report(&k);
    for (long long i = 0; i < k.n; i++)
        hb_conn_free(&k.w[i].conn);
    free(k.w);
    free(k.req);
    for (int i = 0; i < o->nnodes; i++)
        free(k.extra[i]);
    hb_loop_close(&k.loop);
    close(ctl);
    exit(0);
}

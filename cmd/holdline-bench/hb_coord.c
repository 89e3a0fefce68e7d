/* hb_coord.c -- the parent process: forks the workers that hold the
 * waiters, publishes (fan-out rounds, the paced stream, or closed-loop
 * publishes), collects every worker's counters and prints the RESULT line.
 * See hb_bench.h for what parent and workers say to each other. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hb_bench.h"
#include "hb_net.h"
#include "hb_proc.h"

#define LOG_FAILURES 5
/* How long a fan-out round waits for the nodes to read every poll. */
#define BACKLOG_WAIT_MS 3000

typedef struct coord coord;

typedef struct child {
    hb_watch w; /* first: the watch is the child; the socket from the worker */
    coord *c;
    pid_t pid;
    char buf[HB_LINE_MAX + 1];
    size_t len;
    long long ready_round; /* the last READY, -1 before the first */
    long long live;        /* waiters alive at that READY */
    int ended;             /* END arrived */
    int gone;              /* the socket closed */
    long long min_repolls; /* stream: the last PROGRESS, -1 before the first */
    long long stream_live; /* stream: its live stream waiters at that PROGRESS */
    hb_stats st;
} child;

typedef struct pubconn {
    hb_conn conn;     /* first: the callbacks' hb_conn is the publisher */
    long long idx;    /* publisher j of npubs */
    int warm;         /* its warm-up request was answered */
    int dead;         /* failed once; not used again */
    long long tick;   /* stream: seqs sent on every one of its channels */
    long long slot;   /* stream: its next channel within the tick */
    long long nslots; /* stream: its channels j, j + npubs, ... */
    long long ch;     /* stream: the channel of the publish in flight */
} pubconn;

struct coord {
    const hb_opts *o;
    hb_loop loop;
    child *kids;
    int nkids;
    pubconn *pubs;
    long long npubs;
    char host[HB_MAX_NODES][32];
    char *req; /* scratch for one publish request */
    size_t req_cap;
    char auth[300]; /* the Authorization line, or "" */

    hb_hist pub_lat; /* publish round trips */
    long long published, pub_errors, failures;
    long long kid_errors; /* workers that died or did not report */

    long long round;      /* fanout: the round being published */
    long long next_k;     /* fanout: the next channel to publish on */
    long long round_done; /* fanout: publishes of the round answered or failed */

    int publishing;          /* stream, publish: keep sending */
    long long start_us;      /* stream: when tick 0 is due */
    long long ticks;         /* stream: seqs per channel to send */
    long long lag_max_us;    /* stream: worst lateness of a send behind schedule */
    long long window_end_us; /* publish: answers after this are not counted */
    long long in_window;
    int steady;               /* stream: the steady window has started */
    long long steady_us;      /* stream: when */
    long long steady_cpu_us;  /* stream: the servers' CPU time then, -1 if unread */
    long long win_deliveries; /* stream: deliveries the window's publishes ask for */
    char *data;               /* scratch for one message's data */
    size_t data_cap;
};

/* ------------------------------------------------------------------ */
/* Workers                                                            */

static long long sum_cpu_us(const hb_opts *o);

/* Stream: the fewest re-polls of any live stream waiter, from the workers'
 * last PROGRESS lines (a lower bound: they lag by up to a tenth of a
 * second); -1 while a worker has not said or when nobody is left. */
static long long kids_min_repolls(coord *c) {
    long long min = -1;
    for (int i = 0; i < c->nkids; i++) {
        const child *k = &c->kids[i];
        if (k->gone) continue;
        if (k->min_repolls < 0) return -1;
        if (k->stream_live == 0) continue;
        if (min < 0 || k->min_repolls < min) min = k->min_repolls;
    }
    return min;
}

/* Starts the steady window once every stream waiter has re-polled
 * steady_polls times while the stream runs. */
static void check_steady(coord *c) {
    const hb_opts *o = c->o;
    if (o->mode != HB_STREAM || !c->publishing || c->steady) return;
    long long min = kids_min_repolls(c);
    if (min < 0 || min < o->steady_polls) return;
    c->steady = 1;
    c->steady_us = hb_now_us();
    c->steady_cpu_us = o->npids ? sum_cpu_us(o) : -1;
    hb_log(o, "steady: every waiter has re-polled %lld times", min);
}

static void kid_line(coord *c, child *k, const char *line) {
    long long r, live;
    if (sscanf(line, "READY %lld %lld", &r, &live) == 2) {
        k->ready_round = r;
        k->live = live;
    } else if (sscanf(line, "PROGRESS %lld %lld", &r, &live) == 2) {
        k->min_repolls = r;
        k->stream_live = live;
        check_steady(c);
    } else if (strcmp(line, "END") == 0) {
        k->ended = 1;
    } else if (hb_stats_read_line(&k->st, line) != 0) {
        hb_warn("worker %d said something unexpected: '%.100s'", (int)(k - c->kids), line);
    }
}

static void on_kid_event(hb_watch *w, unsigned events) {
    child *k = (child *)w;
    coord *c = k->c;
    (void)events;
    ssize_t r = read(w->fd, k->buf + k->len, HB_LINE_MAX - k->len);
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) return;
    if (r <= 0) {
        close(w->fd);
        w->fd = -1;
        k->gone = 1;
        if (!k->ended) {
            hb_warn("worker %d (pid %d) exited before reporting", (int)(k - c->kids), (int)k->pid);
            c->kid_errors++;
        }
        return;
    }
    k->len += (size_t)r;
    k->buf[k->len] = '\0';
    char *line = k->buf, *nl;
    while ((nl = strchr(line, '\n')) != NULL) {
        *nl = '\0';
        kid_line(c, k, line);
        line = nl + 1;
    }
    k->len = strlen(line);
    memmove(k->buf, line, k->len);
    if (k->len == HB_LINE_MAX) {
        hb_warn("worker %d sent a line too long", (int)(k - c->kids));
        k->len = 0;
    }
}

static void tell_kids(coord *c, const char *line) {
    for (int i = 0; i < c->nkids; i++) {
        child *k = &c->kids[i];
        if (k->gone) continue;
        size_t n = strlen(line);
        if (write(k->w.fd, line, n) != (ssize_t)n)
            hb_warn("worker %d: cannot send a command: %s", i, strerror(errno));
    }
}

static int spawn_kids(coord *c) {
    const hb_opts *o = c->o;
    c->nkids = o->waiters > 0 ? o->procs : 0;
    c->kids = calloc((size_t)(c->nkids ? c->nkids : 1), sizeof(child));
    if (c->kids == NULL) return -1;
    pid_t parent = getpid();
    for (int i = 0; i < c->nkids; i++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return -1;
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid < 0) return -1;
        if (pid == 0) {
            close(sv[0]);
            for (int j = 0; j < i; j++)
                close(c->kids[j].w.fd);
            /* A worker must not outlive a parent killed half-way. */
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent) _exit(1);
            hb_worker_main(o, i, sv[1]);
        }
        close(sv[1]);
        child *k = &c->kids[i];
        k->c = c;
        k->pid = pid;
        k->w.fd = sv[0];
        k->w.on_event = on_kid_event;
        k->ready_round = -1;
        k->min_repolls = -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Publishers                                                         */

static void pub_next(coord *c, pubconn *p);

static void publish(coord *c, pubconn *p, const char *kind, long long k, const char *fields) {
    const hb_opts *o = c->o;
    char ch[160];
    hb_channel_name(o, kind, k, ch, sizeof(ch));
    size_t dn = hb_format_data(o, c->data, c->data_cap, fields);
    int hn = snprintf(c->req, c->req_cap,
                      "POST /%s/%s HTTP/1.1\r\nHost: %s\r\nContent-Type: text/plain\r\n"
                      "Content-Length: %zu\r\n%s\r\n",
                      o->server == HB_SERVER_NCHAN ? "pub" : "publish", ch,
                      c->host[p->idx % o->nnodes], dn, c->auth);
    int r = -E2BIG;
    if (hn > 0 && (size_t)hn + dn <= c->req_cap) {
        memcpy(c->req + hn, c->data, dn);
        r = hb_conn_request(&p->conn, c->req, (size_t)hn + dn);
    }
    if (r != 0) {
        p->dead = 1;
        c->pub_errors++;
        if (++c->failures <= LOG_FAILURES)
            hb_warn("publisher %lld: cannot send: %s", p->idx, strerror(-r));
        if (o->mode == HB_FANOUT) c->round_done++;
    }
}

static void pub_next(coord *c, pubconn *p) {
    const hb_opts *o = c->o;
    if (p->dead || p->conn.state == HB_CONNECTING || p->conn.state == HB_SENDING ||
        p->conn.state == HB_AWAIT)
        return;
    char fields[128];
    long long wall;
    switch (o->mode) {
    case HB_FANOUT: {
        if (c->next_k >= o->channels) return;
        long long k = c->next_k++;
        wall = hb_wall_us();
        snprintf(fields, sizeof(fields), "r=%lld k=%lld t=%lld", c->round, k, wall);
        publish(c, p, "", k, fields);
        return;
    }
    case HB_STREAM: {
        if (!c->publishing || p->tick >= c->ticks) return;
        long long ch = p->idx + p->slot * c->npubs;
        long long due =
            c->start_us +
            (long long)(((double)p->tick + (double)ch / (double)o->channels) * 1e6 / o->rate);
        long long now = hb_now_us();
        if (now < due) return;
        if (now - due > c->lag_max_us) c->lag_max_us = now - due;
        wall = hb_wall_us();
        snprintf(fields, sizeof(fields), "s=%lld k=%lld t=%lld", p->tick + 1, ch, wall);
        p->ch = ch;
        if (++p->slot == p->nslots) {
            p->slot = 0;
            p->tick++;
        }
        publish(c, p, "", ch, fields);
        return;
    }
    case HB_PUBLISH:
        if (!c->publishing) return;
        wall = hb_wall_us();
        snprintf(fields, sizeof(fields), "p=%lld t=%lld", p->idx, wall);
        publish(c, p, "p", p->idx % o->channels, fields);
        return;
    default: return;
    }
}

static void on_pub_answer(hb_conn *hc, const hb_http_head *h, const char *body, size_t len) {
    coord *c = hc->loop->ud;
    pubconn *p = (pubconn *)hc;
    (void)len;
    if (!p->warm) {
        p->warm = 1;
        if (h->status != 200) {
            p->dead = 1;
            c->pub_errors++;
            hb_warn("publisher %lld: /healthz answered %d", p->idx, h->status);
        }
        return;
    }
    long long now = hb_now_us();
    /* nchan answers 202 Accepted when the channel had no subscriber. */
    if (h->status == 201 || (c->o->server == HB_SERVER_NCHAN && h->status == 202)) {
        c->published++;
        hb_hist_add(&c->pub_lat, now - hc->sent_us);
        if (c->o->mode == HB_PUBLISH && now <= c->window_end_us) c->in_window++;
        /* Channel ch has the stream waiters g < N with g % K == ch. */
        if (c->o->mode == HB_STREAM && c->steady)
            c->win_deliveries +=
                c->o->waiters / c->o->channels + (p->ch < c->o->waiters % c->o->channels);
    } else {
        c->pub_errors++;
        if (++c->failures <= LOG_FAILURES) hb_warn("publish answered %d: %.150s", h->status, body);
    }
    if (c->o->mode == HB_FANOUT) c->round_done++;
    pub_next(c, p);
}

static void on_pub_fail(hb_conn *hc, const char *why) {
    coord *c = hc->loop->ud;
    pubconn *p = (pubconn *)hc;
    p->dead = 1;
    c->pub_errors++;
    if (++c->failures <= LOG_FAILURES) hb_warn("publisher %lld: %s", p->idx, why);
    if (p->warm && c->o->mode == HB_FANOUT) c->round_done++;
    p->warm = 1;
}

static int pubs_idle(coord *c) {
    for (long long i = 0; i < c->npubs; i++) {
        pubconn *p = &c->pubs[i];
        if (!p->dead && p->conn.state != HB_IDLE && p->conn.state != HB_CLOSED) return 0;
    }
    return 1;
}

static int pubs_warm(coord *c) {
    for (long long i = 0; i < c->npubs; i++)
        if (!c->pubs[i].warm) return 0;
    return 1;
}

/* ------------------------------------------------------------------ */
/* Waiting                                                            */

typedef int (*cond_fn)(coord *c, long long arg);

static int kids_ready(coord *c, long long round) {
    for (int i = 0; i < c->nkids; i++)
        if (!c->kids[i].gone && c->kids[i].ready_round < round) return 0;
    return 1;
}

static int kids_ended(coord *c, long long unused) {
    (void)unused;
    for (int i = 0; i < c->nkids; i++)
        if (!c->kids[i].gone && !c->kids[i].ended) return 0;
    return 1;
}

static int time_passed(coord *c, long long until_us) {
    (void)c;
    return hb_now_us() >= until_us;
}

static int pubs_dead(coord *c) {
    for (long long i = 0; i < c->npubs; i++)
        if (!c->pubs[i].dead) return 0;
    return 1;
}

static int round_over(coord *c, long long round) {
    return (c->round_done >= c->o->channels || pubs_dead(c)) && kids_ready(c, round);
}

/* Waiters alive at the workers' last READY. */
static long long kids_live(coord *c) {
    long long n = 0;
    for (int i = 0; i < c->nkids; i++)
        n += c->kids[i].live;
    return n;
}

static int warm(coord *c, long long unused) {
    (void)unused;
    return pubs_warm(c);
}

static int stream_sent(coord *c, long long unused) {
    (void)unused;
    for (long long i = 0; i < c->npubs; i++)
        if (!c->pubs[i].dead && c->pubs[i].tick < c->ticks) return 0;
    return pubs_idle(c);
}

static int idle(coord *c, long long unused) {
    (void)unused;
    return pubs_idle(c);
}

/* Runs the loop until cond holds. Returns 0, or -1 after timeout_ms or if
 * a worker died (what names the wait in the message). */
static int wait_for(coord *c, cond_fn cond, long long arg, long long timeout_ms, const char *what) {
    long long end = hb_now_us() + timeout_ms * 1000;
    while (!cond(c, arg)) {
        if (hb_now_us() >= end) {
            if (what != NULL) hb_warn("%s: gave up after %lld ms", what, timeout_ms);
            return -1;
        }
        if (c->publishing)
            for (long long i = 0; i < c->npubs; i++)
                pub_next(c, &c->pubs[i]);
        if (hb_loop_run(&c->loop, c->publishing ? 1 : 10) < 0) {
            hb_warn("epoll_wait: %s", strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* The servers' RSS in KiB, summed, and each one's into kb (HB_MAX_PIDS
 * entries; may be NULL); -1 if one cannot be read. */
static long long sum_rss_kb(const hb_opts *o, long long *kb) {
    long long t = 0;
    for (int i = 0; i < o->npids; i++) {
        long long v = hb_proc_rss_kb(o->pids[i]);
        if (v < 0) return -1;
        if (kb != NULL) kb[i] = v;
        t += v;
    }
    return t;
}

static long long sum_cpu_us(const hb_opts *o) {
    long long t = 0;
    for (int i = 0; i < o->npids; i++) {
        long long v = hb_proc_cpu_us(o->pids[i]);
        if (v < 0) return -1;
        t += v;
    }
    return t;
}

/* Waits until the nodes have read every poll sent (from /proc/net/tcp),
 * so the latency of a publish does not include a node's accept backlog. */
static void wait_backlog(coord *c) {
    long long end = hb_now_us() + BACKLOG_WAIT_MS * 1000LL;
    long long b;
    while ((b = hb_proc_backlog(c->o->nodes, c->o->nnodes)) > 0 && hb_now_us() < end)
        hb_loop_run(&c->loop, 20);
    if (b > 0) hb_log(c->o, "nodes still have %lld bytes unread; publishing anyway", b);
}

/* ------------------------------------------------------------------ */
/* The run                                                            */

static int setup(coord *c) {
    const hb_opts *o = c->o;
    if (hb_loop_init(&c->loop) != 0) return -1;
    c->loop.ud = c;
    c->loop.on_answer = on_pub_answer;
    c->loop.on_fail = on_pub_fail;
    for (int i = 0; i < c->nkids; i++) {
        int fl = fcntl(c->kids[i].w.fd, F_GETFL);
        fcntl(c->kids[i].w.fd, F_SETFL, fl | O_NONBLOCK);
        if (hb_loop_watch(&c->loop, &c->kids[i].w, EPOLLIN) != 0) return -1;
    }
    for (int i = 0; i < o->nnodes; i++) {
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &o->nodes[i].sin_addr, ip, sizeof(ip));
        snprintf(c->host[i], sizeof(c->host[i]), "%s:%u", ip, ntohs(o->nodes[i].sin_port));
    }
    if (o->key[0] != '\0')
        snprintf(c->auth, sizeof(c->auth), "Authorization: Bearer %s\r\n", o->key);
    c->data_cap = 128 + (size_t)o->size;
    c->req_cap = 1024 + c->data_cap + strlen(c->auth);
    c->data = malloc(c->data_cap);
    c->req = malloc(c->req_cap);
    if (c->data == NULL || c->req == NULL) return -1;

    /* Publishers: the closed-loop ones, or the connections a fan-out round
     * or the stream is published over (never more than channels). */
    c->npubs = o->publishers;
    if (o->mode != HB_PUBLISH && c->npubs > o->channels) c->npubs = o->channels;
    if (o->mode == HB_HOLD) c->npubs = 0;
    c->pubs = calloc((size_t)(c->npubs ? c->npubs : 1), sizeof(pubconn));
    if (c->pubs == NULL) return -1;
    for (long long i = 0; i < c->npubs; i++) {
        pubconn *p = &c->pubs[i];
        p->idx = i;
        p->nslots = (o->channels - i + c->npubs - 1) / c->npubs;
        hb_conn_init(&p->conn, &c->loop, &o->nodes[i % o->nnodes],
                     o->nsources ? &o->sources[i % o->nsources] : NULL);
        /* A warm-up request, so no publish pays for a connect. */
        char req[128];
        int n = snprintf(req, sizeof(req), "GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n",
                         c->host[i % o->nnodes]);
        int r = hb_conn_request(&p->conn, req, (size_t)n);
        if (r != 0) {
            hb_warn("publisher %lld: cannot connect: %s", i, strerror(-r));
            p->dead = p->warm = 1;
            c->pub_errors++;
        }
    }
    return 0;
}

/* Sends END (unless the workers end by themselves), waits for their
 * counters and exit statuses, and adds them into total. */
static void collect(coord *c, hb_stats *total, int send_end) {
    if (send_end) tell_kids(c, "END\n");
    wait_for(c, kids_ended, 0, 15000 + c->o->drain_ms, "waiting for the workers' counters");
    for (int i = 0; i < c->nkids; i++) {
        child *k = &c->kids[i];
        int status = 0;
        if (!k->ended) kill(k->pid, SIGKILL);
        if (waitpid(k->pid, &status, 0) == k->pid && status != 0) {
            hb_warn("worker %d (pid %d) exited with status %d", i, (int)k->pid, status);
            if (k->ended) c->kid_errors++;
        }
        hb_stats_merge(total, &k->st);
    }
}

static void add(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void add(char *buf, size_t cap, const char *fmt, ...) {
    size_t n = strlen(buf);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + n, cap - n, fmt, ap);
    va_end(ap);
}

static void add_pcts(char *buf, size_t cap, const hb_hist *h) {
    if (h->n == 0) return;
    add(buf, cap, " p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f", hb_hist_pct(h, 50) / 1e3,
        hb_hist_pct(h, 90) / 1e3, hb_hist_pct(h, 99) / 1e3, h->max_us / 1e3);
}

static const char *mode_name(hb_mode m) {
    return m == HB_HOLD     ? "hold"
           : m == HB_FANOUT ? "fanout"
           : m == HB_STREAM ? "stream"
                            : "publish";
}

/* What a run measured, for the RESULT line. */
typedef struct outcome {
    hb_stats total;       /* the workers' counters, merged */
    int held_ok;          /* every worker said READY in time */
    long long open_us;    /* from the start until then */
    long long rss0, rss1; /* servers' RSS before the waiters and at the end, KiB */
    long long pid_rss0[HB_MAX_PIDS], pid_rss1[HB_MAX_PIDS]; /* the same, each server */
    long long cpu0, cpu1;     /* servers' CPU time over the hold or steady window, us */
    double win_s;             /* stream: the steady window, 0 if it never started */
    long long min_repolls;    /* stream: the fewest re-polls at its end */
    double hold_s, pub_s;     /* how long the hold or the publishing lasted */
    long long last_seq;       /* stream: the last seq sent on every channel */
    long long pub_start_wall; /* stream: wall clock of the first due publish */
} outcome;

static void run_hold(coord *c, outcome *out) {
    const hb_opts *o = c->o;
    out->cpu0 = o->npids ? sum_cpu_us(o) : -1;
    long long t0 = hb_now_us();
    wait_for(c, time_passed, t0 + (long long)(o->duration_s * 1e6),
             (long long)(o->duration_s * 1000) + 1000, NULL);
    out->hold_s = (hb_now_us() - t0) / 1e6;
    out->cpu1 = o->npids ? sum_cpu_us(o) : -1;
    out->rss1 = o->npids ? sum_rss_kb(o, out->pid_rss1) : -1;
    collect(c, &out->total, 1);
}

static void run_fanout(coord *c, outcome *out) {
    const hb_opts *o = c->o;
    for (long long r = 1; r <= o->rounds && out->held_ok && kids_live(c) > 0 && !pubs_dead(c);
         r++) {
        wait_backlog(c);
        c->round = r;
        c->next_k = 0;
        c->round_done = 0;
        for (long long i = 0; i < c->npubs; i++)
            pub_next(c, &c->pubs[i]);
        /* Told after the first publishes are written, so a worker's
         * deadline never starts before its round's messages exist. */
        char line[64];
        snprintf(line, sizeof(line), "PUB %lld\n", r);
        tell_kids(c, line);
        if (wait_for(c, round_over, r, o->round_timeout_ms + o->settle_ms + 10000LL,
                     "waiting for a fan-out round") != 0)
            break;
        hb_log(o, "round %lld done", r);
    }
    collect(c, &out->total, 1);
}

static void run_stream(coord *c, outcome *out) {
    const hb_opts *o = c->o;
    if (out->held_ok) {
        wait_backlog(c);
        c->ticks = (long long)llround(o->duration_s * o->rate);
        if (c->ticks < 1) c->ticks = 1;
        c->start_us = hb_now_us() + 1000;
        out->pub_start_wall = hb_wall_us() + 1000;
        c->publishing = 1;
        if (wait_for(c, stream_sent, 0, (long long)(o->duration_s * 1000) + o->drain_ms, NULL) != 0)
            hb_warn("the publisher fell behind its schedule; stopping it");
        /* The end of the steady window: the last publish was answered. */
        out->min_repolls = kids_min_repolls(c);
        if (c->steady) {
            out->win_s = (hb_now_us() - c->steady_us) / 1e6;
            out->cpu0 = c->steady_cpu_us;
            out->cpu1 = o->npids ? sum_cpu_us(o) : -1;
            out->rss1 = o->npids ? sum_rss_kb(o, out->pid_rss1) : -1;
        } else {
            hb_warn("the stream ended before every waiter had re-polled %lld times (fewest: "
                    "%lld); no steady window",
                    o->steady_polls, out->min_repolls);
        }
        c->publishing = 0;
        wait_for(c, idle, 0, 5000, "waiting for the last publishes");
        out->pub_s = (hb_now_us() - c->start_us) / 1e6;
        out->last_seq = c->ticks;
        for (long long i = 0; i < c->npubs; i++)
            if (c->pubs[i].tick < out->last_seq) out->last_seq = c->pubs[i].tick;
    }
    /* The workers drain up to the last seq and end by themselves. */
    char line[64];
    snprintf(line, sizeof(line), "STOP %lld\n", out->last_seq);
    tell_kids(c, line);
    collect(c, &out->total, 0);
}

static void run_publish(coord *c, outcome *out) {
    const hb_opts *o = c->o;
    long long t0 = hb_now_us();
    c->window_end_us = t0 + (long long)(o->duration_s * 1e6);
    c->publishing = out->held_ok;
    wait_for(c, time_passed, c->window_end_us, (long long)(o->duration_s * 1000) + 1000, NULL);
    c->publishing = 0;
    out->pub_s = (c->window_end_us - t0) / 1e6;
    wait_for(c, idle, 0, 5000, "waiting for the last publishes");
    collect(c, &out->total, 1);
}

/* Prints the RESULT line; returns the exit status. */
static int report(coord *c, const outcome *out) {
    const hb_opts *o = c->o;
    const hb_stats *t = &out->total;
    char res[2048] = "";
    long long errors = t->errors + c->pub_errors + c->kid_errors + (out->held_ok ? 0 : 1);
    int bad = errors > 0 || t->dups > 0 || t->missed > 0;
    add(res, sizeof(res), "RESULT mode=%s nodes=%d procs=%d", mode_name(o->mode), o->nnodes,
        c->nkids);
    /* Only for nchan, so holdline's line stays as it was. */
    if (o->server == HB_SERVER_NCHAN) add(res, sizeof(res), " server=nchan");
    if (o->transport == HB_SSE) add(res, sizeof(res), " transport=sse");
    switch (o->mode) {
    case HB_HOLD:
        add(res, sizeof(res), " waiters=%lld held=%lld open_s=%.2f hold_s=%.1f", o->waiters,
            t->held, out->open_us / 1e6, out->hold_s);
        if (out->rss0 >= 0 && out->rss1 >= 0) {
            add(res, sizeof(res), " rss_before_kb=%lld rss_after_kb=%lld", out->rss0, out->rss1);
            if (t->held > 0)
                add(res, sizeof(res), " per_waiter_bytes=%lld",
                    (out->rss1 - out->rss0) * 1024 / t->held);
        }
        if (out->cpu0 >= 0 && out->cpu1 >= 0 && out->hold_s > 0)
            add(res, sizeof(res), " server_cpu_pct=%.2f",
                (out->cpu1 - out->cpu0) / 1e4 / out->hold_s);
        bad |= t->held < o->waiters;
        break;
    case HB_FANOUT: {
        long long missing = o->waiters * o->rounds - t->received;
        add(res, sizeof(res),
            " waiters=%lld channels=%lld rounds=%lld received=%lld missing=%lld late=%lld",
            o->waiters, o->channels, o->rounds, t->received, missing, t->late);
        add_pcts(res, sizeof(res), &t->lat);
        bad |= missing > 0;
        break;
    }
    case HB_STREAM: {
        double span =
            t->last_us > out->pub_start_wall ? (t->last_us - out->pub_start_wall) / 1e6 : 0;
        add(res, sizeof(res),
            " waiters=%lld channels=%lld rate=%g duration_s=%.1f published=%lld expected=%lld "
            "deliveries=%lld deliveries_per_s=%.0f gaps=%lld",
            o->waiters, o->channels, o->rate, out->pub_s, c->published, o->waiters * out->last_seq,
            t->deliveries, span > 0 ? t->deliveries / span : 0.0, t->gaps);
        add_pcts(res, sizeof(res), &t->lat);
        add(res, sizeof(res), " pub_lag_max_ms=%.1f", c->lag_max_us / 1e3);
        add(res, sizeof(res), " held=%lld min_repolls=%lld steady_polls=%lld steady_s=%.1f",
            t->held - t->idle_held, out->min_repolls > 0 ? out->min_repolls : 0, o->steady_polls,
            out->win_s);
        if (o->idle_waiters > 0)
            add(res, sizeof(res),
                " idle_waiters=%lld idle_channels=%lld idle_held=%lld idle_repolls=%lld",
                o->idle_waiters, o->idle_channels, t->idle_held, t->idle_answers);
        if (o->npids > 0 && out->win_s > 0) {
            /* Growth per waiter held, idle ones included: each is a
             * connection the servers keep. */
            if (out->rss0 >= 0 && out->rss1 >= 0) {
                add(res, sizeof(res), " rss_before_kb=%lld rss_after_kb=%lld", out->rss0,
                    out->rss1);
                if (t->held > 0)
                    add(res, sizeof(res), " per_waiter_bytes=%lld",
                        (out->rss1 - out->rss0) * 1024 / t->held);
                add(res, sizeof(res), " rss_growth_kb=");
                for (int i = 0; i < o->npids; i++)
                    add(res, sizeof(res), "%s%lld", i ? "," : "",
                        out->pid_rss1[i] - out->pid_rss0[i]);
            }
            if (out->cpu0 >= 0 && out->cpu1 >= 0) {
                add(res, sizeof(res), " server_cpu_pct=%.2f window_deliveries=%lld",
                    (out->cpu1 - out->cpu0) / 1e4 / out->win_s, c->win_deliveries);
                if (c->win_deliveries > 0)
                    add(res, sizeof(res), " cpu_us_per_delivery=%.2f",
                        (double)(out->cpu1 - out->cpu0) / (double)c->win_deliveries);
            }
        }
        /* A publisher behind its schedule did not measure the rate asked;
         * servers asked to be measured were not, without a window. */
        bad |= t->gaps > 0 || out->last_seq < c->ticks || (o->npids > 0 && out->win_s <= 0);
        break;
    }
    case HB_PUBLISH:
        add(res, sizeof(res),
            " publishers=%lld channels=%lld bg_waiters=%lld held=%lld duration_s=%.1f "
            "published=%lld publishes_per_s=%.0f",
            c->npubs, o->channels, o->waiters, t->held, out->pub_s, c->published,
            out->pub_s > 0 ? c->in_window / out->pub_s : 0.0);
        add_pcts(res, sizeof(res), &c->pub_lat);
        bad |= t->held < o->waiters;
        break;
    }
    add(res, sizeof(res), " dups=%lld missed=%lld reconnects=%lld errors=%lld", t->dups, t->missed,
        t->reconnects + c->loop.reconnects, errors);
    if (o->transport == HB_SSE) add(res, sizeof(res), " stream_ends=%lld", t->stream_ends);
    printf("%s\n", res);
    fflush(stdout);
    return bad ? 1 : 0;
}

int hb_coord_run(const hb_opts *o) {
    static coord cs;    /* holds histograms: too big for the stack */
    static outcome out; /* likewise */
    coord *c = &cs;
    memset(c, 0, sizeof(*c));
    memset(&out, 0, sizeof(out));
    c->o = o;
    signal(SIGPIPE, SIG_IGN);

    /* The servers' memory before the first waiter connects. */
    out.rss0 = o->npids ? sum_rss_kb(o, out.pid_rss0) : -1;
    out.rss1 = out.cpu0 = out.cpu1 = out.min_repolls = -1;
    long long t_start = hb_now_us();
    if (spawn_kids(c) != 0 || setup(c) != 0) {
        hb_warn("cannot start: %s", strerror(errno));
        return 1;
    }
    hb_log(o, "%s: %lld waiters in %d process(es) over %d node(s), %lld publisher(s)",
           mode_name(o->mode), o->waiters, c->nkids, o->nnodes, c->npubs);
    wait_for(c, warm, 0, 5000, "connecting the publishers");
    out.held_ok =
        wait_for(c, kids_ready, 0, o->open_timeout_ms, "waiting for every waiter to be held") == 0;
    out.open_us = hb_now_us() - t_start;
    hb_log(o, "%lld of %lld waiters held after %.2f s", kids_live(c), o->waiters,
           out.open_us / 1e6);

    switch (o->mode) {
    case HB_HOLD: run_hold(c, &out); break;
    case HB_FANOUT: run_fanout(c, &out); break;
    case HB_STREAM: run_stream(c, &out); break;
    case HB_PUBLISH: run_publish(c, &out); break;
    }
    int status = report(c, &out);

    for (long long i = 0; i < c->npubs; i++)
        hb_conn_free(&c->pubs[i].conn);
    free(c->pubs);
    free(c->kids);
    free(c->req);
    free(c->data);
    hb_loop_close(&c->loop);
    return status;
}

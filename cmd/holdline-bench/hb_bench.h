/* hb_bench.h -- the parts of holdline-bench and how they talk.
 *
 * The parent process (hb_coord.c) forks worker processes (hb_worker.c),
 * each holding a share of the waiters, and keeps the publishers itself.
 * Waiter g (0 <= g < N + I) belongs to worker g % procs, polls node
 * g % nodes from source address g % sources; g < N polls channel g % K,
 * and in stream mode g >= N is one of the I idle waiters, on idle channel
 * (g - N) % idle_channels, which nobody publishes to. Parent and worker
 * talk over a socketpair in lines:
 *
 *   worker -> parent   READY <round> <live>   every waiter is held (idle
 *                                             for settle_ms); round 0 after
 *                                             opening, r after fan-out round r
 *                      PROGRESS <min> <n>     stream: the fewest re-polls
 *                                             (polls after the first; with
 *                                             SSE, events received) among
 *                                             its n live stream waiters,
 *                                             when either changed
 *                      STAT ... / HIST ...    the worker's counters (hb_stats)
 *                      END                    after its counters; it exits
 *   parent -> worker   PUB <round>            round r was published: wait at
 *                                             most round_timeout_ms for it
 *                      STOP <last-seq>        stream: the publisher stopped
 *                                             after seq; drain, then report
 *                      END                    report and exit
 *
 * Waiters start on fresh channels (the names carry a per-run prefix) with
 * cursor 0, so a message published after the parent saw READY reaches them
 * even if a node reads their poll late; the settle delay only keeps such
 * stragglers out of the latency figures. An SSE waiter counts as held once
 * its stream has sent a block (its head came, the server has it).
 *
 * A stream's steady window starts when every live stream waiter has
 * re-polled steady_polls times (from the PROGRESS lines) and ends when the
 * last message is published; the servers' CPU, and their RSS at its end,
 * are taken over it. A first poll understates a server's memory: a
 * libmicrohttpd connection touches its whole pool only when a keep-alive
 * request ends and the pool is reset for the next one. */
#ifndef HB_BENCH_H
#define HB_BENCH_H

#include <netinet/in.h>
#include <stddef.h>
#include <sys/types.h>

#include "hb_stats.h"

#define HB_MAX_NODES 64
#define HB_MAX_SOURCES 64
#define HB_MAX_PIDS 16
#define HB_MAX_PROCS 64

typedef enum { HB_HOLD, HB_FANOUT, HB_STREAM, HB_PUBLISH } hb_mode;

/* The server spoken to. holdline: GET /poll/<ch>?timeout=T&cursor=C, JSON
 * answers, POST /publish/<ch> answered 201. nchan (nginx + nchan, for
 * `make bench-compare`; config/nchan-bench.conf): GET /sub/<ch> with
 * If-Modified-Since / If-None-Match echoing the previous answer's
 * Last-Modified / Etag; a 200 carries one message whose body is the raw
 * data, a 408 is nchan_subscriber_timeout passing (poll again with the
 * same cursor); POST /pub/<ch> answered 201 (or 202 when nobody was
 * subscribed); the poll timeout is the server's, not -t. */
typedef enum { HB_SERVER_HOLDLINE, HB_SERVER_NCHAN } hb_server;

/* How a waiter receives. HB_POLL: long-polls, one per message batch.
 * HB_SSE: one Server-Sent Events stream, opened once and kept; each
 * message is an event on it. holdline: GET /events/<ch>?cursor=C, chunked;
 * an event's id is the cursor after it and its data the message as JSON
 * ({"channel":..,"id":..,"data":..}); "event: missed" when history ran
 * out. nchan: GET /sub/<ch> with Accept: text/event-stream (its
 * eventsource subscriber), Last-Event-ID when resuming; the body has no
 * length and runs until nchan_subscriber_timeout, an event's data is the
 * raw message. A stream the server ends is opened again from its last id. */
typedef enum { HB_POLL, HB_SSE } hb_transport;

typedef struct hb_opts {
    hb_mode mode;
    hb_server server;
    hb_transport transport; /* hold, fanout, stream: how waiters receive */
    struct sockaddr_in nodes[HB_MAX_NODES];
    int nnodes;
    struct sockaddr_in sources[HB_MAX_SOURCES];
    int nsources;            /* 0: the kernel picks */
    long long waiters;       /* N; in publish mode the background waiters */
    long long channels;      /* K */
    long long rounds;        /* fanout */
    long long publishers;    /* publish: concurrent publishers; else publishing connections */
    double duration_s;       /* hold, stream, publish */
    double rate;             /* stream: messages per second per channel */
    int procs;               /* worker processes */
    int timeout_s;           /* poll timeout sent to the server */
    int settle_ms;           /* a waiter idle this long counts as held */
    int round_timeout_ms;    /* fanout: how long a round waits for answers */
    int drain_ms;            /* stream: how long to wait for the last messages */
    int open_timeout_ms;     /* how long opening the waiters may take */
    long long size;          /* message data bytes (padded), 0 = just the fields */
    char prefix[64];         /* channel names are <prefix>-<k> */
    char key[256];           /* publish key, "" for none */
    const char *token;       /* waiters send "Authorization: Bearer <token>"; NULL: none */
    pid_t pids[HB_MAX_PIDS]; /* server processes to measure */
    int npids;
    long long idle_waiters;  /* stream: I, waiters on channels nobody publishes to */
    long long idle_channels; /* stream: the channels those are spread over */
    long long steady_polls;  /* stream: re-polls (SSE: events) of every waiter that
                              * start the window */
    int browser;             /* polls carry a browser's headers (hb_browser_headers) */
    long long cookie_bytes;  /* polls carry a Cookie header value this long, 0 = none */
    int verbose;             /* progress lines on stderr */
} hb_opts;

/* Every connection the workers hold: N, plus the idle waiters. */
static inline long long hb_all_waiters(const hb_opts *o) {
    return o->waiters + o->idle_waiters;
}

/* Runs worker number idx of o->procs, talking to the parent over ctl.
 * Never returns. */
void hb_worker_main(const hb_opts *o, int idx, int ctl);

/* Runs the whole benchmark from the parent: forks the workers, publishes,
 * merges, prints the RESULT line. Returns the exit status: 0, or 1 if the
 * run saw errors, missing or out-of-order messages. */
int hb_coord_run(const hb_opts *o);

/* Channel name k of this run into buf. kind is "" for the measured
 * channels, "bg" for publish mode's background waiters, "idle" for stream
 * mode's idle waiters. */
void hb_channel_name(const hb_opts *o, const char *kind, long long k, char *buf, size_t len);

/* The data of a message: the fields, then padding to o->size bytes. Returns
 * the length written (buf holds at least o->size + 64 bytes). */
size_t hb_format_data(const hb_opts *o, char *buf, size_t cap, const char *fields);

/* A line on stderr, prefixed "holdline-bench: ", if verbose (or always,
 * for warn). */
void hb_log(const hb_opts *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void hb_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif

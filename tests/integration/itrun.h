/* itrun.h -- a failover run for integration tests: cursor clients and a
 * retrying publisher on one channel across two nodes, and the check that
 * every confirmed message reached every client exactly once, in order.
 *
 * Clients behave as the README asks: three per node, each sending back
 * the last cursor it got. The publisher numbers its messages ("m<seq>"),
 * gives each its own Idempotency-Key and sends the same message with the
 * same key again, through the other node, until it gets a 201. What the
 * check holds the nodes to: every message that got a 201 reaches every
 * client exactly once, in publish order (its id and its data both). What
 * it does not fail on, but counts and prints: messages a client saw that
 * never got a 201 (stored on a master a failover then dropped, or stored
 * again by a retry), and "missed":true answers. A missed answer is the
 * node saying it cannot prove continuity, which is honest; it excuses
 * nothing. */
#ifndef ITRUN_H
#define ITRUN_H

#include <pthread.h>

#include "itest.h"

#define IT_RUN_CLIENTS_PER_NODE 3
#define IT_RUN_CLIENTS (2 * IT_RUN_CLIENTS_PER_NODE)
#define IT_RUN_MAX_SEQ 4096

/* POSTs data to /publish/channel with an Idempotency-Key; returns the
 * status (0 without an answer) and fills j (free it). No cmocka calls:
 * threads use it. */
int it_publish_key(int port, const char *channel, const char *data, const char *key, it_json *j);

/* One poll; returns the status (0 without an answer within timeout + 3 s)
 * and fills j (free it). cursor NULL sends none. */
int it_poll(int port, const char *channel, const char *cursor, int timeout, it_json *j);

/* Parses a stream id "<ms>-<seq>"; returns 0 or -1. */
int it_id_parse(const char *s, unsigned long long *ms, unsigned long long *seq);

/* 1 if stream id a ("<ms>-<seq>") comes after b, 0 if not, -1 if either
 * is not an id. */
int it_id_after(const char *a, const char *b);

/* GET /readyz: the status, with "status" and "detail" into j (free it). */
int it_readyz(int port, it_json *j);

typedef struct it_run_seen {
    char id[64];
    int seq; /* from "m<seq>"; -1 for data that is not a test message */
} it_run_seen;

typedef struct it_run_client {
    struct it_run *run;
    pthread_t thread;
    int index, port;
    it_run_seen *got; /* every message, in the order the answers brought them */
    size_t n, cap;
    long polls, missed, errors;
    char first_error[200];
} it_run_client;

/* Refused publishes by error code. */
enum { R_UNCONFIRMED, R_UNAVAILABLE, R_ERROR, R_TIMEOUT, R_NOT_READY, R_NO_ANSWER, R_OTHER, R_N };

typedef struct it_run {
    char channel[64];
    int port[2];  /* the two nodes: clients split between them, the publisher alternates */
    int every_ms; /* the publisher's pace (default 20) */
    it_run_client c[IT_RUN_CLIENTS + 1]; /* the last reads the history once the others are done */
    pthread_t publisher;
    /* Set by the main thread, read by the others. */
    int stop_publishing, stop_clients;
    int target;         /* the last confirmed message once the publisher ended; -1 before */
    long long fault_ms; /* when the fault was made; 0 before */
    /* The publisher's; read by the main thread after joining it. */
    char id[IT_RUN_MAX_SEQ][64]; /* the id each confirmed message got */
    int duplicate[IT_RUN_MAX_SEQ];
    int acked; /* messages 0..acked-1 got a 201 */
    long attempts, refused[R_N];
    long long longest_refusal_ms;   /* first refused attempt sent -> the 201 that ended it */
    long long longest_refusal_at;   /* its start, from the fault (negative: before) */
    long long first_ok_after_fault; /* fault -> the first 201 to an attempt sent after it */
    int open_refusal;               /* the publisher gave up during a refusal */
    char first_refusal[256];        /* one refused answer after the fault, as an example */
} it_run;

/* Starts the clients (three on each node) and, once they poll, the
 * publisher (one message every r->every_ms, 20) on channel, which should
 * be fresh. */
void it_run_start(it_run *r, const char *channel, int port_a, int port_b);

/* Marks now as the fault's time (for the refusal figures). */
void it_run_fault(it_run *r);

/* Waits until the publisher got a 201 to a publish sent after the fault;
 * returns how long after the fault, or -1 after timeout_ms. */
long long it_run_wait_first_ok(it_run *r, int timeout_ms);

/* Stops the publisher once its message in hand is confirmed, gives the
 * clients up to 15 s to receive the last confirmed message, then lets a
 * late client read the channel from cursor 0 (what the history holds). */
void it_run_finish(it_run *r);

/* Prints what the run did (with the stream's length on xlen_port, if
 * not 0) and checks the rule; the first breach goes into problem (empty
 * if none). Frees what the clients collected. */
void it_run_check(it_run *r, const char *what, int xlen_port, char *problem, size_t plen);

/* it_run_check, failing the test on a breach. */
void it_run_assert(it_run *r, const char *what, int xlen_port);

#endif

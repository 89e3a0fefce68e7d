/* itest.h -- what the integration tests need to drive real processes:
 * free loopback ports, redis-server and holdline nodes started and stopped
 * by pid, a small blocking HTTP client, many concurrent requests at once,
 * and raw Redis commands. Every process started here is killed at exit,
 * even when a test fails half-way. */
#ifndef ITEST_H
#define ITEST_H

#include <stddef.h>
#include <sys/types.h>

/* The directory this run writes its files to (created on first use). */
const char *it_run_dir(void);

/* Stops whatever is still running and removes the run directory unless
 * failed is non-zero (then its path is printed). Returns failed. */
int it_finish(int failed);

/* The holdline binary under test: $HOLDLINE_BIN or bin/holdline. */
const char *it_holdline_bin(void);

/* A TCP port on 127.0.0.1 that nothing listens on right now. */
int it_free_port(void);

/* Milliseconds and microseconds on the monotonic clock. */
long long it_now_ms(void);
long long it_now_us(void);

/* Starts argv[0] with stdout and stderr appended to logpath. Returns the
 * pid, registered for cleanup. */
pid_t it_spawn(const char *const argv[], const char *logpath);

/* it_spawn with environment entries "NAME=value" (a NULL-terminated list,
 * may be NULL) set in the child only, so that settings given to one node
 * do not leak into the next. */
pid_t it_spawn_env(const char *const argv[], const char *const env[], const char *logpath);

/* Sends sig to pid and waits up to timeout_ms for it to exit. Returns the
 * wait status, or -1 if it did not exit (it is then SIGKILLed). Signal 0
 * just waits. */
int it_stop(pid_t pid, int sig, int timeout_ms);

/* 1 while pid, a child of ours, has not exited. A child found exited is
 * reaped here, so its exit status is lost: use it_stop to learn that. */
int it_alive(pid_t pid);

typedef struct it_redis {
    int port;
    pid_t pid;
    char dir[96];
} it_redis;

/* Starts redis-server on a free port (or r->port if set) without
 * persistence, and waits until it answers PING. Returns 0 or -1. */
int it_redis_start(it_redis *r);

/* it_redis_start with more redis-server arguments after the defaults (a
 * NULL-terminated list, may be NULL); a later "--appendonly yes" wins over
 * the default "no". Started again with the same r after it_redis_stop, it
 * reuses r->port and r->dir, so a persistent server finds its data. */
int it_redis_start_args(it_redis *r, const char *const extra[]);

/* SIGKILL, as a crash would: no goodbye to the clients. */
void it_redis_stop(it_redis *r);

/* Sends one command (argv strings) and writes the raw reply into out
 * without its last CRLF (e.g. ":2", "+OK", or "*2\r\n$13\r\n..."). Returns
 * 0 or -1 on I/O failure. */
int it_redis_cmd(int port, char *out, size_t outlen, int argc, const char *const argv[]);

/* The integer reply of one command (":N", or the last ":N" of an array such
 * as PUBSUB NUMSUB's), or -1 on failure or another kind of reply. */
long long it_redis_int(int port, int argc, const char *const argv[]);

typedef struct it_node {
    int port;
    pid_t pid;
    char log[128];
} it_node;

/* Starts a node on a free port against redis_port, with extra arguments
 * (NULL-terminated, may be NULL), and waits until /readyz answers 200.
 * Returns 0 or -1. */
int it_node_start(it_node *n, int redis_port, const char *const extra[]);

/* it_node_start with environment entries ("HOLDLINE_HTTP_WORKERS=1", a
 * NULL-terminated list, may be NULL) for this node only. */
int it_node_start_env(it_node *n, int redis_port, const char *const extra[],
                      const char *const env[]);

/* SIGTERM, wait; returns the exit status as it_stop does. */
int it_node_stop(it_node *n);

/* 1 if the node's log holds a sanitizer report or a crash marker. */
int it_log_has_crash(const char *path);

typedef struct it_resp {
    int status;      /* 0 if no complete answer arrived */
    char head[4096]; /* status line and headers */
    char *body;      /* NUL-terminated, malloc'd; free with it_resp_free */
    size_t body_len;
} it_resp;

void it_resp_free(it_resp *r);

/* The value of a response header (case-insensitive name), copied into
 * out; returns 0 if found. */
int it_resp_header(const it_resp *r, const char *name, char *out, size_t outlen);

/* One request on a fresh connection with "Connection: close"; waits up to
 * timeout_ms for the whole answer. Returns 0 if an answer was parsed. */
int it_http(int port, const char *method, const char *path, const char *body, size_t body_len,
            const char *extra_headers, int timeout_ms, it_resp *out);

/* Sends raw bytes and reads until the server closes or timeout_ms passes.
 * Returns 0 if the answer parsed as HTTP (out->status set). */
int it_raw(int port, const void *req, size_t len, int timeout_ms, it_resp *out);

/* it_raw that also says how the connection ended: *closed is 1 if the
 * server closed it (with or without an answer) within timeout_ms, 0 if it
 * was still open. With half_close the client shuts its sending side down
 * after the request, as a client that gives up sending does. */
int it_raw_ex(int port, const void *req, size_t len, int half_close, int timeout_ms, it_resp *out,
              int *closed);

/* A blocking TCP connection to 127.0.0.1:port with TCP_NODELAY, or -1. */
int it_connect(int port);

/* Writes all n bytes; 0, or -1 on error. */
int it_write_all(int fd, const void *p, size_t n);

/* Asks GET path every interval_ms until the status is want or timeout_ms
 * passed. Returns the milliseconds it took, or -1. */
long long it_wait_status(int port, const char *path, int want, int timeout_ms, int interval_ms);

/* Many requests in flight at once: it_multi_open connects and sends
 * req[i] to port[i]; it_multi_wait reads until every connection closed or
 * timeout_ms passes, and returns how many answered completely. */
typedef struct it_conn {
    int fd;
    char *buf;
    size_t len, cap;
    int done;
    it_resp resp;
} it_conn;

int it_multi_open(it_conn *c, size_t n, const int *port, const char *const *req);
size_t it_multi_wait(it_conn *c, size_t n, int timeout_ms);
void it_multi_free(it_conn *c, size_t n);

/* ---- reading the server's JSON answers ----
 * A small reader for the compact objects holdline writes: string, null,
 * boolean and integer values, and the "messages" array of poll answers.
 * Not a general JSON parser. */

typedef struct it_msg {
    char channel[256];
    char id[64]; /* "null" for a message without a stream id */
    char data[256];
} it_msg;

typedef struct it_json {
    int parsed;        /* 1 if the whole body read as one such object */
    char cursor[4096]; /* poll answers */
    char error[64];    /* error answers */
    char detail[256];  /* error answers */
    char id[64];       /* publish answers */
    char channel[256]; /* publish and channel answers */
    char last_id[64];  /* /channels answers ("null" when there is no history) */
    char status[32];   /* /healthz, /readyz */
    long long length;  /* /channels answers; -1 when absent */
    int missed;        /* 1, 0, or -1 when absent */
    int duplicate;     /* 1, 0, or -1 when absent */
    it_msg *msgs;      /* malloc'd; free with it_json_free */
    size_t n, cap;
} it_json;

/* Reads body (may be NULL) into j; returns 0 if it parsed. */
int it_json_parse(const char *body, it_json *j);
void it_json_free(it_json *j);

#endif

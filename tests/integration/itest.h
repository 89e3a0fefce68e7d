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
 * failed is non-zero or IT_KEEP=1 is set (then its path is printed).
 * Returns failed. */
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
 * reaped here (and no longer signalled at exit), so its exit status is
 * lost: use it_stop to learn that. */
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

/* Sends one command and returns its whole reply, every byte of it (CRLFs
 * included), malloc'd and NUL-terminated; NULL on I/O failure or when no
 * complete reply came within timeout_ms. Unlike it_redis_cmd it waits for
 * the end of a bulk string or a nested array (CLIENT LIST, SENTINEL
 * replicas). The caller frees the reply. */
char *it_redis_call(int port, int timeout_ms, int argc, const char *const argv[]);

/* The server's ROLE ("master", "slave", "sentinel") into role; for a
 * replica *master_port (may be NULL) is the port it replicates from, else
 * 0. Returns 0, or -1 if the server did not answer ROLE. */
int it_redis_role(int port, char *role, size_t rolelen, int *master_port);

/* How many connections of the server at port have a CLIENT SETNAME name
 * starting with prefix, or -1 if CLIENT LIST failed. Their names go into
 * names (may be NULL), separated by spaces, cut to fit. */
int it_redis_clients_named(int port, const char *prefix, char *names, size_t nameslen);

/* ---- a Redis Sentinel set ----
 * One master, its replicas and three Sentinels watching it, on loopback
 * ports from it_free_port. Each process runs from a config file in its own
 * directory below it_run_dir(), its log beside it, so a failed run keeps
 * them, and what Sentinel rewrites (a server's role by CONFIG REWRITE, a
 * Sentinel's view of the set) is what a restart reads, as in a deployment.
 * Two replicas, not one: with publish.wait_replicas = 1 a promoted replica
 * needs a replica of its own before it can confirm anything. The Sentinels
 * declare a master down after 1000 ms without an answer, need 2 of 3 to
 * agree, reconfigure one replica at a time and use a failover timeout of
 * IT_SSET_FAILOVER_TIMEOUT_MS (they start no automatic failover of the
 * master within twice that of the last one). */
#define IT_SSET_SERVERS 3
#define IT_SSET_SENTINELS 3
#define IT_SSET_FAILOVER_TIMEOUT_MS 3000

typedef struct it_sset {
    char name[32];                        /* the master name Sentinel knows the set by */
    it_redis server[IT_SSET_SERVERS];     /* [0] starts as the master, the others its replicas */
    it_redis sentinel[IT_SSET_SENTINELS]; /* pid 0 while stopped */
} it_sset;

/* Starts the servers and the Sentinels and waits (it_sset_wait_settled)
 * until the set is ready for a failover. Returns 0 or -1. */
int it_sset_start(it_sset *s, const char *name);

/* Waits until every running Sentinel knows every other running one, all of
 * them name the same master, that server's ROLE says master, and every
 * other running server is listed by every Sentinel as an online replica
 * with its link to the master up. Returns 0, or -1 after timeout_ms. */
int it_sset_wait_settled(const it_sset *s, int timeout_ms);

/* SIGKILLs every process of the set. */
void it_sset_stop(it_sset *s);

/* "127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3", the Sentinels' addresses as
 * HOLDLINE_REDIS_SENTINELS takes them, into out. */
void it_sset_sentinel_list(const it_sset *s, char *out, size_t outlen);

/* The master's port as the first running Sentinel that answers names it
 * (SENTINEL GET-MASTER-ADDR-BY-NAME), or -1 if none answers. */
int it_sset_master_port(const it_sset *s);

/* Asks every running Sentinel every 10 ms until one names a master other
 * than old_port; returns the new port, or -1 after timeout_ms. */
int it_sset_wait_new_master(const it_sset *s, int old_port, int timeout_ms);

/* The index in s->server of the server on port, or -1. */
int it_sset_server(const it_sset *s, int port);

/* SIGKILLs the server the Sentinels name as master, as a crash would.
 * Returns its index in s->server, or -1. */
int it_sset_kill_master(it_sset *s);

/* Starts server i again on its port from its config file: as what it was
 * when it died (a killed master comes back believing it is a master, until
 * Sentinel turns it into a replica, about 8 s later), with no data.
 * Returns 0 once it answers PING, or -1. */
int it_sset_restart_server(it_sset *s, int i);

/* SIGKILLs the three Sentinels; it_sset_restart_sentinels starts them again
 * on their ports from the config files they rewrote, and returns 0 once
 * each answers PING (not settled: see it_sset_wait_settled), or -1. */
void it_sset_stop_sentinels(it_sset *s);
int it_sset_restart_sentinels(it_sset *s);

/* ---- a Redis Cluster ----
 * Up to IT_RCL_SERVERS redis-server in cluster mode on loopback ports whose
 * bus ports (+10000) are free too, each from a config file in its own
 * directory below it_run_dir() (nodes.conf, the AOF and the log beside
 * it), so that a server restarted after a SIGKILL comes back with its node
 * id, its view of the cluster and its data, as in a deployment. A node is
 * declared failing after IT_RCL_NODE_TIMEOUT_MS without an answer (a
 * killed master's replica takes over about 1 s after that), the cluster
 * serves the slots it still has when some are lost
 * (cluster-require-full-coverage no), and replicas sync straight over the
 * socket without waiting for others (repl-diskless-sync-delay 0). Every
 * write is in the AOF before the reply (appendfsync always).
 *
 * What a helper asks of "the cluster" it asks live of the first running
 * server that answers, never of what start saw: roles and slot owners
 * change under failovers and resharding. */
#define IT_RCL_MASTERS 3 /* the usual shape: 3 masters, */
#define IT_RCL_SERVERS 6 /* each with one replica */
#define IT_RCL_NODE_TIMEOUT_MS 1000

typedef struct it_rcl {
    int n;                           /* servers in use: masters * (1 + replicas per master) */
    it_redis server[IT_RCL_SERVERS]; /* pid 0 while stopped */
    char id[IT_RCL_SERVERS][41];     /* node ids (CLUSTER MYID); nodes.conf keeps them */
    int master[IT_RCL_SERVERS];      /* the port server i replicates, 0 for a master, as
                                        it_rcl_topology last read it (start does) */
} it_rcl;

/* Starts masters * (1 + replicas_per_master) servers (at most
 * IT_RCL_SERVERS), with extra redis-server arguments ("--maxmemory",
 * "10mb"; a NULL-terminated list, may be NULL) written into each config
 * file after the defaults, so they win and a restart has them too. Makes
 * them one cluster, server[0..masters) its masters: `redis-cli --cluster
 * create` for 3 masters or more; by hand for 1 or 2, which redis-cli
 * refuses (slots split evenly, one config epoch per node, CLUSTER MEET,
 * CLUSTER REPLICATE). Waits for it_rcl_wait_ok and reads the pairing back
 * (it_rcl_topology): which replica follows which master is redis-cli's
 * choice. About 2 s, whatever the shape: a new master says
 * cluster_state:ok only 2 s after it started. Returns 0, or -1 with
 * whatever started stopped again. */
int it_rcl_start(it_rcl *c, int masters, int replicas_per_master, const char *const extra[]);

/* Waits until every running server says cluster_state:ok, every running
 * replica has its link to its master up, and all running servers give the
 * same CLUSTER SLOTS owners, covering the 16384 slots. A master just
 * killed still counts as the owner of its slots until its replica takes
 * over: to wait for that, see it_rcl_wait_owner. Returns 0, or -1 after
 * timeout_ms (saying on stderr what was missing). */
int it_rcl_wait_ok(const it_rcl *c, int timeout_ms);

/* SIGKILLs every server of the cluster. */
void it_rcl_stop(it_rcl *c);

/* "127.0.0.1:p1,127.0.0.1:p2,...", the running servers' addresses as
 * HOLDLINE_REDIS_CLUSTER_NODES takes them, into out. */
void it_rcl_seeds(const it_rcl *c, char *out, size_t outlen);

/* Re-reads c->master from the ROLE of every running server. Returns 0,
 * or -1 if one did not answer. */
int it_rcl_topology(it_rcl *c);

/* The slot of key (CLUSTER KEYSLOT), or -1. */
int it_rcl_slot(const it_rcl *c, const char *key);

/* The port of the master owning key's slot (CLUSTER KEYSLOT, then CLUSTER
 * SLOTS), or -1. */
int it_rcl_owner(const it_rcl *c, const char *key);

/* The same for a slot number. */
int it_rcl_slot_owner(const it_rcl *c, int slot);

/* The ports of the masters that own slots (CLUSTER SLOTS), in the order of
 * their first slot, into ports; returns how many (at most max), or -1. */
int it_rcl_masters(const it_rcl *c, int *ports, int max);

/* The port of a running server whose ROLE says it replicates master_port,
 * or -1. */
int it_rcl_replica_of(const it_rcl *c, int master_port);

/* The index in c->server of the server on port, or -1. */
int it_rcl_index(const it_rcl *c, int port);

/* SIGKILLs the server on port, as a crash would. Returns its index in
 * c->server (for it_rcl_restart), or -1. */
int it_rcl_kill(it_rcl *c, int port);

/* Starts stopped server i again on its port from its config file, with its
 * nodes.conf and AOF, and returns 0 once it answers PING, not once it has
 * rejoined (see it_rcl_wait_ok): a killed master whose replica took over
 * comes back believing it still owns its slots, until the first word from
 * the others (a few ms here) makes it a replica of its successor. Returns
 * -1 on failure. */
int it_rcl_restart(it_rcl *c, int i);

/* Waits until key's slot is owned by a running master other than
 * not_port and the cluster is as it_rcl_wait_ok wants it. Returns the new
 * owner's port, or -1 after timeout_ms. */
int it_rcl_wait_owner(const it_rcl *c, const char *key, int not_port, int timeout_ms);

/* Moving one slot to the master on to_port by hand, in three steps, so
 * that a test can hold the slot between them: after it_rcl_migrate_begin
 * (the destination IMPORTING, the source MIGRATING) the source answers a
 * key it no longer has with -ASK; it_rcl_migrate_keys moves the slot's
 * keys (CLUSTER GETKEYSINSLOT, MIGRATE ... KEYS, until none is left) and
 * returns how many; it_rcl_migrate_end gives the slot to the destination
 * (CLUSTER SETSLOT ... NODE on it, then the source, then every other
 * master) and waits until every running server agrees. Each returns -1 on
 * failure, or when to_port is not a server of c or already owns the
 * slot. */
int it_rcl_migrate_begin(it_rcl *c, int slot, int to_port);
int it_rcl_migrate_keys(it_rcl *c, int slot, int to_port);
int it_rcl_migrate_end(it_rcl *c, int slot, int to_port);

/* A manual failover: CLUSTER FAILOVER on the replica on replica_port,
 * then waits until it says master and the cluster is ok again (the old
 * master following it), and re-reads the topology. Returns 0 or -1. */
int it_rcl_failover(it_rcl *c, int replica_port);

/* Channel names "<base>.<k>" for a test, into names[0..n): the slot of
 * each one's stream key "{<prefix><name>}:log" is owned by the masters in
 * turn (names[j] by master j % masters, in it_rcl_masters order), so the
 * channels spread over every master. Returns n, or -1. */
int it_rcl_spread_names(const it_rcl *c, const char *prefix, const char *base, char names[][64],
                        int n);

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

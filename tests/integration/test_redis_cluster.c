/* Integration: Redis Cluster mode. Real nodes in cluster mode
 * (redis.mode = "cluster", publish.wait_replicas = 1) in front of a real
 * Redis Cluster on loopback: three masters and a replica each (itest's
 * it_rcl), sharded pub/sub. The nodes get a --redis address where nothing
 * listens, so that everything they reach they found through the slot
 * map.
 *
 * One cluster serves the whole file and the tests build on each other in
 * the order they run: resharding moves one slot, the kill -9 leaves a
 * promoted replica and the old master back as its replica, and the last
 * test takes a whole shard down. Each test starts its own nodes. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "itrun.h"

/* Channels per master in the delivery tests. */
#define PER_MASTER 2
#define NCHAN (IT_RCL_MASTERS * PER_MASTER)
/* Messages of each kind (HTTP, FCALL) per channel. */
#define EACH 5

static it_rcl cl;
static it_node na, nb;
static int dead_port; /* where --redis points: nothing listens there */
static it_run the_run;

static char env_seeds[300];
static const char *const node_env[] = {"HOLDLINE_HTTP_WORKERS=2",
                                       "HOLDLINE_REDIS_MODE=cluster",
                                       env_seeds,
                                       "HOLDLINE_REDIS_CLUSTER_REFRESH_MS=1000",
                                       "HOLDLINE_PUBLISH_WAIT_REPLICAS=1",
                                       "HOLDLINE_PUBLISH_WAIT_TIMEOUT_MS=300",
                                       NULL};

static void sleep_ms(int ms) {
    usleep((useconds_t)ms * 1000);
}

/* ---- setup ---------------------------------------------------------------- */

static int group_setup(void **state) {
    (void)state;
    if (it_rcl_start(&cl, IT_RCL_MASTERS, 1, NULL) != 0) return -1;
    char seeds[240];
    it_rcl_seeds(&cl, seeds, sizeof(seeds));
    snprintf(env_seeds, sizeof(env_seeds), "HOLDLINE_REDIS_CLUSTER_NODES=%s", seeds);
    dead_port = it_free_port();
    return dead_port > 0 ? 0 : -1;
}

static int group_teardown(void **state) {
    (void)state;
    it_rcl_stop(&cl);
    return 0;
}

static int start_node(it_node *n) {
    memset(n, 0, sizeof(*n));
    if (it_node_start_env(n, dead_port, NULL, node_env) != 0) {
        fprintf(stderr, "node did not become ready (log %s)\n", n->log);
        return -1;
    }
    return 0;
}

static int setup(void **state) {
    (void)state;
    if (it_rcl_wait_ok(&cl, 20000) != 0) {
        fprintf(stderr, "the cluster is not ok\n");
        return -1;
    }
    return start_node(&na) == 0 && start_node(&nb) == 0 ? 0 : -1;
}

/* Stops a node; 1 unless it exited 0 without a crash report. */
static int stop_node(it_node *n) {
    int bad = 0;
    if (n->pid > 0) {
        int st = it_node_stop(n);
        if (st != 0) {
            fprintf(stderr, "node on port %d exit status %d (want 0)\n", n->port, st);
            bad = 1;
        }
    }
    if (n->log[0] && it_log_has_crash(n->log)) {
        fprintf(stderr, "sanitizer or crash report in %s\n", n->log);
        bad = 1;
    }
    return bad;
}

static int teardown(void **state) {
    (void)state;
    int bad = stop_node(&na);
    bad |= stop_node(&nb);
    return bad ? -1 : 0;
}

/* ---- helpers -------------------------------------------------------------- */

/* A base for this run's channel names. */
static void base_name(char *out, size_t outlen, const char *tag) {
    snprintf(out, outlen, "rc-%s-%ld", tag, (long)getpid());
}

/* FCALL holdline_publish on the master serving channel, as a cluster
 * client does; returns the id (free it) or NULL. */
static char *fcall_publish(const char *channel, const char *data) {
    char key[400];
    snprintf(key, sizeof(key), "{holdline:%s}:log", channel);
    int port = it_rcl_owner(&cl, key);
    if (port <= 0) return NULL;
    const char *argv[] = {"FCALL", "holdline_publish", "1", key, data};
    char *reply = it_redis_call(port, 3000, 5, argv);
    if (reply == NULL) return NULL;
    /* "$<n>\r\n<id>\r\n" */
    char *nl = strstr(reply, "\r\n");
    if (reply[0] != '$' || nl == NULL) {
        fprintf(stderr, "FCALL on %d: %s\n", port, reply);
        free(reply);
        return NULL;
    }
    char *id = strdup(nl + 2);
    id[strcspn(id, "\r\n")] = '\0';
    free(reply);
    return id;
}

/* Polls channel on port from cursor (in-out) until want messages came,
 * appending "<id> <data>" lines to out; returns how many came. */
static int collect(int port, const char *channel, char *cursor, size_t curlen, int want,
                   char (*out)[96]) {
    int got = 0;
    long long end = it_now_ms() + 10000;
    while (got < want && it_now_ms() < end) {
        it_json j;
        int st = it_poll(port, channel, cursor, 1, &j);
        if (st == 200 && j.parsed) {
            if (j.missed == 1) fprintf(stderr, "%s on %d: missed:true\n", channel, port);
            for (size_t i = 0; i < j.n && got < want; i++)
                snprintf(out[got++], 96, "%.40s %.50s", j.msgs[i].id, j.msgs[i].data);
            snprintf(cursor, curlen, "%s", j.cursor);
        }
        it_json_free(&j);
    }
    return got;
}

static long long wait_status(int port, const char *want, int timeout_ms) {
    long long t0 = it_now_ms();
    for (;;) {
        it_json j;
        int ok = it_readyz(port, &j) == 200 && strcmp(j.status, want) == 0;
        it_json_free(&j);
        if (ok) return it_now_ms() - t0;
        if (it_now_ms() - t0 >= timeout_ms) return -1;
        sleep_ms(50);
    }
}

/* ---- the tests ------------------------------------------------------------ */

/* Channels spread over the three masters: messages published through
 * either node's HTTP API and by FCALL on the master reach cursor clients
 * on both nodes, each once and in order, and one poll over all of them
 * (one cursor across three masters) gets them all. */
static void
test_channels_on_every_master_get_every_http_and_fcall_message_on_both_nodes(void **state) {
    (void)state;
    char base[64], names[NCHAN][64];
    base_name(base, sizeof(base), "spread");
    assert_int_equal(it_rcl_spread_names(&cl, "holdline:", base, names, NCHAN), NCHAN);
    int masters[IT_RCL_MASTERS], seen_masters = 0;
    for (int i = 0; i < NCHAN; i++) {
        char key[400];
        snprintf(key, sizeof(key), "{holdline:%s}:log", names[i]);
        int owner = it_rcl_owner(&cl, key), known = 0;
        for (int k = 0; k < seen_masters; k++)
            known |= masters[k] == owner;
        if (!known && seen_masters < IT_RCL_MASTERS) masters[seen_masters++] = owner;
    }
    assert_int_equal(seen_masters, IT_RCL_MASTERS);

    /* Each node's cursor before anything is published. */
    static char cursor[2][NCHAN][4096];
    it_node *nodes[] = {&na, &nb};
    for (int n = 0; n < 2; n++)
        for (int i = 0; i < NCHAN; i++) {
            it_json j;
            assert_int_equal(it_poll(nodes[n]->port, names[i], NULL, 1, &j), 200);
            snprintf(cursor[n][i], sizeof(cursor[n][i]), "%s", j.cursor);
            it_json_free(&j);
        }
    /* HTTP through both nodes, FCALL on the masters, interleaved. */
    static char want[NCHAN][2 * EACH][96];
    for (int i = 0; i < NCHAN; i++) {
        for (int k = 0; k < 2 * EACH; k++) {
            char data[32];
            snprintf(data, sizeof(data), "%s%d", k % 2 ? "fcall" : "http", k);
            if (k % 2) {
                char *id = fcall_publish(names[i], data);
                if (id == NULL) fail_msg("FCALL on %s failed", names[i]);
                snprintf(want[i][k], sizeof(want[i][k]), "%s %s", id, data);
                free(id);
            } else {
                it_json j;
                int st = it_publish_key(nodes[(k / 2) % 2]->port, names[i], data, data, &j);
                if (st != 201) fail_msg("publish on %s: %d %s %s", names[i], st, j.error, j.detail);
                snprintf(want[i][k], sizeof(want[i][k]), "%s %s", j.id, data);
                it_json_free(&j);
            }
        }
    }
    for (int n = 0; n < 2; n++)
        for (int i = 0; i < NCHAN; i++) {
            char got[2 * EACH][96];
            int k = collect(nodes[n]->port, names[i], cursor[n][i], sizeof(cursor[n][i]), 2 * EACH,
                            got);
            if (k != 2 * EACH)
                fail_msg("node %c, %s: %d of %d messages", 'A' + n, names[i], k, 2 * EACH);
            for (int m = 0; m < k; m++)
                if (strcmp(got[m], want[i][m]) != 0)
                    fail_msg("node %c, %s: message %d is '%s', want '%s'", 'A' + n, names[i], m,
                             got[m], want[i][m]);
            /* Nothing more, nothing twice. */
            it_json j;
            assert_int_equal(it_poll(nodes[n]->port, names[i], cursor[n][i], 1, &j), 200);
            assert_int_equal(j.n, 0);
            assert_int_equal(j.missed, 0);
            it_json_free(&j);
        }

    /* One poll over all of them from "0": one cursor for three masters. */
    char list[NCHAN * 70] = "";
    for (int i = 0; i < NCHAN; i++)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? "," : "", names[i]);
    char multi[8192] = "0";
    int total = 0;
    for (int round = 0; round < 20 && total < NCHAN * 2 * EACH; round++) {
        it_json j;
        assert_int_equal(it_poll(nb.port, list, multi, 1, &j), 200);
        assert_int_equal(j.missed, 0);
        total += (int)j.n;
        snprintf(multi, sizeof(multi), "%s", j.cursor);
        it_json_free(&j);
    }
    assert_int_equal(total, NCHAN * 2 * EACH);
    it_json j;
    assert_int_equal(it_poll(na.port, list, multi, 1, &j), 200);
    printf("multi-channel poll over %d masters: %d messages, cursor %.60s...\n", IT_RCL_MASTERS,
           total, multi);
    assert_int_equal(j.n, 0); /* the cursor is good on the other node too */
    assert_int_equal(j.missed, 0);
    it_json_free(&j);
}

typedef struct held_poll {
    pthread_t thread;
    int port;
    char channel[64];
    int status;
    it_json j;
} held_poll;

static void *held_main(void *arg) {
    held_poll *h = arg;
    h->status = it_poll(h->port, h->channel, NULL, 5, &h->j);
    return NULL;
}

/* A plain SPUBLISH on the channel's master reaches waiters held on both
 * nodes, as a message without id; on every master. */
static void test_spublish_reaches_waiters_on_both_nodes(void **state) {
    (void)state;
    char base[64], names[IT_RCL_MASTERS][64];
    base_name(base, sizeof(base), "spub");
    assert_int_equal(it_rcl_spread_names(&cl, "holdline:", base, names, IT_RCL_MASTERS),
                     IT_RCL_MASTERS);
    held_poll h[2 * IT_RCL_MASTERS];
    memset(h, 0, sizeof(h));
    for (int i = 0; i < 2 * IT_RCL_MASTERS; i++) {
        h[i].port = i % 2 ? nb.port : na.port;
        snprintf(h[i].channel, sizeof(h[i].channel), "%s", names[i / 2]);
        assert_int_equal(pthread_create(&h[i].thread, NULL, held_main, &h[i]), 0);
    }
    sleep_ms(700); /* held, subscribed */
    for (int c = 0; c < IT_RCL_MASTERS; c++) {
        char ch[256], data[32], key[300];
        snprintf(ch, sizeof(ch), "holdline:%s", names[c]);
        snprintf(key, sizeof(key), "{%s}:log", ch);
        snprintf(data, sizeof(data), "plain-%d", c);
        const char *argv[] = {"SPUBLISH", ch, data};
        long long subs = it_redis_int(it_rcl_owner(&cl, key), 3, argv);
        printf("SPUBLISH %s on %d: %lld subscribers\n", ch, it_rcl_owner(&cl, key), subs);
        assert_true(subs >= 2); /* a worker of each node */
    }
    for (int i = 0; i < 2 * IT_RCL_MASTERS; i++) {
        pthread_join(h[i].thread, NULL);
        assert_int_equal(h[i].status, 200);
        assert_int_equal(h[i].j.n, 1);
        char data[32];
        snprintf(data, sizeof(data), "plain-%d", i / 2);
        assert_string_equal(h[i].j.msgs[0].data, data);
        assert_string_equal(h[i].j.msgs[0].id, "null");
        it_json_free(&h[i].j);
    }
}

/* The slot of a channel moves to another master (SETSLOT MIGRATING /
 * IMPORTING, MIGRATE, SETSLOT NODE), slowly, while cursor clients poll
 * and a publisher publishes on it: ASK and TRYAGAIN are followed, the
 * subscriptions move with the slot, nothing is lost or doubled. */
static void
test_a_slot_resharded_while_cursor_clients_poll_loses_and_doubles_nothing(void **state) {
    (void)state;
    char ch[64], key[160];
    base_name(ch, sizeof(ch), "reshard");
    snprintf(key, sizeof(key), "{holdline:%s}:log", ch);
    it_run *r = &the_run;
    it_run_start(r, ch, na.port, nb.port);
    sleep_ms(1000);
    int slot = it_rcl_slot(&cl, key), from = it_rcl_owner(&cl, key);
    int masters[8], n = it_rcl_masters(&cl, masters, 8), to = -1;
    for (int i = 0; i < n && to < 0; i++)
        if (masters[i] != from) to = masters[i];
    assert_true(slot >= 0 && from > 0 && to > 0);
    it_run_fault(r);
    long long t0 = it_now_ms();
    assert_int_equal(it_rcl_migrate_begin(&cl, slot, to), 0);
    sleep_ms(700); /* MIGRATING, the keys still on the source */
    int keys = it_rcl_migrate_keys(&cl, slot, to);
    assert_true(keys > 0); /* the stream, the epoch, the idempotency keys */
    sleep_ms(1000);        /* the keys moved, the slot not yet: ASK */
    assert_int_equal(it_rcl_migrate_end(&cl, slot, to), 0);
    long long moved = it_now_ms() - t0;
    sleep_ms(2500);
    it_run_finish(r);
    int owner = it_rcl_owner(&cl, key);
    printf("reshard of slot %d (%d keys) from %d to %d took %lld ms; owner now %d\n", slot, keys,
           from, to, moved, owner);
    assert_int_equal(owner, to);
    it_run_assert(r, "reshard", owner);
    long refused = 0;
    for (int k = 0; k < R_N; k++)
        refused += r->refused[k];
    printf("reshard: %ld publishes refused, longest run %lld ms\n", refused, r->longest_refusal_ms);
    /* Redirections are followed inside the node: no publish is refused. */
    assert_int_equal(refused, 0);
}

/* kill -9 of the master serving a channel while cursor clients poll and
 * a publisher retries: its replica takes over, and once the killed
 * master is back as the new master's replica, WAIT confirms again. Every
 * publish that got a 201 reaches every client exactly once. */
static void test_kill_9_of_a_master_loses_no_confirmed_publish(void **state) {
    (void)state;
    char ch[64], key[160];
    base_name(ch, sizeof(ch), "kill");
    snprintf(key, sizeof(key), "{holdline:%s}:log", ch);
    it_run *r = &the_run;
    it_run_start(r, ch, na.port, nb.port);
    sleep_ms(1000);
    int old = it_rcl_owner(&cl, key);
    int idx = it_rcl_index(&cl, old);
    assert_true(idx >= 0);
    it_run_fault(r);
    long long t0 = it_now_ms();
    assert_int_equal(it_rcl_kill(&cl, old), idx);
    int now_owner = it_rcl_wait_owner(&cl, key, old, 20000);
    long long promoted = it_now_ms() - t0;
    assert_true(now_owner > 0);
    /* Back as the replica of the new master: WAIT 1 has one again. */
    assert_int_equal(it_rcl_restart(&cl, idx), 0);
    long long first_ok = it_run_wait_first_ok(r, 30000);
    long long ready_a = wait_status(na.port, "ready", 20000);
    long long ready_b = wait_status(nb.port, "ready", 20000);
    sleep_ms(3000);
    it_run_finish(r);
    printf("kill -9 of master %d: replica %d serves the slot %lld ms after the kill; first 201 "
           "%lld ms after it; both nodes ready %lld/%lld ms later; longest run of refused "
           "publishes %lld ms\n",
           old, now_owner, promoted, first_ok, ready_a, ready_b, r->longest_refusal_ms);
    assert_true(first_ok >= 0);
    assert_true(ready_a >= 0 && ready_b >= 0);
    it_run_assert(r, "kill -9", now_owner);
}

/* A master and its replica both down: a node started then serves the
 * channels of the other masters, says which master it cannot reach in
 * /readyz (200, degraded), refuses publishes on the lost slots, and is
 * ready once the shard is back. */
static void test_a_node_started_while_a_master_is_down_serves_the_other_slots(void **state) {
    (void)state;
    char base[64], names[IT_RCL_MASTERS][64];
    base_name(base, sizeof(base), "down");
    assert_int_equal(it_rcl_spread_names(&cl, "holdline:", base, names, IT_RCL_MASTERS),
                     IT_RCL_MASTERS);
    char key[400];
    snprintf(key, sizeof(key), "{holdline:%s}:log", names[0]);
    int master = it_rcl_owner(&cl, key), replica = it_rcl_replica_of(&cl, master);
    int mi = it_rcl_index(&cl, master), ri = it_rcl_index(&cl, replica);
    assert_true(mi >= 0 && ri >= 0);
    assert_int_equal(it_rcl_kill(&cl, replica), ri);
    assert_int_equal(it_rcl_kill(&cl, master), mi);
    it_node nc;
    assert_int_equal(start_node(&nc), 0); /* 200: degraded is served */
    it_json j;
    assert_int_equal(it_readyz(nc.port, &j), 200);
    printf("node started with master %d and its replica %d down: /readyz %s \"%s\"\n", master,
           replica, j.status, j.detail);
    assert_string_equal(j.status, "degraded");
    char port[16];
    snprintf(port, sizeof(port), "%d", master);
    if (strstr(j.detail, port) == NULL)
        fail_msg("the detail does not name %d: %s", master, j.detail);
    it_json_free(&j);
    /* The other masters' channels are served. */
    for (int c = 1; c < IT_RCL_MASTERS; c++) {
        it_json p;
        assert_int_equal(it_poll(nc.port, names[c], NULL, 1, &p), 200);
        char cursor[4096];
        snprintf(cursor, sizeof(cursor), "%s", p.cursor);
        it_json_free(&p);
        int st = it_publish_key(nc.port, names[c], "alive", names[c], &p);
        if (st != 201) fail_msg("publish on %s: %d %s %s", names[c], st, p.error, p.detail);
        it_json_free(&p);
        assert_int_equal(it_poll(nc.port, names[c], cursor, 3, &p), 200);
        assert_int_equal(p.n, 1);
        assert_string_equal(p.msgs[0].data, "alive");
        it_json_free(&p);
    }
    /* The lost shard's are refused, clearly. */
    it_json p;
    int st = it_publish_key(nc.port, names[0], "lost", names[0], &p);
    printf("publish on the lost shard: %d %s: %s\n", st, p.error, p.detail);
    assert_int_equal(st, 503);
    assert_string_equal(p.error, "redis_unavailable");
    it_json_free(&p);
    /* Back: ready, and the channel works. */
    assert_int_equal(it_rcl_restart(&cl, mi), 0);
    assert_int_equal(it_rcl_restart(&cl, ri), 0);
    assert_int_equal(it_rcl_wait_ok(&cl, 20000), 0);
    long long ready = wait_status(nc.port, "ready", 20000);
    printf("shard back: node ready %lld ms after the cluster was ok\n", ready);
    assert_true(ready >= 0);
    st = it_publish_key(nc.port, names[0], "back", names[0], &p);
    if (st != 201) fail_msg("publish on %s after: %d %s %s", names[0], st, p.error, p.detail);
    it_json_free(&p);
    assert_int_equal(stop_node(&nc), 0);
}

int main(void) {
    /* IT_FILTER=<glob> runs only the matching tests. */
    if (getenv("IT_FILTER")) cmocka_set_test_filter(getenv("IT_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_channels_on_every_master_get_every_http_and_fcall_message_on_both_nodes, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_spublish_reaches_waiters_on_both_nodes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_a_slot_resharded_while_cursor_clients_poll_loses_and_doubles_nothing, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_kill_9_of_a_master_loses_no_confirmed_publish, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_a_node_started_while_a_master_is_down_serves_the_other_slots, setup, teardown),
    };
    return it_finish(cmocka_run_group_tests_name("redis cluster (3 masters + 3 replicas, 2 nodes)",
                                                 tests, group_setup, group_teardown));
}

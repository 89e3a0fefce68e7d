/* itrun.c -- see itrun.h. */
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

static void sleep_ms(int ms) {
    usleep((useconds_t)ms * 1000);
}

/* POSTs data with an Idempotency-Key; returns the status (0 without an
 * answer) and fills j (free it). No cmocka calls: threads use it. */
int it_publish_key(int port, const char *channel, const char *data, const char *key, it_json *j) {
    char path[300], hdr[128];
    snprintf(path, sizeof(path), "/publish/%s", channel);
    snprintf(hdr, sizeof(hdr), "Idempotency-Key: %s\r\n", key);
    it_resp r;
    memset(j, 0, sizeof(*j));
    if (it_http(port, "POST", path, data, strlen(data), hdr, 8000, &r) != 0) return 0;
    it_json_parse(r.body, j);
    int st = r.status;
    it_resp_free(&r);
    return st;
}

/* One poll; returns the status (0 without an answer within timeout + 3 s)
 * and fills j (free it). cursor NULL sends none. */
int it_poll(int port, const char *channel, const char *cursor, int timeout, it_json *j) {
    char path[600];
    snprintf(path, sizeof(path), "/poll/%s?timeout=%d%s%s", channel, timeout,
             cursor ? "&cursor=" : "", cursor ? cursor : "");
    it_resp r;
    memset(j, 0, sizeof(*j));
    if (it_http(port, "GET", path, NULL, 0, NULL, (timeout + 3) * 1000, &r) != 0) return 0;
    it_json_parse(r.body, j);
    int st = r.status;
    it_resp_free(&r);
    return st;
}

/* GET /readyz: the status, with "status" and "detail" into j (free it). */
int it_readyz(int port, it_json *j) {
    it_resp r;
    memset(j, 0, sizeof(*j));
    if (it_http(port, "GET", "/readyz", NULL, 0, NULL, 2000, &r) != 0) return 0;
    it_json_parse(r.body, j);
    int st = r.status;
    it_resp_free(&r);
    return st;
}

int it_id_parse(const char *s, unsigned long long *ms, unsigned long long *seq) {
    const char *dash = strchr(s, '-');
    if (dash == NULL || dash == s || dash[1] == '\0') return -1;
    if (strspn(s, "0123456789") != (size_t)(dash - s)) return -1;
    if (strspn(dash + 1, "0123456789") != strlen(dash + 1)) return -1;
    *ms = strtoull(s, NULL, 10);
    *seq = strtoull(dash + 1, NULL, 10);
    return 0;
}

/* 1 if stream id a comes after b, 0 if not, -1 if either is not an id. */
int it_id_after(const char *a, const char *b) {
    unsigned long long am, as, bm, bs;
    if (it_id_parse(a, &am, &as) != 0 || it_id_parse(b, &bm, &bs) != 0) return -1;
    return am > bm || (am == bm && as > bs);
}

/* The number in "m<seq>", or -1. */
static int msg_seq(const char *data) {
    size_t n = strlen(data);
    if (n < 2 || n > 8 || data[0] != 'm' || strspn(data + 1, "0123456789") != n - 1) return -1;
    return atoi(data + 1);
}

/* ---- one failover run: cursor clients and a retrying publisher ------------ */

static const char *const refusal_name[R_N] = {
    "redis_unconfirmed", "redis_unavailable", "redis_error", "redis_timeout",
    "not_ready",         "no answer",         "other"};

static int refusal_kind(int status, const it_json *j) {
    if (status == 0) return R_NO_ANSWER;
    if (strcmp(j->error, "redis_unconfirmed") == 0) return R_UNCONFIRMED;
    if (strcmp(j->error, "redis_unavailable") == 0) return R_UNAVAILABLE;
    if (strcmp(j->error, "redis_error") == 0) return R_ERROR;
    if (strcmp(j->error, "redis_timeout") == 0) return R_TIMEOUT;
    if (strcmp(j->error, "not_ready") == 0) return R_NOT_READY;
    return R_OTHER;
}

static void *publisher_main(void *arg) {
    it_run *r = arg;
    long long start = it_now_ms(), refusal_start = -1, stop_seen = 0;
    int turn = 0;
    for (int seq = 0; seq < IT_RUN_MAX_SEQ; seq++) {
        if (__atomic_load_n(&r->stop_publishing, __ATOMIC_ACQUIRE)) break;
        long long slot = start + (long long)seq * r->every_ms, now = it_now_ms();
        if (slot > now) sleep_ms((int)(slot - now));
        char data[16], key[96];
        snprintf(data, sizeof(data), "m%d", seq);
        snprintf(key, sizeof(key), "%s.%d", r->channel, seq);
        for (;;) {
            int port = r->port[turn++ % 2];
            long long sent = it_now_ms();
            it_json j;
            int st = it_publish_key(port, r->channel, data, key, &j);
            long long answered = it_now_ms();
            long long fault = __atomic_load_n(&r->fault_ms, __ATOMIC_ACQUIRE);
            r->attempts++;
            int ok = st == 201 && j.id[0] != '\0' && strcmp(j.channel, r->channel) == 0 &&
                     strlen(j.id) < sizeof(r->id[seq]);
            if (ok) {
                snprintf(r->id[seq], sizeof(r->id[seq]), "%s", j.id);
                r->duplicate[seq] = j.duplicate == 1;
                r->acked = seq + 1;
                if (refusal_start >= 0 && answered - refusal_start > r->longest_refusal_ms) {
                    r->longest_refusal_ms = answered - refusal_start;
                    r->longest_refusal_at = fault ? refusal_start - fault : 0;
                }
                refusal_start = -1;
                if (fault && sent >= fault && r->first_ok_after_fault < 0)
                    r->first_ok_after_fault = answered - fault;
            } else {
                r->refused[refusal_kind(st, &j)]++;
                if (refusal_start < 0) refusal_start = sent;
                if (fault && r->first_refusal[0] == '\0')
                    snprintf(r->first_refusal, sizeof(r->first_refusal), "%d %.40s: %.150s", st,
                             j.error, j.detail);
            }
            it_json_free(&j);
            if (ok) break;
            /* After the stop, the message in hand gets 10 s to be
             * confirmed, so the run ends on a confirmed one. */
            if (stop_seen == 0 && __atomic_load_n(&r->stop_publishing, __ATOMIC_ACQUIRE))
                stop_seen = it_now_ms();
            if (stop_seen && it_now_ms() - stop_seen > 10000) {
                r->open_refusal = 1;
                return NULL;
            }
            sleep_ms(r->every_ms);
        }
    }
    return NULL;
}

/* 1 once the client holds the run's last confirmed message. */
static int client_has_target(const it_run_client *c) {
    const it_run *r = c->run;
    int t = __atomic_load_n(&r->target, __ATOMIC_ACQUIRE);
    if (t < 0) return 0;
    for (size_t i = c->n; i-- > 0;)
        if (c->got[i].seq == t && strcmp(c->got[i].id, r->id[t]) == 0) return 1;
    return 0;
}

static void *client_main(void *arg) {
    it_run_client *c = arg;
    it_run *r = c->run;
    char cursor[4096] = "0"; /* a fresh channel: everything */
    while (!__atomic_load_n(&r->stop_clients, __ATOMIC_ACQUIRE) && !client_has_target(c)) {
        it_json j;
        int st = it_poll(c->port, r->channel, cursor, 1, &j);
        c->polls++;
        int ok = st == 200 && j.parsed && j.cursor[0] != '\0' && strlen(j.cursor) < sizeof(cursor);
        if (ok) {
            if (j.missed == 1) c->missed++;
            for (size_t i = 0; i < j.n; i++) {
                if (c->n == c->cap) {
                    c->cap = c->cap ? c->cap * 2 : 256;
                    c->got = realloc(c->got, c->cap * sizeof(*c->got));
                }
                it_run_seen *s = &c->got[c->n++];
                snprintf(s->id, sizeof(s->id), "%s", j.msgs[i].id);
                s->seq = strcmp(j.msgs[i].channel, r->channel) == 0 ? msg_seq(j.msgs[i].data) : -1;
            }
            snprintf(cursor, sizeof(cursor), "%s", j.cursor);
        } else {
            c->errors++;
            if (c->first_error[0] == '\0')
                snprintf(c->first_error, sizeof(c->first_error), "%d %.30s: %.120s", st, j.error,
                         j.detail);
        }
        it_json_free(&j);
        if (!ok) sleep_ms(50); /* the same cursor again, without a busy loop */
    }
    return NULL;
}

/* Starts the clients (three on each node) and, once they poll, the
 * publisher, on a fresh channel. */
void it_run_start(it_run *r, const char *channel, int port_a, int port_b) {
    memset(r, 0, sizeof(*r));
    snprintf(r->channel, sizeof(r->channel), "%s", channel);
    r->port[0] = port_a;
    r->port[1] = port_b;
    r->every_ms = 20;
    r->target = -1;
    r->first_ok_after_fault = -1;
    for (int i = 0; i < IT_RUN_CLIENTS; i++) {
        it_run_client *c = &r->c[i];
        c->run = r;
        c->index = i;
        c->port = r->port[i < IT_RUN_CLIENTS_PER_NODE ? 0 : 1];
        assert_int_equal(pthread_create(&c->thread, NULL, client_main, c), 0);
    }
    sleep_ms(200);
    assert_int_equal(pthread_create(&r->publisher, NULL, publisher_main, r), 0);
}

/* Stops the publisher once its message in hand is confirmed, then gives
 * the clients up to 15 s to receive the last confirmed message. Then a
 * late client reads the channel from cursor 0: what the history holds
 * now, which is what a client that was not polling during the failover
 * gets. A confirmed message lost with a demoted master can still have
 * reached the clients that polled it there; it is not in this one's. */
void it_run_finish(it_run *r) {
    __atomic_store_n(&r->stop_publishing, 1, __ATOMIC_RELEASE);
    pthread_join(r->publisher, NULL);
    __atomic_store_n(&r->target, r->acked - 1, __ATOMIC_RELEASE);
    long long end = it_now_ms() + 15000;
    for (int i = 0; i < IT_RUN_CLIENTS; i++) {
        while (it_now_ms() < end && !client_has_target(&r->c[i]))
            sleep_ms(20);
    }
    __atomic_store_n(&r->stop_clients, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < IT_RUN_CLIENTS; i++)
        pthread_join(r->c[i].thread, NULL);
    it_run_client *late = &r->c[IT_RUN_CLIENTS];
    late->run = r;
    late->index = IT_RUN_CLIENTS;
    late->port = r->port[0];
    __atomic_store_n(&r->stop_clients, 0, __ATOMIC_RELEASE);
    assert_int_equal(pthread_create(&late->thread, NULL, client_main, late), 0);
    end = it_now_ms() + 10000;
    while (it_now_ms() < end && !client_has_target(late))
        sleep_ms(20);
    __atomic_store_n(&r->stop_clients, 1, __ATOMIC_RELEASE);
    pthread_join(late->thread, NULL);
}

void it_run_fault(it_run *r) {
    __atomic_store_n(&r->fault_ms, it_now_ms(), __ATOMIC_RELEASE);
}

/* Waits until the publisher got a 201 to a publish sent after the fault. */
long long it_run_wait_first_ok(it_run *r, int timeout_ms) {
    long long end = it_now_ms() + timeout_ms;
    while (it_now_ms() < end && __atomic_load_n(&r->first_ok_after_fault, __ATOMIC_RELAXED) < 0)
        sleep_ms(20);
    return __atomic_load_n(&r->first_ok_after_fault, __ATOMIC_RELAXED);
}

/* Prints what the run did and checks the rule: every confirmed message
 * reached every client once, in publish order, by id and by data. The
 * first breach goes into problem (empty if none). */
void it_run_check(it_run *r, const char *what, int xlen_port, char *problem, size_t plen) {
    long refused = 0;
    char codes[300] = "";
    for (int k = 0; k < R_N; k++) {
        refused += r->refused[k];
        if (r->refused[k])
            snprintf(codes + strlen(codes), sizeof(codes) - strlen(codes), "%s%s %ld",
                     codes[0] ? ", " : "", refusal_name[k], r->refused[k]);
    }
    int dups = 0;
    for (int s = 0; s < r->acked; s++)
        dups += r->duplicate[s];
    printf("%s: %d messages confirmed (%d of them as duplicates of a first attempt) in %ld "
           "attempts; %ld refused (%s)\n",
           what, r->acked, dups, r->attempts, refused, codes[0] ? codes : "none");
    /* What Redis itself holds, without a node in between. */
    char key[128];
    snprintf(key, sizeof(key), "{holdline:%s}:log", r->channel);
    const char *xlen[] = {"XLEN", key};
    if (xlen_port > 0)
        printf("%s: the stream holds %lld entries on the master %d\n", what,
               it_redis_int(xlen_port, 2, xlen), xlen_port);
    if (r->first_refusal[0])
        printf("%s: first refusal after the fault: %s\n", what, r->first_refusal);

    problem[0] = '\0';
    for (int s = 1; s < r->acked && !problem[0]; s++)
        if (it_id_after(r->id[s], r->id[s - 1]) != 1)
            snprintf(problem, plen, "m%d got id %s, not after m%d's %s", s, r->id[s], s - 1,
                     r->id[s - 1]);
    if (r->open_refusal && !problem[0])
        snprintf(problem, plen, "the last message m%d never got a 201", r->acked);
    for (int i = 0; i <= IT_RUN_CLIENTS; i++) {
        it_run_client *c = &r->c[i];
        char who[64];
        if (i == IT_RUN_CLIENTS)
            snprintf(who, sizeof(who), "late client (node A, cursor 0 after the run)");
        else
            snprintf(who, sizeof(who), "client %d (node %c)", i,
                     i < IT_RUN_CLIENTS_PER_NODE ? 'A' : 'B');
        /* How often each confirmed message arrived, and whether one came
         * after a later one. */
        static int times[IT_RUN_MAX_SEQ];
        memset(times, 0, sizeof(times));
        int last = -1;
        long unconfirmed = 0, foreign = 0, twice = 0, confirmed = 0;
        char extra[200] = "", order[160] = "";
        for (size_t k = 0; k < c->n; k++) {
            const it_run_seen *s = &c->got[k];
            if (s->seq < 0) {
                foreign++;
                continue;
            }
            if (s->seq >= r->acked || strcmp(s->id, r->id[s->seq]) != 0) {
                /* Stored once and lost, or stored again by a retry. */
                if (unconfirmed++ < 3)
                    snprintf(extra + strlen(extra), sizeof(extra) - strlen(extra),
                             "%s m%d %s (confirmed as %s)", unconfirmed > 1 ? "," : "", s->seq,
                             s->id, s->seq < r->acked ? r->id[s->seq] : "-");
                continue;
            }
            confirmed += times[s->seq]++ == 0;
            twice += times[s->seq] == 2;
            if (s->seq <= last && !order[0])
                snprintf(order, sizeof(order), "m%d (%s) after m%d", s->seq, s->id, last);
            if (s->seq > last) last = s->seq;
        }
        /* The confirmed messages that never came, as "m59..m106". */
        long absent = 0;
        char gaps[200] = "";
        for (int q = 0; q < r->acked; q++) {
            if (times[q] != 0) continue;
            int from = q;
            while (q + 1 < r->acked && times[q + 1] == 0)
                q++;
            absent += q - from + 1;
            size_t used = strlen(gaps);
            if (used < sizeof(gaps) - 40 && q > from)
                snprintf(gaps + used, sizeof(gaps) - used, "%sm%d..m%d", used ? ", " : "", from, q);
            else if (used < sizeof(gaps) - 40)
                snprintf(gaps + used, sizeof(gaps) - used, "%sm%d", used ? ", " : "", from);
        }
        printf("%s: %s: %zu messages in %ld polls: %ld of the %d confirmed ones, %ld never "
               "confirmed%s%s, %ld foreign; %ld missed answers, %ld failed polls%s%s%s\n",
               what, who, c->n, c->polls, confirmed, r->acked, unconfirmed, extra[0] ? ":" : "",
               extra, foreign, c->missed, c->errors, c->first_error[0] ? " (first: " : "",
               c->first_error, c->first_error[0] ? ")" : "");
        if (absent && !problem[0])
            snprintf(problem, plen, "%s lacks %ld confirmed messages: %s", who, absent, gaps);
        if (twice && !problem[0])
            snprintf(problem, plen, "%s got %ld confirmed messages more than once", who, twice);
        if (order[0] && !problem[0])
            snprintf(problem, plen, "%s: out of publish order: %s", who, order);
        if (foreign && !problem[0])
            snprintf(problem, plen, "%s got %ld messages that are not ours", who, foreign);
        free(c->got);
        c->got = NULL;
    }
    fflush(stdout);
}

/* run_check, failing the test on a breach. */
void it_run_assert(it_run *r, const char *what, int xlen_port) {
    char problem[300];
    it_run_check(r, what, xlen_port, problem, sizeof(problem));
    if (problem[0]) fail_msg("%s: %s (logs: %s)", what, problem, it_run_dir());
}

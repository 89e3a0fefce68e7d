/* Integration: cursors at the edges of what Redis holds, against a real
 * redis-server and two real nodes. A forged frame, a channel quiet for
 * longer than history.ttl, the newest entries deleted, a stream emptied:
 * each is answered with the truth ("missed" when something may be gone,
 * never a false one), and never by a poll that spins or hangs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "itest.h"

static it_redis redis;
static it_node node_a, node_b;

/* A TTL short enough to pass during a test; ticks come every TTL/4. */
#define TTL_S 2

static int setup(void **state) {
    (void)state;
    setenv("HOLDLINE_POLL_LINGER_MS", "400", 1);
    setenv("HOLDLINE_HTTP_WORKERS", "2", 1);
    setenv("HOLDLINE_HISTORY_TTL", "2", 1);
    if (it_redis_start(&redis) != 0) return -1;
    if (it_node_start(&node_a, redis.port, NULL) != 0) return -1;
    if (it_node_start(&node_b, redis.port, NULL) != 0) return -1;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    int a = it_node_stop(&node_a), b = it_node_stop(&node_b);
    it_redis_stop(&redis);
    if (a != 0 || b != 0 || it_log_has_crash(node_a.log) || it_log_has_crash(node_b.log)) {
        fprintf(stderr, "node exit status a=%d b=%d, or a crash report in %s / %s\n", a, b,
                node_a.log, node_b.log);
        return -1;
    }
    return 0;
}

/* One poll's answer, the parts these tests look at. */
typedef struct answer {
    int status;
    char cursor[256];
    int missed;
    int messages; /* objects in "messages" */
    char body[2048];
    long long took_ms;
} answer;

static void poll_once(int port, const char *channel, const char *cursor, int timeout, answer *a) {
    char path[512];
    snprintf(path, sizeof(path), "/poll/%s?timeout=%d%s%s", channel, timeout,
             cursor ? "&cursor=" : "", cursor ? cursor : "");
    it_resp r;
    memset(a, 0, sizeof(*a));
    long long t0 = it_now_ms();
    assert_int_equal(it_http(port, "GET", path, NULL, 0, NULL, (timeout + 3) * 1000, &r), 0);
    a->took_ms = it_now_ms() - t0;
    a->status = r.status;
    snprintf(a->body, sizeof(a->body), "%s", r.body ? r.body : "");
    it_resp_free(&r);
    assert_int_equal(sscanf(a->body, "{\"cursor\":\"%255[^\"]\"", a->cursor), 1);
    a->missed = strstr(a->body, "\"missed\":true") != NULL;
    for (const char *p = a->body; (p = strstr(p, "{\"channel\":")) != NULL; p++)
        a->messages++;
}

static void publish(int port, const char *channel, const char *data) {
    char path[256];
    snprintf(path, sizeof(path), "/publish/%s", channel);
    it_resp r;
    assert_int_equal(it_http(port, "POST", path, data, strlen(data), NULL, 3000, &r), 0);
    assert_int_equal(r.status, 201);
    it_resp_free(&r);
}

static void redis_cmd(char *out, size_t outlen, int argc, const char *const argv[]) {
    assert_int_equal(it_redis_cmd(redis.port, out, outlen, argc, argv), 0);
}

/* The last message's id, from /channels. */
static void last_id(const char *channel, char *id, size_t idlen) {
    char path[256];
    snprintf(path, sizeof(path), "/channels/%s", channel);
    it_resp r;
    assert_int_equal(it_http(node_a.port, "GET", path, NULL, 0, NULL, 3000, &r), 0);
    const char *p = strstr(r.body, "\"last_id\":\"");
    assert_non_null(p);
    p += strlen("\"last_id\":\"");
    size_t n = strcspn(p, "\"");
    assert_true(n > 0 && n < idlen);
    memcpy(id, p, n);
    id[n] = '\0';
    it_resp_free(&r);
}

/* The epoch part of a cursor, "<epoch>:". */
static void epoch_of(const char *cursor, char *out, size_t outlen) {
    const char *colon = strchr(cursor, ':');
    assert_non_null(colon);
    snprintf(out, outlen, "%.*s", (int)(colon - cursor + 1), cursor);
}

static void test_a_forged_frame_does_not_silence_the_channel(void **state) {
    (void)state;
    const char *ch = "forged";
    answer a;
    poll_once(node_a.port, ch, NULL, 1, &a); /* subscribes, learns the head */
    char out[256];
    static const char forged[] = "\x1e"
                                 "99999999999999-0\nfake";
    const char *argv[] = {"PUBLISH", "holdline:forged", forged};
    redis_cmd(out, sizeof(out), 3, argv);
    /* Real messages after the forgery reach a poll on both nodes. */
    for (int i = 0; i < 2; i++) {
        it_node *n = i ? &node_b : &node_a;
        answer first;
        poll_once(n->port, ch, NULL, 1, &first);
        it_conn c;
        char req[512];
        snprintf(
            req, sizeof(req),
            "GET /poll/%s?timeout=5&cursor=%s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", ch,
            first.cursor);
        const char *reqs[] = {req};
        assert_int_equal(it_multi_open(&c, 1, &n->port, reqs), 0);
        usleep(200000);
        publish(node_a.port, ch, i ? "real-b" : "real-a");
        assert_int_equal(it_multi_wait(&c, 1, 4000), 1);
        if (strstr(c.resp.body, i ? "real-b" : "real-a") == NULL)
            fail_msg("after a forged frame, node %c answered %s", i ? 'B' : 'A', c.resp.body);
        it_multi_free(&c, 1);
    }
}

static void test_a_channel_quiet_for_longer_than_the_ttl_reports_no_missed(void **state) {
    (void)state;
    const char *ch = "quiet";
    answer a;
    poll_once(node_a.port, ch, NULL, 1, &a);
    char cursor[256];
    snprintf(cursor, sizeof(cursor), "%s", a.cursor);
    /* Keep polling across more than a TTL, alternating nodes: nothing was
     * ever published, so nothing can have been missed. */
    long long end = it_now_ms() + (TTL_S + 2) * 1000;
    int polls = 0;
    while (it_now_ms() < end) {
        poll_once(polls % 2 ? node_b.port : node_a.port, ch, cursor, 1, &a);
        polls++;
        if (a.missed || a.messages)
            fail_msg("poll %d on a channel never published to: %s", polls, a.body);
        snprintf(cursor, sizeof(cursor), "%s", a.cursor);
    }
    /* And the cursor still delivers the next message. */
    publish(node_b.port, ch, "at last");
    poll_once(node_a.port, ch, cursor, 3, &a);
    printf("quiet channel: %d polls over %d s without missed, then %s\n", polls, TTL_S + 2, a.body);
    assert_int_equal(a.missed, 0);
    assert_int_equal(a.messages, 1);
    assert_non_null(strstr(a.body, "at last"));
}

static void test_deleting_the_newest_entries_gives_missed_and_no_spinning(void **state) {
    (void)state;
    const char *ch = "xdel";
    answer a;
    poll_once(node_b.port, ch, NULL, 1, &a);
    publish(node_a.port, ch, "one");
    poll_once(node_b.port, ch, a.cursor, 2, &a);
    assert_int_equal(a.messages, 1);
    char after_one[256];
    snprintf(after_one, sizeof(after_one), "%s", a.cursor);
    publish(node_a.port, ch, "two");
    char id[64], out[256];
    last_id(ch, id, sizeof(id));
    const char *argv[] = {"XDEL", "{holdline:xdel}:log", id};
    redis_cmd(out, sizeof(out), 3, argv);
    assert_string_equal(out, ":1");
    /* A node that never cached the channel: wait until node A's workers
     * dropped it (linger 400 ms), then ask it. */
    usleep(800000);
    poll_once(node_a.port, ch, after_one, 2, &a);
    printf("after XDEL of the newest entry: %s (%lld ms)\n", a.body, a.took_ms);
    assert_int_equal(a.missed, 1);
    assert_int_equal(a.messages, 0);
    /* The new cursor is level with Redis: the next poll waits. */
    poll_once(node_a.port, ch, a.cursor, 1, &a);
    assert_int_equal(a.missed, 0);
    assert_true(a.took_ms >= 900);
}

static void test_an_emptied_stream_gives_missed(void **state) {
    (void)state;
    const char *ch = "emptied";
    answer a;
    poll_once(node_a.port, ch, NULL, 1, &a);
    char start[256];
    snprintf(start, sizeof(start), "%s", a.cursor);
    publish(node_a.port, ch, "1");
    publish(node_a.port, ch, "2");
    char out[256];
    const char *argv[] = {"XTRIM", "{holdline:emptied}:log", "MAXLEN", "0"};
    redis_cmd(out, sizeof(out), 4, argv);
    usleep(800000); /* node B never held the channel; node A dropped it */
    poll_once(node_b.port, ch, start, 2, &a);
    printf("after XTRIM MAXLEN 0: %s\n", a.body);
    assert_int_equal(a.missed, 1);
    char e1[64], e2[64];
    epoch_of(start, e1, sizeof(e1));
    epoch_of(a.cursor, e2, sizeof(e2));
    assert_string_equal(e1, e2);
}

/* FCALL calls Redis has run so far (INFO commandstats). */
static long fcall_calls(void) {
    char out[8192];
    const char *argv[] = {"INFO", "commandstats"};
    redis_cmd(out, sizeof(out), 2, argv);
    const char *p = strstr(out, "cmdstat_fcall:calls=");
    return p ? strtol(p + strlen("cmdstat_fcall:calls="), NULL, 10) : 0;
}

/* Polls that need the same read of Redis (here: 300 clients asking for
 * the whole history of a channel longer than the cache, all at once)
 * share it, instead of one read each. */
static void test_polls_at_the_same_cursor_share_one_read(void **state) {
    (void)state;
    enum { N = 300, MSGS = 150 };
    char out[256], data[16];
    for (int i = 1; i <= MSGS; i++) {
        snprintf(data, sizeof(data), "m%d", i);
        const char *argv[] = {"FCALL", "holdline_publish", "1", "{holdline:shared}:log", data};
        redis_cmd(out, sizeof(out), 5, argv);
    }
    long before = fcall_calls();
    const char *req = "GET /poll/shared?cursor=0&timeout=5 HTTP/1.1\r\nHost: t\r\n"
                      "Connection: close\r\n\r\n";
    const char **reqs = calloc(N, sizeof(*reqs));
    int *ports = calloc(N, sizeof(*ports));
    it_conn *c = calloc(N, sizeof(*c));
    assert_non_null(reqs);
    assert_non_null(ports);
    assert_non_null(c);
    for (int i = 0; i < N; i++) {
        reqs[i] = req;
        ports[i] = node_b.port;
    }
    assert_int_equal(it_multi_open(c, N, ports, reqs), 0);
    assert_int_equal(it_multi_wait(c, N, 8000), N);
    long reads = fcall_calls() - before;
    int full = 0;
    for (int i = 0; i < N; i++) {
        const char *b = c[i].resp.body;
        /* poll.max_messages (100) of them, from the first. */
        full += c[i].resp.status == 200 && b && strstr(b, "\"data\":\"m1\"") &&
                strstr(b, "\"data\":\"m100\"") && !strstr(b, "\"data\":\"m101\"");
    }
    printf("%d polls with cursor 0 over %d messages: %d full answers, %ld Redis reads\n", N, MSGS,
           full, reads);
    assert_int_equal(full, N);
    /* Without sharing it would be one read per poll (and a sync read per
     * worker); clients arrive over a few loop turns, so a few reads. */
    assert_true(reads < N / 5);
    it_multi_free(c, N);
    free(c);
    free(ports);
    free(reqs);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_forged_frame_does_not_silence_the_channel),
        cmocka_unit_test(test_a_channel_quiet_for_longer_than_the_ttl_reports_no_missed),
        cmocka_unit_test(test_deleting_the_newest_entries_gives_missed_and_no_spinning),
        cmocka_unit_test(test_an_emptied_stream_gives_missed),
        cmocka_unit_test(test_polls_at_the_same_cursor_share_one_read),
    };
    return it_finish(
        cmocka_run_group_tests_name("cursor edges (redis + 2 nodes)", tests, setup, teardown));
}

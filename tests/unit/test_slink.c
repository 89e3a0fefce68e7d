/* Unit tests for core/store/hl_slink.c: how a shard link reads Redis's
 * replies. The link is brought up on no socket (hl_slink_test_up) and
 * fed RESP2 bytes as a connection would deliver them
 * (hl_slink_feed); hiredis's own reader parses them, so what is tested
 * is the dispatcher a real connection runs. Every callback appends a
 * line to a transcript, which each test compares whole. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl_common.h"
#include "hl_config.h"
#include "hl_rlink.h"
#include "hl_slink.h"

/* ---- The fixture -------------------------------------------------------- */

typedef struct fixture {
    struct event_base *base;
    hl_config cfg;
    hl_slink link;
    char log[8192]; /* the transcript */
    size_t loglen;
    char payload[64]; /* the last message's payload, raw */
    size_t payload_len;
    int reconnect_on_message; /* the message callback calls hl_slink_reconnect */
} fixture;

/* Appends to the transcript; bytes outside printable ASCII as \xNN. */
static void note_bytes(fixture *f, const char *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        size_t room = sizeof(f->log) - f->loglen;
        int w = c >= 0x20 && c < 0x7f ? snprintf(f->log + f->loglen, room, "%c", c)
                                      : snprintf(f->log + f->loglen, room, "\\x%02X", c);
        assert_true(w > 0 && (size_t)w < room);
        f->loglen += (size_t)w;
    }
}

static void note(fixture *f, const char *text) {
    note_bytes(f, text, strlen(text));
}

static void on_up(hl_slink *l, void *ud) {
    (void)l;
    note(ud, "up;");
}

static void on_down(hl_slink *l, void *ud) {
    (void)l;
    note(ud, "down;");
}

static void on_subscribed(hl_slink *l, void *ud, const char *ch, size_t n) {
    (void)l;
    note(ud, "sub ");
    note_bytes(ud, ch, n);
    note(ud, ";");
}

static void on_unsubscribed(hl_slink *l, void *ud, const char *ch, size_t n, int solicited) {
    (void)l;
    note(ud, "unsub ");
    note_bytes(ud, ch, n);
    note(ud, solicited ? " ours;" : " redis;");
}

static void on_message(hl_slink *l, void *ud, const char *ch, size_t n, const char *p, size_t len) {
    fixture *f = ud;
    note(f, "msg ");
    note_bytes(f, ch, n);
    note(f, " ");
    note_bytes(f, p, len);
    note(f, ";");
    assert_true(len <= sizeof(f->payload));
    memcpy(f->payload, p, len);
    f->payload_len = len;
    if (f->reconnect_on_message) hl_slink_reconnect(l, "asked by the test");
}

static void on_refused(hl_slink *l, void *ud, const char *ch, size_t n, const char *err) {
    (void)l;
    note(ud, "refused ");
    note_bytes(ud, ch, n);
    note(ud, " ");
    note(ud, err);
    note(ud, ";");
}

static const hl_slink_events events = {
    .up = on_up,
    .down = on_down,
    .subscribed = on_subscribed,
    .unsubscribed = on_unsubscribed,
    .message = on_message,
    .refused = on_refused,
};

/* A link initialised, not yet up. */
static int setup_down(void **state) {
    fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->base = event_base_new();
    assert_non_null(f->base);
    hl_config_defaults(&f->cfg);
    assert_int_equal(hl_slink_init(&f->link, "shard", &f->cfg, f->base, &events, f), HL_OK);
    /* Never started: only the logs say where. */
    hl_slink_set_addr(&f->link, "127.0.0.1", 7001);
    *state = f;
    return 0;
}

/* A link up, with nothing queued (no password, no client name). */
static int setup_up(void **state) {
    setup_down(state);
    fixture *f = *state;
    assert_int_equal(hl_slink_test_up(&f->link), HL_OK);
    assert_string_equal(f->log, "up;");
    f->loglen = 0;
    f->log[0] = '\0';
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    hl_slink_stop(&f->link);
    event_base_free(f->base);
    free(f);
    return 0;
}

static int feed(fixture *f, const char *resp) {
    return hl_slink_feed(&f->link, resp, strlen(resp));
}

/* What the link has queued for Redis so far. */
static const char *sent(const fixture *f) {
    return f->link.c->obuf;
}

static void sub(fixture *f, const char *ch) {
    assert_int_equal(hl_slink_subscribe(&f->link, ch, strlen(ch)), HL_OK);
}

static void unsub(fixture *f, const char *ch) {
    assert_int_equal(hl_slink_unsubscribe(&f->link, ch, strlen(ch)), HL_OK);
}

/* One heartbeat tick, as the timer would run it. */
static void heartbeat(fixture *f) {
    event_active(f->link.hb_timer, EV_TIMEOUT, 0);
    event_base_loop(f->base, EVLOOP_NONBLOCK);
}

#define SSUB_A "*3\r\n$10\r\nssubscribe\r\n$1\r\na\r\n:1\r\n"
#define SSUB_B "*3\r\n$10\r\nssubscribe\r\n$1\r\nb\r\n:2\r\n"
#define SUNSUB_A "*3\r\n$12\r\nsunsubscribe\r\n$1\r\na\r\n:1\r\n"
#define SUNSUB_B "*3\r\n$12\r\nsunsubscribe\r\n$1\r\nb\r\n:0\r\n"
#define SMSG_A "*3\r\n$8\r\nsmessage\r\n$1\r\na\r\n$5\r\nhello\r\n"

/* ---- Subscribing and messages ------------------------------------------- */

static void test_slink_subscribe_sends_one_channel_per_command(void **state) {
    fixture *f = *state;
    sub(f, "a");
    sub(f, "holdline:news");
    unsub(f, "a");
    assert_string_equal(sent(f), "*2\r\n$10\r\nSSUBSCRIBE\r\n$1\r\na\r\n"
                                 "*2\r\n$10\r\nSSUBSCRIBE\r\n$13\r\nholdline:news\r\n"
                                 "*2\r\n$12\r\nSUNSUBSCRIBE\r\n$1\r\na\r\n");
    assert_int_equal(hl_slink_pending(&f->link), 3);
}

static void test_slink_ssubscribe_push_answers_the_oldest_ssubscribe(void **state) {
    fixture *f = *state;
    sub(f, "a");
    sub(f, "b");
    assert_int_equal(feed(f, SSUB_A), HL_OK);
    assert_int_equal(hl_slink_pending(&f->link), 1);
    assert_int_equal(feed(f, SSUB_B), HL_OK);
    assert_string_equal(f->log, "sub a;sub b;");
    assert_int_equal(hl_slink_pending(&f->link), 0);
}

static void test_slink_smessage_takes_no_answer_off(void **state) {
    fixture *f = *state;
    sub(f, "a");
    assert_int_equal(feed(f, SSUB_A), HL_OK);
    sub(f, "b");
    assert_int_equal(feed(f, SMSG_A SMSG_A), HL_OK);
    assert_int_equal(hl_slink_pending(&f->link), 1);
    assert_int_equal(feed(f, SSUB_B), HL_OK);
    assert_string_equal(f->log, "sub a;msg a hello;msg a hello;sub b;");
    assert_int_equal(hl_slink_pending(&f->link), 0);
}

static void test_slink_ssubscribe_of_another_channel_is_out_of_step(void **state) {
    fixture *f = *state;
    sub(f, "a");
    assert_int_equal(feed(f, SSUB_B), HL_ERR);
    assert_string_equal(f->log, "down;");
    assert_false(hl_slink_is_up(&f->link));
}

/* ---- Unsubscribing: ours or Redis's ------------------------------------- */

static void test_slink_sunsubscribe_answering_ours_is_solicited(void **state) {
    fixture *f = *state;
    sub(f, "a");
    unsub(f, "a");
    assert_int_equal(feed(f, SSUB_A SUNSUB_A), HL_OK);
    assert_string_equal(f->log, "sub a;unsub a ours;");
    assert_int_equal(hl_slink_pending(&f->link), 0);
}

static void test_slink_sunsubscribe_redis_sent_itself_is_unsolicited(void **state) {
    fixture *f = *state;
    sub(f, "a");
    sub(f, "b");
    assert_int_equal(feed(f, SSUB_A SSUB_B), HL_OK);
    /* Nothing awaited: the slot of a moved away. */
    assert_int_equal(feed(f, SUNSUB_A), HL_OK);
    assert_int_equal(hl_slink_pending(&f->link), 0);
    /* Our SUNSUBSCRIBE b awaits its answer when Redis drops a on its own:
     * a's push is not b's answer and takes nothing off. */
    unsub(f, "b");
    assert_int_equal(feed(f, SUNSUB_A), HL_OK);
    assert_int_equal(hl_slink_pending(&f->link), 1);
    assert_int_equal(feed(f, SUNSUB_B), HL_OK);
    assert_int_equal(hl_slink_pending(&f->link), 0);
    assert_string_equal(f->log, "sub a;sub b;unsub a redis;unsub a redis;unsub b ours;");
}

static void test_slink_unsolicited_sunsubscribe_between_ssubscribe_answers(void **state) {
    fixture *f = *state;
    sub(f, "a");
    sub(f, "b");
    assert_int_equal(feed(f, SSUB_A SUNSUB_A SSUB_B), HL_OK);
    assert_string_equal(f->log, "sub a;unsub a redis;sub b;");
    assert_int_equal(hl_slink_pending(&f->link), 0);
}

static void test_slink_sunsubscribe_while_ours_of_the_same_channel_is_awaited(void **state) {
    fixture *f = *state;
    sub(f, "a");
    assert_int_equal(feed(f, SSUB_A), HL_OK);
    unsub(f, "a");
    /* Redis's own push comes first and is taken for the answer; the
     * answer then counts as Redis's. Either way a is no longer held. */
    assert_int_equal(feed(f, SUNSUB_A SUNSUB_A), HL_OK);
    assert_string_equal(f->log, "sub a;unsub a ours;unsub a redis;");
    assert_int_equal(hl_slink_pending(&f->link), 0);
}

/* ---- Errors ------------------------------------------------------------- */

static void test_slink_moved_refuses_that_subscribe_and_the_link_stays_up(void **state) {
    fixture *f = *state;
    sub(f, "a");
    sub(f, "holdline:news");
    sub(f, "b");
    assert_int_equal(feed(f, SSUB_A "-MOVED 15811 127.0.0.1:7003\r\n" SSUB_B), HL_OK);
    assert_string_equal(f->log, "sub a;refused holdline:news MOVED 15811 127.0.0.1:7003;sub b;");
    assert_true(hl_slink_is_up(&f->link));
    assert_int_equal(hl_slink_pending(&f->link), 0);
}

static void test_slink_clusterdown_refuses_the_unsubscribe_of_its_channel(void **state) {
    fixture *f = *state;
    sub(f, "a");
    sub(f, "b");
    assert_int_equal(feed(f, SSUB_A SSUB_B), HL_OK);
    unsub(f, "b");
    unsub(f, "a");
    assert_int_equal(feed(f, "-CLUSTERDOWN The cluster is down\r\n" SUNSUB_A), HL_OK);
    assert_string_equal(f->log,
                        "sub a;sub b;refused b CLUSTERDOWN The cluster is down;unsub a ours;");
    assert_true(hl_slink_is_up(&f->link));
}

static void test_slink_an_error_answering_nothing_is_out_of_step(void **state) {
    fixture *f = *state;
    assert_int_equal(feed(f, "-ERR max number of clients reached\r\n"), HL_ERR);
    assert_string_equal(f->log, "down;");
}

static void test_slink_auth_is_sent_first_and_its_ok_taken_off(void **state) {
    fixture *f = *state;
    strcpy(f->cfg.redis_password, "s3cret pass");
    hl_slink_set_client_name(&f->link, "holdline-w0-shard");
    assert_int_equal(hl_slink_test_up(&f->link), HL_OK);
    sub(f, "a");
    assert_string_equal(sent(f),
                        "*2\r\n$4\r\nAUTH\r\n$11\r\ns3cret pass\r\n"
                        "*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n$17\r\nholdline-w0-shard\r\n"
                        "*2\r\n$10\r\nSSUBSCRIBE\r\n$1\r\na\r\n");
    assert_int_equal(hl_slink_pending(&f->link), 3);
    assert_int_equal(feed(f, "+OK\r\n+OK\r\n" SSUB_A), HL_OK);
    assert_string_equal(f->log, "up;sub a;");
    assert_int_equal(hl_slink_pending(&f->link), 0);
}

static void test_slink_auth_refused_closes_the_link_and_refuses_nothing(void **state) {
    fixture *f = *state;
    strcpy(f->cfg.redis_password, "wrong");
    assert_int_equal(hl_slink_test_up(&f->link), HL_OK);
    sub(f, "a");
    assert_int_equal(feed(f, "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
                             "-NOAUTH Authentication required.\r\n"),
                     HL_ERR);
    assert_string_equal(f->log, "up;down;");
    assert_false(hl_slink_is_up(&f->link));
    assert_int_equal(hl_slink_pending(&f->link), 0);
    /* The backoff goes on over the next connect, which AUTH may refuse
     * again. */
    assert_int_equal(f->link.failures, 1);
    assert_int_equal(hl_slink_test_up(&f->link), HL_OK);
    assert_int_equal(f->link.failures, 1);
    assert_int_equal(feed(f, "-WRONGPASS invalid username-password pair\r\n"), HL_ERR);
    assert_int_equal(f->link.failures, 2);
    assert_int_equal(hl_slink_test_up(&f->link), HL_OK);
    assert_int_equal(feed(f, "+OK\r\n"), HL_OK);
    assert_int_equal(f->link.failures, 0);
}

static void test_slink_client_setname_refused_is_logged_only(void **state) {
    fixture *f = *state;
    hl_slink_set_client_name(&f->link, "x");
    assert_int_equal(hl_slink_test_up(&f->link), HL_OK);
    assert_int_equal(feed(f, "-ERR unknown command 'CLIENT'\r\n"), HL_OK);
    assert_string_equal(f->log, "up;");
    assert_true(hl_slink_is_up(&f->link));
}

/* ---- The heartbeat ------------------------------------------------------ */

static void test_slink_heartbeat_pong_in_pubsub_mode(void **state) {
    fixture *f = *state;
    heartbeat(f);
    assert_string_equal(sent(f), "*2\r\n$4\r\nPING\r\n$8\r\nholdline\r\n");
    assert_int_equal(f->link.hb_unanswered, 1);
    assert_int_equal(hl_slink_pending(&f->link), 1);
    assert_int_equal(feed(f, "*2\r\n$4\r\npong\r\n$8\r\nholdline\r\n"), HL_OK);
    assert_int_equal(f->link.hb_unanswered, 0);
    assert_int_equal(hl_slink_pending(&f->link), 0);
    assert_string_equal(f->log, "");
}

static void test_slink_heartbeat_answer_outside_pubsub_mode(void **state) {
    fixture *f = *state;
    /* After Redis unsubscribed the last channel, PING x answers x; a
     * plain PING would answer +PONG. Both answer the heartbeat. */
    heartbeat(f);
    heartbeat(f);
    assert_int_equal(f->link.hb_unanswered, 2);
    assert_int_equal(feed(f, "$8\r\nholdline\r\n"), HL_OK);
    assert_int_equal(f->link.hb_unanswered, 0);
    assert_int_equal(feed(f, "+PONG\r\n"), HL_OK);
    assert_int_equal(hl_slink_pending(&f->link), 0);
    assert_true(hl_slink_is_up(&f->link));
}

static void test_slink_pong_answers_only_a_ping(void **state) {
    fixture *f = *state;
    sub(f, "a");
    assert_int_equal(feed(f, "*2\r\n$4\r\npong\r\n$8\r\nholdline\r\n"), HL_ERR);
    assert_string_equal(f->log, "down;");
}

static void test_slink_heartbeats_unanswered_close_the_link(void **state) {
    fixture *f = *state;
    for (int i = 0; i < HL_RLINK_HB_MISSES; i++)
        heartbeat(f);
    assert_true(hl_slink_is_up(&f->link));
    assert_int_equal(hl_slink_pending(&f->link), HL_RLINK_HB_MISSES);
    heartbeat(f);
    assert_string_equal(f->log, "down;");
    assert_false(hl_slink_is_up(&f->link));
    assert_int_equal(hl_slink_pending(&f->link), 0);
    assert_int_equal(hl_slink_subscribe(&f->link, "a", 1), HL_ERR);
}

static void test_slink_messages_answer_no_heartbeat(void **state) {
    fixture *f = *state;
    sub(f, "a");
    assert_int_equal(feed(f, SSUB_A), HL_OK);
    for (int i = 0; i < HL_RLINK_HB_MISSES; i++) {
        heartbeat(f);
        assert_int_equal(feed(f, SMSG_A), HL_OK);
    }
    heartbeat(f);
    assert_false(hl_slink_is_up(&f->link));
}

/* ---- Framing ------------------------------------------------------------ */

static void test_slink_frames_split_byte_by_byte_read_as_whole(void **state) {
    fixture *f = *state;
    sub(f, "a");
    unsub(f, "a");
    heartbeat(f);
    const char stream[] = SSUB_A SMSG_A SUNSUB_A "*2\r\n$4\r\npong\r\n$8\r\nholdline\r\n";
    size_t n = sizeof(stream) - 1;
    size_t first = strlen(SSUB_A);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(hl_slink_feed(&f->link, stream + i, 1), HL_OK);
        /* Nothing is delivered before the last byte of the first frame. */
        if (i + 1 < first) assert_string_equal(f->log, "");
        if (i + 1 == first) assert_string_equal(f->log, "sub a;");
    }
    assert_string_equal(f->log, "sub a;msg a hello;unsub a ours;");
    assert_int_equal(hl_slink_pending(&f->link), 0);
    assert_int_equal(f->link.hb_unanswered, 0);
}

static void test_slink_binary_channel_and_payload_keep_every_byte(void **state) {
    fixture *f = *state;
    static const char ch[] = "x\r\n\0y";
    assert_int_equal(hl_slink_subscribe(&f->link, ch, 5), HL_OK);
    static const char cmd[] = "*2\r\n$10\r\nSSUBSCRIBE\r\n$5\r\nx\r\n\0y\r\n";
    assert_int_equal(sdslen(f->link.c->obuf), sizeof(cmd) - 1);
    assert_memory_equal(f->link.c->obuf, cmd, sizeof(cmd) - 1);
    static const char in[] =
        "*3\r\n$10\r\nssubscribe\r\n$5\r\nx\r\n\0y\r\n:1\r\n"
        "*3\r\n$8\r\nsmessage\r\n$5\r\nx\r\n\0y\r\n$9\r\n\0a\r\nb\r\n\0\x1e\r\n";
    assert_int_equal(hl_slink_feed(&f->link, in, sizeof(in) - 1), HL_OK);
    assert_string_equal(f->log, "sub x\\x0D\\x0A\\x00y;msg x\\x0D\\x0A\\x00y "
                                "\\x00a\\x0D\\x0Ab\\x0D\\x0A\\x00\\x1E;");
    assert_int_equal(f->payload_len, 9);
    assert_memory_equal(f->payload, "\0a\r\nb\r\n\0\x1e", 9);
}

static void test_slink_empty_payload_is_a_message(void **state) {
    fixture *f = *state;
    sub(f, "a");
    assert_int_equal(feed(f, SSUB_A "*3\r\n$8\r\nsmessage\r\n$1\r\na\r\n$0\r\n\r\n"), HL_OK);
    assert_string_equal(f->log, "sub a;msg a ;");
    assert_int_equal(f->payload_len, 0);
}

/* ---- Replies that fit nothing ------------------------------------------- */

static void test_slink_non_array_reply_table(void **state) {
    (void)state;
    static const struct {
        const char *name;
        int awaiting; /* 0 nothing, 1 SSUBSCRIBE a, 2 PING */
        const char *resp;
        int rc;
        const char *log;
    } cases[] = {
        {"an integer answering nothing", 0, ":1\r\n", HL_ERR, "down;"},
        {"a status answering nothing", 0, "+OK\r\n", HL_ERR, "down;"},
        {"a nil answering nothing", 0, "$-1\r\n", HL_ERR, "down;"},
        {"an integer answering SSUBSCRIBE", 1, ":1\r\n", HL_ERR, "down;"},
        {"a bulk answering SSUBSCRIBE", 1, "$1\r\na\r\n", HL_ERR, "down;"},
        {"a nil array answering SSUBSCRIBE", 1, "*-1\r\n", HL_ERR, "down;"},
        {"an empty array answering SSUBSCRIBE", 1, "*0\r\n", HL_ERR, "down;"},
        {"a bulk answering PING", 2, "$8\r\nholdline\r\n", HL_OK, ""},
        {"an integer answering PING", 2, ":7\r\n", HL_OK, ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        void *st;
        setup_up(&st);
        fixture *f = st;
        if (cases[i].awaiting == 1) sub(f, "a");
        if (cases[i].awaiting == 2) heartbeat(f);
        int rc = feed(f, cases[i].resp);
        if (rc != cases[i].rc || strcmp(f->log, cases[i].log) != 0)
            fail_msg("%s: rc %d, log '%s'", cases[i].name, rc, f->log);
        teardown(&st);
    }
}

static void test_slink_malformed_push_table(void **state) {
    (void)state;
    static const struct {
        const char *name;
        const char *resp;
    } cases[] = {
        {"smessage without its payload", "*2\r\n$8\r\nsmessage\r\n$1\r\na\r\n"},
        {"smessage with an integer payload", "*3\r\n$8\r\nsmessage\r\n$1\r\na\r\n:1\r\n"},
        {"smessage with an array channel", "*3\r\n$8\r\nsmessage\r\n*0\r\n$1\r\nx\r\n"},
        {"ssubscribe with a nil channel", "*3\r\n$10\r\nssubscribe\r\n$-1\r\n:1\r\n"},
        {"sunsubscribe without its count", "*2\r\n$12\r\nsunsubscribe\r\n$1\r\na\r\n"},
        {"a classic message", "*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\nx\r\n"},
        {"an array led by an integer", "*2\r\n:1\r\n$1\r\na\r\n"},
        {"not RESP", "?what\r\n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        void *st;
        setup_up(&st);
        fixture *f = st;
        sub(f, "a");
        int rc = feed(f, cases[i].resp);
        if (rc != HL_ERR || strcmp(f->log, "down;") != 0)
            fail_msg("%s: rc %d, log '%s'", cases[i].name, rc, f->log);
        assert_int_equal(hl_slink_pending(&f->link), 0);
        teardown(&st);
    }
}

/* ---- The link's life ---------------------------------------------------- */

static void test_slink_down_link_sends_nothing(void **state) {
    fixture *f = *state;
    assert_false(hl_slink_is_up(&f->link));
    assert_int_equal(hl_slink_subscribe(&f->link, "a", 1), HL_ERR);
    assert_int_equal(hl_slink_unsubscribe(&f->link, "a", 1), HL_ERR);
    assert_int_equal(hl_slink_feed(&f->link, SSUB_A, strlen(SSUB_A)), HL_ERR);
    assert_int_equal(hl_slink_gen(&f->link), 0);
}

static void test_slink_gen_counts_connections_up(void **state) {
    fixture *f = *state;
    assert_int_equal(hl_slink_gen(&f->link), 1);
    assert_int_equal(feed(f, ":1\r\n"), HL_ERR);
    assert_int_equal(hl_slink_gen(&f->link), 1);
    assert_int_equal(hl_slink_test_up(&f->link), HL_OK);
    assert_int_equal(hl_slink_gen(&f->link), 2);
    assert_string_equal(f->log, "down;up;");
}

static void test_slink_reconnect_from_a_callback_delivers_no_more(void **state) {
    fixture *f = *state;
    sub(f, "a");
    f->reconnect_on_message = 1;
    assert_int_equal(feed(f, SSUB_A SMSG_A SMSG_A), HL_OK);
    assert_string_equal(f->log, "sub a;msg a hello;");
    assert_true(hl_slink_is_up(&f->link));
    assert_int_equal(hl_slink_subscribe(&f->link, "b", 1), HL_OK);
    /* The close comes on the next turn of the loop. */
    event_base_loop(f->base, EVLOOP_NONBLOCK);
    assert_string_equal(f->log, "sub a;msg a hello;down;");
    assert_false(hl_slink_is_up(&f->link));
    assert_int_equal(hl_slink_pending(&f->link), 0);
}

static void test_slink_set_addr_elsewhere_closes_the_connection_next_turn(void **state) {
    fixture *f = *state;
    sub(f, "a");
    hl_slink_set_addr(&f->link, "127.0.0.1", 7001); /* where it is: nothing */
    event_base_loop(f->base, EVLOOP_NONBLOCK);
    assert_true(hl_slink_is_up(&f->link));
    hl_slink_set_addr(&f->link, "127.0.0.2", 7002);
    /* Until it closes, the link is where it was. */
    assert_true(hl_slink_is_up(&f->link));
    assert_string_equal(f->link.host, "127.0.0.1");
    assert_int_equal(feed(f, SSUB_A), HL_OK);
    assert_string_equal(f->log, "");
    event_base_loop(f->base, EVLOOP_NONBLOCK);
    assert_string_equal(f->log, "down;");
    assert_false(hl_slink_is_up(&f->link));
    assert_int_equal(f->link.next_port, 7002);
}

static void test_slink_stop_with_commands_and_a_partial_frame_pending(void **state) {
    fixture *f = *state;
    char ch[32];
    for (int i = 0; i < 100; i++) {
        int n = snprintf(ch, sizeof(ch), "channel-%d", i);
        assert_int_equal(hl_slink_subscribe(&f->link, ch, (size_t)n), HL_OK);
    }
    heartbeat(f);
    assert_int_equal(feed(f, "*3\r\n$10\r\nssubscribe\r\n$9\r\nchann"), HL_OK);
    assert_int_equal(hl_slink_pending(&f->link), 101);
    hl_slink_stop(&f->link);
    assert_false(hl_slink_is_up(&f->link));
    assert_int_equal(hl_slink_pending(&f->link), 0);
    assert_string_equal(f->log, "");
    /* teardown stops it again: a no-op. */
}

int main(void) {
#define UP(t) cmocka_unit_test_setup_teardown(t, setup_up, teardown)
#define DOWN(t) cmocka_unit_test_setup_teardown(t, setup_down, teardown)
    const struct CMUnitTest tests[] = {
        UP(test_slink_subscribe_sends_one_channel_per_command),
        UP(test_slink_ssubscribe_push_answers_the_oldest_ssubscribe),
        UP(test_slink_smessage_takes_no_answer_off),
        UP(test_slink_ssubscribe_of_another_channel_is_out_of_step),
        UP(test_slink_sunsubscribe_answering_ours_is_solicited),
        UP(test_slink_sunsubscribe_redis_sent_itself_is_unsolicited),
        UP(test_slink_unsolicited_sunsubscribe_between_ssubscribe_answers),
        UP(test_slink_sunsubscribe_while_ours_of_the_same_channel_is_awaited),
        UP(test_slink_moved_refuses_that_subscribe_and_the_link_stays_up),
        UP(test_slink_clusterdown_refuses_the_unsubscribe_of_its_channel),
        UP(test_slink_an_error_answering_nothing_is_out_of_step),
        DOWN(test_slink_auth_is_sent_first_and_its_ok_taken_off),
        DOWN(test_slink_auth_refused_closes_the_link_and_refuses_nothing),
        DOWN(test_slink_client_setname_refused_is_logged_only),
        UP(test_slink_heartbeat_pong_in_pubsub_mode),
        UP(test_slink_heartbeat_answer_outside_pubsub_mode),
        UP(test_slink_pong_answers_only_a_ping),
        UP(test_slink_heartbeats_unanswered_close_the_link),
        UP(test_slink_messages_answer_no_heartbeat),
        UP(test_slink_frames_split_byte_by_byte_read_as_whole),
        UP(test_slink_binary_channel_and_payload_keep_every_byte),
        UP(test_slink_empty_payload_is_a_message),
        cmocka_unit_test(test_slink_non_array_reply_table),
        cmocka_unit_test(test_slink_malformed_push_table),
        DOWN(test_slink_down_link_sends_nothing),
        UP(test_slink_gen_counts_connections_up),
        UP(test_slink_reconnect_from_a_callback_delivers_no_more),
        UP(test_slink_set_addr_elsewhere_closes_the_connection_next_turn),
        UP(test_slink_stop_with_commands_and_a_partial_frame_pending),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for core/hl_msgcache.c: a channel's ring of recent messages,
 * bounded by count and by bytes, searched by id. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hl_common.h"
#include "hl_msgcache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static hl_msg *msg(uint64_t ms, const char *data) {
    hl_msg *m = hl_msg_new((hl_sid){ms, 0}, "news", 4, data, strlen(data));
    assert_non_null(m);
    return m;
}

static void test_msgcache_msg_new_encodes_the_answer_object(void **state) {
    (void)state;
    hl_msg *m = hl_msg_new((hl_sid){1732300000000ULL, 3}, "a.b", 3, "say \"hi\"\n", 9);
    assert_non_null(m);
    assert_string_equal(
        m->json, "{\"channel\":\"a.b\",\"id\":\"1732300000000-3\",\"data\":\"say \\\"hi\\\"\\n\"}");
    assert_int_equal(m->len, strlen(m->json));
    free(m);
}

static void test_msgcache_keeps_the_newest_cap_messages_in_order(void **state) {
    (void)state;
    hl_msgcache c;
    hl_msgcache_init(&c, 4, 1 << 20);
    hl_sid dropped = {0, 0};
    for (uint64_t i = 1; i <= 4; i++)
        assert_int_equal(hl_msgcache_push(&c, msg(i, "x"), &dropped), 0);
    for (uint64_t i = 5; i <= 10; i++) {
        assert_int_equal(hl_msgcache_push(&c, msg(i, "x"), &dropped), 1);
        assert_true(dropped.ms == i - 4);
    }
    assert_int_equal(c.count, 4);
    for (size_t i = 0; i < 4; i++)
        assert_true(hl_msgcache_at(&c, i)->id.ms == 7 + i);
    hl_msgcache_free(&c);
    hl_msgcache_free(&c); /* twice is fine */
}

static void test_msgcache_drops_oldest_to_stay_under_max_bytes(void **state) {
    (void)state;
    hl_msgcache c;
    hl_msg *probe = msg(0, "0123456789");
    size_t one = probe->len;
    free(probe);
    hl_msgcache_init(&c, 100, 3 * one);
    hl_sid dropped;
    for (uint64_t i = 1; i <= 3; i++)
        assert_int_equal(hl_msgcache_push(&c, msg(i, "0123456789"), &dropped), 0);
    assert_int_equal(hl_msgcache_push(&c, msg(4, "0123456789"), &dropped), 1);
    assert_true(dropped.ms == 1);
    assert_int_equal(c.count, 3);
    assert_true(c.bytes <= 3 * one);
    /* One message bigger than the limit is still kept, alone. */
    char big[4096];
    memset(big, 'b', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(hl_msgcache_push(&c, msg(5, big), &dropped), 1);
    assert_true(dropped.ms == 4);
    assert_int_equal(c.count, 1);
    assert_true(hl_msgcache_at(&c, 0)->id.ms == 5);
    hl_msgcache_free(&c);
}

static void test_msgcache_cap_zero_keeps_nothing(void **state) {
    (void)state;
    hl_msgcache c;
    hl_msgcache_init(&c, 0, 1 << 20);
    hl_sid dropped = {0, 0};
    assert_int_equal(hl_msgcache_push(&c, msg(9, "x"), &dropped), 1);
    assert_true(dropped.ms == 9);
    assert_int_equal(c.count, 0);
    assert_int_equal(hl_msgcache_after(&c, (hl_sid){0, 0}), 0);
    hl_msgcache_free(&c);
}

static void test_msgcache_after_finds_the_first_newer_message(void **state) {
    (void)state;
    hl_msgcache c;
    hl_msgcache_init(&c, 8, 1 << 20);
    hl_sid dropped;
    /* Wrap the ring: ids 10, 20, ..., 120, the last 8 kept (50..120). */
    for (uint64_t i = 1; i <= 12; i++)
        hl_msgcache_push(&c, msg(i * 10, "x"), &dropped);
    assert_int_equal(hl_msgcache_after(&c, (hl_sid){0, 0}), 0);
    assert_int_equal(hl_msgcache_after(&c, (hl_sid){49, UINT64_MAX}), 0);
    assert_int_equal(hl_msgcache_after(&c, (hl_sid){50, 0}), 1);
    assert_int_equal(hl_msgcache_after(&c, (hl_sid){55, 0}), 1);
    assert_int_equal(hl_msgcache_after(&c, (hl_sid){110, 0}), 7);
    assert_int_equal(hl_msgcache_after(&c, (hl_sid){120, 0}), 8);
    assert_int_equal(hl_msgcache_after(&c, (hl_sid){UINT64_MAX, UINT64_MAX}), 8);
    for (uint64_t probe = 0; probe <= 130; probe++) {
        size_t i = hl_msgcache_after(&c, (hl_sid){probe, 0});
        if (i < c.count) assert_true(hl_msgcache_at(&c, i)->id.ms > probe);
        if (i > 0) assert_true(hl_msgcache_at(&c, i - 1)->id.ms <= probe);
    }
    hl_msgcache_free(&c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_msgcache_msg_new_encodes_the_answer_object),
        cmocka_unit_test(test_msgcache_keeps_the_newest_cap_messages_in_order),
        cmocka_unit_test(test_msgcache_drops_oldest_to_stay_under_max_bytes),
        cmocka_unit_test(test_msgcache_cap_zero_keeps_nothing),
        cmocka_unit_test(test_msgcache_after_finds_the_first_newer_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

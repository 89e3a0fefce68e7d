/* Unit: Redis Cluster key slots and the epoch tags (hl_slot). The
 * vectors were checked against CLUSTER KEYSLOT of redis-server 7.0.15
 * (research/redis-cluster-and-hiredis.md §7.3). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "hl_common.h"
#include "hl_rkeys.h"
#include "hl_slot.h"

static void test_slot_crc16_is_xmodem(void **state) {
    (void)state;
    assert_int_equal(hl_slot_crc16("123456789", 9), 0x31C3);
    assert_int_equal(hl_slot_crc16("", 0), 0);
}

static void test_slot_of_follows_the_hash_tag_rule(void **state) {
    static const struct {
        const char *key;
        unsigned slot;
    } cases[] = {
        {"foo", 12182},
        {"{06S}", 0},
        {"a{}b", 13694},      /* empty tag: the whole key */
        {"{a}b}:log", 15495}, /* the first '}' after the first '{' */
        {"{holdline:news}:log", 15811},
        {"holdline:news", 15811},
        {"holdline:epoch", 11260},
    };
    (void)state;
    for (size_t i = 0; i < HL_ARRAY_LEN(cases); i++) {
        unsigned got = hl_slot_of(cases[i].key, strlen(cases[i].key));
        if (got != cases[i].slot) fail_msg("'%s': %u, want %u", cases[i].key, got, cases[i].slot);
    }
    /* A lone '{', or a '}' before the '{': the whole key. */
    assert_int_equal(hl_slot_of("a{b", 3), hl_slot_crc16("a{b", 3) & (HL_SLOTS - 1));
    assert_int_equal(hl_slot_of("}a{", 3), hl_slot_crc16("}a{", 3) & (HL_SLOTS - 1));
    /* Only the n bytes given are read. */
    assert_int_equal(hl_slot_of("{a}", 2), hl_slot_crc16("{a", 2) & (HL_SLOTS - 1));
}

static void test_slot_tags_cover_every_slot(void **state) {
    (void)state;
    hl_slot_tags *t = malloc(sizeof(*t));
    assert_non_null(t);
    long tried = hl_slot_tags_build(t);
    /* The research note counted 73,033 CRC16s for the enumeration. */
    assert_int_equal(tried, 73033);
    for (unsigned s = 0; s < HL_SLOTS; s++) {
        size_t n = strlen(t->tag[s]);
        if (n == 0 || n > HL_SLOT_TAG_MAX) fail_msg("slot %u has no tag", s);
        char key[32];
        snprintf(key, sizeof(key), "holdline:epoch:{%s}", t->tag[s]);
        if (hl_slot_of(key, strlen(key)) != s) fail_msg("slot %u: '%s' is elsewhere", s, key);
    }
    /* The format: a few entries that must never change. */
    assert_string_equal(t->tag[hl_slot_of("0", 1)], "0");
    assert_string_equal(t->tag[0], "06S");
    free(t);
}

/* Cluster mode's per-slot names land in their slot, and a channel's
 * stream, idempotency keys and shard channel share one. */
static void test_slot_keys_land_where_they_should(void **state) {
    (void)state;
    hl_slot_tags *t = malloc(sizeof(*t));
    assert_non_null(t);
    hl_slot_tags_build(t);
    hl_rkeys k;
    hl_rkeys_init(&k, "holdline:", "node-a", 3);
    char key[HL_RKEY_MAX];
    for (unsigned s = 0; s < HL_SLOTS; s += 97) {
        hl_rkeys_slot_epoch(&k, t->tag[s], key);
        assert_int_equal(hl_slot_of(key, strlen(key)), s);
        hl_rkeys_slot_ctl(&k, t->tag[s], key);
        assert_int_equal(hl_slot_of(key, strlen(key)), s);
    }
    hl_rkeys_slot_epoch(&k, t->tag[0], key);
    assert_string_equal(key, "holdline:epoch:{06S}");
    static const char *const chans[] = {"news", "user.42.inbox", "a-b_c~d:e"};
    for (size_t i = 0; i < HL_ARRAY_LEN(chans); i++) {
        char ch[HL_RKEY_MAX], log[HL_RKEY_MAX], idem[HL_RKEY_MAX];
        hl_rkeys_channel(&k, chans[i], strlen(chans[i]), ch);
        hl_rkeys_stream(&k, chans[i], strlen(chans[i]), log);
        hl_rkeys_idem(&k, chans[i], strlen(chans[i]), "key-1", idem);
        unsigned s = hl_slot_of(ch, strlen(ch));
        assert_int_equal(hl_slot_of(log, strlen(log)), s);
        assert_int_equal(hl_slot_of(idem, strlen(idem)), s);
    }
    free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slot_crc16_is_xmodem),
        cmocka_unit_test(test_slot_of_follows_the_hash_tag_rule),
        cmocka_unit_test(test_slot_tags_cover_every_slot),
        cmocka_unit_test(test_slot_keys_land_where_they_should),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for core/hl_grant.c: which strings are channel patterns and
 * what each grants. Table-first; inputs sit in blocks of exactly their
 * length, so a read past the end is an ASan error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "hl_common.h"
#include "hl_grant.h"
#include "hl_request.h"

static char *exact_copy(const char *s, size_t n) {
    char *p = malloc(n ? n : 1);
    assert_non_null(p);
    if (n) memcpy(p, s, n);
    return p;
}

static const struct {
    const char *p;
    size_t n; /* 0: strlen */
    int valid;
} valid_cases[] = {
    {"news", 0, 1},         {"user.42.*", 0, 1}, {"*", 0, 1},           {"a*", 0, 1},
    {"A-Z_a.z~0:9", 0, 1},  {"", 0, 0},          {"**", 0, 0},          {"*a", 0, 0},
    {"user.*.inbox", 0, 0}, {"news ", 0, 0},     {"news,sports", 0, 0}, {"news/", 0, 0},
    {"caf\xc3\xa9", 0, 0},  {"a\0b", 3, 0},      {"a*\0", 3, 0},        {"\x7f*", 0, 0},
    {"%2a", 0, 0},
};

static void test_grant_valid_table(void **state) {
    (void)state;
    for (size_t i = 0; i < HL_ARRAY_LEN(valid_cases); i++) {
        size_t n = valid_cases[i].n ? valid_cases[i].n : strlen(valid_cases[i].p);
        char *p = exact_copy(valid_cases[i].p, n);
        if (hl_grant_valid(p, n) != valid_cases[i].valid)
            fail_msg("case %zu ('%s'): expected %d", i, valid_cases[i].p, valid_cases[i].valid);
        free(p);
    }
    assert_int_equal(hl_grant_valid(NULL, 0), 0);
}

static void test_grant_valid_lengths_follow_channel_names(void **state) {
    (void)state;
    char buf[HL_CHANNEL_MAX_LEN + 2];
    memset(buf, 'a', sizeof(buf));
    /* A 200-byte name is a channel; 201 is not. */
    assert_int_equal(hl_grant_valid(buf, HL_CHANNEL_MAX_LEN), 1);
    assert_int_equal(hl_grant_valid(buf, HL_CHANNEL_MAX_LEN + 1), 0);
    /* A prefix can be at most 199 bytes: a 200-byte prefix would grant only
     * itself, which is what the plain name says. */
    buf[HL_CHANNEL_MAX_LEN - 1] = '*';
    assert_int_equal(hl_grant_valid(buf, HL_CHANNEL_MAX_LEN), 1);
    buf[HL_CHANNEL_MAX_LEN - 1] = 'a';
    buf[HL_CHANNEL_MAX_LEN] = '*';
    assert_int_equal(hl_grant_valid(buf, HL_CHANNEL_MAX_LEN + 1), 0);
}

static const struct {
    const char *pattern;
    const char *channel;
    int match;
} match_cases[] = {
    {"news", "news", 1},
    {"news", "news2", 0},
    {"news", "new", 0},
    {"news", "NEWS", 0},
    {"user.42.*", "user.42.inbox", 1},
    {"user.42.*", "user.42.", 1},
    {"user.42.*", "user.420", 0},
    {"user.42.*", "user.42", 0},
    {"user.42.*", "user.4", 0},
    {"user.42.*", "xuser.42.inbox", 0},
    {"user.42*", "user.420", 1},
    {"*", "anything", 1},
    {"*", "a", 1},
    {"a*", "a", 1},
    {"a*", "b", 0},
};

static void test_grant_match_table(void **state) {
    (void)state;
    for (size_t i = 0; i < HL_ARRAY_LEN(match_cases); i++) {
        size_t pn = strlen(match_cases[i].pattern), cn = strlen(match_cases[i].channel);
        char *p = exact_copy(match_cases[i].pattern, pn);
        char *c = exact_copy(match_cases[i].channel, cn);
        assert_int_equal(hl_grant_valid(p, pn), 1);
        if (hl_grant_match(p, pn, c, cn) != match_cases[i].match)
            fail_msg("'%s' on '%s': expected %d", match_cases[i].pattern, match_cases[i].channel,
                     match_cases[i].match);
        free(p);
        free(c);
    }
}

static void test_grant_empty_pattern_grants_nothing(void **state) {
    (void)state;
    char *c = exact_copy("news", 4);
    assert_int_equal(hl_grant_match("", 0, c, 4), 0);
    free(c);
}

static void test_grants_allow_any_of_the_list(void **state) {
    (void)state;
    const char *const pat[] = {"news", "user.42.*", "chat.room1"};
    const size_t len[] = {4, 9, 10};
    hl_grants g = {pat, len, 3};
    assert_int_equal(hl_grants_allow(&g, "news", 4), 1);
    assert_int_equal(hl_grants_allow(&g, "user.42.x", 9), 1);
    assert_int_equal(hl_grants_allow(&g, "chat.room1", 10), 1);
    assert_int_equal(hl_grants_allow(&g, "chat.room10", 11), 0);
    assert_int_equal(hl_grants_allow(&g, "sports", 6), 0);
    hl_grants none = {pat, len, 0};
    assert_int_equal(hl_grants_allow(&none, "news", 4), 0);
    assert_int_equal(hl_grants_allow(NULL, "news", 4), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grant_valid_table),
        cmocka_unit_test(test_grant_valid_lengths_follow_channel_names),
        cmocka_unit_test(test_grant_match_table),
        cmocka_unit_test(test_grant_empty_pattern_grants_nothing),
        cmocka_unit_test(test_grants_allow_any_of_the_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

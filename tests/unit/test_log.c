/* Unit tests for core/hl_log.c's redaction: what a log line may quote of
 * a request never includes a token. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "hl_common.h"
#include "hl_log.h"

static const struct {
    const char *in, *out;
} cases[] = {
    {"nothing to hide", "nothing to hide"},
    {"GET /poll/news?token=abc.def.ghi&timeout=5", "GET /poll/news?token=[redacted]&timeout=5"},
    {"token=", "token="},
    {"Authorization: Bearer s3cr3t, next", "Authorization: Bearer [redacted], next"},
    {"bearer x", "bearer [redacted]"},
    {"saw eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9.c2ln here", "saw [redacted] here"},
    {"saw eyJhbGciOiJub25lIn0.eyJleHAiOjF9. here", "saw [redacted] here"},
    {"eyJ alone", "eyJ alone"},
    {"a.eyJx.y", "a.eyJx.y"},
    {"token=a token=b", "token=[redacted] token=[redacted]"},
    {"'token=x'", "'token=[redacted]'"},
};

static void test_log_redact_table(void **state) {
    (void)state;
    for (size_t i = 0; i < HL_ARRAY_LEN(cases); i++) {
        char buf[256];
        strcpy(buf, cases[i].in);
        size_t n = hl_log_redact(buf, sizeof(buf));
        assert_string_equal(buf, cases[i].out);
        assert_int_equal(n, strlen(cases[i].out));
    }
}

static void test_log_redact_cuts_rather_than_overflows(void **state) {
    (void)state;
    char buf[16];
    strcpy(buf, "token=a token=b");
    size_t n = hl_log_redact(buf, sizeof(buf));
    assert_int_equal(n, strlen(buf));
    assert_true(n < sizeof(buf));
    assert_null(strstr(buf, "=a"));
    assert_null(strstr(buf, "=b"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_redact_table),
        cmocka_unit_test(test_log_redact_cuts_rather_than_overflows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

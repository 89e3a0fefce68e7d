/* Unit tests for core/hl_errors.c: the table of every error a client can
 * get, and the README's error table, which must list exactly its rows.
 * The tests run from the repository's root (scripts/run-tests.sh), where
 * README.md is. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hl_common.h"
#include "hl_errors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- The table ------------------------------------------------------------ */

static void test_errors_every_row_has_a_distinct_code(void **state) {
    (void)state;
    for (int i = 0; i < HL_E_COUNT; i++) {
        const hl_error_row *a = hl_error_get((hl_error)i);
        for (int j = 0; j < i; j++)
            if (strcmp(a->code, hl_error_get((hl_error)j)->code) == 0)
                fail_msg("rows %d and %d share the code '%s'", j, i, a->code);
    }
}

/* Codes are what clients switch on: short lowercase words with '_'. */
static void test_errors_every_code_is_a_lowercase_word(void **state) {
    (void)state;
    for (int i = 0; i < HL_E_COUNT; i++) {
        const char *c = hl_error_get((hl_error)i)->code;
        size_t n = strlen(c);
        if (n == 0 || n > 32) fail_msg("row %d: code '%s' is empty or too long", i, c);
        if (c[0] == '_' || c[n - 1] == '_') fail_msg("row %d: code '%s'", i, c);
        for (size_t k = 0; k < n; k++)
            if (!((c[k] >= 'a' && c[k] <= 'z') || c[k] == '_'))
                fail_msg("row %d: code '%s' holds '%c'", i, c, c[k]);
    }
}

static void test_errors_every_status_is_4xx_or_5xx(void **state) {
    (void)state;
    for (int i = 0; i < HL_E_COUNT; i++) {
        const hl_error_row *r = hl_error_get((hl_error)i);
        if (r->status < 400 || r->status > 599)
            fail_msg("'%s': status %u is not an error status", r->code, r->status);
        if (r->when == NULL || r->when[0] == '\0') fail_msg("'%s': no description", r->code);
    }
}

/* The enum and the table come from one list: the names line up. */
static void test_errors_get_returns_the_row_of_its_name(void **state) {
    (void)state;
    assert_string_equal(hl_error_get(HL_E_BAD_CHANNEL)->code, "bad_channel");
    assert_int_equal(hl_error_get(HL_E_BAD_CHANNEL)->status, 400);
    assert_string_equal(hl_error_get(HL_E_NOT_FOUND)->code, "not_found");
    assert_int_equal(hl_error_get(HL_E_NOT_FOUND)->status, 404);
    assert_string_equal(hl_error_get(HL_E_REDIS_ERROR)->code, "redis_error");
    assert_int_equal(hl_error_get(HL_E_REDIS_ERROR)->status, 503);
}

/* ---- The README's table ------------------------------------------------------ */

typedef struct readme_row {
    unsigned status;
    char code[64];
    int line;
} readme_row;

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = (cap + 4096) * 2;
            char *p = realloc(buf, cap);
            assert_non_null(p);
            buf = p;
        }
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0) break;
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

static char *read_readme(void) {
    static const char *paths[] = {"README.md", "../README.md", "../../README.md"};
    for (size_t i = 0; i < HL_ARRAY_LEN(paths); i++) {
        char *s = slurp(paths[i]);
        if (s) return s;
    }
    fail_msg("README.md not found in the current directory or above it: run the tests from "
             "the repository's root (sh scripts/run-tests.sh does)");
    return NULL;
}

/* Reads the rows of the table under the header "| status | code | when |":
 * "| 400 | `bad_channel` | ... |". Returns how many. */
static size_t readme_rows(char *text, readme_row *rows, size_t max) {
    size_t n = 0;
    int in_table = 0, lineno = 0, header_seen = 0;
    for (char *line = text, *next; line; line = next) {
        /* Line by line, blank ones included: a blank line ends a table. */
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        lineno++;
        if (!in_table) {
            if (strncmp(line, "| status | code | when |", 24) == 0) {
                if (header_seen) fail_msg("README.md line %d: a second error table", lineno);
                in_table = header_seen = 1;
            }
            continue;
        }
        if (line[0] != '|') {
            in_table = 0;
            continue;
        }
        if (strncmp(line, "|---", 4) == 0) continue;
        unsigned status;
        char code[64];
        int used = 0;
        if (sscanf(line, "| %u | `%63[^`]` |%n", &status, code, &used) != 2 || used == 0)
            fail_msg("README.md: an error-table row not of the form "
                     "\"| <status> | `<code>` | <when> |\": '%s'",
                     line);
        if (n == max) fail_msg("README.md: more than %zu error rows", max);
        rows[n].status = status;
        strcpy(rows[n].code, code);
        rows[n].line = lineno;
        n++;
    }
    if (!header_seen) fail_msg("README.md has no table headed \"| status | code | when |\"");
    return n;
}

static void test_errors_readme_table_lists_exactly_these_codes(void **state) {
    (void)state;
    char *text = read_readme();
    readme_row rows[2 * HL_E_COUNT + 8];
    size_t n = readme_rows(text, rows, HL_ARRAY_LEN(rows));
    int problems = 0;
    /* Each README row is a row of the table, once, with its status. */
    for (size_t i = 0; i < n; i++) {
        int found = 0;
        for (int e = 0; e < HL_E_COUNT; e++) {
            const hl_error_row *r = hl_error_get((hl_error)e);
            if (strcmp(r->code, rows[i].code) != 0) continue;
            found = 1;
            if (r->status != rows[i].status) {
                print_error("README.md: '%s' is %u there, %u in hl_errors.h\n", rows[i].code,
                            rows[i].status, r->status);
                problems++;
            }
        }
        if (!found) {
            print_error("README.md: '%s' is not in hl_errors.h\n", rows[i].code);
            problems++;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(rows[i].code, rows[j].code) == 0) {
                print_error("README.md: '%s' is listed twice\n", rows[i].code);
                problems++;
            }
    }
    /* Each row of the table is in the README. */
    for (int e = 0; e < HL_E_COUNT; e++) {
        const hl_error_row *r = hl_error_get((hl_error)e);
        int found = 0;
        for (size_t i = 0; i < n; i++)
            found |= strcmp(r->code, rows[i].code) == 0;
        if (!found) {
            print_error("README.md: '%s' (%u) is missing from the error table\n", r->code,
                        r->status);
            problems++;
        }
    }
    free(text);
    if (problems) fail_msg("README.md and hl_errors.h disagree in %d ways", problems);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors_every_row_has_a_distinct_code),
        cmocka_unit_test(test_errors_every_code_is_a_lowercase_word),
        cmocka_unit_test(test_errors_every_status_is_4xx_or_5xx),
        cmocka_unit_test(test_errors_get_returns_the_row_of_its_name),
        cmocka_unit_test(test_errors_readme_table_lists_exactly_these_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

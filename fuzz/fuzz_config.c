/* fuzz_config.c -- libFuzzer target for core/hl_config.h.
 *
 * The input is configuration text up to its first NUL byte, then
 * NUL-separated entries "NAME=VALUE". The text goes to
 * hl_config_load_string over the defaults, as the file "fuzz.cfg"; the
 * entries are the environment hl_config_apply_env reads (NAME with or
 * without the HOLDLINE_ prefix, to give the fuzzer a shorter way in), and
 * an entry "redis=ADDR" is a --redis flag for hl_config_set_redis_addr.
 * hl_config_validate then judges the result.
 *
 * Errors are expected; what is checked is that every error message is
 * NUL-terminated and has the documented form ("fuzz.cfg:<line>: ...",
 * "HOLDLINE_...: ..."), that loading the same text twice gives the same
 * struct byte for byte, that a layer that succeeded left every setting
 * valid on its own (only the relations between two settings are left to
 * hl_config_validate), and that a refused --redis address changes
 * nothing. Crashes, leaks and UB are found by the sanitizers. */
#include <ctype.h>
#include <sanitizer/lsan_interface.h>

#include "fuzz.h"
#include "hl_common.h"
#include "hl_config.h"

#define ERRLEN 512
#define CFG_NAME "fuzz.cfg" /* stands for the file name in errors */
#define MAX_ENV 64
#define PREFIX "HOLDLINE_"

/* libconfig 1.5 (Debian 12) leaks a string token when a syntax error
 * follows it: the text '""' alone loses one byte. That is libconfig's
 * bug, not holdline's, and a node exits on a bad file anyway; without
 * this every run would stop on it at once. Only the scanner's
 * allocations (string tokens) are excused: the settings a missing
 * config_destroy would leak are allocated by the parser and still show. */
const char *__lsan_default_suppressions(void) {
    return "leak:libconfig_yylex\nleak:strbuf_append\n";
}

/* The environment of the current input; libFuzzer runs one at a time. */
static struct {
    const char *name[MAX_ENV];
    const char *value[MAX_ENV];
    size_t count;
    const char *redis; /* the --redis address, or NULL */
} env;

static const char *fake_getenv(const char *name) {
    /* The header promises HOLDLINE_<GROUP>_<SETTING>, in upper case. */
    FUZZ_CHECK(strncmp(name, PREFIX, strlen(PREFIX)) == 0);
    for (const char *p = name; *p; p++)
        FUZZ_CHECK(isupper((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_');
    for (size_t i = 0; i < env.count; i++) {
        if (strcmp(env.name[i], name) == 0 || strcmp(env.name[i], name + strlen(PREFIX)) == 0)
            return env.value[i];
    }
    return NULL;
}

/* Splits s[0..n) (a writable copy) into the entries of env. */
static void parse_env(char *s, size_t n) {
    memset(&env, 0, sizeof(env));
    char *next;
    for (char *p = s, *end = s + n; p < end && env.count < MAX_ENV; p = next) {
        next = p + strlen(p) + 1;
        char *eq = strchr(p, '=');
        if (eq == NULL) continue;
        *eq = '\0';
        if (strcmp(p, "redis") == 0) {
            env.redis = eq + 1;
            continue;
        }
        env.name[env.count] = p;
        env.value[env.count] = eq + 1;
        env.count++;
    }
}

/* "<name>:<line>: <message>" with a line of at least 1. */
static int has_location(const char *err, const char *name) {
    size_t n = strlen(name);
    const char *p = err + n + 1;
    long line = 0;
    if (strncmp(err, name, n) != 0 || err[n] != ':' || !isdigit((unsigned char)*p)) return 0;
    while (isdigit((unsigned char)*p) && line < 1000000)
        line = line * 10 + (*p++ - '0');
    return line >= 1 && p[0] == ':' && p[1] == ' ';
}

/* 1 if msg names a setting as "<group>.<name>": a relation between two
 * settings ("redis.reconnect_min_ms: must not be greater than
 * redis.reconnect_max_ms") does, a setting's own rule never does. */
static int names_other_setting(const char *msg) {
    static const char *const groups[] = {"node.",    "http.",    "redis.", "poll.",
                                         "history.", "publish.", "log."};
    const char *rest = strstr(msg, ": ");
    if (rest == NULL) return 0;
    for (size_t i = 0; i < HL_ARRAY_LEN(groups); i++) {
        for (const char *p = strstr(rest, groups[i]); p; p = strstr(p + 1, groups[i]))
            if (islower((unsigned char)p[strlen(groups[i])])) return 1;
    }
    return 0;
}

/* After a layer succeeded, hl_config_validate may refuse only a relation
 * between settings: each setting was checked when it was stored. */
static void check_valid_alone(const hl_config *cfg) {
    char *err = fuzz_errbuf(ERRLEN);
    if (hl_config_validate(cfg, err, ERRLEN) != HL_OK) {
        FUZZ_CHECK(fuzz_err_written(err, ERRLEN));
        FUZZ_CHECK(names_other_setting(err));
    }
    free(err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, '\0', size);
    size_t tlen = nul ? (size_t)(nul - data) : size;
    char *text = fuzz_strndup(data, tlen);
    char *rest = nul ? fuzz_strndup(nul + 1, size - tlen - 1) : fuzz_strndup("", 0);
    char *err = fuzz_errbuf(ERRLEN);
    hl_config cfg, again;
    int rc;

    parse_env(rest, nul ? size - tlen - 1 : 0);

    hl_config_defaults(&cfg);
    check_valid_alone(&cfg);
    FUZZ_CHECK(hl_config_validate(&cfg, err, ERRLEN) == HL_OK);

    memcpy(&again, &cfg, sizeof(cfg));
    rc = hl_config_load_string(&cfg, text, CFG_NAME, err, ERRLEN);
    FUZZ_CHECK(rc == HL_OK || rc == HL_ERR);
    if (rc == HL_OK) {
        check_valid_alone(&cfg);
        /* The same text over the same start gives the same bytes. */
        FUZZ_CHECK(hl_config_load_string(&again, text, CFG_NAME, err, ERRLEN) == HL_OK);
        FUZZ_CHECK(memcmp(&again, &cfg, sizeof(cfg)) == 0);
    } else {
        FUZZ_CHECK(fuzz_err_written(err, ERRLEN));
        FUZZ_CHECK(has_location(err, CFG_NAME));
    }

    /* The layers go on after a failed file too: cfg must stay usable. */
    int env_rc = hl_config_apply_env(&cfg, fake_getenv, err, ERRLEN);
    FUZZ_CHECK(env_rc == HL_OK || env_rc == HL_ERR);
    if (env_rc == HL_OK && rc == HL_OK) check_valid_alone(&cfg);
    if (env_rc != HL_OK) {
        FUZZ_CHECK(fuzz_err_written(err, ERRLEN));
        FUZZ_CHECK(strncmp(err, PREFIX, strlen(PREFIX)) == 0 && strstr(err, ": ") != NULL);
    }

    if (env.redis != NULL) {
        memcpy(&again, &cfg, sizeof(cfg));
        if (hl_config_set_redis_addr(&cfg, env.redis, err, ERRLEN) == HL_OK) {
            FUZZ_CHECK(cfg.redis_host[0] != '\0');
            FUZZ_CHECK(memchr(cfg.redis_host, '\0', sizeof(cfg.redis_host)) != NULL);
            FUZZ_CHECK(cfg.redis_port >= 1 && cfg.redis_port <= 65535);
            if (rc == HL_OK && env_rc == HL_OK) check_valid_alone(&cfg);
        } else {
            FUZZ_CHECK(fuzz_err_written(err, ERRLEN));
            FUZZ_CHECK(memcmp(&again, &cfg, sizeof(cfg)) == 0);
        }
    }

    /* Whatever the layers did, validation answers without harm. */
    if (hl_config_validate(&cfg, err, ERRLEN) != HL_OK) FUZZ_CHECK(fuzz_err_written(err, ERRLEN));

    free(err);
    free(rest);
    free(text);
    return 0;
}

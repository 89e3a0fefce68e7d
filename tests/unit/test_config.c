/* Unit tests for core/hl_config.c. Run from the repository root: the
 * example and the broken files are opened by relative path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hl_common.h"
#include "hl_config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXAMPLE "config/holdline.cfg"
#define BROKEN "config/test-broken/"

/* ---- Helpers ----------------------------------------------------------- */

/* Compares every field, so that a failure names the field; equal says
 * whether they must all be equal or all differ. */
static void compare_fields(const hl_config *a, const hl_config *b, int equal) {
#define CMP_INT(f)                                                                                 \
    do {                                                                                           \
        if (equal)                                                                                 \
            assert_int_equal(a->f, b->f);                                                          \
        else                                                                                       \
            assert_int_not_equal(a->f, b->f);                                                      \
    } while (0)
#define CMP_STR(f)                                                                                 \
    do {                                                                                           \
        if (equal)                                                                                 \
            assert_string_equal(a->f, b->f);                                                       \
        else                                                                                       \
            assert_string_not_equal(a->f, b->f);                                                   \
    } while (0)
    CMP_STR(node_name);
    CMP_STR(http_bind);
    CMP_INT(http_port);
    CMP_INT(http_workers);
    CMP_INT(http_max_connections);
    CMP_INT(http_pool[0]);
    CMP_INT(http_pool[5]);
    CMP_INT(http_daemons);
    CMP_INT(http_connection_timeout);
    CMP_INT(http_cors_origins_count);
    CMP_STR(redis_mode);
    CMP_STR(redis_host);
    CMP_INT(redis_port);
    CMP_INT(redis_sentinels_count);
    CMP_STR(redis_master_name);
    CMP_STR(redis_sentinel_password);
    CMP_INT(redis_sentinel_timeout_ms);
    CMP_INT(redis_sentinel_check_ms);
    CMP_INT(redis_cluster_nodes_count);
    CMP_INT(redis_cluster_refresh_ms);
    CMP_INT(publish_wait_replicas);
    CMP_INT(publish_wait_timeout_ms);
    CMP_STR(redis_password);
    CMP_INT(redis_db);
    CMP_STR(redis_prefix);
    CMP_INT(redis_connect_timeout_ms);
    CMP_INT(redis_reconnect_min_ms);
    CMP_INT(redis_reconnect_max_ms);
    CMP_INT(redis_canary_ms);
    CMP_INT(redis_canary_timeout_ms);
    CMP_INT(poll_default_timeout);
    CMP_INT(poll_max_timeout);
    CMP_INT(poll_max_channels);
    CMP_INT(poll_linger_ms);
    CMP_INT(poll_max_messages);
    CMP_INT(history_cache);
    CMP_INT(history_length);
    CMP_INT(history_ttl);
    CMP_INT(publish_enabled);
    CMP_STR(publish_key);
    CMP_INT(publish_max_message_bytes);
    CMP_STR(auth_mode);
    CMP_STR(auth_jwt_key);
    CMP_STR(auth_jwt_algorithm);
    CMP_STR(auth_audience);
    CMP_STR(auth_issuer);
    CMP_INT(auth_leeway_s);
    CMP_INT(auth_public_channels_count);
    CMP_STR(auth_token_cookie);
    CMP_INT(auth_query_token);
    CMP_STR(log_level);
    CMP_STR(log_format);
#undef CMP_INT
#undef CMP_STR
    if (equal) {
        for (int i = 0; i < a->http_cors_origins_count; i++)
            assert_string_equal(a->http_cors_origins[i], b->http_cors_origins[i]);
        /* Catches a field added to hl_config but not to this list. */
        assert_memory_equal(a, b, sizeof(*a));
    }
}

/* Asserts err is "<where>:<line>: ..." and contains words. */
static void assert_located_error(int rc, const char *err, const char *where, int line,
                                 const char *words) {
    char prefix[512];
    assert_int_equal(rc, HL_ERR);
    snprintf(prefix, sizeof(prefix), "%s:%d: ", where, line);
    if (strncmp(err, prefix, strlen(prefix)) != 0 || strstr(err, words) == NULL)
        fail_msg("expected \"%s...%s...\", got \"%s\"", prefix, words, err);
}

static void assert_contains(const char *err, const char *words) {
    if (strstr(err, words) == NULL) fail_msg("expected \"%s\" in \"%s\"", words, err);
}

/* Returns a malloc'ed string: head, n copies of c, tail. */
static char *repeat(const char *head, char c, size_t n, const char *tail) {
    size_t h = strlen(head), t = strlen(tail);
    char *s = malloc(h + n + t + 1);
    assert_non_null(s);
    memcpy(s, head, h);
    memset(s + h, c, n);
    memcpy(s + h + n, tail, t + 1);
    return s;
}

/* A fake environment, so tests never depend on or change the real one. */
typedef struct env_var {
    const char *name;
    const char *value;
} env_var;

static const env_var *fake_env;
static size_t fake_env_len;

static const char *fake_getenv(const char *name) {
    for (size_t i = 0; i < fake_env_len; i++) {
        if (strcmp(fake_env[i].name, name) == 0) return fake_env[i].value;
    }
    return NULL;
}

static void set_fake_env(const env_var *vars, size_t n) {
    fake_env = vars;
    fake_env_len = n;
}

/* Records every name asked for. */
static char asked[96][64];
static size_t asked_len;

static const char *recording_getenv(const char *name) {
    if (asked_len < HL_ARRAY_LEN(asked)) snprintf(asked[asked_len++], sizeof(asked[0]), "%s", name);
    return NULL;
}

/* ---- Defaults and the example file --------------------------------------- */

static void test_config_defaults_match_the_header(void **state) {
    hl_config cfg;
    char host[256] = "";
    char expect[128];
    (void)state;

    hl_config_defaults(&cfg);
    assert_string_equal(cfg.http_bind, "0.0.0.0");
    assert_int_equal(cfg.http_port, 8080);
    assert_int_equal(cfg.http_workers, 0);
    assert_int_equal(cfg.http_max_connections, 20000);
    assert_int_equal(cfg.http_pool[0], 1536);
    assert_int_equal(cfg.http_pool[1], 3072);
    assert_int_equal(cfg.http_pool[2], 8192);
    assert_int_equal(cfg.http_pool[3], 16384);
    assert_int_equal(cfg.http_pool[4], 32768);
    assert_int_equal(cfg.http_pool[5], 65536);
    assert_int_equal(cfg.http_daemons, 16);
    assert_int_equal(cfg.http_connection_timeout, 60);
    assert_int_equal(cfg.http_max_url_bytes, 2048);
    assert_int_equal(cfg.http_max_header_bytes, 16384);
    assert_int_equal(cfg.http_cors_origins_count, 0);
    assert_string_equal(cfg.redis_host, "127.0.0.1");
    assert_int_equal(cfg.redis_port, 6379);
    assert_string_equal(cfg.redis_password, "");
    assert_int_equal(cfg.redis_db, 0);
    assert_string_equal(cfg.redis_prefix, "holdline:");
    assert_int_equal(cfg.redis_connect_timeout_ms, 2000);
    assert_int_equal(cfg.redis_reconnect_min_ms, 100);
    assert_int_equal(cfg.redis_reconnect_max_ms, 1000);
    assert_int_equal(cfg.redis_heartbeat_ms, 1000);
    assert_int_equal(cfg.node_drain_ms, 5000);
    assert_int_equal(cfg.poll_default_timeout, 30);
    assert_int_equal(cfg.poll_max_timeout, 120);
    assert_int_equal(cfg.poll_max_channels, 16);
    assert_int_equal(cfg.poll_linger_ms, 5000);
    assert_int_equal(cfg.history_length, 1000);
    assert_int_equal(cfg.history_ttl, 3600);
    assert_int_equal(cfg.poll_max_messages, 100);
    assert_int_equal(cfg.history_cache, 64);
    assert_true(cfg.publish_enabled);
    assert_string_equal(cfg.publish_key, "");
    assert_int_equal(cfg.publish_max_message_bytes, 65536);
    assert_string_equal(cfg.log_level, "info");
    assert_string_equal(cfg.log_format, "text");
    assert_string_equal(cfg.log_file, "");

    /* The node name is "<hostname>-<pid>"; a long host name is cut. */
    snprintf(expect, sizeof(expect), "-%ld", (long)getpid());
    assert_int_equal(gethostname(host, sizeof(host) - 1), 0);
    assert_true(strlen(cfg.node_name) > strlen(expect));
    assert_string_equal(cfg.node_name + strlen(cfg.node_name) - strlen(expect), expect);
    assert_memory_equal(cfg.node_name, host, strlen(cfg.node_name) - strlen(expect));
}

static void test_config_defaults_pass_validation(void **state) {
    hl_config cfg;
    char err[256] = "";
    (void)state;

    hl_config_defaults(&cfg);
    assert_int_equal(hl_config_validate(&cfg, err, sizeof(err)), HL_OK);
}

static void test_config_example_file_gives_the_defaults(void **state) {
    hl_config def, cfg;
    char err[512] = "";
    (void)state;

    hl_config_defaults(&def);
    hl_config_defaults(&cfg);
    if (hl_config_load_file(&cfg, EXAMPLE, err, sizeof(err)) != HL_OK) fail_msg("%s", err);
    compare_fields(&cfg, &def, 1);
    assert_int_equal(hl_config_validate(&cfg, err, sizeof(err)), HL_OK);
}

/* Every setting but node.name, set through the environment to a value that
 * is not its default. */
static const env_var not_defaults[] = {
    {"HOLDLINE_NODE_NAME", "edge-1"},
    {"HOLDLINE_NODE_DRAIN_MS", "1"},
    {"HOLDLINE_HTTP_BIND", "127.0.0.1"},
    {"HOLDLINE_HTTP_PORT", "1"},
    {"HOLDLINE_HTTP_WORKERS", "3"},
    {"HOLDLINE_HTTP_MAX_CONNECTIONS", "5"},
    {"HOLDLINE_HTTP_POOL_TINY", "1024"},
    {"HOLDLINE_HTTP_POOL_SMALL", "0"},
    {"HOLDLINE_HTTP_POOL_MEDIUM", "0"},
    {"HOLDLINE_HTTP_POOL_LARGE", "0"},
    {"HOLDLINE_HTTP_POOL_XLARGE", "0"},
    {"HOLDLINE_HTTP_POOL_HUGE", "1088"},
    {"HOLDLINE_HTTP_DAEMONS", "1"},
    {"HOLDLINE_HTTP_CONNECTION_TIMEOUT", "5"},
    {"HOLDLINE_HTTP_MAX_URL_BYTES", "64"},
    {"HOLDLINE_HTTP_MAX_HEADER_BYTES", "256"},
    {"HOLDLINE_HTTP_CORS_ORIGINS", "*"},
    {"HOLDLINE_REDIS_HOST", "redis.internal"},
    {"HOLDLINE_REDIS_PORT", "1"},
    {"HOLDLINE_REDIS_PASSWORD", "pw"},
    {"HOLDLINE_REDIS_DB", "3"},
    {"HOLDLINE_REDIS_PREFIX", "x:"},
    {"HOLDLINE_REDIS_CONNECT_TIMEOUT_MS", "1"},
    {"HOLDLINE_REDIS_RECONNECT_MIN_MS", "1"},
    {"HOLDLINE_REDIS_RECONNECT_MAX_MS", "2"},
    {"HOLDLINE_REDIS_HEARTBEAT_MS", "100"},
    {"HOLDLINE_REDIS_CANARY_MS", "200"},
    {"HOLDLINE_REDIS_CANARY_TIMEOUT_MS", "500"},
    {"HOLDLINE_REDIS_MODE", "sentinel"},
    {"HOLDLINE_REDIS_SENTINELS", "10.0.0.1:26379, s2.internal:26380"},
    {"HOLDLINE_REDIS_MASTER_NAME", "mymaster"},
    {"HOLDLINE_REDIS_SENTINEL_PASSWORD", "spw"},
    {"HOLDLINE_REDIS_SENTINEL_TIMEOUT_MS", "10"},
    {"HOLDLINE_REDIS_SENTINEL_CHECK_MS", "100"},
    {"HOLDLINE_REDIS_CLUSTER_NODES", "10.0.0.1:7000,10.0.0.2:7000"},
    {"HOLDLINE_REDIS_CLUSTER_REFRESH_MS", "100"},
    {"HOLDLINE_PUBLISH_WAIT_REPLICAS", "1"},
    {"HOLDLINE_PUBLISH_WAIT_TIMEOUT_MS", "1"},
    {"HOLDLINE_POLL_DEFAULT_TIMEOUT", "1"},
    {"HOLDLINE_POLL_MAX_TIMEOUT", "2"},
    {"HOLDLINE_POLL_MAX_CHANNELS", "1"},
    {"HOLDLINE_POLL_LINGER_MS", "0"},
    {"HOLDLINE_POLL_MAX_MESSAGES", "7"},
    {"HOLDLINE_HISTORY_LENGTH", "1"},
    {"HOLDLINE_HISTORY_TTL", "1"},
    {"HOLDLINE_HISTORY_CACHE", "0"},
    {"HOLDLINE_PUBLISH_ENABLED", "false"},
    {"HOLDLINE_PUBLISH_KEY", "k"},
    {"HOLDLINE_PUBLISH_MAX_MESSAGE_BYTES", "1"},
    {"HOLDLINE_AUTH_MODE", "jwt"},
    {"HOLDLINE_AUTH_JWT_KEY", "a secret of at least thirty-two bytes"},
    {"HOLDLINE_AUTH_JWT_ALGORITHM", "HS512"},
    {"HOLDLINE_AUTH_AUDIENCE", "chat"},
    {"HOLDLINE_AUTH_ISSUER", "https://app.example"},
    {"HOLDLINE_AUTH_LEEWAY_S", "0"},
    {"HOLDLINE_AUTH_PUBLIC_CHANNELS", "public.*,lobby"},
    {"HOLDLINE_AUTH_TOKEN_COOKIE", "tok"},
    {"HOLDLINE_AUTH_QUERY_TOKEN", "yes"},
    {"HOLDLINE_LOG_LEVEL", "debug"},
    {"HOLDLINE_LOG_FORMAT", "json"},
    {"HOLDLINE_LOG_FILE", "/var/log/holdline.log"},
};

/* The example must list every setting: loading it over a config in which
 * every field differs from its default must give the defaults back. */
static void test_config_example_file_sets_every_setting(void **state) {
    hl_config def, cfg;
    char err[512] = "";
    (void)state;

    hl_config_defaults(&def);
    hl_config_defaults(&cfg);
    set_fake_env(not_defaults, HL_ARRAY_LEN(not_defaults));
    if (hl_config_apply_env(&cfg, fake_getenv, err, sizeof(err)) != HL_OK) fail_msg("%s", err);
    compare_fields(&cfg, &def, 0);
    assert_int_equal(hl_config_validate(&cfg, err, sizeof(err)), HL_OK);

    if (hl_config_load_file(&cfg, EXAMPLE, err, sizeof(err)) != HL_OK) fail_msg("%s", err);
    /* node.name is commented out in the example so that the default applies. */
    assert_string_equal(cfg.node_name, "edge-1");
    memcpy(cfg.node_name, def.node_name, sizeof(cfg.node_name));
    compare_fields(&cfg, &def, 1);
}

/* ---- Broken files --------------------------------------------------------- */

static const struct {
    const char *file;
    int line;
    const char *words;
} broken_files[] = {
    {"syntax-error.cfg", 6, "syntax error"},
    {"unknown-setting.cfg", 7, "unknown setting 'http.prot'"},
    {"wrong-type.cfg", 8, "'redis.port' must be an integer"},
    {"unknown-group.cfg", 8, "unknown group 'reddis'"},
    {"out-of-range.cfg", 6, "'http.port' must be between 1 and 65535"},
    {"int-overflow.cfg", 7, "integer 4294975488 is out of range"},
    {"bad-list.cfg", 9, "'http.cors_origins' must be a list of strings"},
};

static void test_config_broken_files_report_file_and_line(void **state) {
    (void)state;
    for (size_t i = 0; i < HL_ARRAY_LEN(broken_files); i++) {
        hl_config cfg;
        char path[256];
        char err[512] = "";
        snprintf(path, sizeof(path), BROKEN "%s", broken_files[i].file);
        hl_config_defaults(&cfg);
        assert_located_error(hl_config_load_file(&cfg, path, err, sizeof(err)), err, path,
                             broken_files[i].line, broken_files[i].words);
    }
}

/* Writes len bytes to a new temporary file whose name goes to path. */
static void write_temp(char *path, size_t size, const char *data, size_t len) {
    int fd;
    snprintf(path, size, "/tmp/test_config_XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
}

static void test_config_unreadable_files_are_errors(void **state) {
    hl_config cfg;
    char err[512] = "";
    char path[64];
    static const char with_nul[] = "http = { port = 1; };\0http = { port = 2; };\n";
    (void)state;

    hl_config_defaults(&cfg);
    assert_int_equal(hl_config_load_file(&cfg, BROKEN "missing.cfg", err, sizeof(err)), HL_ERR);
    assert_string_equal(err, BROKEN "missing.cfg: No such file or directory");

    assert_int_equal(hl_config_load_file(&cfg, "config", err, sizeof(err)), HL_ERR);
    assert_string_equal(err, "config: not a regular file");

    assert_int_equal(hl_config_load_file(&cfg, "/dev/null", err, sizeof(err)), HL_ERR);
    assert_string_equal(err, "/dev/null: not a regular file");

    assert_int_equal(hl_config_load_file(&cfg, NULL, err, sizeof(err)), HL_ERR);

    /* A NUL byte would hide the rest of the file from libconfig. */
    write_temp(path, sizeof(path), with_nul, sizeof(with_nul) - 1);
    assert_int_equal(hl_config_load_file(&cfg, path, err, sizeof(err)), HL_ERR);
    assert_contains(err, "contains a NUL byte");
    unlink(path);

    /* Something far larger than any configuration is the wrong file. */
    write_temp(path, sizeof(path), "", 0);
    assert_int_equal(truncate(path, 2 * 1024 * 1024), 0);
    assert_int_equal(hl_config_load_file(&cfg, path, err, sizeof(err)), HL_ERR);
    assert_contains(err, "larger than");
    unlink(path);

    /* An empty file is a valid configuration that changes nothing. */
    write_temp(path, sizeof(path), "", 0);
    assert_int_equal(hl_config_load_file(&cfg, path, err, sizeof(err)), HL_OK);
    unlink(path);
}

/* ---- load_string ---------------------------------------------------------- */

#define INT_AT(cfg, off) (*(const int *)(const void *)((const char *)(cfg) + (off)))
#define STR_AT(cfg, off) ((const char *)(cfg) + (off))

static const struct {
    const char *text;
    size_t offset;
    int value;
} good_ints[] = {
    {"http = { port = 8081; };", offsetof(hl_config, http_port), 8081},
    /* An L suffix makes an int64 in libconfig, even for a small value. */
    {"http = { port = 8081L; };", offsetof(hl_config, http_port), 8081},
    {"http = { port = 0x1F91; };", offsetof(hl_config, http_port), 8081},
    {"http = { port = 65535; };", offsetof(hl_config, http_port), 65535},
    {"http: { port = 81 }", offsetof(hl_config, http_port), 81},
    {"http = { workers = 0; };", offsetof(hl_config, http_workers), 0},
    {"history = { length = 2147483647; };", offsetof(hl_config, history_length), INT_MAX},
    {"history = { ttl = 0x7FFFFFFF; };", offsetof(hl_config, history_ttl), INT_MAX},
    {"redis = { db = 2147483647L; };", offsetof(hl_config, redis_db), INT_MAX},
    {"poll = { linger_ms = 0; };", offsetof(hl_config, poll_linger_ms), 0},
    /* Numbers in comments and strings are not numbers. */
    {"# port = 99999999999;\n// 99999999999\n/* 99999999999\n */ http = { port = 82; };",
     offsetof(hl_config, http_port), 82},
    {"redis = { password = \"99999999999\"; port = 7; };", offsetof(hl_config, redis_port), 7},
    {"publish = { enabled = FALSE; };", offsetof(hl_config, publish_enabled), 0},
    {"publish = { enabled = true; };", offsetof(hl_config, publish_enabled), 1},
    {"http = { cors_origins = [\"a\", \"b\"]; };", offsetof(hl_config, http_cors_origins_count), 2},
    {"http = { cors_origins = (\"a\", \"b\", \"c\"); };",
     offsetof(hl_config, http_cors_origins_count), 3},
    {"http = { cors_origins = []; };", offsetof(hl_config, http_cors_origins_count), 0},
    {"node = {}; http = {}; redis = {}; poll = {}; history = {}; publish = {}; log = {};",
     offsetof(hl_config, http_port), 8080},
};

static const struct {
    const char *text;
    size_t offset;
    const char *value;
} good_strs[] = {
    {"redis = { host = \"redis.internal\"; };", offsetof(hl_config, redis_host), "redis.internal"},
    {"redis = { password = \"p\\\"w#d//x/*\"; };", offsetof(hl_config, redis_password),
     "p\"w#d//x/*"},
    /* An escaped backslash before x00 is not a NUL escape. */
    {"redis = { password = \"\\\\x00\"; };", offsetof(hl_config, redis_password), "\\x00"},
    {"redis = { password = \"a\" \"b\"; };", offsetof(hl_config, redis_password), "ab"},
    {"redis = { password = \"\"; };", offsetof(hl_config, redis_password), ""},
    {"redis = { prefix = \"app-1.hl:\"; };", offsetof(hl_config, redis_prefix), "app-1.hl:"},
    {"node = { name = \"edge-1\"; };", offsetof(hl_config, node_name), "edge-1"},
    {"log = { level = \"debug\"; format = \"json\"; };", offsetof(hl_config, log_format), "json"},
    {"http = { bind = \"127.0.0.1\"; };", offsetof(hl_config, http_bind), "127.0.0.1"},
    {"publish = { key = \"s3cr\\xc3\\xa9t\"; };", offsetof(hl_config, publish_key),
     "s3cr\xc3\xa9t"},
    {"http = { cors_origins = [\"https://a.example\", \"*\"]; };",
     offsetof(hl_config, http_cors_origins[1]), "*"},
};

static void test_config_load_string_accepts_good_input(void **state) {
    (void)state;
    for (size_t i = 0; i < HL_ARRAY_LEN(good_ints); i++) {
        hl_config cfg;
        char err[512] = "";
        hl_config_defaults(&cfg);
        if (hl_config_load_string(&cfg, good_ints[i].text, "t.cfg", err, sizeof(err)) != HL_OK)
            fail_msg("case %zu: %s", i, err);
        if (good_ints[i].offset == offsetof(hl_config, publish_enabled))
            assert_int_equal(cfg.publish_enabled, good_ints[i].value);
        else
            assert_int_equal(INT_AT(&cfg, good_ints[i].offset), good_ints[i].value);
    }
    for (size_t i = 0; i < HL_ARRAY_LEN(good_strs); i++) {
        hl_config cfg;
        char err[512] = "";
        hl_config_defaults(&cfg);
        if (hl_config_load_string(&cfg, good_strs[i].text, "t.cfg", err, sizeof(err)) != HL_OK)
            fail_msg("case %zu: %s", i, err);
        assert_string_equal(STR_AT(&cfg, good_strs[i].offset), good_strs[i].value);
    }
}

static void test_config_load_string_of_nothing_changes_nothing(void **state) {
    static const char *const texts[] = {"", "\n\n", "# just a comment\n", "/* */", "  \t\n"};
    hl_config def, cfg;
    char err[256] = "";
    (void)state;

    hl_config_defaults(&def);
    for (size_t i = 0; i < HL_ARRAY_LEN(texts); i++) {
        cfg = def;
        assert_int_equal(hl_config_load_string(&cfg, texts[i], "t.cfg", err, sizeof(err)), HL_OK);
        assert_memory_equal(&cfg, &def, sizeof(cfg));
    }
}

static const struct {
    const char *text;
    int line;
    const char *words;
} bad_texts[] = {
    /* libconfig 1.5 would keep only the low 32 bits of these. */
    {"http = { port = 99999999999999999999; };", 1, "integer 99999999999999999999 is out of range"},
    {"http = { port = 4294975488; };", 1, "integer 4294975488 is out of range"},
    {"http = { port = 2147483648; };", 1, "integer 2147483648 is out of range"},
    {"http = { port = -2147483649; };", 1, "integer -2147483649 is out of range"},
    {"http = { port = 0xFFFFFFFF; };", 1, "integer 0xFFFFFFFF is out of range"},
    {"http = { port = 0x100001F90; };", 1, "integer 0x100001F90 is out of range"},
    {"http = { cors_origins = (\"a\", 99999999999); };", 1, "is out of range"},
    /* 64-bit values are read exactly and then refused by the range. */
    {"http = { port = 9223372036854775807L; };", 1, "'http.port' must be between 1 and 65535"},
    {"http = { port = 99999999999999999999L; };", 1, "'http.port' must be between 1 and 65535"},
    {"http = { port = -9223372036854775808L; };", 1, "'http.port' must be between 1 and 65535"},
    {"http = { port = 4294975488L; };", 1, "'http.port' must be between 1 and 65535"},
    {"http = { port = 2147483647; };", 1, "'http.port' must be between 1 and 65535"},
    {"http = { port = -2147483648; };", 1, "'http.port' must be between 1 and 65535"},
    {"http = { port = -1; };", 1, "'http.port' must be between 1 and 65535"},
    {"http = { port = 0; };", 1, "'http.port' must be between 1 and 65535"},
    {"http = { workers = 257; };", 1, "'http.workers' must be between 0 and 256"},
    {"redis = { db = -1; };", 1, "'redis.db' must be at least 0"},
    {"\n\nhttp = {\n  port = 70000;\n};\n", 4, "'http.port' must be between 1 and 65535"},
    /* Wrong types. */
    {"http = { port = 80.0; };", 1, "'http.port' must be an integer"},
    {"http = { port = 1e3; };", 1, "'http.port' must be an integer"},
    {"http = { port = true; };", 1, "'http.port' must be an integer"},
    {"http = { port = \"8080\"; };", 1, "'http.port' must be an integer"},
    {"http = { port = [8080]; };", 1, "'http.port' must be an integer"},
    {"http = { port = (8080); };", 1, "'http.port' must be an integer"},
    {"http = { port = { value = 8080; }; };", 1, "'http.port' must be an integer"},
    {"publish = { enabled = 1; };", 1, "'publish.enabled' must be true or false"},
    {"publish = { enabled = \"yes\"; };", 1, "'publish.enabled' must be true or false"},
    {"redis = { host = 127; };", 1, "'redis.host' must be a string"},
    {"redis = { host = [\"a\"]; };", 1, "'redis.host' must be a string"},
    {"http = { cors_origins = \"*\"; };", 1, "'http.cors_origins' must be a list of strings"},
    {"http = { cors_origins = (\"a\",\n 1); };", 2,
     "'http.cors_origins' must be a list of strings"},
    {"http = { cors_origins = (\"a\", (\"b\")); };", 1, "must be a list of strings"},
    {"http = { cors_origins = (\"a\", { b = \"c\"; }); };", 1, "must be a list of strings"},
    {"http = { cors_origins = [true]; };", 1, "must be a list of strings"},
    /* Values the node could not use. */
    {"log = { level = \"verbose\"; };", 1, "'log.level' must be one of debug, info, warn, error"},
    {"log = { level = \"INFO\"; };", 1, "'log.level' must be one of"},
    {"log = { format = \"xml\"; };", 1, "'log.format' must be text or json"},
    {"http = { bind = \"localhost\"; };", 1, "'http.bind' must be an IPv4 address"},
    {"http = { bind = \"::\"; };", 1, "'http.bind' must be an IPv4 address"},
    {"redis = { prefix = \"\"; };", 1, "'redis.prefix' must be 1 to 63 characters"},
    {"redis = { prefix = \"hl*\"; };", 1, "'redis.prefix' must be 1 to 63 characters"},
    {"redis = { prefix = \"a b\"; };", 1, "'redis.prefix' must be 1 to 63 characters"},
    {"redis = { host = \"\"; };", 1, "'redis.host' must not be empty"},
    {"redis = { host = \"a b\"; };", 1, "'redis.host' must not contain spaces"},
    {"node = { name = \"x\\ny\"; };", 1, "'node.name' must not contain spaces or control"},
    {"http = { cors_origins = [\"\"]; };", 1, "'http.cors_origins' entry 1 must not be empty"},
    /* An origin with CR LF would be a header injection when echoed. */
    {"http = { cors_origins = [\"a\", \"b\\r\\nSet-Cookie: x=1\"]; };", 1,
     "'http.cors_origins' entry 2 must not contain spaces or control characters"},
    /* libconfig would silently end the string at the NUL. */
    {"redis = { password = \"ab\\x00cd\"; };", 1, "strings must not contain \\x00"},
    /* Unknown names, at any depth. */
    {"http = { prot = 8080; };", 1, "unknown setting 'http.prot'"},
    {"http = { Port = 8080; };", 1, "unknown setting 'http.Port'"},
    {"http = { tls = { cert = \"x\"; }; };", 1, "unknown setting 'http.tls'"},
    {"http = { redis = { host = \"x\"; }; };", 1, "unknown setting 'http.redis'"},
    {"http = { port = 80; };\nredis = { prot = 1; };", 2, "unknown setting 'redis.prot'"},
    {"port = 8080;", 1, "unknown group 'port'"},
    {"HTTP = { port = 8080; };", 1, "unknown group 'HTTP'"},
    {"server = { http = { port = 1; }; };", 1, "unknown group 'server'"},
    {"http = 8080;", 1, "'http' must be a group"},
    {"http = ( 1 );", 1, "'http' must be a group"},
    {"http = [];", 1, "'http' must be a group"},
    /* Syntax. */
    {"http = { port = 1; };\nhttp = { port = 2; };", 2, "duplicate setting name"},
    {"http = { port = 1; port = 2; };", 1, "duplicate setting name"},
    {"http = { port = = 80; };", 1, "syntax error"},
    {"http = { port = 80", 1, "syntax error"},
    {"http = { bind = \"0.0.0.0 };", 1, "syntax error"},
    {"http { port = 80; };", 1, "syntax error"},
    {"\xff\xfe\x01", 1, "syntax error"},
    {"http = { cors_origins = [\"a\", 1]; };", 1, "mismatched element type in array"},
    /* Including would read other files, and escape the integer check. */
    {"\n\n@include \"/etc/passwd\"\n", 3, "@include is not supported"},
    {"http = { port = 99999999999; };\n@include \"/etc/passwd\"\n", 2, "@include is not supported"},
    /* Of a syntax error and an out-of-range integer, the earlier is reported. */
    {"http = { port = = 1; };\nhttp = { port = 99999999999; };", 1, "syntax error"},
    {"http = { port = 99999999999; };\nhttp = { port = = 1; };", 1, "is out of range"},
};

static void test_config_load_string_rejects_hostile_input(void **state) {
    (void)state;
    for (size_t i = 0; i < HL_ARRAY_LEN(bad_texts); i++) {
        hl_config cfg;
        char err[512] = "";
        int rc;
        hl_config_defaults(&cfg);
        rc = hl_config_load_string(&cfg, bad_texts[i].text, "t.cfg", err, sizeof(err));
        if (rc != HL_ERR) fail_msg("case %zu (%s) was accepted", i, bad_texts[i].text);
        assert_located_error(rc, err, "t.cfg", bad_texts[i].line, bad_texts[i].words);
    }
}

static void test_config_load_string_rejects_long_strings(void **state) {
    static const struct {
        const char *head;
        size_t n;
        const char *tail;
        const char *words;
    } cases[] = {
        {"redis = { host = \"", 256, "\"; };", "'redis.host' is too long (at most 255 bytes)"},
        {"node = { name = \"", 64, "\"; };", "'node.name' is too long (at most 63 bytes)"},
        {"log = { level = \"", 16, "\"; };", "'log.level' is too long (at most 15 bytes)"},
        {"http = { cors_origins = [\"", 256, "\"]; };",
         "'http.cors_origins' entry 1 is too long (at most 255 bytes)"},
        {"publish = { key = \"", 1000000, "\"; };", "'publish.key' is too long"},
        {"http = { ", 10000, " = 1; };", "unknown setting 'http.xxxx"},
    };
    (void)state;

    for (size_t i = 0; i < HL_ARRAY_LEN(cases); i++) {
        hl_config cfg;
        char err[512] = "";
        char c = i == HL_ARRAY_LEN(cases) - 1 ? 'x' : 'a';
        char *text = repeat(cases[i].head, c, cases[i].n, cases[i].tail);
        hl_config_defaults(&cfg);
        assert_located_error(hl_config_load_string(&cfg, text, "t.cfg", err, sizeof(err)), err,
                             "t.cfg", 1, cases[i].words);
        free(text);
    }
}

static void test_config_load_string_takes_exactly_full_buffers(void **state) {
    hl_config cfg;
    char err[512] = "";
    char *text = repeat("redis = { host = \"", 'h', 255, "\"; };");
    (void)state;

    hl_config_defaults(&cfg);
    assert_int_equal(hl_config_load_string(&cfg, text, "t.cfg", err, sizeof(err)), HL_OK);
    assert_int_equal(strlen(cfg.redis_host), 255);
    free(text);
}

static void test_config_load_string_limits_cors_entries(void **state) {
    hl_config cfg;
    char err[512] = "";
    char text[1024] = "http = { cors_origins = [";
    (void)state;

    for (int i = 0; i < 17; i++) {
        char entry[32];
        snprintf(entry, sizeof(entry), "%s\"o%d\"", i ? ", " : "", i);
        strcat(text, entry);
        if (i == 15) {
            char full[sizeof(text) + 8];
            snprintf(full, sizeof(full), "%s]; };", text);
            hl_config_defaults(&cfg);
            assert_int_equal(hl_config_load_string(&cfg, full, "t.cfg", err, sizeof(err)), HL_OK);
            assert_int_equal(cfg.http_cors_origins_count, 16);
            assert_string_equal(cfg.http_cors_origins[15], "o15");
        }
    }
    strcat(text, "]; };");
    hl_config_defaults(&cfg);
    assert_located_error(hl_config_load_string(&cfg, text, "t.cfg", err, sizeof(err)), err, "t.cfg",
                         1, "'http.cors_origins' must have at most 16 entries");
}

static void test_config_load_string_survives_odd_input(void **state) {
    hl_config cfg;
    char err[512] = "";
    char tiny[8];
    char *text;
    (void)state;

    hl_config_defaults(&cfg);
    assert_int_equal(hl_config_load_string(&cfg, NULL, "t.cfg", err, sizeof(err)), HL_ERR);

    /* Without a name, errors still have a location. */
    assert_int_equal(hl_config_load_string(&cfg, "x = 1;", NULL, err, sizeof(err)), HL_ERR);
    assert_string_equal(err, "<string>:1: unknown group 'x'");

    /* A short or missing error buffer is not overrun. */
    assert_int_equal(hl_config_load_string(&cfg, "x = 1;", "t.cfg", tiny, sizeof(tiny)), HL_ERR);
    assert_string_equal(tiny, "t.cfg:1");
    assert_int_equal(hl_config_load_string(&cfg, "x = 1;", "t.cfg", NULL, 0), HL_ERR);

    /* Deep nesting ends in an error, not a crash. */
    text = repeat("http = { cors_origins = ", '(', 20000, "");
    assert_int_equal(hl_config_load_string(&cfg, text, "t.cfg", err, sizeof(err)), HL_ERR);
    free(text);
    text = repeat("http = { cors_origins = ", '[', 100, "");
    assert_int_equal(hl_config_load_string(&cfg, text, "t.cfg", err, sizeof(err)), HL_ERR);
    free(text);

    /* libconfig keeps lines in 16 bits; later lines would be misreported. */
    text = repeat("", '\n', 70000, "http = { prot = 1; };");
    assert_located_error(hl_config_load_string(&cfg, text, "t.cfg", err, sizeof(err)), err, "t.cfg",
                         65536, "more than 65535 lines");
    free(text);
    text = repeat("", '\n', 60000, "http = { prot = 1; };");
    assert_located_error(hl_config_load_string(&cfg, text, "t.cfg", err, sizeof(err)), err, "t.cfg",
                         60001, "unknown setting 'http.prot'");
    free(text);

    /* An unterminated comment or string runs to the end without harm. */
    assert_int_equal(hl_config_load_string(&cfg, "/* 99999999999", "t.cfg", err, sizeof(err)),
                     HL_OK);
    assert_int_equal(hl_config_load_string(&cfg, "http = { bind = \"\\", "t.cfg", err, sizeof(err)),
                     HL_ERR);
}

/* ---- Environment ------------------------------------------------------------ */

static void test_config_env_names_follow_group_and_setting(void **state) {
    static const char *const expected[] = {
        "HOLDLINE_HTTP_CONNECTION_MEMORY", /* refused with what replaced it */
        "HOLDLINE_NODE_NAME",
        "HOLDLINE_NODE_DRAIN_MS",
        "HOLDLINE_HTTP_BIND",
        "HOLDLINE_HTTP_PORT",
        "HOLDLINE_HTTP_WORKERS",
        "HOLDLINE_HTTP_MAX_CONNECTIONS",
        "HOLDLINE_HTTP_POOL_TINY",
        "HOLDLINE_HTTP_POOL_SMALL",
        "HOLDLINE_HTTP_POOL_MEDIUM",
        "HOLDLINE_HTTP_POOL_LARGE",
        "HOLDLINE_HTTP_POOL_XLARGE",
        "HOLDLINE_HTTP_POOL_HUGE",
        "HOLDLINE_HTTP_DAEMONS",
        "HOLDLINE_HTTP_CONNECTION_TIMEOUT",
        "HOLDLINE_HTTP_MAX_URL_BYTES",
        "HOLDLINE_HTTP_MAX_HEADER_BYTES",
        "HOLDLINE_HTTP_CORS_ORIGINS",
        "HOLDLINE_REDIS_MODE",
        "HOLDLINE_REDIS_HOST",
        "HOLDLINE_REDIS_PORT",
        "HOLDLINE_REDIS_PASSWORD",
        "HOLDLINE_REDIS_DB",
        "HOLDLINE_REDIS_PREFIX",
        "HOLDLINE_REDIS_CONNECT_TIMEOUT_MS",
        "HOLDLINE_REDIS_RECONNECT_MIN_MS",
        "HOLDLINE_REDIS_RECONNECT_MAX_MS",
        "HOLDLINE_REDIS_HEARTBEAT_MS",
        "HOLDLINE_REDIS_CANARY_MS",
        "HOLDLINE_REDIS_CANARY_TIMEOUT_MS",
        "HOLDLINE_REDIS_SENTINELS",
        "HOLDLINE_REDIS_MASTER_NAME",
        "HOLDLINE_REDIS_SENTINEL_PASSWORD",
        "HOLDLINE_REDIS_SENTINEL_TIMEOUT_MS",
        "HOLDLINE_REDIS_SENTINEL_CHECK_MS",
        "HOLDLINE_REDIS_CLUSTER_NODES",
        "HOLDLINE_REDIS_CLUSTER_REFRESH_MS",
        "HOLDLINE_POLL_DEFAULT_TIMEOUT",
        "HOLDLINE_POLL_MAX_TIMEOUT",
        "HOLDLINE_POLL_MAX_CHANNELS",
        "HOLDLINE_POLL_LINGER_MS",
        "HOLDLINE_POLL_MAX_MESSAGES",
        "HOLDLINE_SSE_HEARTBEAT_S",
        "HOLDLINE_SSE_MAX_DURATION_S",
        "HOLDLINE_SSE_RETRY_MS",
        "HOLDLINE_HISTORY_LENGTH",
        "HOLDLINE_HISTORY_TTL",
        "HOLDLINE_HISTORY_CACHE",
        "HOLDLINE_PUBLISH_ENABLED",
        "HOLDLINE_PUBLISH_KEY",
        "HOLDLINE_PUBLISH_MAX_MESSAGE_BYTES",
        "HOLDLINE_PUBLISH_WAIT_REPLICAS",
        "HOLDLINE_PUBLISH_WAIT_TIMEOUT_MS",
        "HOLDLINE_AUTH_MODE",
        "HOLDLINE_AUTH_JWT_KEY",
        "HOLDLINE_AUTH_JWT_KEY_FILE",
        "HOLDLINE_AUTH_JWT_ALGORITHM",
        "HOLDLINE_AUTH_AUDIENCE",
        "HOLDLINE_AUTH_ISSUER",
        "HOLDLINE_AUTH_LEEWAY_S",
        "HOLDLINE_AUTH_PUBLIC_CHANNELS",
        "HOLDLINE_AUTH_TOKEN_COOKIE",
        "HOLDLINE_AUTH_QUERY_TOKEN",
        "HOLDLINE_LOG_LEVEL",
        "HOLDLINE_LOG_FORMAT",
        "HOLDLINE_LOG_FILE",
    };
    hl_config def, cfg;
    char err[256] = "";
    (void)state;

    hl_config_defaults(&def);
    cfg = def;
    asked_len = 0;
    assert_int_equal(hl_config_apply_env(&cfg, recording_getenv, err, sizeof(err)), HL_OK);
    assert_int_equal(asked_len, HL_ARRAY_LEN(expected));
    for (size_t i = 0; i < HL_ARRAY_LEN(expected); i++)
        assert_string_equal(asked[i], expected[i]);
    /* Nothing set, nothing changed. */
    assert_memory_equal(&cfg, &def, sizeof(cfg));
}

static void test_config_env_overrides_apply(void **state) {
    static const env_var vars[] = {
        {"HOLDLINE_HTTP_PORT", "9090"},
        {"HOLDLINE_HISTORY_TTL", "+60"},
        {"HOLDLINE_REDIS_DB", "007"},
        {"HOLDLINE_REDIS_HOST", "redis.internal"},
        {"HOLDLINE_REDIS_PASSWORD", ""},
        {"HOLDLINE_PUBLISH_KEY", "key with spaces is fine"},
        {"HOLDLINE_PUBLISH_ENABLED", "no"},
        {"HOLDLINE_HTTP_CORS_ORIGINS", " https://a.example ,\thttps://b.example,*"},
        {"HOLDLINE_NODE_NAME", "edge-1"},
    };
    hl_config cfg;
    char err[256] = "";
    (void)state;

    hl_config_defaults(&cfg);
    strcpy(cfg.redis_password, "from-file");
    set_fake_env(vars, HL_ARRAY_LEN(vars));
    if (hl_config_apply_env(&cfg, fake_getenv, err, sizeof(err)) != HL_OK) fail_msg("%s", err);
    assert_int_equal(cfg.http_port, 9090);
    assert_int_equal(cfg.history_ttl, 60);
    assert_int_equal(cfg.redis_db, 7);
    assert_string_equal(cfg.redis_host, "redis.internal");
    assert_string_equal(cfg.redis_password, "");
    assert_string_equal(cfg.publish_key, "key with spaces is fine");
    assert_false(cfg.publish_enabled);
    assert_int_equal(cfg.http_cors_origins_count, 3);
    assert_string_equal(cfg.http_cors_origins[0], "https://a.example");
    assert_string_equal(cfg.http_cors_origins[1], "https://b.example");
    assert_string_equal(cfg.http_cors_origins[2], "*");
    assert_string_equal(cfg.node_name, "edge-1");
    /* Untouched settings keep their values. */
    assert_int_equal(cfg.redis_port, 6379);
    assert_string_equal(cfg.log_level, "info");
}

static void test_config_env_empty_list_clears_cors(void **state) {
    static const env_var vars[] = {{"HOLDLINE_HTTP_CORS_ORIGINS", ""}};
    hl_config cfg;
    char err[256] = "";
    (void)state;

    hl_config_defaults(&cfg);
    cfg.http_cors_origins_count = 1;
    strcpy(cfg.http_cors_origins[0], "*");
    set_fake_env(vars, HL_ARRAY_LEN(vars));
    assert_int_equal(hl_config_apply_env(&cfg, fake_getenv, err, sizeof(err)), HL_OK);
    assert_int_equal(cfg.http_cors_origins_count, 0);
    assert_string_equal(cfg.http_cors_origins[0], "");
}

static void test_config_env_booleans_have_several_spellings(void **state) {
    static const struct {
        const char *value;
        bool expect;
    } cases[] = {
        {"true", true},   {"TRUE", true},   {"yes", true}, {"Yes", true}, {"1", true},
        {"false", false}, {"False", false}, {"no", false}, {"NO", false}, {"0", false},
    };
    (void)state;

    for (size_t i = 0; i < HL_ARRAY_LEN(cases); i++) {
        env_var var = {"HOLDLINE_PUBLISH_ENABLED", cases[i].value};
        hl_config cfg;
        char err[256] = "";
        hl_config_defaults(&cfg);
        cfg.publish_enabled = !cases[i].expect;
        set_fake_env(&var, 1);
        assert_int_equal(hl_config_apply_env(&cfg, fake_getenv, err, sizeof(err)), HL_OK);
        assert_int_equal(cfg.publish_enabled, cases[i].expect);
    }
}

static const struct {
    const char *name;
    const char *value;
    const char *err;
} bad_env[] = {
    {"HOLDLINE_HTTP_PORT", "abc", "HOLDLINE_HTTP_PORT: must be an integer"},
    {"HOLDLINE_HTTP_PORT", "80x", "HOLDLINE_HTTP_PORT: must be an integer"},
    {"HOLDLINE_HTTP_PORT", "80 ", "HOLDLINE_HTTP_PORT: must be an integer"},
    {"HOLDLINE_HTTP_PORT", " 80", "HOLDLINE_HTTP_PORT: must be an integer"},
    {"HOLDLINE_HTTP_PORT", "", "HOLDLINE_HTTP_PORT: must be an integer"},
    {"HOLDLINE_HTTP_PORT", "-", "HOLDLINE_HTTP_PORT: must be an integer"},
    {"HOLDLINE_HTTP_PORT", "0x50", "HOLDLINE_HTTP_PORT: must be an integer"},
    {"HOLDLINE_HTTP_PORT", "8.0", "HOLDLINE_HTTP_PORT: must be an integer"},
    {"HOLDLINE_HTTP_PORT", "1e3", "HOLDLINE_HTTP_PORT: must be an integer"},
    {"HOLDLINE_HTTP_PORT", "70000", "HOLDLINE_HTTP_PORT: must be between 1 and 65535"},
    {"HOLDLINE_HTTP_PORT", "0", "HOLDLINE_HTTP_PORT: must be between 1 and 65535"},
    {"HOLDLINE_HTTP_PORT", "4294975488", "HOLDLINE_HTTP_PORT: must be between 1 and 65535"},
    {"HOLDLINE_HTTP_PORT", "99999999999999999999999",
     "HOLDLINE_HTTP_PORT: must be between 1 and 65535"},
    {"HOLDLINE_HTTP_PORT", "-99999999999999999999999",
     "HOLDLINE_HTTP_PORT: must be between 1 and 65535"},
    {"HOLDLINE_REDIS_DB", "-1", "HOLDLINE_REDIS_DB: must be at least 0"},
    {"HOLDLINE_HISTORY_LENGTH", "0", "HOLDLINE_HISTORY_LENGTH: must be at least 1"},
    {"HOLDLINE_PUBLISH_ENABLED", "maybe",
     "HOLDLINE_PUBLISH_ENABLED: must be true, false, yes, no, 1 or 0"},
    {"HOLDLINE_PUBLISH_ENABLED", "",
     "HOLDLINE_PUBLISH_ENABLED: must be true, false, yes, no, 1 or 0"},
    {"HOLDLINE_PUBLISH_ENABLED", "2",
     "HOLDLINE_PUBLISH_ENABLED: must be true, false, yes, no, 1 or 0"},
    {"HOLDLINE_PUBLISH_ENABLED", "true ",
     "HOLDLINE_PUBLISH_ENABLED: must be true, false, yes, no, 1 or 0"},
    {"HOLDLINE_REDIS_HOST", "", "HOLDLINE_REDIS_HOST: must not be empty"},
    {"HOLDLINE_REDIS_HOST", "a\r\nb",
     "HOLDLINE_REDIS_HOST: must not contain spaces or control characters"},
    {"HOLDLINE_REDIS_PREFIX", "x y",
     "HOLDLINE_REDIS_PREFIX: must be 1 to 63 characters of A-Z a-z 0-9 : _ . -"},
    {"HOLDLINE_LOG_LEVEL", "loud", "HOLDLINE_LOG_LEVEL: must be one of debug, info, warn, error"},
    {"HOLDLINE_LOG_FORMAT", "xml", "HOLDLINE_LOG_FORMAT: must be text or json"},
    {"HOLDLINE_HTTP_BIND", "0.0.0.0:80",
     "HOLDLINE_HTTP_BIND: must be an IPv4 address such as 0.0.0.0"},
    {"HOLDLINE_HTTP_CORS_ORIGINS", "a,,b",
     "HOLDLINE_HTTP_CORS_ORIGINS: must not contain empty entries"},
    {"HOLDLINE_HTTP_CORS_ORIGINS", "a,",
     "HOLDLINE_HTTP_CORS_ORIGINS: must not contain empty entries"},
    {"HOLDLINE_HTTP_CORS_ORIGINS", " ",
     "HOLDLINE_HTTP_CORS_ORIGINS: must not contain empty entries"},
    {"HOLDLINE_HTTP_CORS_ORIGINS", "a, b c",
     "HOLDLINE_HTTP_CORS_ORIGINS: entry 2 must not contain spaces or control characters"},
    {"HOLDLINE_HTTP_CORS_ORIGINS", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17",
     "HOLDLINE_HTTP_CORS_ORIGINS: must have at most 16 entries"},
};

static void test_config_env_rejects_bad_values(void **state) {
    (void)state;
    for (size_t i = 0; i < HL_ARRAY_LEN(bad_env); i++) {
        env_var var = {bad_env[i].name, bad_env[i].value};
        hl_config cfg;
        char err[256] = "";
        hl_config_defaults(&cfg);
        set_fake_env(&var, 1);
        if (hl_config_apply_env(&cfg, fake_getenv, err, sizeof(err)) != HL_ERR)
            fail_msg("%s=\"%s\" was accepted", bad_env[i].name, bad_env[i].value);
        assert_string_equal(err, bad_env[i].err);
    }
}

static void test_config_env_rejects_long_values(void **state) {
    static const struct {
        const char *name;
        const char *tail;
        size_t n;
        const char *err;
    } cases[] = {
        {"HOLDLINE_REDIS_HOST", "", 256, "HOLDLINE_REDIS_HOST: is too long (at most 255 bytes)"},
        {"HOLDLINE_NODE_NAME", "", 64, "HOLDLINE_NODE_NAME: is too long (at most 63 bytes)"},
        {"HOLDLINE_HTTP_CORS_ORIGINS", ",b", 256,
         "HOLDLINE_HTTP_CORS_ORIGINS: entry 1 is too long (at most 255 bytes)"},
        {"HOLDLINE_HTTP_PORT", "", 100000, "HOLDLINE_HTTP_PORT: must be between 1 and 65535"},
    };
    (void)state;

    for (size_t i = 0; i < HL_ARRAY_LEN(cases); i++) {
        char *value = repeat("", i == 3 ? '9' : 'a', cases[i].n, cases[i].tail);
        env_var var = {cases[i].name, value};
        hl_config cfg;
        char err[256] = "";
        hl_config_defaults(&cfg);
        set_fake_env(&var, 1);
        assert_int_equal(hl_config_apply_env(&cfg, fake_getenv, err, sizeof(err)), HL_ERR);
        assert_string_equal(err, cases[i].err);
        free(value);
    }
}

/* ---- Redis address ---------------------------------------------------------- */

static void test_config_set_redis_addr_accepts_good_addresses(void **state) {
    static const struct {
        const char *addr;
        const char *host;
        int port;
    } cases[] = {
        {"redis.example:6380", "redis.example", 6380},
        {"10.0.0.5", "10.0.0.5", 6379},
        {"redis_1", "redis_1", 6379},
        {"localhost:1", "localhost", 1},
        {"h:65535", "h", 65535},
        {"h:06380", "h", 6380},
        {"[::1]:6380", "::1", 6380},
        {"[::1]", "::1", 6379},
        {"[2001:db8::5]:7000", "2001:db8::5", 7000},
        {"[fe80::1%eth0]:7000", "fe80::1%eth0", 7000},
        {"[::ffff:10.0.0.1]:7001", "::ffff:10.0.0.1", 7001},
    };
    (void)state;

    for (size_t i = 0; i < HL_ARRAY_LEN(cases); i++) {
        hl_config cfg;
        char err[256] = "";
        hl_config_defaults(&cfg);
        if (hl_config_set_redis_addr(&cfg, cases[i].addr, err, sizeof(err)) != HL_OK)
            fail_msg("%s: %s", cases[i].addr, err);
        assert_string_equal(cfg.redis_host, cases[i].host);
        assert_int_equal(cfg.redis_port, cases[i].port);
    }
}

static void test_config_set_redis_addr_rejects_junk(void **state) {
    static const struct {
        const char *addr;
        const char *words;
    } cases[] = {
        {"", "redis address is empty"},
        {":6379", "empty host"},
        {"host:", "empty port"},
        {"host:0", "port must be between 1 and 65535"},
        {"host:65536", "port must be between 1 and 65535"},
        {"host:-1", "port must be between 1 and 65535"},
        {"host:+80", "port must be between 1 and 65535"},
        {"host:80x", "port must be between 1 and 65535"},
        {"host: 80", "port must be between 1 and 65535"},
        {"host:abc", "port must be between 1 and 65535"},
        {"host:99999999999999999999", "port must be between 1 and 65535"},
        {"host:1:2", "expected host:port"},
        {"::1", "write IPv6 addresses as [address]:port"},
        {"fe80::1:6380", "write IPv6 addresses as [address]:port"},
        {"[::1", "missing ']'"},
        {"[::1]x", "expected ':port' after ']'"},
        {"[::1]:", "empty port"},
        {"[::1]:0", "port must be between 1 and 65535"},
        {"[]:6379", "empty host"},
        {"[abc]:6379", "brackets are for IPv6 addresses"},
        {"[::1 ]:6379", "bad character in host"},
        {"host name:1", "bad character in host"},
        {"host/x", "bad character in host"},
        {"redis://host:6379", "expected host:port"},
        {"redis://host", "port must be between 1 and 65535"},
        {" host", "bad character in host"},
        {"h\xc3\xa9:1", "bad character in host"},
    };
    (void)state;

    for (size_t i = 0; i < HL_ARRAY_LEN(cases); i++) {
        hl_config def, cfg;
        char err[256] = "";
        hl_config_defaults(&def);
        cfg = def;
        if (hl_config_set_redis_addr(&cfg, cases[i].addr, err, sizeof(err)) != HL_ERR)
            fail_msg("\"%s\" was accepted", cases[i].addr);
        assert_contains(err, cases[i].words);
        /* A rejected address leaves the config alone. */
        assert_memory_equal(&cfg, &def, sizeof(cfg));
    }
}

static void test_config_set_redis_addr_rejects_long_and_null(void **state) {
    hl_config cfg;
    char err[256] = "";
    char *addr = repeat("", 'h', 256, ":6379");
    (void)state;

    hl_config_defaults(&cfg);
    assert_int_equal(hl_config_set_redis_addr(&cfg, addr, err, sizeof(err)), HL_ERR);
    assert_contains(err, "host is too long");
    free(addr);
    addr = repeat("", 'h', 255, ":6380");
    assert_int_equal(hl_config_set_redis_addr(&cfg, addr, err, sizeof(err)), HL_OK);
    assert_int_equal(strlen(cfg.redis_host), 255);
    assert_int_equal(cfg.redis_port, 6380);
    free(addr);
    assert_int_equal(hl_config_set_redis_addr(&cfg, NULL, err, sizeof(err)), HL_ERR);
}

/* ---- Validation ------------------------------------------------------------- */

#define INT_FIELD(f) offsetof(hl_config, f)

static const struct {
    size_t offset;
    int value;
    const char *err;
} bad_ints[] = {
    {INT_FIELD(http_port), 0, "http.port: must be between 1 and 65535"},
    {INT_FIELD(http_port), 65536, "http.port: must be between 1 and 65535"},
    {INT_FIELD(http_workers), -1, "http.workers: must be between 0 and 256"},
    {INT_FIELD(http_workers), 257, "http.workers: must be between 0 and 256"},
    {INT_FIELD(http_max_connections), 0, "http.max_connections: must be between 1 and 1000000"},
    {INT_FIELD(http_max_connections), 1000001,
     "http.max_connections: must be between 1 and 1000000"},
    {INT_FIELD(http_pool[0]), -1, "http.pool_tiny: must be between 0 and 1048576"},
    {INT_FIELD(http_pool[5]), 1048577, "http.pool_huge: must be between 0 and 1048576"},
    {INT_FIELD(http_daemons), 0, "http.daemons: must be between 1 and 64"},
    {INT_FIELD(http_daemons), 65, "http.daemons: must be between 1 and 64"},
    {INT_FIELD(http_connection_timeout), 0, "http.connection_timeout: must be between 1 and 3600"},
    {INT_FIELD(http_connection_timeout), 3601,
     "http.connection_timeout: must be between 1 and 3600"},
    {INT_FIELD(redis_port), 0, "redis.port: must be between 1 and 65535"},
    {INT_FIELD(redis_port), INT_MIN, "redis.port: must be between 1 and 65535"},
    {INT_FIELD(redis_db), -1, "redis.db: must be at least 0"},
    {INT_FIELD(redis_connect_timeout_ms), 0,
     "redis.connect_timeout_ms: must be between 1 and 600000"},
    {INT_FIELD(redis_reconnect_min_ms), 0, "redis.reconnect_min_ms: must be between 1 and 3600000"},
    {INT_FIELD(redis_reconnect_max_ms), -5,
     "redis.reconnect_max_ms: must be between 1 and 3600000"},
    {INT_FIELD(poll_default_timeout), 0, "poll.default_timeout: must be between 1 and 3600"},
    {INT_FIELD(poll_max_timeout), 0, "poll.max_timeout: must be between 1 and 3600"},
    {INT_FIELD(poll_max_timeout), 3601, "poll.max_timeout: must be between 1 and 3600"},
    {INT_FIELD(poll_max_channels), 0, "poll.max_channels: must be between 1 and 256"},
    {INT_FIELD(poll_max_channels), 257, "poll.max_channels: must be between 1 and 256"},
    {INT_FIELD(poll_linger_ms), -1, "poll.linger_ms: must be between 0 and 600000"},
    {INT_FIELD(poll_linger_ms), 600001, "poll.linger_ms: must be between 0 and 600000"},
    {INT_FIELD(history_length), 0, "history.length: must be at least 1"},
    {INT_FIELD(history_ttl), -1, "history.ttl: must be at least 1"},
    {INT_FIELD(publish_max_message_bytes), 0,
     "publish.max_message_bytes: must be between 1 and 16777216"},
    {INT_FIELD(publish_max_message_bytes), 16777217,
     "publish.max_message_bytes: must be between 1 and 16777216"},
    /* Relations between settings. */
    {INT_FIELD(poll_default_timeout), 121,
     "poll.default_timeout: must be between 1 and 120 (poll.max_timeout)"},
    {INT_FIELD(http_pool[0]), 1023, "http.pool_tiny: must be 0 (off) or at least 1024"},
    {INT_FIELD(http_pool[2]), 3072,
     "http.pool_medium: must be larger than the classes before it (3072), or 0"},
    {INT_FIELD(http_pool[5]), 20000,
     "http.pool_huge: must be larger than the classes before it (32768), or 0"},
    {INT_FIELD(http_max_url_bytes), 65000,
     "http.max_url_bytes: must leave 1024 bytes of the largest pool class (65536) for the "
     "answer, or that limit could never be reached"},
    {INT_FIELD(redis_heartbeat_ms), 99, "redis.heartbeat_ms: must be between 100 and 600000"},
    {INT_FIELD(node_drain_ms), 600001, "node.drain_ms: must be between 0 and 600000"},
    {INT_FIELD(redis_reconnect_min_ms), 5001,
     "redis.reconnect_min_ms: must not be greater than redis.reconnect_max_ms (1000)"},
    {INT_FIELD(http_cors_origins_count), -1, "http.cors_origins: must have at most 16 entries"},
    {INT_FIELD(http_cors_origins_count), 17, "http.cors_origins: must have at most 16 entries"},
    /* The default has no origins, so one counted entry is an empty one. */
    {INT_FIELD(http_cors_origins_count), 1, "http.cors_origins: entry 1 must not be empty"},
};

static const struct {
    size_t offset;
    const char *value;
    const char *err;
} bad_strs[] = {
    {offsetof(hl_config, redis_prefix), "",
     "redis.prefix: must be 1 to 63 characters of A-Z a-z 0-9 : _ . -"},
    {offsetof(hl_config, redis_prefix), "a b",
     "redis.prefix: must be 1 to 63 characters of A-Z a-z 0-9 : _ . -"},
    {offsetof(hl_config, redis_prefix), "hl{x}",
     "redis.prefix: must be 1 to 63 characters of A-Z a-z 0-9 : _ . -"},
    {offsetof(hl_config, redis_prefix), "h?",
     "redis.prefix: must be 1 to 63 characters of A-Z a-z 0-9 : _ . -"},
    {offsetof(hl_config, log_level), "verbose",
     "log.level: must be one of debug, info, warn, error"},
    {offsetof(hl_config, log_level), "", "log.level: must be one of debug, info, warn, error"},
    {offsetof(hl_config, log_format), "xml", "log.format: must be text or json"},
    {offsetof(hl_config, http_bind), "", "http.bind: must be an IPv4 address such as 0.0.0.0"},
    {offsetof(hl_config, http_bind), "256.0.0.1",
     "http.bind: must be an IPv4 address such as 0.0.0.0"},
    {offsetof(hl_config, redis_host), "", "redis.host: must not be empty"},
    {offsetof(hl_config, node_name), "", "node.name: must not be empty"},
    {offsetof(hl_config, node_name), "a\tb",
     "node.name: must not contain spaces or control characters"},
};

static void test_config_validate_rejects_bad_values(void **state) {
    (void)state;
    for (size_t i = 0; i < HL_ARRAY_LEN(bad_ints); i++) {
        hl_config cfg;
        char err[256] = "";
        hl_config_defaults(&cfg);
        memcpy((char *)&cfg + bad_ints[i].offset, &bad_ints[i].value, sizeof(int));
        if (hl_config_validate(&cfg, err, sizeof(err)) != HL_ERR)
            fail_msg("case %zu (%s) was accepted", i, bad_ints[i].err);
        assert_string_equal(err, bad_ints[i].err);
    }
    for (size_t i = 0; i < HL_ARRAY_LEN(bad_strs); i++) {
        hl_config cfg;
        char err[256] = "";
        hl_config_defaults(&cfg);
        strcpy((char *)&cfg + bad_strs[i].offset, bad_strs[i].value);
        assert_int_equal(hl_config_validate(&cfg, err, sizeof(err)), HL_ERR);
        assert_string_equal(err, bad_strs[i].err);
    }
}

/* Flags write fields directly; a missing terminator must not be read past. */
static void test_config_validate_rejects_unterminated_strings(void **state) {
    hl_config cfg;
    char err[256] = "";
    (void)state;

    hl_config_defaults(&cfg);
    memset(cfg.redis_host, 'a', sizeof(cfg.redis_host));
    assert_int_equal(hl_config_validate(&cfg, err, sizeof(err)), HL_ERR);
    assert_string_equal(err, "redis.host: is too long (at most 255 bytes)");

    hl_config_defaults(&cfg);
    cfg.http_cors_origins_count = 1;
    memset(cfg.http_cors_origins[0], 'a', sizeof(cfg.http_cors_origins[0]));
    assert_int_equal(hl_config_validate(&cfg, err, sizeof(err)), HL_ERR);
    assert_string_equal(err, "http.cors_origins: entry 1 is too long (at most 255 bytes)");
}

static void test_config_validate_refuses_every_pool_class_off(void **state) {
    hl_config cfg;
    char err[256] = "";
    (void)state;

    hl_config_defaults(&cfg);
    for (int i = 0; i < HL_CONFIG_POOL_CLASSES; i++)
        cfg.http_pool[i] = 0;
    assert_int_equal(hl_config_validate(&cfg, err, sizeof(err)), HL_ERR);
    assert_string_equal(err, "http.pool_huge: at least one pool class must be on");
    /* One class alone is enough. */
    cfg.http_pool[2] = 8192;
    assert_int_equal(hl_config_validate(&cfg, err, sizeof(err)), HL_OK);
}

static const char *env_old_pool(const char *name) {
    return strcmp(name, "HOLDLINE_HTTP_CONNECTION_MEMORY") == 0 ? "8192" : NULL;
}

static void test_config_connection_memory_is_refused_with_what_replaced_it(void **state) {
    hl_config cfg;
    char err[512] = "";
    (void)state;

    hl_config_defaults(&cfg);
    assert_int_equal(hl_config_load_string(&cfg, "http = {\n  connection_memory = 8192;\n};\n",
                                           "old.cfg", err, sizeof(err)),
                     HL_ERR);
    assert_non_null(strstr(err, "old.cfg:2: 'http.connection_memory' is gone"));
    assert_non_null(strstr(err, "http.pool_tiny ... http.pool_huge"));
    assert_int_equal(hl_config_apply_env(&cfg, env_old_pool, err, sizeof(err)), HL_ERR);
    assert_non_null(strstr(err, "HOLDLINE_HTTP_CONNECTION_MEMORY: http.connection_memory is gone"));
}

/* Sentinel mode: its settings from a file, and what it refuses. */
static void test_config_sentinel_mode(void **state) {
    static const char good[] = "redis = {\n"
                               "  mode = \"sentinel\";\n"
                               "  sentinels = [\"127.0.0.1:26379\", \"[::1]:26380\", \"s3:1\"];\n"
                               "  master_name = \"mymaster\";\n"
                               "};\n"
                               "publish = { wait_replicas = 2; wait_timeout_ms = 50; };\n";
    static const struct {
        const char *text;
        int line;
        const char *words;
    } bad[] = {
        {"redis = {\n  mode = \"shards\";\n};\n", 2, "must be single, sentinel or cluster"},
        {"redis = {\n  sentinels = [\"127.0.0.1\"];\n};\n", 2, "must be host:port"},
        {"redis = {\n  sentinels = [\"a:0\"];\n};\n", 2, "must be host:port"},
        {"redis = {\n  sentinels = [\"a b:1\"];\n};\n", 2, "must be host:port"},
        {"redis = {\n  master_name = \"my master\";\n};\n", 2, "must not contain spaces"},
        {"publish = {\n  wait_replicas = -1;\n};\n", 2, "wait_replicas"},
        {"publish = {\n  wait_timeout_ms = 0;\n};\n", 2, "wait_timeout_ms"},
    };
    hl_config cfg;
    char err[512] = "";
    (void)state;

    hl_config_defaults(&cfg);
    if (hl_config_load_string(&cfg, good, "s.cfg", err, sizeof(err)) != HL_OK) fail_msg("%s", err);
    assert_int_equal(hl_config_validate(&cfg, err, sizeof(err)), HL_OK);
    assert_string_equal(cfg.redis_mode, "sentinel");
    assert_int_equal(cfg.redis_sentinels_count, 3);
    assert_string_equal(cfg.redis_sentinels[1], "[::1]:26380");
    assert_string_equal(cfg.redis_master_name, "mymaster");
    assert_int_equal(cfg.publish_wait_replicas, 2);
    assert_int_equal(cfg.publish_wait_timeout_ms, 50);

    for (size_t i = 0; i < HL_ARRAY_LEN(bad); i++) {
        hl_config_defaults(&cfg);
        err[0] = '\0';
        assert_int_equal(hl_config_load_string(&cfg, bad[i].text, "b.cfg", err, sizeof(err)),
                         HL_ERR);
        char at[32];
        snprintf(at, sizeof(at), "b.cfg:%d:", bad[i].line);
        if (strncmp(err, at, strlen(at)) != 0 || strstr(err, bad[i].words) == NULL)
            fail_msg("case %zu: '%s' does not start with '%s' and name '%s'", i, err, at,
                     bad[i].words);
    }

    /* What sentinel mode needs, checked by validation. */
    hl_config_defaults(&cfg);
    strcpy(cfg.redis_mode, "sentinel");
    assert_int_equal(hl_config_validate(&cfg, err, sizeof(err)), HL_ERR);
    assert_non_null(strstr(err, "redis.sentinels: redis.mode is sentinel"));
    cfg.redis_sentinels_count = 1;
    strcpy(cfg.redis_sentinels[0], "127.0.0.1:26379");
    assert_int_equal(hl_config_validate(&cfg, err, sizeof(err)), HL_ERR);
    assert_non_null(strstr(err, "redis.master_name: redis.mode is sentinel"));
    strcpy(cfg.redis_master_name, "m");
    assert_int_equal(hl_config_validate(&cfg, err, sizeof(err)), HL_OK);
    /* The environment's comma-separated list. */
    static const env_var vars[] = {{"HOLDLINE_REDIS_SENTINELS", "h1:1,h2:2,h3:3"}};
    set_fake_env(vars, HL_ARRAY_LEN(vars));
    assert_int_equal(hl_config_apply_env(&cfg, fake_getenv, err, sizeof(err)), HL_OK);
    assert_int_equal(cfg.redis_sentinels_count, 3);
    assert_string_equal(cfg.redis_sentinels[2], "h3:3");
    static const env_var junk[] = {{"HOLDLINE_REDIS_SENTINELS", "h1:1,h2"}};
    set_fake_env(junk, HL_ARRAY_LEN(junk));
    assert_int_equal(hl_config_apply_env(&cfg, fake_getenv, err, sizeof(err)), HL_ERR);
    assert_non_null(strstr(err, "HOLDLINE_REDIS_SENTINELS"));
}

/* Cluster mode: its settings from a file, and what it refuses. */
static void test_config_cluster_mode(void **state) {
    static const char good[] = "redis = {\n"
                               "  mode = \"cluster\";\n"
                               "  cluster_nodes = [\"127.0.0.1:7000\", \"r2.internal:7001\"];\n"
                               "  cluster_refresh_ms = 250;\n"
                               "};\n";
    hl_config cfg;
    char err[512] = "";
    (void)state;

    hl_config_defaults(&cfg);
    if (hl_config_load_string(&cfg, good, "c.cfg", err, sizeof(err)) != HL_OK) fail_msg("%s", err);
    assert_int_equal(hl_config_validate(&cfg, err, sizeof(err)), HL_OK);
    assert_string_equal(cfg.redis_mode, "cluster");
    assert_int_equal(cfg.redis_cluster_nodes_count, 2);
    assert_string_equal(cfg.redis_cluster_nodes[1], "r2.internal:7001");
    assert_int_equal(cfg.redis_cluster_refresh_ms, 250);

    static const char *const bad[] = {
        "redis = {\n  cluster_nodes = [\"127.0.0.1\"];\n};\n",
        "redis = {\n  cluster_nodes = [\"a:70000\"];\n};\n",
        "redis = {\n  cluster_refresh_ms = 99;\n};\n",
    };
    for (size_t i = 0; i < HL_ARRAY_LEN(bad); i++) {
        hl_config_defaults(&cfg);
        err[0] = '\0';
        assert_int_equal(hl_config_load_string(&cfg, bad[i], "b.cfg", err, sizeof(err)), HL_ERR);
        if (strncmp(err, "b.cfg:2:", 8) != 0) fail_msg("case %zu: '%s'", i, err);
    }

    /* What cluster mode needs, checked by validation. */
    hl_config_defaults(&cfg);
    strcpy(cfg.redis_mode, "cluster");
    assert_int_equal(hl_config_validate(&cfg, err, sizeof(err)), HL_ERR);
    assert_non_null(strstr(err, "redis.cluster_nodes: redis.mode is cluster"));
    cfg.redis_cluster_nodes_count = 1;
    strcpy(cfg.redis_cluster_nodes[0], "127.0.0.1:7000");
    cfg.redis_db = 2;
    assert_int_equal(hl_config_validate(&cfg, err, sizeof(err)), HL_ERR);
    assert_non_null(strstr(err, "redis.db: must be 0 in cluster mode"));
    cfg.redis_db = 0;
    assert_int_equal(hl_config_validate(&cfg, err, sizeof(err)), HL_OK);
    static const env_var vars[] = {{"HOLDLINE_REDIS_CLUSTER_NODES", "h1:1, h2:2,h3:3"}};
    set_fake_env(vars, HL_ARRAY_LEN(vars));
    assert_int_equal(hl_config_apply_env(&cfg, fake_getenv, err, sizeof(err)), HL_OK);
    assert_int_equal(cfg.redis_cluster_nodes_count, 3);
    assert_string_equal(cfg.redis_cluster_nodes[1], "h2:2");
}

static void test_config_validate_accepts_the_edges(void **state) {
    hl_config cfg;
    char err[256] = "";
    (void)state;

    hl_config_defaults(&cfg);
    cfg.http_port = 1;
    cfg.redis_port = 65535;
    cfg.http_workers = 256;
    cfg.http_max_connections = 1000000;
    cfg.http_pool[0] = 1024;
    cfg.http_pool[1] = 0;
    cfg.http_pool[2] = 0;
    cfg.http_pool[3] = 0;
    cfg.http_pool[4] = 0;
    cfg.http_pool[5] = 1088;
    cfg.http_daemons = 64;
    cfg.http_max_url_bytes = 64;
    cfg.http_max_header_bytes = 256;
    cfg.redis_db = 15;
    cfg.poll_linger_ms = 0;
    cfg.poll_default_timeout = 3600;
    cfg.poll_max_timeout = 3600;
    cfg.redis_reconnect_min_ms = 7;
    cfg.redis_reconnect_max_ms = 7;
    cfg.history_length = INT_MAX;
    cfg.publish_max_message_bytes = 16777216;
    cfg.http_cors_origins_count = HL_CONFIG_MAX_CORS;
    for (int i = 0; i < HL_CONFIG_MAX_CORS; i++)
        strcpy(cfg.http_cors_origins[i], "*");
    memset(cfg.redis_prefix, 'p', sizeof(cfg.redis_prefix) - 1);
    strcpy(cfg.log_level, "error");
    strcpy(cfg.log_format, "json");
    if (hl_config_validate(&cfg, err, sizeof(err)) != HL_OK) fail_msg("%s", err);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_defaults_match_the_header),
        cmocka_unit_test(test_config_defaults_pass_validation),
        cmocka_unit_test(test_config_example_file_gives_the_defaults),
        cmocka_unit_test(test_config_example_file_sets_every_setting),
        cmocka_unit_test(test_config_broken_files_report_file_and_line),
        cmocka_unit_test(test_config_unreadable_files_are_errors),
        cmocka_unit_test(test_config_load_string_accepts_good_input),
        cmocka_unit_test(test_config_load_string_of_nothing_changes_nothing),
        cmocka_unit_test(test_config_load_string_rejects_hostile_input),
        cmocka_unit_test(test_config_load_string_rejects_long_strings),
        cmocka_unit_test(test_config_load_string_takes_exactly_full_buffers),
        cmocka_unit_test(test_config_load_string_limits_cors_entries),
        cmocka_unit_test(test_config_load_string_survives_odd_input),
        cmocka_unit_test(test_config_env_names_follow_group_and_setting),
        cmocka_unit_test(test_config_env_overrides_apply),
        cmocka_unit_test(test_config_env_empty_list_clears_cors),
        cmocka_unit_test(test_config_env_booleans_have_several_spellings),
        cmocka_unit_test(test_config_env_rejects_bad_values),
        cmocka_unit_test(test_config_env_rejects_long_values),
        cmocka_unit_test(test_config_set_redis_addr_accepts_good_addresses),
        cmocka_unit_test(test_config_set_redis_addr_rejects_junk),
        cmocka_unit_test(test_config_set_redis_addr_rejects_long_and_null),
        cmocka_unit_test(test_config_validate_rejects_bad_values),
        cmocka_unit_test(test_config_validate_rejects_unterminated_strings),
        cmocka_unit_test(test_config_validate_accepts_the_edges),
        cmocka_unit_test(test_config_sentinel_mode),
        cmocka_unit_test(test_config_cluster_mode),
        cmocka_unit_test(test_config_validate_refuses_every_pool_class_off),
        cmocka_unit_test(test_config_connection_memory_is_refused_with_what_replaced_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#include "hl_config.h"

#include "hl_common.h"
#include "hl_grant.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libconfig.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* A configuration file larger than this is almost certainly the wrong file
 * (a log, a core dump), and reading it whole would only waste memory. */
#define HL_CONFIG_MAX_FILE (1024 * 1024)

/* libconfig 1.5 keeps a setting's line in an unsigned short, so past this
 * line every "file:line" it reports would silently wrap around. */
#define HL_CONFIG_MAX_LINES 65535

typedef enum hl_setting_type {
    HL_T_INT,     /* int, with an inclusive range */
    HL_T_BOOL,    /* bool */
    HL_T_STR,     /* char[size], NUL-terminated */
    HL_T_STRLIST, /* char[max_items][size] plus an int count */
} hl_setting_type;

/* Returns NULL if a string value is acceptable, or why it is not, phrased to
 * follow the setting's name ("must be ..."). */
typedef const char *hl_check_fn(const char *value);

/* One row per setting. The file loader, the environment loader, the
 * defaults and the validator all walk this table, so a new setting is one
 * row here plus its field in hl_config and its paragraph in the example
 * config. */
typedef struct hl_setting {
    const char *group; /* libconfig group, and the second word of the env name */
    const char *name;  /* setting inside the group */
    hl_setting_type type;
    size_t offset;       /* of the field in hl_config */
    size_t size;         /* buffer size of a string, or of one list entry */
    int min, max;        /* inclusive range of an int */
    int def_int;         /* default of an int or a bool */
    const char *def_str; /* default of a string; NULL means computed */
    hl_check_fn *check;  /* extra rule for a string or each list entry */
    size_t count_offset; /* of a list's entry count in hl_config */
    int max_items;       /* of a list */
} hl_setting;

static const char *check_word(const char *v);
static const char *check_ipv4(const char *v);
static const char *check_prefix(const char *v);
static const char *check_level(const char *v);
static const char *check_format(const char *v);
static const char *check_auth_mode(const char *v);
static const char *check_redis_mode(const char *v);
static const char *check_hostport(const char *v);
static const char *check_master_name(const char *v);
static const char *check_algorithm(const char *v);
static const char *check_pattern(const char *v);
static const char *check_cookie_name(const char *v);

#define HL_SIZEOF(f) sizeof(((hl_config *)0)->f)

#define HL_INT(g, n, f, lo, hi, d)                                                                 \
    {                                                                                              \
        .group = g, .name = n, .type = HL_T_INT, .offset = offsetof(hl_config, f),                 \
        .size = HL_SIZEOF(f), .min = lo, .max = hi, .def_int = d                                   \
    }
#define HL_BOOL(g, n, f, d)                                                                        \
    {                                                                                              \
        .group = g, .name = n, .type = HL_T_BOOL, .offset = offsetof(hl_config, f),                \
        .size = HL_SIZEOF(f), .def_int = d                                                         \
    }
#define HL_STR(g, n, f, d, chk)                                                                    \
    {                                                                                              \
        .group = g, .name = n, .type = HL_T_STR, .offset = offsetof(hl_config, f),                 \
        .size = HL_SIZEOF(f), .def_str = d, .check = chk                                           \
    }
#define HL_STRLIST(g, n, f, cnt, chk)                                                              \
    {                                                                                              \
        .group = g, .name = n, .type = HL_T_STRLIST, .offset = offsetof(hl_config, f),             \
        .size = HL_SIZEOF(f[0]), .def_str = "", .check = chk,                                      \
        .count_offset = offsetof(hl_config, cnt),                                                  \
        .max_items = (int)HL_ARRAY_LEN(((hl_config *)0)->f)                                        \
    }

/* The ranges are the ones a running node can honour; the relations between
 * settings (reconnect_min_ms <= reconnect_max_ms, default_timeout <=
 * max_timeout) are checked by hl_config_validate only, because the layers
 * may set the two sides from different sources. */
static const hl_setting settings[] = {
    HL_STR("node", "name", node_name, NULL, check_word),
    HL_INT("node", "drain_ms", node_drain_ms, 0, 600000, 5000),

    HL_STR("http", "bind", http_bind, "0.0.0.0", check_ipv4),
    HL_INT("http", "port", http_port, 1, 65535, 8080),
    HL_INT("http", "workers", http_workers, 0, 256, 0),
    HL_INT("http", "max_connections", http_max_connections, 1, 1000000, 20000),
    HL_INT("http", "pool_tiny", http_pool[0], 0, 1048576, 1536),
    HL_INT("http", "pool_small", http_pool[1], 0, 1048576, 3072),
    HL_INT("http", "pool_medium", http_pool[2], 0, 1048576, 8192),
    HL_INT("http", "pool_large", http_pool[3], 0, 1048576, 16384),
    HL_INT("http", "pool_xlarge", http_pool[4], 0, 1048576, 32768),
    HL_INT("http", "pool_huge", http_pool[5], 0, 1048576, 65536),
    HL_INT("http", "daemons", http_daemons, 1, 64, 16),
    HL_INT("http", "connection_timeout", http_connection_timeout, 1, 3600, 60),
    HL_INT("http", "max_url_bytes", http_max_url_bytes, 64, 65536, 2048),
    HL_INT("http", "max_header_bytes", http_max_header_bytes, 256, 1048576, 16384),
    HL_STRLIST("http", "cors_origins", http_cors_origins, http_cors_origins_count, check_word),

    HL_STR("redis", "mode", redis_mode, "single", check_redis_mode),
    HL_STR("redis", "host", redis_host, "127.0.0.1", check_word),
    HL_INT("redis", "port", redis_port, 1, 65535, 6379),
    HL_STR("redis", "password", redis_password, "", NULL),
    HL_INT("redis", "db", redis_db, 0, INT_MAX, 0),
    HL_STR("redis", "prefix", redis_prefix, "holdline:", check_prefix),
    HL_INT("redis", "connect_timeout_ms", redis_connect_timeout_ms, 1, 600000, 2000),
    HL_INT("redis", "reconnect_min_ms", redis_reconnect_min_ms, 1, 3600000, 100),
    HL_INT("redis", "reconnect_max_ms", redis_reconnect_max_ms, 1, 3600000, 1000),
    HL_INT("redis", "heartbeat_ms", redis_heartbeat_ms, 100, 600000, 1000),
    HL_INT("redis", "canary_ms", redis_canary_ms, 50, 600000, 1000),
    HL_INT("redis", "canary_timeout_ms", redis_canary_timeout_ms, 100, 3600000, 3000),
    HL_STRLIST("redis", "sentinels", redis_sentinels, redis_sentinels_count, check_hostport),
    HL_STR("redis", "master_name", redis_master_name, "", check_master_name),
    HL_STR("redis", "sentinel_password", redis_sentinel_password, "", NULL),
    HL_INT("redis", "sentinel_timeout_ms", redis_sentinel_timeout_ms, 10, 60000, 300),
    HL_INT("redis", "sentinel_check_ms", redis_sentinel_check_ms, 100, 3600000, 1000),
    HL_STRLIST("redis", "cluster_nodes", redis_cluster_nodes, redis_cluster_nodes_count,
               check_hostport),
    HL_INT("redis", "cluster_refresh_ms", redis_cluster_refresh_ms, 100, 3600000, 5000),

    HL_INT("poll", "default_timeout", poll_default_timeout, 1, 3600, 30),
    HL_INT("poll", "max_timeout", poll_max_timeout, 1, 3600, 120),
    HL_INT("poll", "max_channels", poll_max_channels, 1, HL_MAX_CHANNELS, 16),
    HL_INT("poll", "linger_ms", poll_linger_ms, 0, 600000, 5000),
    HL_INT("poll", "max_messages", poll_max_messages, 1, 10000, 100),

    HL_INT("sse", "heartbeat_s", sse_heartbeat_s, 1, 3600, 15),
    HL_INT("sse", "max_duration_s", sse_max_duration_s, 1, 604800, 3600),
    HL_INT("sse", "retry_ms", sse_retry_ms, 0, 600000, 3000),

    HL_INT("history", "length", history_length, 1, INT_MAX, 1000),
    HL_INT("history", "ttl", history_ttl, 1, INT_MAX, 3600),
    HL_INT("history", "cache", history_cache, 0, 100000, 64),

    HL_BOOL("publish", "enabled", publish_enabled, 1),
    HL_STR("publish", "key", publish_key, "", NULL),
    HL_INT("publish", "max_message_bytes", publish_max_message_bytes, 1, 16777216, 65536),
    HL_INT("publish", "wait_replicas", publish_wait_replicas, 0, 64, 0),
    HL_INT("publish", "wait_timeout_ms", publish_wait_timeout_ms, 1, 60000, 200),

    HL_STR("auth", "mode", auth_mode, "off", check_auth_mode),
    HL_STR("auth", "jwt_key", auth_jwt_key, "", NULL),
    HL_STR("auth", "jwt_key_file", auth_jwt_key_file, "", NULL),
    HL_STR("auth", "jwt_algorithm", auth_jwt_algorithm, "HS256", check_algorithm),
    HL_STR("auth", "audience", auth_audience, "", NULL),
    HL_STR("auth", "issuer", auth_issuer, "", NULL),
    HL_INT("auth", "leeway_s", auth_leeway_s, 0, 3600, 30),
    HL_STRLIST("auth", "public_channels", auth_public_channels, auth_public_channels_count,
               check_pattern),
    HL_STR("auth", "token_cookie", auth_token_cookie, "holdline_token", check_cookie_name),
    HL_BOOL("auth", "query_token", auth_query_token, 0),

    HL_STR("log", "level", log_level, "info", check_level),
    HL_STR("log", "format", log_format, "text", check_format),
    HL_STR("log", "file", log_file, "", NULL),
};

/* ---- String rules ---------------------------------------------------- */

/* Host names, node names and CORS origins end up in headers, logs and
 * connect calls; a space or a control character there is always a mistake
 * and, echoed into a header, a way to inject one. */
static const char *check_word(const char *v) {
    if (*v == '\0') return "must not be empty";
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p <= 0x20 || *p == 0x7f) return "must not contain spaces or control characters";
    }
    return NULL;
}

static const char *check_ipv4(const char *v) {
    struct in_addr a;
    if (inet_pton(AF_INET, v, &a) != 1) return "must be an IPv4 address such as 0.0.0.0";
    return NULL;
}

/* The prefix is pasted into key names and into the PSUBSCRIBE pattern, so
 * glob characters ('*', '?', '[') or spaces would change what is matched. */
static const char *check_prefix(const char *v) {
    size_t n = strlen(v);
    if (n < 1 || n > 63) return "must be 1 to 63 characters of A-Z a-z 0-9 : _ . -";
    if (strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789:_.-") != n)
        return "must be 1 to 63 characters of A-Z a-z 0-9 : _ . -";
    return NULL;
}

static const char *check_level(const char *v) {
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    for (size_t i = 0; i < HL_ARRAY_LEN(levels); i++) {
        if (strcmp(v, levels[i]) == 0) return NULL;
    }
    return "must be one of debug, info, warn, error";
}

static const char *check_format(const char *v) {
    if (strcmp(v, "text") == 0 || strcmp(v, "json") == 0) return NULL;
    return "must be text or json";
}

static const char *check_auth_mode(const char *v) {
    if (strcmp(v, "off") == 0 || strcmp(v, "jwt") == 0) return NULL;
    return "must be off or jwt";
}

static const char *check_redis_mode(const char *v) {
    if (strcmp(v, "single") == 0 || strcmp(v, "sentinel") == 0 || strcmp(v, "cluster") == 0)
        return NULL;
    return "must be single, sentinel or cluster";
}

/* A sentinel's or a cluster seed's address: host:port, the port
 * required. */
static const char *check_hostport(const char *v) {
    char host[256], err[160];
    int port;
    if (hl_config_parse_addr(v, host, sizeof(host), &port, err, sizeof(err)) != HL_OK || port == 0)
        return "must be host:port, such as 127.0.0.1:26379";
    return NULL;
}

/* Sentinel's master names are one word; an empty one means "not set",
 * which validation refuses in sentinel mode. */
static const char *check_master_name(const char *v) {
    return *v == '\0' ? NULL : check_word(v);
}

static const char *check_algorithm(const char *v) {
    static const char *const algs[] = {"HS256", "HS384", "HS512", "RS256", "RS384",
                                       "RS512", "ES256", "ES384", "ES512"};
    for (size_t i = 0; i < HL_ARRAY_LEN(algs); i++) {
        if (strcmp(v, algs[i]) == 0) return NULL;
    }
    return "must be one of HS256 HS384 HS512 RS256 RS384 RS512 ES256 ES384 ES512";
}

static const char *check_pattern(const char *v) {
    if (hl_grant_valid(v, strlen(v))) return NULL;
    return "must be a channel name or a prefix ending in * (such as public.*)";
}

/* A cookie name is an RFC 6265 token: no separators, spaces or controls. */
static const char *check_cookie_name(const char *v) {
    size_t n = strlen(v);
    if (n == 0) return "must not be empty";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c <= 0x20 || c >= 0x7f || strchr("()<>@,;:\\\"/[]?={}", c) != NULL)
            return "must be a cookie name (letters, digits and !#$%&'*+-.^_`|~)";
    }
    return NULL;
}

/* ---- Table access ---------------------------------------------------- */

static void *field(hl_config *cfg, const hl_setting *s) {
    return (char *)cfg + s->offset;
}

static const void *cfield(const hl_config *cfg, const hl_setting *s) {
    return (const char *)cfg + s->offset;
}

static int *list_count(hl_config *cfg, const hl_setting *s) {
    return (int *)(void *)((char *)cfg + s->count_offset);
}

static const hl_setting *find_setting(const char *group, const char *name) {
    for (size_t i = 0; i < HL_ARRAY_LEN(settings); i++) {
        if (strcmp(settings[i].group, group) == 0 && strcmp(settings[i].name, name) == 0)
            return &settings[i];
    }
    return NULL;
}

static int group_known(const char *group) {
    for (size_t i = 0; i < HL_ARRAY_LEN(settings); i++) {
        if (strcmp(settings[i].group, group) == 0) return 1;
    }
    return 0;
}

/* The range message reads naturally for settings that have no upper bound. */
static int range_error(const hl_setting *s, char *why, size_t whylen) {
    if (s->max == INT_MAX) return hl_set_error(why, whylen, "must be at least %d", s->min);
    return hl_set_error(why, whylen, "must be between %d and %d", s->min, s->max);
}

/* Checks the value a setting currently has in cfg. Used after every store
 * and by hl_config_validate, so a value is judged the same way whichever
 * layer set it. */
static int check_value(const hl_config *cfg, const hl_setting *s, char *why, size_t whylen) {
    const char *str;
    const char *bad;

    switch (s->type) {
    case HL_T_INT: {
        int v = *(const int *)cfield(cfg, s);
        if (v < s->min || v > s->max) return range_error(s, why, whylen);
        return HL_OK;
    }
    case HL_T_BOOL: return HL_OK;
    case HL_T_STR:
        /* Flags write fields directly, so a missing terminator is possible. */
        str = cfield(cfg, s);
        if (memchr(str, '\0', s->size) == NULL)
            return hl_set_error(why, whylen, "is too long (at most %zu bytes)", s->size - 1);
        if (s->check != NULL && (bad = s->check(str)) != NULL)
            return hl_set_error(why, whylen, "%s", bad);
        return HL_OK;
    case HL_T_STRLIST: {
        int n = *(const int *)(const void *)((const char *)cfg + s->count_offset);
        if (n < 0 || n > s->max_items)
            return hl_set_error(why, whylen, "must have at most %d entries", s->max_items);
        for (int i = 0; i < n; i++) {
            str = (const char *)cfield(cfg, s) + (size_t)i * s->size;
            if (memchr(str, '\0', s->size) == NULL)
                return hl_set_error(why, whylen, "entry %d is too long (at most %zu bytes)", i + 1,
                                    s->size - 1);
            if (s->check != NULL && (bad = s->check(str)) != NULL)
                return hl_set_error(why, whylen, "entry %d %s", i + 1, bad);
        }
        return HL_OK;
    }
    }
    return hl_set_error(why, whylen, "has an unknown type");
}

/* ---- Storing values (shared by the file and the environment) ---------- */

static int store_int(hl_config *cfg, const hl_setting *s, long long v, char *why, size_t whylen) {
    if (v < s->min || v > s->max) return range_error(s, why, whylen);
    *(int *)field(cfg, s) = (int)v;
    return HL_OK;
}

/* Copies len bytes of src into a buffer of size bytes. The whole buffer is
 * cleared first so that two configs holding the same values compare equal
 * byte for byte, whatever they held before. */
static int store_bytes(char *dst, size_t size, const char *src, size_t len, char *why,
                       size_t whylen) {
    if (len >= size) return hl_set_error(why, whylen, "is too long (at most %zu bytes)", size - 1);
    memset(dst, 0, size);
    memcpy(dst, src, len);
    return HL_OK;
}

static int store_str(hl_config *cfg, const hl_setting *s, const char *v, char *why, size_t whylen) {
    if (store_bytes(field(cfg, s), s->size, v, strlen(v), why, whylen) != HL_OK) return HL_ERR;
    return check_value(cfg, s, why, whylen);
}

/* Stores entry i (0-based) of a list; the caller sets the count. */
static int store_entry(hl_config *cfg, const hl_setting *s, int i, const char *v, size_t len,
                       char *why, size_t whylen) {
    char *dst;
    const char *bad;

    if (i >= s->max_items)
        return hl_set_error(why, whylen, "must have at most %d entries", s->max_items);
    dst = (char *)field(cfg, s) + (size_t)i * s->size;
    if (len >= s->size)
        return hl_set_error(why, whylen, "entry %d is too long (at most %zu bytes)", i + 1,
                            s->size - 1);
    memcpy(dst, v, len);
    dst[len] = '\0';
    if (s->check != NULL && (bad = s->check(dst)) != NULL)
        return hl_set_error(why, whylen, "entry %d %s", i + 1, bad);
    return HL_OK;
}

static void clear_list(hl_config *cfg, const hl_setting *s) {
    memset(field(cfg, s), 0, (size_t)s->max_items * s->size);
    *list_count(cfg, s) = 0;
}

/* ---- Defaults -------------------------------------------------------- */

/* "<hostname>-<pid>" tells apart nodes on one host as well as across hosts.
 * The host name is cut, never the pid, when the two do not fit. */
static void default_node_name(char *dst, size_t size) {
    char host[256];
    char pid[24];
    size_t room;

    if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0') strcpy(host, "holdline");
    host[sizeof(host) - 1] = '\0';
    /* A host name with spaces would fail check_word; keep the default valid. */
    for (char *p = host; *p; p++) {
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p == 0x7f) *p = '_';
    }
    snprintf(pid, sizeof(pid), "%ld", (long)getpid());
    room = size - 1 - 1 - strlen(pid);
    snprintf(dst, size, "%.*s-%s", (int)room, host, pid);
}

void hl_config_defaults(hl_config *cfg) {
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < HL_ARRAY_LEN(settings); i++) {
        const hl_setting *s = &settings[i];
        switch (s->type) {
        case HL_T_INT: *(int *)field(cfg, s) = s->def_int; break;
        case HL_T_BOOL: *(bool *)field(cfg, s) = s->def_int != 0; break;
        case HL_T_STR:
            if (s->def_str != NULL) snprintf(field(cfg, s), s->size, "%s", s->def_str);
            break;
        case HL_T_STRLIST:
            /* No CORS origin is allowed unless configured. */
            break;
        }
    }
    default_node_name(cfg->node_name, sizeof(cfg->node_name));
}

/* ---- Pre-scan of the text --------------------------------------------- */

/* Checks one numeric token (sign included) the way libconfig 1.5 would read
 * it. Returns 1 if it is an integer without an L suffix that does not fit
 * an int. Floats, L-suffixed integers and malformed tokens are left to
 * libconfig and to the type checks. */
static int int_literal_overflows(const char *tok, size_t len) {
    const char *p = tok;
    const char *end = tok + len;
    const char *digits;
    int neg = 0;
    int hex = 0;
    unsigned long long v = 0;

    if (*p == '-' || *p == '+') neg = *p++ == '-';
    if (end - p > 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        hex = 1;
        p += 2;
    }
    digits = p;
    while (p < end && (hex ? isxdigit((unsigned char)*p) : isdigit((unsigned char)*p)))
        p++;
    if (p == digits || p != end) return 0; /* a float, an L suffix or junk */
    if (hex && neg) return 0;              /* libconfig rejects a signed hex */

    for (const char *q = digits; q < end; q++) {
        int d = isdigit((unsigned char)*q) ? *q - '0' : (tolower((unsigned char)*q) - 'a' + 10);
        v = v * (hex ? 16u : 10u) + (unsigned)d;
        if (v > (unsigned long long)INT_MAX + 1) return 1;
    }
    if (hex || !neg) return v > (unsigned long long)INT_MAX;
    return 0; /* -2147483648 is the one value only a negative fits */
}

/* What the pre-scan found: the first problem, if any. */
typedef struct hl_scan {
    int line;      /* 1-based line of the first problem; 0 if none */
    int fatal;     /* 1 if libconfig must not even parse the text */
    char why[128]; /* the message, without location */
} hl_scan;

static void scan_problem(hl_scan *sc, int line, int fatal, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Keeps the first problem only, except that a fatal one always wins: the
 * caller must learn about it even after an earlier, milder problem. */
static void scan_problem(hl_scan *sc, int line, int fatal, const char *fmt, ...) {
    va_list ap;
    if (sc->line != 0 && !fatal) return;
    sc->line = line;
    sc->fatal = fatal;
    va_start(ap, fmt);
    vsnprintf(sc->why, sizeof(sc->why), fmt, ap);
    va_end(ap);
}

/* libconfig 1.5 reads an integer without an L suffix with atoi(), so
 * "port = 4294975488;" silently becomes 8192, and a "\x00" escape silently
 * ends a string early. Neither is visible once libconfig has parsed the
 * text, so the text is scanned first. The scan follows libconfig's lexical
 * rules only as far as needed to skip comments, strings and names.
 *
 * The same pass refuses @include, as a fatal problem that stops the scan:
 * an included file would escape this scan, and would make
 * hl_config_load_string read files. The other problems are only recorded,
 * so that a syntax error on an earlier line can still be reported first. */
static void prescan(const char *text, hl_scan *sc) {
    const char *p = text;
    int ln = 1;

    memset(sc, 0, sizeof(*sc));
    while (*p) {
        char c = *p;
        if (c == '\n') {
            ln++;
            p++;
            if (ln == HL_CONFIG_MAX_LINES + 1)
                scan_problem(sc, ln, 0, "more than %d lines", HL_CONFIG_MAX_LINES);
        } else if (c == '#' || (c == '/' && p[1] == '/')) {
            while (*p && *p != '\n')
                p++;
        } else if (c == '/' && p[1] == '*') {
            p += 2;
            while (*p && !(p[0] == '*' && p[1] == '/')) {
                if (*p == '\n') ln++;
                p++;
            }
            if (*p) p += 2;
        } else if (c == '"') {
            p++;
            while (*p && *p != '"') {
                if (p[0] == '\\' && p[1] == 'x' && p[2] == '0' && p[3] == '0')
                    scan_problem(sc, ln, 0, "strings must not contain \\x00");
                if (*p == '\\' && p[1]) p++;
                if (*p == '\n') ln++;
                p++;
            }
            if (*p) p++;
        } else if (c == '@') {
            if (strncmp(p, "@include", 8) == 0) {
                scan_problem(sc, ln, 1, "@include is not supported");
                return;
            }
            p++;
        } else if (isalpha((unsigned char)c) || c == '*' || c == '_') {
            /* A name or true/false; digits and '-' inside it are not numbers. */
            while (isalnum((unsigned char)*p) || *p == '-' || *p == '_' || *p == '*')
                p++;
        } else if (isdigit((unsigned char)c) ||
                   ((c == '-' || c == '+' || c == '.') && isdigit((unsigned char)p[1]))) {
            const char *tok = p;
            const char *q = (c == '-' || c == '+') ? p + 1 : p;
            /* In a hex literal 'e' is a digit, not an exponent. */
            int hex = q[0] == '0' && (q[1] == 'x' || q[1] == 'X');
            p = q + 1;
            while (isalnum((unsigned char)*p) || *p == '.' ||
                   (!hex && (*p == '-' || *p == '+') && (p[-1] == 'e' || p[-1] == 'E')))
                p++;
            if (int_literal_overflows(tok, (size_t)(p - tok)))
                scan_problem(sc, ln, 0, "integer %.*s is out of range",
                             (int)((p - tok) > 40 ? 40 : (p - tok)), tok);
        } else {
            p++;
        }
    }
}

/* ---- Loading from libconfig -------------------------------------------- */

/* Reads one setting st into cfg. On error, *line is where to point the
 * user (the entry's line for a bad list entry). */
static int load_setting(hl_config *cfg, const hl_setting *s, const config_setting_t *st, int *line,
                        char *why, size_t whylen) {
    int type = config_setting_type(st);

    *line = config_setting_source_line(st);
    switch (s->type) {
    case HL_T_INT:
        /* An L suffix gives an int64 even for a small value; accept it. */
        if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64)
            return hl_set_error(why, whylen, "must be an integer");
        return store_int(cfg, s, config_setting_get_int64(st), why, whylen);
    case HL_T_BOOL:
        if (type != CONFIG_TYPE_BOOL) return hl_set_error(why, whylen, "must be true or false");
        *(bool *)field(cfg, s) = config_setting_get_bool(st) != 0;
        return HL_OK;
    case HL_T_STR:
        if (type != CONFIG_TYPE_STRING) return hl_set_error(why, whylen, "must be a string");
        return store_str(cfg, s, config_setting_get_string(st), why, whylen);
    case HL_T_STRLIST: {
        int n;
        if (type != CONFIG_TYPE_LIST && type != CONFIG_TYPE_ARRAY)
            return hl_set_error(why, whylen, "must be a list of strings");
        clear_list(cfg, s);
        n = config_setting_length(st);
        for (int i = 0; i < n; i++) {
            const config_setting_t *e = config_setting_get_elem(st, (unsigned)i);
            const char *v;
            *line = config_setting_source_line(e);
            if (config_setting_type(e) != CONFIG_TYPE_STRING)
                return hl_set_error(why, whylen, "must be a list of strings");
            v = config_setting_get_string(e);
            if (store_entry(cfg, s, i, v, strlen(v), why, whylen) != HL_OK) return HL_ERR;
            *list_count(cfg, s) = i + 1;
        }
        return HL_OK;
    }
    }
    return hl_set_error(why, whylen, "has an unknown type");
}

/* Walks the parsed tree; every group and setting must be in the table. */
static int load_tree(hl_config *cfg, const config_t *lc, const char *name, char *err,
                     size_t errlen) {
    const config_setting_t *root = config_root_setting(lc);
    char why[256];
    int line;

    for (int i = 0; i < config_setting_length(root); i++) {
        const config_setting_t *g = config_setting_get_elem(root, (unsigned)i);
        const char *gname = config_setting_name(g);

        line = config_setting_source_line(g);
        if (!group_known(gname))
            return hl_set_error(err, errlen, "%s:%d: unknown group '%s'", name, line, gname);
        if (!config_setting_is_group(g))
            return hl_set_error(err, errlen, "%s:%d: '%s' must be a group", name, line, gname);

        for (int j = 0; j < config_setting_length(g); j++) {
            const config_setting_t *st = config_setting_get_elem(g, (unsigned)j);
            const char *sname = config_setting_name(st);
            const hl_setting *s = find_setting(gname, sname);

            if (s == NULL && strcmp(gname, "http") == 0 && strcmp(sname, "connection_memory") == 0)
                return hl_set_error(err, errlen,
                                    "%s:%d: 'http.connection_memory' is gone: connections now "
                                    "get a pool class by the size of their first request "
                                    "(http.pool_tiny ... http.pool_huge)",
                                    name, config_setting_source_line(st));
            if (s == NULL)
                return hl_set_error(err, errlen, "%s:%d: unknown setting '%s.%s'", name,
                                    config_setting_source_line(st), gname, sname);
            if (load_setting(cfg, s, st, &line, why, sizeof(why)) != HL_OK)
                return hl_set_error(err, errlen, "%s:%d: '%s.%s' %s", name, line, gname, sname,
                                    why);
        }
    }
    return HL_OK;
}

int hl_config_load_string(hl_config *cfg, const char *text, const char *name, char *err,
                          size_t errlen) {
    config_t lc;
    hl_scan sc;
    int rc;

    if (name == NULL) name = "<string>";
    if (text == NULL) return hl_set_error(err, errlen, "%s: no text", name);
    prescan(text, &sc);
    if (sc.fatal) return hl_set_error(err, errlen, "%s:%d: %s", name, sc.line, sc.why);

    config_init(&lc);
    /* libconfig 1.5 has no file name for a string; ours is used instead.
     * Of a syntax error and a pre-scan problem, the earlier line wins. */
    if (!config_read_string(&lc, text) && (sc.line == 0 || config_error_line(&lc) <= sc.line)) {
        rc = hl_set_error(err, errlen, "%s:%d: %s", name, config_error_line(&lc),
                          config_error_text(&lc));
        goto done;
    }
    if (sc.line != 0) {
        rc = hl_set_error(err, errlen, "%s:%d: %s", name, sc.line, sc.why);
        goto done;
    }
    rc = load_tree(cfg, &lc, name, err, errlen);
done:
    config_destroy(&lc);
    return rc;
}

/* Reads a whole regular file into a new NUL-terminated buffer. The file is
 * read here rather than by libconfig so that the pre-scan sees the same
 * bytes, and so that a directory or a FIFO is refused instead of handed to
 * flex, whose read errors end in exit(). */
static int read_file(const char *path, char **out, char *err, size_t errlen) {
    struct stat st;
    char *buf = NULL;
    size_t len = 0;
    int fd;
    int rc = HL_ERR;

    /* O_NONBLOCK keeps open() of a FIFO from waiting for a writer. */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return hl_set_error(err, errlen, "%s: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0) {
        hl_set_error(err, errlen, "%s: %s", path, strerror(errno));
        goto err;
    }
    if (!S_ISREG(st.st_mode)) {
        hl_set_error(err, errlen, "%s: not a regular file", path);
        goto err;
    }
    if (st.st_size > HL_CONFIG_MAX_FILE) {
        hl_set_error(err, errlen, "%s: larger than %d bytes", path, HL_CONFIG_MAX_FILE);
        goto err;
    }
    /* One byte more than the size, to notice a file that grows meanwhile. */
    buf = malloc((size_t)st.st_size + 2);
    if (buf == NULL) {
        hl_set_error(err, errlen, "%s: out of memory", path);
        goto err;
    }
    for (;;) {
        ssize_t n = read(fd, buf + len, (size_t)st.st_size + 1 - len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            hl_set_error(err, errlen, "%s: %s", path, strerror(errno));
            goto err;
        }
        if (n == 0) break;
        len += (size_t)n;
        if (len > (size_t)st.st_size) {
            hl_set_error(err, errlen, "%s: changed while being read", path);
            goto err;
        }
    }
    buf[len] = '\0';
    /* A NUL byte would silently end the text libconfig sees. */
    if (memchr(buf, '\0', len) != NULL) {
        hl_set_error(err, errlen, "%s: contains a NUL byte", path);
        goto err;
    }
    *out = buf;
    buf = NULL;
    rc = HL_OK;
err:
    free(buf);
    close(fd);
    return rc;
}

int hl_config_load_file(hl_config *cfg, const char *path, char *err, size_t errlen) {
    char *text = NULL;
    int rc;

    if (path == NULL) return hl_set_error(err, errlen, "no configuration file given");
    if (read_file(path, &text, err, errlen) != HL_OK) return HL_ERR;
    rc = hl_config_load_string(cfg, text, path, err, errlen);
    free(text);
    return rc;
}

/* ---- Environment ------------------------------------------------------- */

/* HOLDLINE_<GROUP>_<NAME>, upper-cased; for example HOLDLINE_HTTP_PORT. */
static void env_name(const hl_setting *s, char *buf, size_t size) {
    snprintf(buf, size, "HOLDLINE_%s_%s", s->group, s->name);
    for (char *p = buf; *p; p++)
        *p = (char)toupper((unsigned char)*p);
}

/* Only a plain decimal is accepted: no spaces, no trailing text, no hex. */
static int parse_env_int(const char *v, long long *out) {
    const char *p = v;
    char *end;

    if (*p == '-' || *p == '+') p++;
    if (!isdigit((unsigned char)*p)) return HL_ERR;
    errno = 0;
    *out = strtoll(v, &end, 10);
    if (*end != '\0') return HL_ERR;
    /* On overflow strtoll saturates, which the range check then refuses. */
    return HL_OK;
}

static int parse_env_bool(const char *v, bool *out) {
    static const char *const yes[] = {"true", "yes", "1"};
    static const char *const no[] = {"false", "no", "0"};
    for (size_t i = 0; i < HL_ARRAY_LEN(yes); i++) {
        if (strcasecmp(v, yes[i]) == 0) return *out = true, HL_OK;
        if (strcasecmp(v, no[i]) == 0) return *out = false, HL_OK;
    }
    return HL_ERR;
}

/* A comma-separated list; blanks around entries are dropped. An empty
 * variable clears the list, which is how a container turns CORS off. */
static int load_env_list(hl_config *cfg, const hl_setting *s, const char *v, char *why,
                         size_t whylen) {
    const char *p = v;
    int n = 0;

    clear_list(cfg, s);
    if (*v == '\0') return HL_OK;
    for (;;) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        if (end == p) return hl_set_error(why, whylen, "must not contain empty entries");
        if (store_entry(cfg, s, n, p, (size_t)(end - p), why, whylen) != HL_OK) return HL_ERR;
        *list_count(cfg, s) = ++n;
        if (comma == NULL) break;
        p = comma + 1;
    }
    return HL_OK;
}

static int load_env(hl_config *cfg, const hl_setting *s, const char *v, char *why, size_t whylen) {
    long long n;

    switch (s->type) {
    case HL_T_INT:
        if (parse_env_int(v, &n) != HL_OK) return hl_set_error(why, whylen, "must be an integer");
        return store_int(cfg, s, n, why, whylen);
    case HL_T_BOOL:
        if (parse_env_bool(v, (bool *)field(cfg, s)) != HL_OK)
            return hl_set_error(why, whylen, "must be true, false, yes, no, 1 or 0");
        return HL_OK;
    case HL_T_STR: return store_str(cfg, s, v, why, whylen);
    case HL_T_STRLIST: return load_env_list(cfg, s, v, why, whylen);
    }
    return hl_set_error(why, whylen, "has an unknown type");
}

int hl_config_apply_env(hl_config *cfg, hl_getenv_fn *get, char *err, size_t errlen) {
    char name[64];
    char why[256];

    /* A deployment that still sets the old pool size would otherwise run
     * with a different memory budget than it asked for, silently. */
    if (get("HOLDLINE_HTTP_CONNECTION_MEMORY") != NULL)
        return hl_set_error(err, errlen,
                            "HOLDLINE_HTTP_CONNECTION_MEMORY: http.connection_memory is gone: "
                            "connections now get a pool class by the size of their first "
                            "request (HOLDLINE_HTTP_POOL_TINY ... HOLDLINE_HTTP_POOL_HUGE)");
    for (size_t i = 0; i < HL_ARRAY_LEN(settings); i++) {
        const char *v;
        env_name(&settings[i], name, sizeof(name));
        v = get(name);
        if (v == NULL) continue;
        if (load_env(cfg, &settings[i], v, why, sizeof(why)) != HL_OK)
            return hl_set_error(err, errlen, "%s: %s", name, why);
    }
    return HL_OK;
}

/* ---- Redis address ------------------------------------------------------ */

int hl_config_parse_addr(const char *addr, char *out_host, size_t out_hostlen, int *out_port,
                         char *err, size_t errlen) {
    const char *host;
    const char *host_end;
    const char *port = NULL;
    const char *host_chars;
    size_t host_len;
    long port_num = -1;

    if (addr == NULL || *addr == '\0') return hl_set_error(err, errlen, "redis address is empty");

    if (addr[0] == '[') {
        host = addr + 1;
        host_end = strchr(host, ']');
        if (host_end == NULL)
            return hl_set_error(err, errlen, "redis address '%.100s': missing ']'", addr);
        if (host_end[1] == ':')
            port = host_end + 2;
        else if (host_end[1] != '\0')
            return hl_set_error(err, errlen, "redis address '%.100s': expected ':port' after ']'",
                                addr);
        if (host_end == host)
            return hl_set_error(err, errlen, "redis address '%.100s': empty host", addr);
        if (memchr(host, ':', (size_t)(host_end - host)) == NULL)
            return hl_set_error(err, errlen,
                                "redis address '%.100s': brackets are for IPv6 addresses", addr);
        /* Letters, '%' and '_' allow a zone such as fe80::1%eth0. */
        host_chars = "0123456789abcdefABCDEF:.%_-ghijklmnopqrstuvwxyzGHIJKLMNOPQRSTUVWXYZ";
    } else {
        const char *colon = strchr(addr, ':');
        if (colon != NULL && strchr(colon + 1, ':') != NULL) {
            /* Without brackets, "fe80::1:6380" could end in a port or not. */
            if (strspn(addr, "0123456789abcdefABCDEF:.%") == strlen(addr))
                return hl_set_error(
                    err, errlen, "redis address '%.100s': write IPv6 addresses as [address]:port",
                    addr);
            return hl_set_error(err, errlen, "redis address '%.100s': expected host:port", addr);
        }
        host = addr;
        host_end = colon ? colon : addr + strlen(addr);
        if (colon) port = colon + 1;
        host_chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-";
    }

    host_len = (size_t)(host_end - host);
    if (host_len == 0) return hl_set_error(err, errlen, "redis address '%.100s': empty host", addr);
    if (host_len >= out_hostlen)
        return hl_set_error(err, errlen, "redis address '%.100s': host is too long", addr);
    for (const char *p = host; p < host_end; p++) {
        if (*p == '\0' || strchr(host_chars, *p) == NULL)
            return hl_set_error(err, errlen, "redis address '%.100s': bad character in host", addr);
    }

    if (port != NULL) {
        port_num = 0;
        if (*port == '\0')
            return hl_set_error(err, errlen, "redis address '%.100s': empty port", addr);
        for (const char *p = port; *p; p++) {
            if (!isdigit((unsigned char)*p) || port_num > 65535)
                return hl_set_error(
                    err, errlen, "redis address '%.100s': port must be between 1 and 65535", addr);
            port_num = port_num * 10 + (*p - '0');
        }
        if (port_num < 1 || port_num > 65535)
            return hl_set_error(err, errlen,
                                "redis address '%.100s': port must be between 1 and 65535", addr);
    }

    /* Only a fully valid address changes the outputs. */
    memset(out_host, 0, out_hostlen);
    memcpy(out_host, host, host_len);
    *out_port = port_num > 0 ? (int)port_num : 0;
    return HL_OK;
}

int hl_config_set_redis_addr(hl_config *cfg, const char *addr, char *err, size_t errlen) {
    char host[sizeof(cfg->redis_host)];
    int port;
    if (hl_config_parse_addr(addr, host, sizeof(host), &port, err, errlen) != HL_OK) return HL_ERR;
    memcpy(cfg->redis_host, host, sizeof(host));
    if (port > 0) cfg->redis_port = port;
    return HL_OK;
}

/* ---- Validation ---------------------------------------------------------- */

int hl_config_validate(const hl_config *cfg, char *err, size_t errlen) {
    char why[256];

    for (size_t i = 0; i < HL_ARRAY_LEN(settings); i++) {
        const hl_setting *s = &settings[i];
        if (check_value(cfg, s, why, sizeof(why)) != HL_OK)
            return hl_set_error(err, errlen, "%s.%s: %s", s->group, s->name, why);
    }
    if (cfg->redis_reconnect_min_ms > cfg->redis_reconnect_max_ms)
        return hl_set_error(err, errlen,
                            "redis.reconnect_min_ms: must not be greater than "
                            "redis.reconnect_max_ms (%d)",
                            cfg->redis_reconnect_max_ms);
    if (cfg->redis_canary_timeout_ms <= cfg->redis_canary_ms)
        return hl_set_error(err, errlen,
                            "redis.canary_timeout_ms: must be greater than redis.canary_ms (%d), "
                            "or every probe would time out before the next is sent",
                            cfg->redis_canary_ms);
    static const char *const pool_names[HL_CONFIG_POOL_CLASSES] = {
        "pool_tiny", "pool_small", "pool_medium", "pool_large", "pool_xlarge", "pool_huge"};
    int largest = 0;
    for (int i = 0; i < HL_CONFIG_POOL_CLASSES; i++) {
        int v = cfg->http_pool[i];
        if (v == 0) continue;
        if (v < 1024)
            return hl_set_error(err, errlen, "http.%s: must be 0 (off) or at least 1024",
                                pool_names[i]);
        if (v <= largest)
            return hl_set_error(err, errlen,
                                "http.%s: must be larger than the classes before it (%d), or 0",
                                pool_names[i], largest);
        largest = v;
    }
    if (largest == 0)
        return hl_set_error(err, errlen, "http.pool_huge: at least one pool class must be on");
    if (cfg->http_max_url_bytes + HL_CONFIG_RESPONSE_ROOM > largest)
        return hl_set_error(err, errlen,
                            "http.max_url_bytes: must leave %d bytes of the largest pool "
                            "class (%d) for the answer, or that limit could never be reached",
                            HL_CONFIG_RESPONSE_ROOM, largest);
    if (strcmp(cfg->redis_mode, "sentinel") == 0) {
        if (cfg->redis_sentinels_count == 0)
            return hl_set_error(err, errlen,
                                "redis.sentinels: redis.mode is sentinel, so at least one "
                                "sentinel (host:port) must be listed");
        if (cfg->redis_master_name[0] == '\0')
            return hl_set_error(err, errlen,
                                "redis.master_name: redis.mode is sentinel, so the name the "
                                "sentinels monitor the master under must be set");
    }
    if (strcmp(cfg->redis_mode, "cluster") == 0) {
        if (cfg->redis_cluster_nodes_count == 0)
            return hl_set_error(err, errlen,
                                "redis.cluster_nodes: redis.mode is cluster, so at least one "
                                "cluster node (host:port) must be listed");
        if (cfg->redis_db != 0)
            return hl_set_error(err, errlen,
                                "redis.db: must be 0 in cluster mode (Redis Cluster has no "
                                "SELECT)");
    }
    if (strcmp(cfg->auth_mode, "jwt") == 0) {
        int key = cfg->auth_jwt_key[0] != '\0', file = cfg->auth_jwt_key_file[0] != '\0';
        if (key == file)
            return hl_set_error(err, errlen,
                                key ? "auth.jwt_key: give auth.jwt_key or auth.jwt_key_file, "
                                      "not both"
                                    : "auth.jwt_key: auth.mode is jwt, so auth.jwt_key or "
                                      "auth.jwt_key_file must be set");
    }
    if (cfg->poll_default_timeout > cfg->poll_max_timeout)
        return hl_set_error(err, errlen,
                            "poll.default_timeout: must be between 1 and %d (poll.max_timeout)",
                            cfg->poll_max_timeout);
    return HL_OK;
}

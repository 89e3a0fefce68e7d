/* hl_config.h -- the node's configuration: defaults, the libconfig file,
 * environment overrides and validation.
 *
 * The struct holds plain values in fixed-size buffers, so it can be copied
 * freely and needs no free function. Loading is layered by the caller:
 *
 *     hl_config_defaults(&cfg);
 *     hl_config_load_file(&cfg, path, err, sizeof(err));   (optional)
 *     hl_config_apply_env(&cfg, env_get, err, sizeof(err));
 *     ... command-line flags set fields directly ...
 *     hl_config_validate(&cfg, err, sizeof(err));
 *
 * Errors from the file are "file:line: message"; unknown groups or settings
 * and values of the wrong type are errors, never silently ignored. */
#ifndef HL_CONFIG_H
#define HL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#define HL_CONFIG_MAX_CORS 16
/* Patterns in auth.public_channels at most. */
#define HL_CONFIG_MAX_PUBLIC 32
/* Sentinel addresses in redis.sentinels at most. */
#define HL_CONFIG_MAX_SENTINELS 16
/* Seed addresses in redis.cluster_nodes at most. */
#define HL_CONFIG_MAX_CLUSTER_SEEDS 16
/* The most channels one poll or stream may name (poll.max_channels is
 * capped here), so per-request arrays can be sized by it. */
#define HL_MAX_CHANNELS 256

/* Bytes of a connection's memory pool kept free of the request for the
 * answer's headers: the largest pool class must hold the largest request
 * the limits allow plus this. */
#define HL_CONFIG_RESPONSE_ROOM 1024

/* The connection pool classes (http.pool_tiny ... http.pool_huge). */
#define HL_CONFIG_POOL_CLASSES 6

typedef struct hl_config {
    /* node */
    char node_name[64]; /* shown in logs; default: hostname-pid */
    int node_drain_ms;  /* how long a stopping node lets requests finish; default 5000 */

    /* http */
    char http_bind[64];       /* IPv4 address to listen on; default 0.0.0.0 */
    int http_port;            /* default 8080 */
    int http_workers;         /* worker threads; 0 = number of cores */
    int http_max_connections; /* per node, spread over workers; default 20000 */
    /* Bytes of MHD memory pool of each connection class, smallest first;
     * 0 turns a class off. A connection gets the smallest class its first
     * request fits (hl_peek). Defaults 1536, 3072, 8192, 16384, 32768,
     * 65536. */
    int http_pool[HL_CONFIG_POOL_CLASSES];
    int http_daemons;            /* MHD daemons per pool class and worker; default 16 */
    int http_connection_timeout; /* seconds a connection not holding a poll has to send a
                                    complete request; default 60 */
    int http_max_url_bytes;      /* request target (path and query) at most; default 2048 */
    int http_max_header_bytes;   /* request header lines together at most; default 16384 */
    char http_cors_origins[HL_CONFIG_MAX_CORS][256]; /* allowed Origin values, "*" = any */
    int http_cors_origins_count;

    /* redis */
    char redis_mode[16];          /* "single" (default), "sentinel" or "cluster" */
    char redis_host[256];         /* default 127.0.0.1; single mode only */
    int redis_port;               /* default 6379 */
    char redis_password[256];     /* empty = no AUTH */
    int redis_db;                 /* SELECT db; default 0 */
    char redis_prefix[64];        /* key and channel prefix; default "holdline:" */
    int redis_connect_timeout_ms; /* default 2000 */
    int redis_reconnect_min_ms;   /* first reconnect delay; default 100 */
    int redis_reconnect_max_ms;   /* reconnect delay cap; default 1000 */
    int redis_heartbeat_ms;       /* ping interval; 3 unanswered close the link; default 1000 */
    int redis_canary_ms;          /* a probe round the control channel this often; default 1000 */
    int redis_canary_timeout_ms; /* probes not back this long: not ready, reconnect; default 3000 */
    /* sentinel mode: where the master is comes from these */
    char redis_sentinels[HL_CONFIG_MAX_SENTINELS][262]; /* host:port each */
    int redis_sentinels_count;
    char redis_master_name[128];       /* the name the sentinels monitor it under */
    char redis_sentinel_password[256]; /* AUTH for the sentinels; "" = redis.password */
    int redis_sentinel_timeout_ms;     /* one sentinel's connect + answer; default 300 */
    int redis_sentinel_check_ms;       /* ask again this often while up; default 1000 */
    char redis_cluster_nodes[HL_CONFIG_MAX_CLUSTER_SEEDS][262]; /* cluster seeds, host:port */
    int redis_cluster_nodes_count;
    int redis_cluster_refresh_ms; /* the slot map is asked again this often; default 5000 */

    /* poll */
    int poll_default_timeout; /* seconds; default 30 */
    int poll_max_timeout;     /* seconds; default 120 */
    int poll_max_channels;    /* channels in one poll; default 16 */
    int sse_heartbeat_s;      /* a comment line on an idle stream this often; default 15 */
    int sse_max_duration_s;   /* a stream ends after this long (the client resumes); default 3600 */
    int sse_retry_ms;         /* the reconnect delay a stream suggests; default 3000 */
    int poll_linger_ms;    /* keep a subscription this long after the last waiter; default 5000 */
    int poll_max_messages; /* messages in one answer at most; default 100 */

    /* history */
    int history_length; /* approximate stream MAXLEN per channel; default 1000 */
    int history_ttl;    /* seconds a channel's history lives after its last message; default 3600 */
    int history_cache;  /* recent messages per channel each worker keeps in memory; default 64 */

    /* publish */
    bool publish_enabled;          /* POST /publish accepted; default true */
    char publish_key[256];         /* if not empty, required as "Authorization: Bearer <key>" */
    int publish_max_message_bytes; /* default 65536 */
    int publish_wait_replicas;     /* WAIT for this many replicas before a 201; default 0 */
    int publish_wait_timeout_ms;   /* WAIT's timeout; short: 503 redis_unconfirmed; default 200 */

    /* auth (README "Private channels") */
    char auth_mode[8];           /* "off" (default) or "jwt" */
    char auth_jwt_key[8192];     /* HS secret, or a PEM public key for RS and ES */
    char auth_jwt_key_file[256]; /* or the file holding it; exactly one of the two */
    char auth_jwt_algorithm[8];  /* the one alg tokens may have; default "HS256" */
    char auth_audience[256];     /* "" = none; tokens must name it in aud if set */
    char auth_issuer[256];       /* "" = any; tokens must have it as iss if set */
    int auth_leeway_s;           /* clock tolerance for exp, nbf, iat; default 30 */
    char auth_public_channels[HL_CONFIG_MAX_PUBLIC][202]; /* patterns open without a token */
    int auth_public_channels_count;
    char auth_token_cookie[64]; /* the cookie a token may come in; default "holdline_token" */
    bool auth_query_token;      /* accept ?token=; default false (it ends up in proxy logs) */

    /* log */
    char log_level[16];  /* "debug", "info", "warn", "error"; default "info" */
    char log_format[16]; /* "text" or "json"; default "text" */
    char log_file[256];  /* append to this file (reopened on SIGHUP); "" = stderr */
} hl_config;

/* Looks up an environment variable. getenv itself does not fit (it returns
 * char *, and C does not convert function pointer types), so callers pass a
 * one-line wrapper; tests pass a fake. */
typedef const char *hl_getenv_fn(const char *name);

/* Fills cfg with the documented defaults. */
void hl_config_defaults(hl_config *cfg);

/* Reads a libconfig file over the values already in cfg. Returns HL_OK, or
 * HL_ERR with "path:line: message" in err. On error cfg may be partly
 * updated; callers exit. */
int hl_config_load_file(hl_config *cfg, const char *path, char *err, size_t errlen);

/* The same for text in memory; name stands for the file name in errors. */
int hl_config_load_string(hl_config *cfg, const char *text, const char *name, char *err,
                          size_t errlen);

/* Applies HOLDLINE_<GROUP>_<SETTING> variables (for example
 * HOLDLINE_REDIS_HOST, HOLDLINE_HTTP_PORT, HOLDLINE_HTTP_CORS_ORIGINS as a
 * comma-separated list). Returns HL_OK or HL_ERR with "NAME: message". */
int hl_config_apply_env(hl_config *cfg, hl_getenv_fn *get, char *err, size_t errlen);

/* Parses "host:port" (or "host", or "[v6]:port") into host (hostlen bytes
 * with its NUL) and *port (0 when none was given). Returns HL_OK or HL_ERR
 * with a message; on error the outputs are unchanged. */
int hl_config_parse_addr(const char *addr, char *host, size_t hostlen, int *port, char *err,
                         size_t errlen);

/* hl_config_parse_addr into redis_host/redis_port (a missing port keeps
 * redis_port). Returns HL_OK or HL_ERR with a message. */
int hl_config_set_redis_addr(hl_config *cfg, const char *addr, char *err, size_t errlen);

/* Checks ranges and relations (e.g. default_timeout <= max_timeout).
 * Returns HL_OK or HL_ERR with "group.setting: message". */
int hl_config_validate(const hl_config *cfg, char *err, size_t errlen);

#endif

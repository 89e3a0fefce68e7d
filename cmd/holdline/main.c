/* holdline -- the node: flags, configuration, signals. Everything else is
 * in core/. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "hl_common.h"
#include "hl_config.h"
#include "hl_log.h"
#include "hl_node.h"

static void usage(FILE *out) {
    fprintf(out, "usage: holdline [-c FILE] [-p PORT] [--redis HOST:PORT] [-t] [-v]\n"
                 "  -c, --config FILE     libconfig file (see config/holdline.cfg)\n"
                 "  -p, --port PORT       listen port, overrides http.port\n"
                 "      --redis HOST:PORT Redis address, overrides redis.host/redis.port\n"
                 "  -t, --test-config     check the configuration and exit\n"
                 "  -v, --version         print the version and exit\n"
                 "Settings can also come from HOLDLINE_<GROUP>_<SETTING> environment\n"
                 "variables (e.g. HOLDLINE_REDIS_HOST); flags win over the environment,\n"
                 "which wins over the file.\n");
}

static const char *env_get(const char *name) {
    return getenv(name);
}

/* Every connection is a descriptor: raises the soft open-file limit as far
 * as the hard one allows, and says so at start if http.max_connections
 * cannot be reached, rather than at the first EMFILE under load. */
static void raise_fd_limit(const hl_config *cfg) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    /* The connections, an eighth more still sending their first request,
     * and some for Redis links, epoll and logs. */
    rlim_t need = (rlim_t)cfg->http_max_connections + (rlim_t)cfg->http_max_connections / 8 + 64;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
        hl_warn("the open-file limit is %llu, but http.max_connections = %d needs about %llu: "
                "raise it (ulimit -n, LimitNOFILE=) or lower http.max_connections",
                (unsigned long long)rl.rlim_cur, cfg->http_max_connections,
                (unsigned long long)need);
}

/* SIGHUP: reopens log.file (after logrotate moved it) and applies
 * log.level as the file and environment say now. Nothing else can change
 * under a running node; a bad file leaves everything as it was. */
static void reload(const char *config_path, const hl_config *running) {
    if (running->log_file[0] && hl_log_open(running->log_file) != 0)
        hl_error("SIGHUP: cannot reopen %s: %s; logging on to the old file", running->log_file,
                 strerror(errno));
    hl_config cfg;
    char err[512];
    hl_config_defaults(&cfg);
    if ((config_path && hl_config_load_file(&cfg, config_path, err, sizeof(err)) != HL_OK) ||
        hl_config_apply_env(&cfg, env_get, err, sizeof(err)) != HL_OK) {
        hl_error("SIGHUP: %s; the log level stays as it was", err);
        return;
    }
    int level = hl_log_level_parse(cfg.log_level);
    if (level < 0) {
        hl_error("SIGHUP: log.level '%s' is not a level; it stays as it was", cfg.log_level);
        return;
    }
    hl_log_set_level((hl_log_level)level);
    hl_info("SIGHUP: log file reopened, log level %s; other settings need a restart",
            cfg.log_level);
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"port", required_argument, NULL, 'p'},
        {"redis", required_argument, NULL, 'r'},
        {"test-config", no_argument, NULL, 't'},
        {"version", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL, *port = NULL, *redis = NULL;
    int test_only = 0, c;
    while ((c = getopt_long(argc, argv, "c:p:tvh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config_path = optarg; break;
        case 'p': port = optarg; break;
        case 'r': redis = optarg; break;
        case 't': test_only = 1; break;
        case 'v': printf("holdline %s\n", HL_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "holdline: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    hl_config cfg;
    char err[512];
    hl_config_defaults(&cfg);
    if (config_path && hl_config_load_file(&cfg, config_path, err, sizeof(err)) != HL_OK) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    if (hl_config_apply_env(&cfg, env_get, err, sizeof(err)) != HL_OK) {
        fprintf(stderr, "holdline: %s\n", err);
        return 2;
    }
    if (port) {
        char *end;
        long p = strtol(port, &end, 10);
        if (*port == '\0' || *end != '\0' || p < 1 || p > 65535) {
            fprintf(stderr, "holdline: -p: '%s' is not a port number (1-65535)\n", port);
            return 2;
        }
        cfg.http_port = (int)p;
    }
    if (redis && hl_config_set_redis_addr(&cfg, redis, err, sizeof(err)) != HL_OK) {
        fprintf(stderr, "holdline: --redis: %s\n", err);
        return 2;
    }
    if (hl_config_validate(&cfg, err, sizeof(err)) != HL_OK) {
        fprintf(stderr, "%s%s%s\n", config_path ? config_path : "holdline",
                config_path ? ": " : ": ", err);
        return 2;
    }
    if (test_only) {
        printf("configuration ok\n");
        return 0;
    }
    hl_log_setup((hl_log_level)hl_log_level_parse(cfg.log_level),
                 strcmp(cfg.log_format, "json") == 0 ? HL_LOG_JSON : HL_LOG_TEXT);
    if (cfg.log_file[0] && hl_log_open(cfg.log_file) != 0) {
        fprintf(stderr, "holdline: log.file: cannot open %s: %s\n", cfg.log_file, strerror(errno));
        return 2;
    }

    /* Signals are taken by this thread alone, with sigwait; the workers
     * inherit the blocked mask. SIGPIPE is ignored because a client that
     * hangs up must never kill the node. */
    signal(SIGPIPE, SIG_IGN);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    raise_fd_limit(&cfg);
    hl_node *node = hl_node_new(&cfg, err, sizeof(err));
    if (node == NULL) {
        hl_error("%s", err);
        return 1;
    }
    if (hl_node_start(node, err, sizeof(err)) != HL_OK) {
        hl_error("%s", err);
        hl_node_free(node);
        return 1;
    }
    hl_info("holdline %s node '%s' started", HL_VERSION, cfg.node_name);
    for (;;) {
        int sig;
        if (sigwait(&set, &sig) != 0) continue;
        if (sig == SIGHUP) {
            reload(config_path, &cfg);
            continue;
        }
        hl_info("%s: answering waiters and stopping (drain up to %d ms)",
                sig == SIGTERM ? "SIGTERM" : "SIGINT", cfg.node_drain_ms);
        break;
    }
    hl_node_stop(node, cfg.node_drain_ms);
    hl_node_free(node);
    hl_info("stopped");
    return 0;
}

/* holdline-bench -- a load generator for holdline: flags, then the run
 * (hb_coord.c). Exit status: 0 on a clean run, 1 if the run saw errors,
 * missing, out-of-order or duplicate messages, 2 on bad usage. */
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "hb_bench.h"
#include "hb_parse.h"
#include "hb_proc.h"

/* File descriptors a process keeps besides its waiters. */
#define FD_RESERVE 100

static const char usage_text[] =
    "Usage: holdline-bench MODE [options]\n"
    "\n"
    "Modes:\n"
    "  hold     open N waiters, keep them held for D seconds (re-polling on\n"
    "           each timeout answer; with SSE, streams that only see\n"
    "           heartbeats); report how many stayed held and, with --pid,\n"
    "           the servers' RSS growth per waiter and their CPU use\n"
    "  fanout   N waiters on K channels; R rounds of one publish per channel;\n"
    "           report received/missing and the latency from just before each\n"
    "           publish is written to the last byte of each answer; each\n"
    "           waiter polls again with its cursor once the round is over\n"
    "  stream   N waiters on K channels follow cursors while the publisher\n"
    "           sends numbered, timestamped messages at M per second per\n"
    "           channel for D seconds; report deliveries/s, gaps, duplicates\n"
    "           and latency; with --pid, the servers' CPU over the steady\n"
    "           window (from when every waiter has re-polled S times to the\n"
    "           last publish) and their RSS growth per waiter at its end;\n"
    "           with -I, beside idle waiters held on other channels\n"
    "  publish  C publishers in a closed loop for D seconds, optionally with\n"
    "           W background waiters held on other channels; report\n"
    "           publishes/s and the publish round trip\n"
    "\n"
    "Options (defaults in brackets):\n"
    "  -n, --nodes HOST:PORT,...   the nodes; waiters go round-robin [127.0.0.1:8080]\n"
    "  -c, --waiters N             waiters (hold, fanout, stream) [1000]\n"
    "  -w, --bg-waiters W          publish: background waiters [0]\n"
    "  -k, --channels K            channels [1; stream 10]\n"
    "  -r, --rounds R              fanout: rounds [5]\n"
    "  -d, --duration S            hold, stream, publish: seconds [10]\n"
    "  -m, --rate M                stream: messages/s per channel [10]\n"
    "  -C, --publishers C          publish: concurrent publishers; fanout and\n"
    "                              stream: publishing connections [16]\n"
    "  -P, --procs P               worker processes [enough for N at the\n"
    "                              open-file limit, less 100, per process]\n"
    "  -S, --sources ADDR,...      source addresses, e.g. 127.0.0.2,127.0.0.3\n"
    "                              (each gives ~28k ports per node) [kernel's]\n"
    "  -t, --timeout S             poll timeout asked of the server [60]\n"
    "      --pid PID,...           hold, stream: server pids (nodes, redis) to measure\n"
    "  -I, --idle-waiters I        stream: waiters held on channels nobody\n"
    "                              publishes to, beside the N that follow [0]\n"
    "      --idle-channels K       stream: the channels of the idle waiters [1000,\n"
    "                              or I if fewer]\n"
    "      --steady-polls S        stream: re-polls every waiter makes before the\n"
    "                              steady window starts [5]\n"
    "      --browser               polls carry ~700 bytes of Chrome's headers for a\n"
    "                              same-origin fetch() (User-Agent, Accept*,\n"
    "                              Referer, sec-ch-ua*, Sec-Fetch-*)\n"
    "      --cookie-bytes B        polls carry a Cookie header whose value is B\n"
    "                              bytes of cookies of realistic sizes (28 of\n"
    "                              them in 2048) (0, or 16 to 65536) [0]\n"
    "      --settle-ms MS          idle time after which a poll counts as held [300]\n"
    "      --round-timeout-ms MS   fanout: how long a round waits for answers [5000]\n"
    "      --drain-ms MS           stream: how long to wait for the last messages [5000]\n"
    "      --open-timeout-ms MS    how long opening the waiters may take [60000]\n"
    "      --size BYTES            message data size, padded [as short as possible]\n"
    "      --prefix NAME           channel name prefix [hb<random>: fresh channels]\n"
    "      --key KEY               publish key (Authorization: Bearer KEY)\n"
    "      --token T               polls and streams carry Authorization: Bearer T\n"
    "                              (a JWT, for nodes with auth.mode = jwt)\n"
    "      --server NAME           holdline, or nchan (nginx + nchan: long-polls\n"
    "                              GET /sub/<ch> with If-Modified-Since and\n"
    "                              If-None-Match, publishes POST /pub/<ch>, raw\n"
    "                              message bodies; the poll timeout is the\n"
    "                              server's) [holdline]\n"
    "      --transport T           hold, fanout, stream: poll, or sse: each waiter\n"
    "                              opens one Server-Sent Events stream and keeps\n"
    "                              it (holdline GET /events/<ch>?cursor=C; nchan\n"
    "                              GET /sub/<ch> with Accept: text/event-stream);\n"
    "                              every message is an event on it, latency from\n"
    "                              publish to the event; a stream the server ends\n"
    "                              is opened again from its last id; re-polls\n"
    "                              (--steady-polls, min_repolls) count events\n"
    "                              [poll]\n"
    "  -q, --quiet                 no progress lines on stderr\n"
    "  -h, --help                  this text\n"
    "\n"
    "The run ends with one line on stdout:\n"
    "  RESULT mode=<mode> key=value ...\n"
    "Exit status: 0 clean run; 1 errors, missing, gaps or duplicates; 2 bad usage.\n";

enum {
    OPT_PID = 256,
    OPT_SETTLE,
    OPT_ROUND_TIMEOUT,
    OPT_DRAIN,
    OPT_OPEN_TIMEOUT,
    OPT_SIZE,
    OPT_PREFIX,
    OPT_KEY,
    OPT_TOKEN,
    OPT_SERVER,
    OPT_IDLE_CHANNELS,
    OPT_STEADY_POLLS,
    OPT_BROWSER,
    OPT_COOKIE_BYTES,
    OPT_TRANSPORT,
};

static const struct option long_opts[] = {
    {"nodes", required_argument, NULL, 'n'},
    {"waiters", required_argument, NULL, 'c'},
    {"bg-waiters", required_argument, NULL, 'w'},
    {"channels", required_argument, NULL, 'k'},
    {"rounds", required_argument, NULL, 'r'},
    {"duration", required_argument, NULL, 'd'},
    {"rate", required_argument, NULL, 'm'},
    {"publishers", required_argument, NULL, 'C'},
    {"procs", required_argument, NULL, 'P'},
    {"sources", required_argument, NULL, 'S'},
    {"timeout", required_argument, NULL, 't'},
    {"pid", required_argument, NULL, OPT_PID},
    {"settle-ms", required_argument, NULL, OPT_SETTLE},
    {"round-timeout-ms", required_argument, NULL, OPT_ROUND_TIMEOUT},
    {"drain-ms", required_argument, NULL, OPT_DRAIN},
    {"open-timeout-ms", required_argument, NULL, OPT_OPEN_TIMEOUT},
    {"size", required_argument, NULL, OPT_SIZE},
    {"prefix", required_argument, NULL, OPT_PREFIX},
    {"key", required_argument, NULL, OPT_KEY},
    {"token", required_argument, NULL, OPT_TOKEN},
    {"server", required_argument, NULL, OPT_SERVER},
    {"idle-waiters", required_argument, NULL, 'I'},
    {"idle-channels", required_argument, NULL, OPT_IDLE_CHANNELS},
    {"steady-polls", required_argument, NULL, OPT_STEADY_POLLS},
    {"browser", no_argument, NULL, OPT_BROWSER},
    {"cookie-bytes", required_argument, NULL, OPT_COOKIE_BYTES},
    {"transport", required_argument, NULL, OPT_TRANSPORT},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* The modes an option applies to, as a bit set of 1 << hb_mode. */
#define M(x) (1u << (x))
#define ALL (M(HB_HOLD) | M(HB_FANOUT) | M(HB_STREAM) | M(HB_PUBLISH))
static const struct {
    int opt;
    unsigned modes;
} applies[] = {
    {'c', M(HB_HOLD) | M(HB_FANOUT) | M(HB_STREAM)},
    {'w', M(HB_PUBLISH)},
    {'k', M(HB_FANOUT) | M(HB_STREAM) | M(HB_PUBLISH) | M(HB_HOLD)},
    {'r', M(HB_FANOUT)},
    {'d', M(HB_HOLD) | M(HB_STREAM) | M(HB_PUBLISH)},
    {'m', M(HB_STREAM)},
    {'C', M(HB_FANOUT) | M(HB_STREAM) | M(HB_PUBLISH)},
    {OPT_PID, M(HB_HOLD) | M(HB_STREAM)},
    {'I', M(HB_STREAM)},
    {OPT_IDLE_CHANNELS, M(HB_STREAM)},
    {OPT_STEADY_POLLS, M(HB_STREAM)},
    {OPT_ROUND_TIMEOUT, M(HB_FANOUT)},
    {OPT_DRAIN, M(HB_STREAM)},
    {OPT_TRANSPORT, M(HB_HOLD) | M(HB_FANOUT) | M(HB_STREAM)},
};

static const char *mode_names[] = {"hold", "fanout", "stream", "publish"};

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void usage_error(const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "holdline-bench: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'holdline-bench --help'.\n");
    exit(2);
}

/* The option as the user would write it, for messages. */
static const char *opt_name(int opt, char *buf, size_t len) {
    for (const struct option *o = long_opts; o->name != NULL; o++)
        if (o->val == opt) {
            if (opt < 256)
                snprintf(buf, len, "-%c", opt);
            else
                snprintf(buf, len, "--%s", o->name);
            return buf;
        }
    return "?";
}

static long long want_ll(int opt, const char *arg, long long min, long long max) {
    long long v;
    char name[32];
    if (hb_parse_ll(arg, min, max, &v) != 0)
        usage_error("%s: '%s' is not a whole number from %lld to %lld",
                    opt_name(opt, name, sizeof(name)), arg, min, max);
    return v;
}

static double want_double(int opt, const char *arg, double min, double max) {
    double v;
    char name[32];
    if (hb_parse_double(arg, min, max, &v) != 0 || v <= min)
        usage_error("%s: '%s' is not a number above %g and at most %g",
                    opt_name(opt, name, sizeof(name)), arg, min, max);
    return v;
}

static int valid_channel_chars(const char *s) {
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr("._~:-", *s) != NULL))
            return 0;
    return 1;
}

int main(int argc, char **argv) {
    hb_opts o;
    memset(&o, 0, sizeof(o));
    o.verbose = 1;
    o.waiters = -1;
    o.channels = -1;
    o.rounds = 5;
    o.publishers = 16;
    o.duration_s = 10;
    o.rate = 10;
    o.timeout_s = 60;
    o.settle_ms = 300;
    o.round_timeout_ms = 5000;
    o.drain_ms = 5000;
    o.open_timeout_ms = 60000;
    o.idle_channels = -1;
    o.steady_polls = 5;
    long long procs = 0;
    char err[160];

    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (argc < 2 || argv[1][0] == '-')
        usage_error("give a mode first: hold, fanout, stream or publish");
    int mode = -1;
    for (int i = 0; i < 4; i++)
        if (strcmp(argv[1], mode_names[i]) == 0) mode = i;
    if (mode < 0) usage_error("'%s' is not a mode; give hold, fanout, stream or publish", argv[1]);
    o.mode = (hb_mode)mode;
    if (hb_parse_addrs("127.0.0.1:8080", 1, o.nodes, HB_MAX_NODES, &o.nnodes, err, sizeof(err)) !=
        0)
        return 2;

    optind = 2;
    int opt;
    char name[32];
    while ((opt = getopt_long(argc, argv, "n:c:w:k:r:d:m:C:P:S:t:I:qh", long_opts, NULL)) != -1) {
        for (size_t i = 0; i < sizeof(applies) / sizeof(applies[0]); i++)
            if (applies[i].opt == opt && !(applies[i].modes & M(o.mode)))
                usage_error("%s does not apply to mode %s", opt_name(opt, name, sizeof(name)),
                            mode_names[o.mode]);
        switch (opt) {
        case 'n':
            if (hb_parse_addrs(optarg, 1, o.nodes, HB_MAX_NODES, &o.nnodes, err, sizeof(err)) != 0)
                usage_error("-n: %s", err);
            break;
        case 'S':
            if (hb_parse_addrs(optarg, 0, o.sources, HB_MAX_SOURCES, &o.nsources, err,
                               sizeof(err)) != 0)
                usage_error("-S: %s", err);
            break;
        case 'c': o.waiters = want_ll(opt, optarg, 1, 10000000); break;
        case 'w': o.waiters = want_ll(opt, optarg, 0, 10000000); break;
        case 'k': o.channels = want_ll(opt, optarg, 1, 1000000); break;
        case 'r': o.rounds = want_ll(opt, optarg, 1, 1000000); break;
        case 'd': o.duration_s = want_double(opt, optarg, 0, 86400); break;
        case 'm': o.rate = want_double(opt, optarg, 0, 1e6); break;
        case 'C': o.publishers = want_ll(opt, optarg, 1, 10000); break;
        case 'P': procs = want_ll(opt, optarg, 1, HB_MAX_PROCS); break;
        case 't': o.timeout_s = (int)want_ll(opt, optarg, 1, 3600); break;
        case OPT_SETTLE: o.settle_ms = (int)want_ll(opt, optarg, 0, 600000); break;
        case OPT_ROUND_TIMEOUT: o.round_timeout_ms = (int)want_ll(opt, optarg, 1, 3600000); break;
        case OPT_DRAIN: o.drain_ms = (int)want_ll(opt, optarg, 0, 3600000); break;
        case OPT_OPEN_TIMEOUT: o.open_timeout_ms = (int)want_ll(opt, optarg, 1, 3600000); break;
        case OPT_SIZE: o.size = want_ll(opt, optarg, 0, 1 << 20); break;
        case 'I': o.idle_waiters = want_ll(opt, optarg, 0, 10000000); break;
        case OPT_IDLE_CHANNELS: o.idle_channels = want_ll(opt, optarg, 1, 1000000); break;
        case OPT_STEADY_POLLS: o.steady_polls = want_ll(opt, optarg, 0, 1000000); break;
        case OPT_BROWSER: o.browser = 1; break;
        case OPT_COOKIE_BYTES:
            o.cookie_bytes = want_ll(opt, optarg, 0, 65536);
            if (o.cookie_bytes > 0 && o.cookie_bytes < HB_COOKIE_MIN)
                usage_error("--cookie-bytes: '%s' is not 0 or from %d to 65536", optarg,
                            HB_COOKIE_MIN);
            break;
        case OPT_PREFIX:
            if (strlen(optarg) == 0 || strlen(optarg) > 40 || !valid_channel_chars(optarg))
                usage_error("--prefix: '%s' is not 1 to 40 of A-Z a-z 0-9 . _ ~ : -", optarg);
            snprintf(o.prefix, sizeof(o.prefix), "%s", optarg);
            break;
        case OPT_KEY:
            if (strlen(optarg) >= sizeof(o.key) || strpbrk(optarg, "\r\n") != NULL)
                usage_error("--key: must be one line of at most 255 bytes");
            snprintf(o.key, sizeof(o.key), "%s", optarg);
            break;
        case OPT_TOKEN:
            if (strlen(optarg) > 8192 || strpbrk(optarg, "\r\n") != NULL)
                usage_error("--token: must be one line of at most 8192 bytes");
            o.token = optarg;
            break;
        case OPT_TRANSPORT:
            if (strcmp(optarg, "poll") == 0)
                o.transport = HB_POLL;
            else if (strcmp(optarg, "sse") == 0)
                o.transport = HB_SSE;
            else
                usage_error("--transport: '%s' is not poll or sse", optarg);
            break;
        case OPT_SERVER:
            if (strcmp(optarg, "holdline") == 0)
                o.server = HB_SERVER_HOLDLINE;
            else if (strcmp(optarg, "nchan") == 0)
                o.server = HB_SERVER_NCHAN;
            else
                usage_error("--server: '%s' is not holdline or nchan", optarg);
            break;
        case OPT_PID: {
            const char *s = optarg;
            while (*s) {
                char item[32];
                size_t len = strcspn(s, ",");
                snprintf(item, sizeof(item), "%.*s", (int)(len < 31 ? len : 31), s);
                if (o.npids >= HB_MAX_PIDS) usage_error("--pid: more than %d pids", HB_MAX_PIDS);
                o.pids[o.npids++] = (pid_t)want_ll(opt, item, 1, 4194304);
                s += len;
                if (*s == ',') s++;
            }
            if (o.npids == 0) usage_error("--pid: give at least one pid");
            break;
        }
        case 'q': o.verbose = 0; break;
        case 'h': fputs(usage_text, stdout); return 0;
        default: usage_error("bad option (see above)");
        }
    }
    if (optind < argc) usage_error("unexpected argument '%s'", argv[optind]);
    /* Its lines are a fetch()'s (Accept: application/json ...), not an
     * EventSource's. */
    if (o.browser && o.transport == HB_SSE)
        usage_error("--browser does not apply to --transport sse");

    if (o.waiters < 0) o.waiters = o.mode == HB_PUBLISH ? 0 : 1000;
    if (o.channels < 0) o.channels = o.mode == HB_STREAM ? 10 : 1;
    if (o.mode != HB_PUBLISH && o.channels > o.waiters)
        usage_error("-k: %lld channels for %lld waiters: every channel needs a waiter", o.channels,
                    o.waiters);
    if (o.idle_channels < 0) o.idle_channels = o.idle_waiters < 1000 ? o.idle_waiters : 1000;
    if (o.idle_channels > o.idle_waiters)
        usage_error("--idle-channels: %lld channels for %lld idle waiters: every channel needs a "
                    "waiter",
                    o.idle_channels, o.idle_waiters);
    for (int i = 0; i < o.npids; i++)
        if (kill(o.pids[i], 0) != 0) usage_error("--pid: no process %d", (int)o.pids[i]);
    if (o.prefix[0] == '\0') {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        unsigned long long r = (unsigned long long)ts.tv_sec * 1000003ULL ^
                               (unsigned long long)ts.tv_nsec ^
                               ((unsigned long long)getpid() << 20);
        snprintf(o.prefix, sizeof(o.prefix), "hb%llx", r & 0xffffffffffULL);
    }

    /* Each worker may hold at most the open-file limit, less a reserve. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    long long per_proc = (long long)rl.rlim_cur - FD_RESERVE;
    if (per_proc < 1) per_proc = 1;
    long long all = hb_all_waiters(&o);
    long long need = (all + per_proc - 1) / per_proc;
    if (procs == 0) procs = need > 0 ? need : 1;
    if (procs < need)
        usage_error("-P %lld: %lld waiters need at least %lld processes of at most %lld "
                    "connections each (the open-file limit, %lld, less %d)",
                    procs, all, need, per_proc, (long long)rl.rlim_cur, FD_RESERVE);
    if (procs > HB_MAX_PROCS)
        usage_error("%lld waiters need more than %d processes", all, HB_MAX_PROCS);
    if (all > 0 && procs > all) procs = all;
    o.procs = (int)procs;
    if (o.publishers + FD_RESERVE > (long long)rl.rlim_cur)
        usage_error("-C: more publishers than the open-file limit (%lld) allows",
                    (long long)rl.rlim_cur);

    /* Every (source, node) pair has one ephemeral port range. */
    long long pairs = (long long)(o.nsources ? o.nsources : 1) * o.nnodes;
    long range = hb_proc_port_range();
    if ((all + pairs - 1) / pairs > range)
        usage_error("%lld waiters over %lld source/node pairs exceed the %ld ephemeral ports "
                    "per pair; add -S addresses",
                    all, pairs, range);
    return hb_coord_run(&o);
}

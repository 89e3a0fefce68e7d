#include "itest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PIDS 64

static pid_t pids[MAX_PIDS];
static int npids;

static void kill_all(void) {
    for (int i = 0; i < npids; i++)
        if (pids[i] > 0) {
            kill(pids[i], SIGKILL);
            waitpid(pids[i], NULL, 0);
        }
    npids = 0;
}

static void on_fatal_signal(int sig) {
    for (int i = 0; i < npids; i++)
        if (pids[i] > 0) kill(pids[i], SIGKILL);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void register_pid(pid_t pid) {
    static int installed;
    if (!installed) {
        installed = 1;
        atexit(kill_all);
        signal(SIGINT, on_fatal_signal);
        signal(SIGTERM, on_fatal_signal);
        signal(SIGSEGV, on_fatal_signal);
        signal(SIGABRT, on_fatal_signal);
        signal(SIGPIPE, SIG_IGN);
    }
    for (int i = 0; i < npids; i++)
        if (pids[i] == 0) {
            pids[i] = pid;
            return;
        }
    if (npids < MAX_PIDS) pids[npids++] = pid;
}

static void forget_pid(pid_t pid) {
    for (int i = 0; i < npids; i++)
        if (pids[i] == pid) pids[i] = 0;
}

/* Every file a run writes (Redis dirs, node logs) goes below one
 * directory, removed by it_finish when all tests passed. */
const char *it_run_dir(void) {
    static char dir[64];
    if (dir[0] == '\0') {
        snprintf(dir, sizeof(dir), "/tmp/holdline-it-XXXXXX");
        if (mkdtemp(dir) == NULL) snprintf(dir, sizeof(dir), "/tmp");
    }
    return dir;
}

int it_finish(int failed) {
    kill_all();
    const char *dir = it_run_dir();
    const char *keep = getenv("IT_KEEP");
    if (failed || (keep && *keep && strcmp(keep, "0") != 0)) {
        fprintf(stderr, "logs kept in %s\n", dir);
    } else if (strcmp(dir, "/tmp") != 0) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    }
    return failed;
}

const char *it_holdline_bin(void) {
    const char *b = getenv("HOLDLINE_BIN");
    return b && *b ? b : "bin/holdline";
}

long long it_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long it_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int it_free_port(void) {
    /* The kernel picks an ephemeral port; ports handed out in one run are
     * remembered so two calls never return the same one. */
    static int used[256], nused;
    for (int tries = 0; tries < 100; tries++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t sl = sizeof(sa);
        if (fd < 0) return -1;
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
            getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
            close(fd);
            return -1;
        }
        close(fd);
        int port = ntohs(sa.sin_port), dup = 0;
        for (int i = 0; i < nused; i++)
            dup |= used[i] == port;
        if (dup) continue;
        if (nused < 256) used[nused++] = port;
        return port;
    }
    return -1;
}

pid_t it_spawn(const char *const argv[], const char *logpath) {
    return it_spawn_env(argv, NULL, logpath);
}

/* The environment for a child: ours, with each "NAME=value" of env in
 * place of an entry of the same name. Built before fork, so that the child
 * (of a process that may run threads) only calls exec. NULL when env is
 * NULL; the caller frees the array, not the strings. */
static char **child_environ(const char *const env[]) {
    extern char **environ;
    if (env == NULL) return NULL;
    size_t n = 0, k = 0;
    while (environ[n])
        n++;
    while (env[k])
        k++;
    char **out = calloc(n + k + 1, sizeof(*out));
    if (out == NULL) return NULL;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int replaced = 0;
        for (size_t j = 0; j < k && !replaced; j++) {
            size_t len = strcspn(env[j], "=");
            replaced = strncmp(environ[i], env[j], len) == 0 && environ[i][len] == '=';
        }
        if (!replaced) out[m++] = environ[i];
    }
    for (size_t j = 0; j < k; j++)
        if (strchr(env[j], '=')) out[m++] = (char *)env[j]; /* exec does not write it */
    out[m] = NULL;
    return out;
}

pid_t it_spawn_env(const char *const argv[], const char *const env[], const char *logpath) {
    char **envp = child_environ(env);
    if (env && envp == NULL) return -1;
    pid_t pid = fork();
    if (pid < 0) {
        free(envp);
        return -1;
    }
    if (pid == 0) {
        int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int devnull = open("/dev/null", O_RDONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (devnull >= 0) dup2(devnull, 0);
        signal(SIGPIPE, SIG_DFL);
        /* execvp's prototype predates const; it does not write argv. */
        if (envp)
            execvpe(argv[0], (char *const *)argv, envp);
        else
            execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    free(envp);
    register_pid(pid);
    return pid;
}

int it_alive(pid_t pid) {
    if (pid <= 0) return 0;
    return waitpid(pid, NULL, WNOHANG) == 0;
}

int it_stop(pid_t pid, int sig, int timeout_ms) {
    if (pid <= 0) return -1;
    if (sig) kill(pid, sig);
    long long end = it_now_ms() + timeout_ms;
    int status;
    while (it_now_ms() < end) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            forget_pid(pid);
            return status;
        }
        sleep_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    forget_pid(pid);
    return -1;
}

int it_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

int it_write_all(int fd, const void *p, size_t n) {
    const char *s = p;
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

int it_redis_cmd(int port, char *out, size_t outlen, int argc, const char *const argv[]) {
    int fd = it_connect(port);
    if (fd < 0) return -1;
    char buf[8192];
    int n = snprintf(buf, sizeof(buf), "*%d\r\n", argc);
    for (int i = 0; i < argc && n < (int)sizeof(buf); i++)
        n += snprintf(buf + n, sizeof(buf) - (size_t)n, "$%zu\r\n%s\r\n", strlen(argv[i]), argv[i]);
    int rc = -1;
    if (n < (int)sizeof(buf) && it_write_all(fd, buf, (size_t)n) == 0) {
        struct pollfd p = {fd, POLLIN, 0};
        size_t len = 0;
        /* Read until a reply line is in; an array reply (PUBSUB NUMSUB)
         * goes on until the server pauses. */
        int wait = 2000;
        while (len < sizeof(buf) - 1 && poll(&p, 1, wait) > 0) {
            ssize_t r = read(fd, buf + len, sizeof(buf) - 1 - len);
            if (r <= 0) break;
            len += (size_t)r;
            buf[len] = '\0';
            if (strstr(buf, "\r\n") == NULL) continue;
            rc = 0;
            if (buf[0] != '*') break;
            wait = 100;
        }
        if (rc == 0) {
            while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
                buf[--len] = '\0';
            snprintf(out, outlen, "%s", buf);
        }
    }
    close(fd);
    return rc;
}

int it_redis_start(it_redis *r) {
    return it_redis_start_args(r, NULL);
}

int it_redis_start_args(it_redis *r, const char *const extra[]) {
    if (r->port == 0) r->port = it_free_port();
    if (r->dir[0] == '\0') {
        snprintf(r->dir, sizeof(r->dir), "%s/redis-XXXXXX", it_run_dir());
        if (mkdtemp(r->dir) == NULL) return -1;
    }
    char port[16], log[128];
    snprintf(port, sizeof(port), "%d", r->port);
    snprintf(log, sizeof(log), "%s/redis.log", r->dir);
    const char *argv[32] = {"redis-server", "--port", port,    "--bind", "127.0.0.1", "--save", "",
                            "--appendonly", "no",     "--dir", r->dir};
    int k = 11;
    for (int i = 0; extra && extra[i] && k < 31; i++)
        argv[k++] = extra[i];
    argv[k] = NULL;
    r->pid = it_spawn(argv, log);
    if (r->pid < 0) return -1;
    for (int i = 0; i < 300; i++) {
        char out[64];
        const char *ping[] = {"PING"};
        if (it_redis_cmd(r->port, out, sizeof(out), 1, ping) == 0 && strcmp(out, "+PONG") == 0)
            return 0;
        sleep_ms(10);
    }
    return -1;
}

long long it_redis_int(int port, int argc, const char *const argv[]) {
    char out[8192];
    if (it_redis_cmd(port, out, sizeof(out), argc, argv) != 0) return -1;
    const char *colon = out[0] == '*' ? strrchr(out, ':') : out[0] == ':' ? out : NULL;
    return colon ? atoll(colon + 1) : -1;
}

void it_redis_stop(it_redis *r) {
    it_stop(r->pid, SIGKILL, 2000);
    r->pid = 0;
}

void it_resp_free(it_resp *r) {
    free(r->body);
    r->body = NULL;
}

int it_resp_header(const it_resp *r, const char *name, char *out, size_t outlen) {
    size_t n = strlen(name);
    const char *p = strstr(r->head, "\r\n");
    while (p && p[2]) {
        p += 2;
        if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1;
            while (*v == ' ')
                v++;
            const char *e = strstr(v, "\r\n");
            size_t len = e ? (size_t)(e - v) : strlen(v);
            snprintf(out, outlen, "%.*s", (int)len, v);
            return 0;
        }
        p = strstr(p, "\r\n");
    }
    return -1;
}

/* Parses a complete answer in buf; returns 1 when complete, 0 when more
 * bytes are needed (or it cannot tell before the close). */
static int parse_answer(const char *buf, size_t len, int closed, it_resp *out) {
    const char *end = NULL;
    for (size_t i = 0; i + 3 < len; i++)
        if (memcmp(buf + i, "\r\n\r\n", 4) == 0) {
            end = buf + i;
            break;
        }
    if (end == NULL) return 0;
    size_t hlen = (size_t)(end - buf);
    const char *body = end + 4;
    size_t avail = len - hlen - 4;
    memset(out, 0, sizeof(*out));
    snprintf(out->head, sizeof(out->head), "%.*s", (int)hlen, buf);
    if (sscanf(out->head, "HTTP/1.%*d %d", &out->status) != 1) return 0;
    char cl[32], te[32];
    size_t want = avail;
    if (it_resp_header(out, "Content-Length", cl, sizeof(cl)) == 0) {
        want = (size_t)strtoull(cl, NULL, 10);
        if (avail < want) return 0;
    } else if (it_resp_header(out, "Transfer-Encoding", te, sizeof(te)) == 0) {
        /* Chunked: complete at the terminating zero chunk. */
        char *dec = malloc(avail + 1);
        size_t dlen = 0, pos = 0;
        for (;;) {
            const char *eol = memmem(body + pos, avail - pos, "\r\n", 2);
            if (!eol) break;
            size_t sz = strtoul(body + pos, NULL, 16);
            pos = (size_t)(eol - body) + 2;
            if (sz == 0) {
                out->body = dec;
                out->body_len = dlen;
                dec[dlen] = '\0';
                return 1;
            }
            if (pos + sz + 2 > avail) break;
            memcpy(dec + dlen, body + pos, sz);
            dlen += sz;
            pos += sz + 2;
        }
        free(dec);
        out->status = closed ? out->status : 0;
        return 0;
    } else if (!closed) {
        return 0;
    }
    out->body = malloc(want + 1);
    memcpy(out->body, body, want);
    out->body[want] = '\0';
    out->body_len = want;
    return 1;
}

int it_raw(int port, const void *req, size_t len, int timeout_ms, it_resp *out) {
    int closed;
    return it_raw_ex(port, req, len, 0, timeout_ms, out, &closed);
}

int it_raw_ex(int port, const void *req, size_t len, int half_close, int timeout_ms, it_resp *out,
              int *closed) {
    memset(out, 0, sizeof(*out));
    *closed = 0;
    it_conn c;
    memset(&c, 0, sizeof(c));
    c.fd = it_connect(port);
    if (c.fd < 0) return -1;
    /* A failed write is not the end: the server may have answered and
     * closed before reading everything (413, slow senders). */
    (void)it_write_all(c.fd, req, len);
    if (half_close) shutdown(c.fd, SHUT_WR);
    it_multi_wait(&c, 1, timeout_ms);
    *closed = c.done;
    int rc = -1;
    if (c.done && c.resp.status) {
        *out = c.resp;
        c.resp.body = NULL;
        rc = 0;
    } else if (c.len > 0 && parse_answer(c.buf, c.len, 1, out) == 1) {
        rc = 0;
    }
    it_multi_free(&c, 1);
    return rc;
}

int it_http(int port, const char *method, const char *path, const char *body, size_t body_len,
            const char *extra_headers, int timeout_ms, it_resp *out) {
    size_t cap = 1024 + strlen(path) + (extra_headers ? strlen(extra_headers) : 0) + body_len;
    char *req = malloc(cap);
    int n = snprintf(req, cap, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s",
                     method, path, extra_headers ? extra_headers : "");
    if (body) n += snprintf(req + n, cap - (size_t)n, "Content-Length: %zu\r\n", body_len);
    n += snprintf(req + n, cap - (size_t)n, "\r\n");
    if (body) {
        memcpy(req + n, body, body_len);
        n += (int)body_len;
    }
    int rc = it_raw(port, req, (size_t)n, timeout_ms, out);
    free(req);
    return rc;
}

int it_multi_open(it_conn *c, size_t n, const int *port, const char *const *req) {
    /* Every entry is valid for it_multi_wait and it_multi_free even when a
     * connection in the middle fails. */
    for (size_t i = 0; i < n; i++) {
        memset(&c[i], 0, sizeof(c[i]));
        c[i].fd = -1;
    }
    for (size_t i = 0; i < n; i++) {
        c[i].fd = it_connect(port[i]);
        if (c[i].fd < 0 || it_write_all(c[i].fd, req[i], strlen(req[i])) != 0) return -1;
    }
    return 0;
}

size_t it_multi_wait(it_conn *c, size_t n, int timeout_ms) {
    struct pollfd *p = calloc(n, sizeof(*p));
    long long end = it_now_ms() + timeout_ms;
    size_t done = 0;
    for (size_t i = 0; i < n; i++)
        done += c[i].done;
    while (done < n) {
        long long left = end - it_now_ms();
        if (left <= 0) break;
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            p[i].fd = c[i].done || c[i].fd < 0 ? -1 : c[i].fd;
            p[i].events = POLLIN;
            p[i].revents = 0;
            k++;
        }
        int r = poll(p, k, (int)left);
        if (r <= 0) continue;
        for (size_t i = 0; i < n; i++) {
            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            if (c[i].cap - c[i].len < 4096) {
                c[i].cap = c[i].cap ? c[i].cap * 2 : 8192;
                c[i].buf = realloc(c[i].buf, c[i].cap);
            }
            ssize_t got = read(c[i].fd, c[i].buf + c[i].len, c[i].cap - c[i].len - 1);
            int closed = got <= 0;
            if (got > 0) c[i].len += (size_t)got;
            if (parse_answer(c[i].buf, c[i].len, closed, &c[i].resp) == 1 || closed) {
                c[i].done = 1;
                done++;
            }
        }
    }
    free(p);
    size_t ok = 0;
    for (size_t i = 0; i < n; i++)
        ok += c[i].done && c[i].resp.status != 0;
    return ok;
}

void it_multi_free(it_conn *c, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (c[i].fd >= 0) close(c[i].fd);
        free(c[i].buf);
        it_resp_free(&c[i].resp);
    }
}

int it_node_start(it_node *n, int redis_port, const char *const extra[]) {
    return it_node_start_env(n, redis_port, extra, NULL);
}

static int log_says(const char *path, const char *what) {
    FILE *f = fopen(path, "r");
    if (f == NULL) return 0;
    char line[1024];
    int found = 0;
    while (!found && fgets(line, sizeof(line), f))
        found = strstr(line, what) != NULL;
    fclose(f);
    return found;
}

static int node_start_once(it_node *n, int redis_port, const char *const extra[],
                           const char *const env[]);

/* A port it_free_port handed out may be taken by another process's
 * outgoing connection (it is in the ephemeral range) before the node binds
 * it: then the node is started again on another port. */
int it_node_start_env(it_node *n, int redis_port, const char *const extra[],
                      const char *const env[]) {
    for (int tries = 0;; tries++) {
        int rc = node_start_once(n, redis_port, extra, env);
        if (rc == 0 || tries == 4 || !log_says(n->log, "Address already in use")) return rc;
    }
}

static int node_start_once(it_node *n, int redis_port, const char *const extra[],
                           const char *const env[]) {
    n->port = it_free_port();
    snprintf(n->log, sizeof(n->log), "%s/node-%d.log", it_run_dir(), n->port);
    unlink(n->log);
    char port[16], redis[32];
    snprintf(port, sizeof(port), "%d", n->port);
    snprintf(redis, sizeof(redis), "127.0.0.1:%d", redis_port);
    const char *argv[32];
    int k = 0;
    argv[k++] = it_holdline_bin();
    argv[k++] = "-c";
    argv[k++] = "config/holdline.cfg";
    argv[k++] = "-p";
    argv[k++] = port;
    argv[k++] = "--redis";
    argv[k++] = redis;
    for (int i = 0; extra && extra[i] && k < 31; i++)
        argv[k++] = extra[i];
    argv[k] = NULL;
    n->pid = it_spawn_env(argv, env, n->log);
    if (n->pid < 0) return -1;
    for (int i = 0; i < 500; i++) {
        it_resp r;
        if (it_http(n->port, "GET", "/readyz", NULL, 0, NULL, 500, &r) == 0) {
            int ok = r.status == 200;
            it_resp_free(&r);
            if (ok) return 0;
        }
        if (waitpid(n->pid, NULL, WNOHANG) == n->pid) {
            forget_pid(n->pid);
            return -1;
        }
        sleep_ms(10);
    }
    return -1;
}

int it_node_stop(it_node *n) {
    int st = it_stop(n->pid, SIGTERM, 10000);
    n->pid = 0;
    return st;
}

int it_log_has_crash(const char *path) {
    FILE *f = fopen(path, "r");
    if (f == NULL) return 0;
    char line[1024];
    int bad = 0;
    while (fgets(line, sizeof(line), f))
        if (strstr(line, "AddressSanitizer") || strstr(line, "LeakSanitizer") ||
            strstr(line, "runtime error:") || strstr(line, "Segmentation") ||
            strstr(line, "Assertion"))
            bad = 1;
    fclose(f);
    return bad;
}

long long it_wait_status(int port, const char *path, int want, int timeout_ms, int interval_ms) {
    long long t0 = it_now_ms();
    for (;;) {
        it_resp r;
        int status = 0;
        if (it_http(port, "GET", path, NULL, 0, NULL, 1000, &r) == 0) {
            status = r.status;
            it_resp_free(&r);
        }
        if (status == want) return it_now_ms() - t0;
        if (it_now_ms() - t0 >= timeout_ms) return -1;
        sleep_ms(interval_ms);
    }
}

/* ---- the JSON reader ---- */

static const char *js_ws(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
        p++;
    return p;
}

/* The string at p (its opening quote) into out, simple escapes decoded
 * (\uXXXX becomes '?'); returns the byte after the closing quote, or NULL
 * if there is no string or it does not fit. */
static const char *js_str(const char *p, char *out, size_t outlen) {
    size_t n = 0;
    if (*p != '"') return NULL;
    for (p++; *p != '"'; p++) {
        char c = *p;
        if (c == '\0') return NULL;
        if (c == '\\') {
            c = *++p;
            switch (c) {
            case '"':
            case '\\':
            case '/': break;
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'u':
                for (int i = 1; i <= 4; i++)
                    if (p[i] == '\0' || strchr("0123456789abcdefABCDEF", p[i]) == NULL) return NULL;
                p += 4;
                c = '?';
                break;
            default: return NULL;
            }
        }
        if (n + 1 >= outlen) return NULL;
        out[n++] = c;
    }
    out[n] = '\0';
    return p + 1;
}

static const char *js_token(const char *p, char *out, size_t outlen) {
    size_t n = 0;
    while ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '+' ||
           *p == '.' || *p == 'E') {
        if (n + 1 >= outlen) return NULL;
        out[n++] = *p++;
    }
    out[n] = '\0';
    return n ? p : NULL;
}

static const char *js_scalar(const char *p, char *out, size_t outlen) {
    return *p == '"' ? js_str(p, out, outlen) : js_token(p, out, outlen);
}

static const char *js_skip(const char *p) {
    if (*p != '[' && *p != '{') {
        if (*p == '"') {
            for (p++; *p != '"'; p++) {
                if (*p == '\0') return NULL;
                if (*p == '\\' && *++p == '\0') return NULL;
            }
            return p + 1;
        }
        char tok[64];
        return js_token(p, tok, sizeof(tok));
    }
    int depth = 0;
    for (; *p; p++) {
        if (*p == '"') {
            p = js_skip(p);
            if (p == NULL) return NULL;
            p--;
        } else if (*p == '[' || *p == '{') {
            depth++;
        } else if ((*p == ']' || *p == '}') && --depth == 0) {
            return p + 1;
        }
    }
    return NULL;
}

typedef const char *js_field_fn(const char *key, const char *p, void *ctx);

static const char *js_object(const char *p, js_field_fn *fn, void *ctx) {
    p = js_ws(p);
    if (*p != '{') return NULL;
    p = js_ws(p + 1);
    if (*p == '}') return p + 1;
    for (;;) {
        char key[64];
        p = js_str(p, key, sizeof(key));
        if (p == NULL) return NULL;
        p = js_ws(p);
        if (*p != ':') return NULL;
        p = fn(key, js_ws(p + 1), ctx);
        if (p == NULL) return NULL;
        p = js_ws(p);
        if (*p == '}') return p + 1;
        if (*p != ',') return NULL;
        p = js_ws(p + 1);
    }
}

static const char *js_msg_field(const char *key, const char *p, void *ctx) {
    it_msg *m = ctx;
    if (strcmp(key, "channel") == 0) return js_scalar(p, m->channel, sizeof(m->channel));
    if (strcmp(key, "id") == 0) return js_scalar(p, m->id, sizeof(m->id));
    if (strcmp(key, "data") == 0) return js_scalar(p, m->data, sizeof(m->data));
    return js_skip(p);
}

static const char *js_messages(const char *p, it_json *j) {
    if (*p != '[') return NULL;
    p = js_ws(p + 1);
    if (*p == ']') return p + 1;
    for (;;) {
        if (j->n == j->cap) {
            j->cap = j->cap ? j->cap * 2 : 16;
            j->msgs = realloc(j->msgs, j->cap * sizeof(*j->msgs));
        }
        it_msg *m = &j->msgs[j->n];
        memset(m, 0, sizeof(*m));
        p = js_object(p, js_msg_field, m);
        if (p == NULL) return NULL;
        j->n++;
        p = js_ws(p);
        if (*p == ']') return p + 1;
        if (*p != ',') return NULL;
        p = js_ws(p + 1);
    }
}

static const char *js_bool(const char *p, int *out) {
    char tok[16];
    const char *q = js_token(p, tok, sizeof(tok));
    if (q) *out = strcmp(tok, "true") == 0 ? 1 : strcmp(tok, "false") == 0 ? 0 : -1;
    return q;
}

static const char *js_field(const char *key, const char *p, void *ctx) {
    it_json *j = ctx;
    if (strcmp(key, "cursor") == 0) return js_scalar(p, j->cursor, sizeof(j->cursor));
    if (strcmp(key, "error") == 0) return js_scalar(p, j->error, sizeof(j->error));
    if (strcmp(key, "detail") == 0) {
        /* A long detail is cut, not a parse error. */
        const char *q = js_scalar(p, j->detail, sizeof(j->detail));
        return q ? q : js_skip(p);
    }
    if (strcmp(key, "id") == 0) return js_scalar(p, j->id, sizeof(j->id));
    if (strcmp(key, "channel") == 0) return js_scalar(p, j->channel, sizeof(j->channel));
    if (strcmp(key, "last_id") == 0) return js_scalar(p, j->last_id, sizeof(j->last_id));
    if (strcmp(key, "status") == 0) return js_scalar(p, j->status, sizeof(j->status));
    if (strcmp(key, "messages") == 0) return js_messages(p, j);
    if (strcmp(key, "missed") == 0) return js_bool(p, &j->missed);
    if (strcmp(key, "duplicate") == 0) return js_bool(p, &j->duplicate);
    if (strcmp(key, "length") == 0) {
        char tok[32];
        const char *q = js_token(p, tok, sizeof(tok));
        if (q) j->length = atoll(tok);
        return q;
    }
    return js_skip(p);
}

int it_json_parse(const char *body, it_json *j) {
    memset(j, 0, sizeof(*j));
    j->missed = j->duplicate = -1;
    j->length = -1;
    if (body == NULL) return -1;
    const char *end = js_object(body, js_field, j);
    j->parsed = end != NULL && *js_ws(end) == '\0';
    return j->parsed ? 0 : -1;
}

void it_json_free(it_json *j) {
    free(j->msgs);
    j->msgs = NULL;
    j->n = j->cap = 0;
}

/* ---- whole Redis replies ---- */

/* One RESP2 reply, as far as the Sentinel helpers read them. Strings point
 * into the buffer that was parsed and are not NUL-terminated. */
typedef struct rv {
    char type; /* '+', '-', ':', '$', '*'; '_' for a nil bulk string or array */
    long long num;
    const char *str;
    size_t len;
    struct rv *elem; /* '*': n elements, malloc'd */
    size_t n;
} rv;

static void rv_free(rv *v) {
    if (v == NULL) return;
    for (size_t i = 0; i < v->n; i++)
        rv_free(&v->elem[i]);
    free(v->elem);
    v->elem = NULL;
    v->n = 0;
}

/* Parses the reply at p[0..n) into out (NULL: only measure it). Returns
 * the bytes it takes, 0 if it is not complete yet, -1 if it is not RESP. */
static long rv_parse(const char *p, size_t n, rv *out) {
    if (out) memset(out, 0, sizeof(*out));
    const char *eol = n > 0 ? memmem(p, n, "\r\n", 2) : NULL;
    if (eol == NULL) return 0;
    size_t head = (size_t)(eol - p) + 2;
    char type = p[0];
    long long num = strtoll(p + 1, NULL, 10);
    if (type == '+' || type == '-' || type == ':') {
        if (out) *out = (rv){.type = type, .num = num, .str = p + 1, .len = head - 3};
        return (long)head;
    }
    if (type == '$') {
        if (num < 0) {
            if (out) out->type = '_';
            return (long)head;
        }
        if (head + (size_t)num + 2 > n) return 0;
        if (out) *out = (rv){.type = '$', .str = p + head, .len = (size_t)num};
        return (long)(head + (size_t)num + 2);
    }
    if (type != '*') return -1;
    if (num < 0) {
        if (out) out->type = '_';
        return (long)head;
    }
    rv v = {.type = '*'};
    if (out && num > 0) {
        v.elem = calloc((size_t)num, sizeof(*v.elem));
        if (v.elem == NULL) return -1;
    }
    size_t pos = head;
    for (long long i = 0; i < num; i++) {
        long k = rv_parse(p + pos, n - pos, out ? &v.elem[i] : NULL);
        if (k <= 0) {
            rv_free(&v);
            return k;
        }
        if (out) v.n++;
        pos += (size_t)k;
    }
    if (out) *out = v;
    return (long)pos;
}

/* 1 if v is a string equal to s. */
static int rv_is(const rv *v, const char *s) {
    return v && (v->type == '$' || v->type == '+') && v->len == strlen(s) &&
           memcmp(v->str, s, v->len) == 0;
}

/* The value after key in a flat key-value array (what SENTINEL replicas
 * gives for one replica), or NULL. */
static const rv *rv_field(const rv *map, const char *key) {
    if (map == NULL || map->type != '*') return NULL;
    for (size_t i = 0; i + 1 < map->n; i += 2)
        if (rv_is(&map->elem[i], key)) return &map->elem[i + 1];
    return NULL;
}

/* A string or integer value as a number, or -1. */
static long long rv_num(const rv *v) {
    if (v == NULL) return -1;
    if (v->type == ':') return v->num;
    if (v->type != '$' && v->type != '+') return -1;
    char tmp[32];
    if (v->len == 0 || v->len >= sizeof(tmp)) return -1;
    memcpy(tmp, v->str, v->len);
    tmp[v->len] = '\0';
    return strspn(tmp, "0123456789") == v->len ? atoll(tmp) : -1;
}

char *it_redis_call(int port, int timeout_ms, int argc, const char *const argv[]) {
    int fd = it_connect(port);
    if (fd < 0) return NULL;
    size_t cap = 64, len = 0;
    for (int i = 0; i < argc; i++)
        cap += strlen(argv[i]) + 32;
    char *buf = malloc(cap);
    int n = snprintf(buf, cap, "*%d\r\n", argc);
    for (int i = 0; i < argc; i++)
        n += snprintf(buf + n, cap - (size_t)n, "$%zu\r\n%s\r\n", strlen(argv[i]), argv[i]);
    int ok = it_write_all(fd, buf, (size_t)n) == 0;
    long long end = it_now_ms() + timeout_ms;
    long whole = 0;
    while (ok && whole == 0) {
        long long left = end - it_now_ms();
        struct pollfd p = {fd, POLLIN, 0};
        if (left <= 0 || poll(&p, 1, (int)left) <= 0) break;
        if (cap - len < 4096) {
            cap *= 2;
            char *grown = realloc(buf, cap);
            if (grown == NULL) break;
            buf = grown;
        }
        ssize_t r = read(fd, buf + len, cap - len - 1);
        if (r <= 0) break;
        len += (size_t)r;
        whole = rv_parse(buf, len, NULL);
    }
    close(fd);
    if (whole <= 0) {
        free(buf);
        return NULL;
    }
    buf[whole] = '\0';
    return buf;
}

/* it_redis_call parsed into *v; returns the buffer v points into (free it
 * after rv_free(v)), or NULL. */
static char *redis_call_rv(int port, int timeout_ms, int argc, const char *const argv[], rv *v) {
    char *buf = it_redis_call(port, timeout_ms, argc, argv);
    if (buf && rv_parse(buf, strlen(buf), v) <= 0) {
        free(buf);
        buf = NULL;
    }
    return buf;
}

int it_redis_role(int port, char *role, size_t rolelen, int *master_port) {
    const char *argv[] = {"ROLE"};
    rv v;
    char *buf = redis_call_rv(port, 1000, 1, argv, &v);
    if (master_port) *master_port = 0;
    if (buf == NULL) return -1;
    int rc = -1;
    if (v.type == '*' && v.n >= 1 && v.elem[0].type == '$') {
        snprintf(role, rolelen, "%.*s", (int)v.elem[0].len, v.elem[0].str);
        if (master_port && rv_is(&v.elem[0], "slave") && v.n >= 3)
            *master_port = (int)rv_num(&v.elem[2]);
        rc = 0;
    }
    rv_free(&v);
    free(buf);
    return rc;
}

int it_redis_clients_named(int port, const char *prefix, char *names, size_t nameslen) {
    const char *argv[] = {"CLIENT", "LIST"};
    char *buf = it_redis_call(port, 1000, 2, argv);
    if (names && nameslen) names[0] = '\0';
    if (buf == NULL || buf[0] != '$') {
        free(buf);
        return -1;
    }
    /* One line per connection: "id=3 addr=... name=holdline-... age=...". */
    int count = 0;
    size_t plen = strlen(prefix);
    for (const char *p = strstr(buf, " name="); p; p = strstr(p + 1, " name=")) {
        const char *name = p + 6;
        size_t len = strcspn(name, " \r\n");
        if (len < plen || strncmp(name, prefix, plen) != 0) continue;
        count++;
        if (names && nameslen) {
            size_t used = strlen(names);
            snprintf(names + used, nameslen - used, "%s%.*s", used ? " " : "", (int)len, name);
        }
    }
    free(buf);
    return count;
}

/* ---- the Sentinel set ---- */

/* Starts redis-server from r->dir/<conf>, as a Sentinel if sentinel is set,
 * its log in r->dir, and waits until it answers PING. */
static int start_from_conf(it_redis *r, const char *conf, int sentinel) {
    char path[160], log[160];
    snprintf(path, sizeof(path), "%s/%s", r->dir, conf);
    snprintf(log, sizeof(log), "%s/%s.log", r->dir, sentinel ? "sentinel" : "redis");
    const char *argv[] = {"redis-server", path, sentinel ? "--sentinel" : NULL, NULL};
    r->pid = it_spawn(argv, log);
    if (r->pid < 0) return -1;
    for (int i = 0; i < 300; i++) {
        char out[64];
        const char *ping[] = {"PING"};
        if (it_redis_cmd(r->port, out, sizeof(out), 1, ping) == 0 && strcmp(out, "+PONG") == 0)
            return 0;
        if (!it_alive(r->pid)) break;
        sleep_ms(10);
    }
    return -1;
}

/* Picks r's port and directory and writes its first config file. */
static int write_conf(it_redis *r, const char *tag, const char *conf, const char *body) {
    r->port = it_free_port();
    snprintf(r->dir, sizeof(r->dir), "%s/%s-XXXXXX", it_run_dir(), tag);
    if (r->port < 0 || mkdtemp(r->dir) == NULL) return -1;
    char path[160];
    snprintf(path, sizeof(path), "%s/%s", r->dir, conf);
    FILE *f = fopen(path, "w");
    if (f == NULL) return -1;
    fprintf(f, "port %d\nbind 127.0.0.1\ndir %s\n%s", r->port, r->dir, body);
    return fclose(f) == 0 ? 0 : -1;
}

int it_sset_start(it_sset *s, const char *name) {
    memset(s, 0, sizeof(*s));
    snprintf(s->name, sizeof(s->name), "%s", name);
    /* No persistence, and full syncs straight over the socket both ways
     * (no 5 s wait for more replicas, no RDB file on the replica), so that
     * a server restarted after a SIGKILL comes back empty. */
    static const char server_conf[] = "save \"\"\nappendonly no\nrepl-diskless-sync yes\n"
                                      "repl-diskless-sync-delay 0\nrepl-diskless-load swapdb\n";
    for (int i = 0; i < IT_SSET_SERVERS; i++) {
        char body[512];
        snprintf(body, sizeof(body), "%s", server_conf);
        if (i > 0)
            snprintf(body + strlen(body), sizeof(body) - strlen(body), "replicaof 127.0.0.1 %d\n",
                     s->server[0].port);
        if (write_conf(&s->server[i], "server", "redis.conf", body) != 0 ||
            start_from_conf(&s->server[i], "redis.conf", 0) != 0)
            return -1;
    }
    for (int i = 0; i < IT_SSET_SENTINELS; i++) {
        char body[512];
        snprintf(body, sizeof(body),
                 "sentinel monitor %s 127.0.0.1 %d 2\n"
                 "sentinel down-after-milliseconds %s 1000\n"
                 "sentinel failover-timeout %s %d\n"
                 "sentinel parallel-syncs %s 1\n",
                 name, s->server[0].port, name, name, IT_SSET_FAILOVER_TIMEOUT_MS, name);
        if (write_conf(&s->sentinel[i], "sentinel", "sentinel.conf", body) != 0 ||
            start_from_conf(&s->sentinel[i], "sentinel.conf", 1) != 0)
            return -1;
    }
    return it_sset_wait_settled(s, 20000);
}

void it_sset_stop(it_sset *s) {
    it_sset_stop_sentinels(s);
    for (int i = 0; i < IT_SSET_SERVERS; i++)
        if (s->server[i].pid > 0) it_redis_stop(&s->server[i]);
}

void it_sset_sentinel_list(const it_sset *s, char *out, size_t outlen) {
    size_t n = 0;
    out[0] = '\0';
    for (int i = 0; i < IT_SSET_SENTINELS && n < outlen; i++)
        n += (size_t)snprintf(out + n, outlen - n, "%s127.0.0.1:%d", i ? "," : "",
                              s->sentinel[i].port);
}

/* The master's port as Sentinel sentinel_port names it, or -1. */
static int sentinel_master_port(int sentinel_port, const char *name) {
    const char *argv[] = {"SENTINEL", "GET-MASTER-ADDR-BY-NAME", name};
    rv v;
    char *buf = redis_call_rv(sentinel_port, 500, 3, argv, &v);
    if (buf == NULL) return -1;
    int port = v.type == '*' && v.n == 2 ? (int)rv_num(&v.elem[1]) : -1;
    rv_free(&v);
    free(buf);
    return port;
}

int it_sset_master_port(const it_sset *s) {
    for (int i = 0; i < IT_SSET_SENTINELS; i++) {
        if (s->sentinel[i].pid <= 0) continue;
        int port = sentinel_master_port(s->sentinel[i].port, s->name);
        if (port > 0) return port;
    }
    return -1;
}

int it_sset_wait_new_master(const it_sset *s, int old_port, int timeout_ms) {
    long long end = it_now_ms() + timeout_ms;
    do {
        for (int i = 0; i < IT_SSET_SENTINELS; i++) {
            if (s->sentinel[i].pid <= 0) continue;
            int port = sentinel_master_port(s->sentinel[i].port, s->name);
            if (port > 0 && port != old_port) return port;
        }
        sleep_ms(10);
    } while (it_now_ms() < end);
    return -1;
}

int it_sset_server(const it_sset *s, int port) {
    for (int i = 0; i < IT_SSET_SERVERS; i++)
        if (s->server[i].port == port) return i;
    return -1;
}

/* 1 if the server on port says it replicates master_port with its link up. */
static int replica_linked(int port, int master_port) {
    const char *argv[] = {"ROLE"};
    rv v;
    char *buf = redis_call_rv(port, 500, 1, argv, &v);
    int ok = buf && v.type == '*' && v.n >= 4 && rv_is(&v.elem[0], "slave") &&
             rv_num(&v.elem[2]) == master_port && rv_is(&v.elem[3], "connected");
    if (buf) rv_free(&v);
    free(buf);
    return ok;
}

/* 1 if Sentinel sentinel_port knows `others` other Sentinels, none of
 * them flagged s_down, o_down or disconnected (a master_down vote that
 * outlived its failover does not matter), and lists every running server but
 * the master as a replica it can reach, and that server says it
 * replicates the master with its link up; else 0, with what is missing in
 * why. The link is asked of the server because a Sentinel refreshes what
 * it knows of a healthy replica only every 10 s. */
static int sentinel_settled(const it_sset *s, int sentinel_port, int master, int others, char *why,
                            size_t whylen) {
    const char *sargv[] = {"SENTINEL", "SENTINELS", s->name};
    const char *rargv[] = {"SENTINEL", "REPLICAS", s->name};
    rv sv, rvv;
    char *sbuf = redis_call_rv(sentinel_port, 500, 3, sargv, &sv);
    char *rbuf = redis_call_rv(sentinel_port, 500, 3, rargv, &rvv);
    int ok = sbuf && rbuf && sv.type == '*' && rvv.type == '*';
    if (!ok)
        snprintf(why, whylen, "sentinel %d: no answer to SENTINEL SENTINELS/REPLICAS",
                 sentinel_port);
    if (ok && (int)sv.n != others) {
        snprintf(why, whylen, "sentinel %d knows %zu other sentinels, not %d", sentinel_port, sv.n,
                 others);
        ok = 0;
    }
    for (size_t i = 0; ok && i < sv.n; i++) {
        const rv *flags = rv_field(&sv.elem[i], "flags");
        if (flags == NULL || flags->type != '$' || memmem(flags->str, flags->len, "down", 4) ||
            memmem(flags->str, flags->len, "disconnected", 12)) {
            snprintf(why, whylen, "sentinel %d: another sentinel has flags %.*s", sentinel_port,
                     flags ? (int)flags->len : 0, flags ? flags->str : "");
            ok = 0;
        }
    }
    for (int k = 0; ok && k < IT_SSET_SERVERS; k++) {
        if (k == master || s->server[k].pid <= 0) continue;
        const rv *r = NULL;
        for (size_t i = 0; i < rvv.n && r == NULL; i++)
            if (rv_num(rv_field(&rvv.elem[i], "port")) == s->server[k].port) r = &rvv.elem[i];
        const rv *flags = rv_field(r, "flags");
        ok = rv_is(flags, "slave") && replica_linked(s->server[k].port, s->server[master].port);
        if (!ok)
            snprintf(why, whylen, "sentinel %d: replica %d is %s (flags %.*s)", sentinel_port,
                     s->server[k].port, r ? "not linked to the master" : "not listed",
                     flags ? (int)flags->len : 0, flags ? flags->str : "");
    }
    if (sbuf) rv_free(&sv);
    if (rbuf) rv_free(&rvv);
    free(sbuf);
    free(rbuf);
    return ok;
}

int it_sset_wait_settled(const it_sset *s, int timeout_ms) {
    long long end = it_now_ms() + timeout_ms;
    int running = 0;
    for (int i = 0; i < IT_SSET_SENTINELS; i++)
        running += s->sentinel[i].pid > 0;
    char why[256] = "";
    do {
        int port = it_sset_master_port(s), master = it_sset_server(s, port);
        char role[16] = "";
        int ok = master >= 0 && s->server[master].pid > 0 &&
                 it_redis_role(port, role, sizeof(role), NULL) == 0 && strcmp(role, "master") == 0;
        if (!ok)
            snprintf(why, sizeof(why), "the sentinels' master %d is not a running master", port);
        for (int i = 0; ok && i < IT_SSET_SENTINELS; i++) {
            if (s->sentinel[i].pid <= 0) continue;
            int p = sentinel_master_port(s->sentinel[i].port, s->name);
            if (p != port) {
                snprintf(why, sizeof(why), "sentinel %d names master %d, another %d",
                         s->sentinel[i].port, p, port);
                ok = 0;
            } else {
                ok =
                    sentinel_settled(s, s->sentinel[i].port, master, running - 1, why, sizeof(why));
            }
        }
        if (ok) return 0;
        sleep_ms(50);
    } while (it_now_ms() < end);
    fprintf(stderr, "sentinel set %s not settled after %d ms: %s\n", s->name, timeout_ms, why);
    return -1;
}

int it_sset_kill_master(it_sset *s) {
    int i = it_sset_server(s, it_sset_master_port(s));
    if (i < 0 || s->server[i].pid <= 0) return -1;
    it_redis_stop(&s->server[i]);
    return i;
}

int it_sset_restart_server(it_sset *s, int i) {
    if (i < 0 || i >= IT_SSET_SERVERS || s->server[i].pid > 0) return -1;
    return start_from_conf(&s->server[i], "redis.conf", 0);
}

void it_sset_stop_sentinels(it_sset *s) {
    for (int i = 0; i < IT_SSET_SENTINELS; i++)
        if (s->sentinel[i].pid > 0) it_redis_stop(&s->sentinel[i]);
}

int it_sset_restart_sentinels(it_sset *s) {
    for (int i = 0; i < IT_SSET_SENTINELS; i++)
        if (s->sentinel[i].pid <= 0 && start_from_conf(&s->sentinel[i], "sentinel.conf", 1) != 0)
            return -1;
    return 0;
}

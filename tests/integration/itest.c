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

/* Ports handed out in this run, it_free_port's and the cluster bus ports
 * beside them, so that two uses never get the same one. */
static int used_ports[1024], nused_ports;

/* Remembers port as handed out; -1 if it already was. */
static int port_claim(int port) {
    for (int i = 0; i < nused_ports; i++)
        if (used_ports[i] == port) return -1;
    if (nused_ports < (int)(sizeof(used_ports) / sizeof(used_ports[0])))
        used_ports[nused_ports++] = port;
    return 0;
}

int it_free_port(void) {
    /* The kernel picks an ephemeral port, one not handed out before. */
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
        int port = ntohs(sa.sin_port);
        if (port_claim(port) == 0) return port;
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
    /* Reaped, it is forgotten, so that no cleanup signals its pid again,
     * which the system may give to another process. */
    pid_t r = waitpid(pid, NULL, WNOHANG);
    if (r == pid) forget_pid(pid);
    return r == 0;
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

/* ---- the Redis Cluster ---- */

/* 1 if a listening socket can bind 127.0.0.1:port now, as redis-server
 * binds it (SO_REUSEADDR). */
static int port_bindable(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return 0;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

/* A port for a cluster server: at most 55535, so that its bus port
 * (port + 10000) exists, and that one free too and claimed, so that
 * it_free_port never hands it out. */
static int rcl_port(void) {
    for (int tries = 0; tries < 200; tries++) {
        int port = it_free_port();
        if (port < 0) return -1;
        if (port <= 55535 && port_bindable(port + 10000) && port_claim(port + 10000) == 0)
            return port;
    }
    return -1;
}

/* Writes extra, command-line style ("--maxmemory", "10mb"), to f as config
 * lines, each argument quoted the way redis.conf reads quotes. */
static void rcl_write_extra(FILE *f, const char *const extra[]) {
    for (int i = 0; extra && extra[i]; i++) {
        if (strncmp(extra[i], "--", 2) == 0) {
            fprintf(f, "\n%s", extra[i] + 2);
            continue;
        }
        fputs(" \"", f);
        for (const char *p = extra[i]; *p; p++) {
            if (*p == '"' || *p == '\\') fputc('\\', f);
            fputc(*p, f);
        }
        fputc('"', f);
    }
    fputc('\n', f);
}

/* Picks a port and a new directory for r and writes its config file.
 * nodes.conf is named relative to dir: a path through another directory
 * makes the server exit (it cannot lock the file). */
static int rcl_write_conf(it_redis *r, const char *const extra[]) {
    r->port = rcl_port();
    snprintf(r->dir, sizeof(r->dir), "%s/rcl-%d-XXXXXX", it_run_dir(), r->port);
    if (r->port < 0 || mkdtemp(r->dir) == NULL) return -1;
    char path[160];
    snprintf(path, sizeof(path), "%s/redis.conf", r->dir);
    FILE *f = fopen(path, "w");
    if (f == NULL) return -1;
    fprintf(f,
            "port %d\nbind 127.0.0.1\ndir %s\nlogfile %s/redis.log\n"
            "cluster-enabled yes\ncluster-config-file nodes.conf\n"
            "cluster-node-timeout %d\ncluster-require-full-coverage no\n"
            "repl-diskless-sync yes\nrepl-diskless-sync-delay 0\n"
            "appendonly yes\nappendfsync always\nsave \"\"\n",
            r->port, r->dir, r->dir, IT_RCL_NODE_TIMEOUT_MS);
    rcl_write_extra(f, extra);
    return fclose(f) == 0 ? 0 : -1;
}

/* Starts a cluster server on a fresh port and directory; when the port or
 * its bus port was taken meanwhile (it_free_port's are in the range of
 * outgoing connections), again on others. */
static int rcl_server_start(it_redis *r, const char *const extra[]) {
    for (int tries = 0; tries < 4; tries++) {
        if (rcl_write_conf(r, extra) != 0) return -1;
        if (start_from_conf(r, "redis.conf", 0) == 0) return 0;
        if (it_alive(r->pid)) {
            it_redis_stop(r);
            return -1;
        }
        r->pid = 0;
        char log[160];
        snprintf(log, sizeof(log), "%s/redis.log", r->dir);
        if (!log_says(log, "Address already in use")) return -1;
    }
    return -1;
}

/* 0 if the server on port answers the command with +OK; else -1, the
 * answer on stderr unless quiet. */
static int rcl_ok(int port, int argc, const char *const argv[], int quiet) {
    char out[512] = "no answer";
    if (it_redis_cmd(port, out, sizeof(out), argc, argv) == 0 && strcmp(out, "+OK") == 0) return 0;
    if (!quiet)
        fprintf(stderr, "redis %d: %s %s: %s\n", port, argv[0], argc > 1 ? argv[1] : "", out);
    return -1;
}

/* The node id of the server on port (CLUSTER MYID) into id[41]. */
static int rcl_read_id(int port, char id[41]) {
    const char *argv[] = {"CLUSTER", "MYID"};
    rv v;
    char *buf = redis_call_rv(port, 1000, 2, argv, &v);
    if (buf == NULL) return -1;
    int ok = v.type == '$' && v.len == 40;
    if (ok) snprintf(id, 41, "%.*s", (int)v.len, v.str);
    rv_free(&v);
    free(buf);
    return ok ? 0 : -1;
}

/* The cluster as redis-cli makes it: the first `masters` servers given
 * become masters and redis-cli pairs the others with them as it likes. */
static int rcl_create_cli(const it_rcl *c, int replicas) {
    char addr[IT_RCL_SERVERS][32], reps[16], log[160];
    const char *argv[IT_RCL_SERVERS + 8];
    int k = 0;
    argv[k++] = "redis-cli";
    argv[k++] = "--cluster";
    argv[k++] = "create";
    for (int i = 0; i < c->n; i++) {
        snprintf(addr[i], sizeof(addr[i]), "127.0.0.1:%d", c->server[i].port);
        argv[k++] = addr[i];
    }
    snprintf(reps, sizeof(reps), "%d", replicas);
    argv[k++] = "--cluster-replicas";
    argv[k++] = reps;
    argv[k++] = "--cluster-yes";
    argv[k] = NULL;
    snprintf(log, sizeof(log), "%s/rcl-create-%d.log", it_run_dir(), c->server[0].port);
    pid_t pid = it_spawn(argv, log);
    int st = pid > 0 ? it_stop(pid, 0, 30000) : -1;
    if (st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0) return 0;
    if (st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 127)
        fprintf(stderr,
                "redis-cli not found (Debian: redis-tools, which scripts/deps.sh installs)\n");
    else
        fprintf(stderr, "redis-cli --cluster create failed: see %s\n", log);
    return -1;
}

/* What redis-cli --cluster create does, for the 1 or 2 masters it refuses:
 * each node its own config epoch (as distinct epochs spare the nodes a
 * collision to settle), the slots split evenly over the masters, every
 * node met, and each replica told its master once it knows that node from
 * the gossip the meeting started. Replica i follows master (i - masters) /
 * replicas. */
static int rcl_create_by_hand(const it_rcl *c, int masters, int replicas) {
    for (int i = 0; i < c->n; i++) {
        char epoch[16];
        snprintf(epoch, sizeof(epoch), "%d", i + 1);
        const char *argv[] = {"CLUSTER", "SET-CONFIG-EPOCH", epoch};
        if (rcl_ok(c->server[i].port, 3, argv, 0) != 0) return -1;
    }
    for (int k = 0; k < masters; k++) {
        char first[16], last[16];
        snprintf(first, sizeof(first), "%d", k * 16384 / masters);
        snprintf(last, sizeof(last), "%d", (k + 1) * 16384 / masters - 1);
        const char *argv[] = {"CLUSTER", "ADDSLOTSRANGE", first, last};
        if (rcl_ok(c->server[k].port, 4, argv, 0) != 0) return -1;
    }
    for (int i = 1; i < c->n; i++) {
        char port[16];
        snprintf(port, sizeof(port), "%d", c->server[i].port);
        const char *argv[] = {"CLUSTER", "MEET", "127.0.0.1", port};
        if (rcl_ok(c->server[0].port, 4, argv, 0) != 0) return -1;
    }
    for (int i = masters; i < c->n; i++) {
        const char *argv[] = {"CLUSTER", "REPLICATE", c->id[(i - masters) / replicas]};
        long long end = it_now_ms() + 5000;
        while (rcl_ok(c->server[i].port, 3, argv, it_now_ms() < end) != 0) {
            if (it_now_ms() >= end) return -1;
            sleep_ms(20);
        }
    }
    return 0;
}

/* Who owns which slots, as one server's CLUSTER SLOTS says: ranges in
 * slot order, each with its master's port. */
#define RCL_RANGES 512

typedef struct rcl_range {
    int first, last, port;
} rcl_range;

typedef struct rcl_map {
    int n;
    rcl_range r[RCL_RANGES];
} rcl_map;

static int range_cmp(const void *a, const void *b) {
    return ((const rcl_range *)a)->first - ((const rcl_range *)b)->first;
}

/* Reads the CLUSTER SLOTS of the server on port into m. Returns 0, or -1
 * if it gave no such answer or more ranges than m holds. */
static int rcl_map_read(int port, rcl_map *m) {
    const char *argv[] = {"CLUSTER", "SLOTS"};
    rv v;
    char *buf = redis_call_rv(port, 1000, 2, argv, &v);
    if (buf == NULL) return -1;
    int ok = v.type == '*' && v.n <= RCL_RANGES;
    m->n = 0;
    /* Each range: first slot, last slot, then the master [ip, port, id,
     * ...] and its replicas, which are left out. */
    for (size_t i = 0; ok && i < v.n; i++) {
        const rv *e = &v.elem[i];
        ok = e->type == '*' && e->n >= 3 && e->elem[2].type == '*' && e->elem[2].n >= 2;
        if (ok)
            m->r[m->n++] = (rcl_range){(int)rv_num(&e->elem[0]), (int)rv_num(&e->elem[1]),
                                       (int)rv_num(&e->elem[2].elem[1])};
    }
    rv_free(&v);
    free(buf);
    if (ok) qsort(m->r, (size_t)m->n, sizeof(m->r[0]), range_cmp);
    return ok ? 0 : -1;
}

/* 1 if every slot is in one of m's ranges. */
static int rcl_map_covers(const rcl_map *m) {
    int next = 0;
    for (int i = 0; i < m->n; i++) {
        if (m->r[i].first != next) return 0;
        next = m->r[i].last + 1;
    }
    return next == 16384;
}

static int rcl_map_owner(const rcl_map *m, int slot) {
    for (int i = 0; i < m->n; i++)
        if (slot >= m->r[i].first && slot <= m->r[i].last) return m->r[i].port;
    return -1;
}

/* The distinct owners in m, in the order of their first slot. */
static int rcl_map_masters(const rcl_map *m, int *ports, int max) {
    int k = 0;
    for (int i = 0; i < m->n; i++) {
        int seen = 0;
        for (int j = 0; j < k; j++)
            seen |= ports[j] == m->r[i].port;
        if (!seen && k < max) ports[k++] = m->r[i].port;
    }
    return k;
}

/* The slot map as the first running server that answers with one gives
 * it. A running server with no slots in its map is not asked for it: it
 * has not joined. */
static int rcl_map_any(const it_rcl *c, rcl_map *m) {
    for (int i = 0; i < c->n; i++)
        if (c->server[i].pid > 0 && rcl_map_read(c->server[i].port, m) == 0 && m->n > 0) return 0;
    return -1;
}

/* 1 if the cluster is as it_rcl_wait_ok wants it (with links: every
 * running replica's link up too); else 0, with what is missing in why. */
static int rcl_settled(const it_rcl *c, int links, char *why, size_t whylen) {
    rcl_map first, m;
    int first_port = 0;
    for (int i = 0; i < c->n; i++) {
        int port = c->server[i].port;
        if (c->server[i].pid <= 0) continue;
        const char *info[] = {"CLUSTER", "INFO"};
        char *buf = it_redis_call(port, 1000, 2, info);
        int ok = buf && strstr(buf, "cluster_state:ok");
        free(buf);
        if (!ok) {
            snprintf(why, whylen, "server %d is not cluster_state:ok", port);
            return 0;
        }
        rcl_map *mine = first_port ? &m : &first;
        if (rcl_map_read(port, mine) != 0 || !rcl_map_covers(mine)) {
            snprintf(why, whylen, "server %d's CLUSTER SLOTS does not cover every slot", port);
            return 0;
        }
        if (first_port && (m.n != first.n || memcmp(m.r, first.r, sizeof(m.r[0]) * (size_t)m.n))) {
            snprintf(why, whylen, "servers %d and %d disagree on the slot owners", first_port,
                     port);
            return 0;
        }
        if (!first_port) first_port = port;
        char role[16];
        int master = 0;
        if (links && (it_redis_role(port, role, sizeof(role), &master) != 0 ||
                      (strcmp(role, "slave") == 0 && !replica_linked(port, master)))) {
            snprintf(why, whylen, "replica %d has no link up to master %d", port, master);
            return 0;
        }
    }
    if (!first_port) snprintf(why, whylen, "no server is running");
    return first_port != 0;
}

int it_rcl_wait_ok(const it_rcl *c, int timeout_ms) {
    long long end = it_now_ms() + timeout_ms;
    char why[256] = "";
    do {
        if (rcl_settled(c, 1, why, sizeof(why))) return 0;
        sleep_ms(20);
    } while (it_now_ms() < end);
    fprintf(stderr, "redis cluster not ok after %d ms: %s\n", timeout_ms, why);
    return -1;
}

int it_rcl_start(it_rcl *c, int masters, int replicas_per_master, const char *const extra[]) {
    memset(c, 0, sizeof(*c));
    if (masters < 1 || replicas_per_master < 0 ||
        masters * (1 + replicas_per_master) > IT_RCL_SERVERS)
        return -1;
    c->n = masters * (1 + replicas_per_master);
    int ok = 1;
    for (int i = 0; ok && i < c->n; i++)
        ok = rcl_server_start(&c->server[i], extra) == 0 &&
             rcl_read_id(c->server[i].port, c->id[i]) == 0;
    if (ok)
        ok = (masters >= 3 ? rcl_create_cli(c, replicas_per_master)
                           : rcl_create_by_hand(c, masters, replicas_per_master)) == 0;
    int ports[IT_RCL_SERVERS];
    ok = ok && it_rcl_wait_ok(c, 20000) == 0 && it_rcl_topology(c) == 0 &&
         it_rcl_masters(c, ports, IT_RCL_SERVERS) == masters;
    if (!ok) it_rcl_stop(c);
    return ok ? 0 : -1;
}

void it_rcl_stop(it_rcl *c) {
    for (int i = 0; i < IT_RCL_SERVERS; i++)
        if (c->server[i].pid > 0) it_redis_stop(&c->server[i]);
}

void it_rcl_seeds(const it_rcl *c, char *out, size_t outlen) {
    size_t n = 0;
    if (outlen) out[0] = '\0';
    for (int i = 0; i < c->n && n < outlen; i++)
        if (c->server[i].pid > 0)
            n += (size_t)snprintf(out + n, outlen - n, "%s127.0.0.1:%d", n ? "," : "",
                                  c->server[i].port);
}

int it_rcl_topology(it_rcl *c) {
    for (int i = 0; i < c->n; i++) {
        char role[16];
        int master;
        if (c->server[i].pid <= 0) continue;
        if (it_redis_role(c->server[i].port, role, sizeof(role), &master) != 0) return -1;
        c->master[i] = strcmp(role, "slave") == 0 ? master : 0;
    }
    return 0;
}

int it_rcl_slot(const it_rcl *c, const char *key) {
    const char *argv[] = {"CLUSTER", "KEYSLOT", key};
    for (int i = 0; i < c->n; i++) {
        if (c->server[i].pid <= 0) continue;
        long long slot = it_redis_int(c->server[i].port, 3, argv);
        if (slot >= 0) return (int)slot;
    }
    return -1;
}

int it_rcl_slot_owner(const it_rcl *c, int slot) {
    rcl_map m;
    return slot >= 0 && rcl_map_any(c, &m) == 0 ? rcl_map_owner(&m, slot) : -1;
}

int it_rcl_owner(const it_rcl *c, const char *key) {
    return it_rcl_slot_owner(c, it_rcl_slot(c, key));
}

int it_rcl_masters(const it_rcl *c, int *ports, int max) {
    rcl_map m;
    return rcl_map_any(c, &m) == 0 ? rcl_map_masters(&m, ports, max) : -1;
}

int it_rcl_replica_of(const it_rcl *c, int master_port) {
    for (int i = 0; i < c->n; i++) {
        char role[16];
        int master;
        if (c->server[i].pid > 0 &&
            it_redis_role(c->server[i].port, role, sizeof(role), &master) == 0 &&
            strcmp(role, "slave") == 0 && master == master_port)
            return c->server[i].port;
    }
    return -1;
}

int it_rcl_index(const it_rcl *c, int port) {
    for (int i = 0; i < c->n; i++)
        if (c->server[i].port == port) return i;
    return -1;
}

int it_rcl_kill(it_rcl *c, int port) {
    int i = it_rcl_index(c, port);
    if (i < 0 || c->server[i].pid <= 0) return -1;
    it_redis_stop(&c->server[i]);
    return i;
}

int it_rcl_restart(it_rcl *c, int i) {
    if (i < 0 || i >= c->n || c->server[i].pid > 0) return -1;
    return start_from_conf(&c->server[i], "redis.conf", 0);
}

int it_rcl_wait_owner(const it_rcl *c, const char *key, int not_port, int timeout_ms) {
    long long end = it_now_ms() + timeout_ms;
    int slot = it_rcl_slot(c, key);
    char why[256] = "";
    do {
        int owner = it_rcl_slot_owner(c, slot), i = it_rcl_index(c, owner);
        if (owner == not_port || i < 0 || c->server[i].pid <= 0)
            snprintf(why, sizeof(why), "slot %d is owned by %d", slot, owner);
        else if (rcl_settled(c, 1, why, sizeof(why)))
            return owner;
        sleep_ms(20);
    } while (slot >= 0 && it_now_ms() < end);
    fprintf(stderr, "no new owner of %s after %d ms: %s\n", key, timeout_ms, why);
    return -1;
}

/* The source (the slot's owner) and destination of a slot move, by port
 * and index; -1 unless they are two different servers of ours. */
static int rcl_move_ends(const it_rcl *c, int slot, int to_port, int *src, int *dst) {
    *src = it_rcl_index(c, it_rcl_slot_owner(c, slot));
    *dst = it_rcl_index(c, to_port);
    return *src >= 0 && *dst >= 0 && *src != *dst ? 0 : -1;
}

int it_rcl_migrate_begin(it_rcl *c, int slot, int to_port) {
    int src, dst;
    if (rcl_move_ends(c, slot, to_port, &src, &dst) != 0) return -1;
    char s[16];
    snprintf(s, sizeof(s), "%d", slot);
    /* The destination first: a source MIGRATING sends clients with -ASK to
     * a destination that must already accept them. */
    const char *importing[] = {"CLUSTER", "SETSLOT", s, "IMPORTING", c->id[src]};
    const char *migrating[] = {"CLUSTER", "SETSLOT", s, "MIGRATING", c->id[dst]};
    if (rcl_ok(to_port, 5, importing, 0) != 0) return -1;
    return rcl_ok(c->server[src].port, 5, migrating, 0);
}

/* MIGRATEs the keys of one CLUSTER GETKEYSINSLOT answer (an array of at
 * most 100 keys) from src_port to dst_port. */
static int rcl_migrate_batch(int src_port, int dst_port, const rv *keys) {
    char dst[16];
    snprintf(dst, sizeof(dst), "%d", dst_port);
    const char *argv[7 + 100] = {"MIGRATE", "127.0.0.1", dst, "", "0", "5000", "KEYS"};
    char *copy[100] = {NULL};
    int ok = keys->n <= 100;
    for (size_t i = 0; ok && i < keys->n; i++) {
        ok = keys->elem[i].type == '$' &&
             (copy[i] = strndup(keys->elem[i].str, keys->elem[i].len)) != NULL;
        argv[7 + i] = copy[i];
    }
    char *reply = ok ? it_redis_call(src_port, 6000, 7 + (int)keys->n, argv) : NULL;
    /* NOKEY: the keys expired between the listing and the move. */
    ok = reply && (strncmp(reply, "+OK", 3) == 0 || strncmp(reply, "+NOKEY", 6) == 0);
    if (!ok) fprintf(stderr, "MIGRATE %d -> %d: %s\n", src_port, dst_port, reply ? reply : "?");
    for (size_t i = 0; i < 100; i++)
        free(copy[i]);
    free(reply);
    return ok ? 0 : -1;
}

int it_rcl_migrate_keys(it_rcl *c, int slot, int to_port) {
    int src, dst;
    if (rcl_move_ends(c, slot, to_port, &src, &dst) != 0) return -1;
    char s[16];
    snprintf(s, sizeof(s), "%d", slot);
    const char *list[] = {"CLUSTER", "GETKEYSINSLOT", s, "100"};
    int moved = 0;
    long long end = it_now_ms() + 20000;
    while (it_now_ms() < end) {
        rv v;
        char *buf = redis_call_rv(c->server[src].port, 1000, 4, list, &v);
        if (buf == NULL) return -1;
        int n = v.type == '*' ? (int)v.n : -1;
        int ok = n > 0 && rcl_migrate_batch(c->server[src].port, to_port, &v) == 0;
        rv_free(&v);
        free(buf);
        if (n == 0) return moved;
        if (!ok) return -1;
        moved += n;
    }
    return -1;
}

int it_rcl_migrate_end(it_rcl *c, int slot, int to_port) {
    int src, dst;
    if (rcl_move_ends(c, slot, to_port, &src, &dst) != 0) return -1;
    char s[16];
    snprintf(s, sizeof(s), "%d", slot);
    const char *node[] = {"CLUSTER", "SETSLOT", s, "NODE", c->id[dst]};
    /* The destination first: a source that gave the slot up answers its
     * keys with -MOVED to the destination, which, still only importing,
     * would send the client back. The other masters are told only to learn
     * it sooner than by gossip; the replicas learn it that way. */
    if (rcl_ok(to_port, 5, node, 0) != 0 || rcl_ok(c->server[src].port, 5, node, 0) != 0) return -1;
    for (int i = 0; i < c->n; i++) {
        char role[16];
        if (i == src || i == dst || c->server[i].pid <= 0 ||
            it_redis_role(c->server[i].port, role, sizeof(role), NULL) != 0 ||
            strcmp(role, "master") != 0)
            continue;
        if (rcl_ok(c->server[i].port, 5, node, 0) != 0) return -1;
    }
    long long end = it_now_ms() + 10000;
    char why[256] = "";
    do {
        if (rcl_settled(c, 0, why, sizeof(why)) && it_rcl_slot_owner(c, slot) == to_port) return 0;
        sleep_ms(20);
    } while (it_now_ms() < end);
    fprintf(stderr, "slot %d not agreed on after its move to %d: %s\n", slot, to_port, why);
    return -1;
}

int it_rcl_failover(it_rcl *c, int replica_port) {
    const char *argv[] = {"CLUSTER", "FAILOVER"};
    if (it_rcl_index(c, replica_port) < 0 || rcl_ok(replica_port, 2, argv, 0) != 0) return -1;
    long long end = it_now_ms() + 10000;
    char why[256] = "";
    do {
        char role[16];
        if (it_redis_role(replica_port, role, sizeof(role), NULL) != 0 ||
            strcmp(role, "master") != 0)
            snprintf(why, sizeof(why), "%d is not master yet", replica_port);
        else if (rcl_settled(c, 1, why, sizeof(why)))
            return it_rcl_topology(c);
        sleep_ms(20);
    } while (it_now_ms() < end);
    fprintf(stderr, "failover to %d not done after 10 s: %s\n", replica_port, why);
    return -1;
}

int it_rcl_spread_names(const it_rcl *c, const char *prefix, const char *base, char names[][64],
                        int n) {
    rcl_map m;
    int masters[IT_RCL_SERVERS], nm;
    if (rcl_map_any(c, &m) != 0 || (nm = rcl_map_masters(&m, masters, IT_RCL_SERVERS)) <= 0)
        return -1;
    for (int j = 0; j < n; j++)
        names[j][0] = '\0';
    int filled = 0;
    long long end = it_now_ms() + 10000;
    for (int k = 0; filled < n && k < 100 * n + 1000 && it_now_ms() < end; k++) {
        char name[64], key[256];
        if (snprintf(name, sizeof(name), "%s.%d", base, k) >= (int)sizeof(name) ||
            snprintf(key, sizeof(key), "{%s%s}:log", prefix, name) >= (int)sizeof(key))
            return -1;
        int owner = rcl_map_owner(&m, it_rcl_slot(c, key));
        /* The first name still wanted from that master gets it. */
        for (int j = 0; j < n; j++)
            if (names[j][0] == '\0' && masters[j % nm] == owner) {
                memcpy(names[j], name, sizeof(name));
                filled++;
                break;
            }
    }
    return filled == n ? n : -1;
}

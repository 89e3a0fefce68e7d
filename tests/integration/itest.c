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
    if (failed) {
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
    pid_t pid = fork();
    if (pid < 0) return -1;
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
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    register_pid(pid);
    return pid;
}

int it_stop(pid_t pid, int sig, int timeout_ms) {
    if (pid <= 0) return -1;
    kill(pid, sig);
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

static int tcp_connect(int port) {
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

static int write_all(int fd, const void *p, size_t n) {
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
    int fd = tcp_connect(port);
    if (fd < 0) return -1;
    char buf[8192];
    int n = snprintf(buf, sizeof(buf), "*%d\r\n", argc);
    for (int i = 0; i < argc && n < (int)sizeof(buf); i++)
        n += snprintf(buf + n, sizeof(buf) - (size_t)n, "$%zu\r\n%s\r\n", strlen(argv[i]), argv[i]);
    int rc = -1;
    if (n < (int)sizeof(buf) && write_all(fd, buf, (size_t)n) == 0) {
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
    if (r->port == 0) r->port = it_free_port();
    if (r->dir[0] == '\0') {
        snprintf(r->dir, sizeof(r->dir), "%s/redis-XXXXXX", it_run_dir());
        if (mkdtemp(r->dir) == NULL) return -1;
    }
    char port[16], log[128];
    snprintf(port, sizeof(port), "%d", r->port);
    snprintf(log, sizeof(log), "%s/redis.log", r->dir);
    const char *argv[] = {"redis-server", "--port", port,    "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no",     "--dir", r->dir,   NULL};
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
    memset(out, 0, sizeof(*out));
    it_conn c;
    memset(&c, 0, sizeof(c));
    c.fd = tcp_connect(port);
    if (c.fd < 0) return -1;
    /* A failed write is not the end: the server may have answered and
     * closed before reading everything (413, slow senders). */
    (void)write_all(c.fd, req, len);
    it_multi_wait(&c, 1, timeout_ms);
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
    for (size_t i = 0; i < n; i++) {
        memset(&c[i], 0, sizeof(c[i]));
        c[i].fd = tcp_connect(port[i]);
        if (c[i].fd < 0 || write_all(c[i].fd, req[i], strlen(req[i])) != 0) return -1;
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
    n->pid = it_spawn(argv, n->log);
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

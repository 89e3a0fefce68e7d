/* Integration: private channels (auth.mode = "jwt"). A poll, a stream or a
 * /channels read needs a JSON Web Token granting every channel it names,
 * unless auth.public_channels opens it; a publish needs a token granting
 * publish on its channel, or publish.key. Tokens are minted here with
 * libjwt (RS256 and ES256 keys made with the openssl CLI at setup), and
 * the forged ones by hand: "alg: none", and the HS256 token whose HMAC key
 * is the RS256 node's public key (key confusion). A real redis-server and
 * real nodes on loopback:
 *
 *   strict  HS256, audience and issuer set, public channels, publish.key,
 *           CORS for one origin
 *   lax     HS256, no audience, ?token= taken, leeway 0, large headers
 *   rs, es  RS256 and ES256 with PEM public keys from files
 *
 * and, in their own tests, a node logging at debug (no token may reach its
 * log) and nodes given bad keys (they must not start). */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <jwt.h>

#include "itest.h"

static it_redis redis;
static it_node strict, lax, rs, es;

#define SECRET "holdline-integration-secret-0123456789" /* 38 bytes: HS256 wants 32 */
#define AUDIENCE "holdline-it"
#define ISSUER "https://auth.example"
#define PUBLISH_KEY "publisher-key-0123456789"
#define ORIGIN "https://app.example"
#define HOUR 3600
/* Every node listens on loopback only. */
#define LOOPBACK "HOLDLINE_HTTP_BIND=127.0.0.1"

/* ---- Strings that live until the group ends ---------------------------- */

static char **kept;
static size_t nkept, capkept;

static char *keep(char *s) {
    assert_non_null(s);
    if (nkept == capkept) {
        capkept = capkept ? capkept * 2 : 256;
        kept = realloc(kept, capkept * sizeof(*kept));
        assert_non_null(kept);
    }
    kept[nkept++] = s;
    return s;
}

static void free_kept(void) {
    for (size_t i = 0; i < nkept; i++)
        free(kept[i]);
    free(kept);
    kept = NULL;
    nkept = capkept = 0;
}

static char *vformat(const char *fmt, va_list ap) {
    char *s = NULL;
    assert_true(vasprintf(&s, fmt, ap) >= 0);
    return keep(s);
}

static const char *str(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *str(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = vformat(fmt, ap);
    va_end(ap);
    return s;
}

/* JSON written with single quotes, which no claim here holds, so that the
 * claims stay readable in C. */
static const char *json(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *json(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = vformat(fmt, ap);
    va_end(ap);
    for (char *p = s; *p; p++)
        if (*p == '\'') *p = '"';
    return s;
}

static long long now_s(void) {
    return (long long)time(NULL);
}

static long long wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n < cap) continue;
        char *more = realloc(buf, (cap *= 2) + 1);
        if (more == NULL) free(buf);
        buf = more;
    }
    fclose(f);
    if (buf == NULL) return NULL;
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

/* ---- Keys and tokens ---------------------------------------------------- */

static char rsa_priv[128], rsa_pub[128], ec_priv[128], ec_pub[128], ec_other[128];
static char rsa1024_pub[128], ec384_pub[128], not_a_key[128];

static const char *run_path(char *out, const char *name) {
    snprintf(out, 128, "%s/%s", it_run_dir(), name);
    return out;
}

typedef struct cmd {
    const char *argv[10];
} cmd;

static cmd genpkey(const char *alg, const char *opt, const char *out) {
    return (cmd){{"openssl", "genpkey", "-algorithm", alg, "-pkeyopt", opt, "-out", out, NULL}};
}

static cmd pubout(const char *in, const char *out) {
    return (cmd){{"openssl", "pkey", "-in", in, "-pubout", "-out", out, NULL}};
}

/* Runs the commands at once and waits for them all to succeed. */
static int run_all(const cmd *c, size_t n) {
    pid_t pid[8];
    char log[128];
    run_path(log, "openssl.log");
    for (size_t i = 0; i < n && i < 8; i++)
        if ((pid[i] = it_spawn(c[i].argv, log)) < 0) return -1;
    int rc = 0;
    for (size_t i = 0; i < n && i < 8; i++) {
        int st = it_stop(pid[i], 0, 30000);
        if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "openssl %s failed (status %d), see %s\n", c[i].argv[1], st, log);
            rc = -1;
        }
    }
    return rc;
}

static int make_keys(void) {
    char rsa1024[128], ec384[128];
    run_path(rsa_priv, "rsa.pem");
    run_path(rsa_pub, "rsa.pub.pem");
    run_path(ec_priv, "ec.pem");
    run_path(ec_pub, "ec.pub.pem");
    run_path(ec_other, "ec-other.pem");
    run_path(rsa1024, "rsa1024.pem");
    run_path(rsa1024_pub, "rsa1024.pub.pem");
    run_path(ec384, "ec384.pem");
    run_path(ec384_pub, "ec384.pub.pem");
    run_path(not_a_key, "not-a-key.pem");
    const cmd gen[] = {
        genpkey("RSA", "rsa_keygen_bits:2048", rsa_priv),
        genpkey("RSA", "rsa_keygen_bits:1024", rsa1024),
        genpkey("EC", "ec_paramgen_curve:P-256", ec_priv),
        genpkey("EC", "ec_paramgen_curve:P-256", ec_other),
        genpkey("EC", "ec_paramgen_curve:P-384", ec384),
    };
    if (run_all(gen, 5) != 0) return -1;
    const cmd pub[] = {pubout(rsa_priv, rsa_pub), pubout(rsa1024, rsa1024_pub),
                       pubout(ec_priv, ec_pub), pubout(ec384, ec384_pub)};
    if (run_all(pub, 4) != 0) return -1;
    /* Looks like PEM, is not a key. */
    FILE *f = fopen(not_a_key, "w");
    if (f == NULL) return -1;
    fputs("-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5IGF0IGFsbA==\n-----END PUBLIC KEY-----\n", f);
    fclose(f);
    return 0;
}

/* A token signed with alg and key over claims (a JSON object). */
static const char *sign(jwt_alg_t alg, const void *key, size_t keylen, const char *claims) {
    jwt_t *j = NULL;
    assert_int_equal(jwt_new(&j), 0);
    assert_int_equal(jwt_add_grants_json(j, claims), 0);
    assert_int_equal(jwt_set_alg(j, alg, key, (int)keylen), 0);
    char *t = jwt_encode_str(j);
    jwt_free(j);
    assert_non_null(t);
    return keep(t);
}

static const char *sign_hs(const char *claims) {
    return sign(JWT_ALG_HS256, SECRET, strlen(SECRET), claims);
}

/* A token signed with the PEM private key in file path. */
static const char *sign_pem(jwt_alg_t alg, const char *path, const char *claims) {
    size_t n;
    char *pem = slurp(path, &n);
    assert_non_null(pem);
    const char *t = sign(alg, pem, n, claims);
    free(pem);
    return t;
}

/* Claims for the strict node: its audience and issuer, an hour to live,
 * and grants, the members of the "holdline" claim ("'subscribe':['news']"). */
static const char *strict_claims(const char *grants) {
    return json("{'aud':'%s','iss':'%s','exp':%lld,'holdline':{%s}}", AUDIENCE, ISSUER,
                now_s() + HOUR, grants);
}

/* Claims for the other nodes, which configure no audience or issuer. */
static const char *plain_claims(const char *grants) {
    return json("{'exp':%lld,'holdline':{%s}}", now_s() + HOUR, grants);
}

static const char *strict_token(const char *grants) {
    return sign_hs(strict_claims(grants));
}

static const char *lax_token(const char *grants) {
    return sign_hs(plain_claims(grants));
}

static const char *b64url(const void *p, size_t n) {
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *s = p;
    char *out = malloc(n * 4 / 3 + 4);
    assert_non_null(out);
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < n) v |= (uint32_t)s[i + 1] << 8;
        if (i + 2 < n) v |= s[i + 2];
        out[o++] = abc[v >> 18 & 63];
        out[o++] = abc[v >> 12 & 63];
        if (i + 1 < n) out[o++] = abc[v >> 6 & 63];
        if (i + 2 < n) out[o++] = abc[v & 63];
    }
    out[o] = '\0';
    return keep(out);
}

/* header.payload.signature put together by hand, as a forger would. */
static const char *forge(const char *header, const char *claims, const char *signature) {
    return str("%s.%s.%s", b64url(header, strlen(header)), b64url(claims, strlen(claims)),
               signature);
}

/* The last segment of token t: the part only the key's holder can make. */
static const char *signature_of(const char *t) {
    return str("%s", strrchr(t, '.') + 1);
}

static const char *bearer(const char *t) {
    return str("Authorization: Bearer %s\r\n", t);
}

static const char *cookie(const char *t) {
    return str("Cookie: theme=dark; holdline_token=%s; lang=en\r\n", t);
}

/* ---- Asking ----------------------------------------------------------- */

/* One request; a POST carries a small body. */
static void ask(int port, const char *method, const char *path, const char *headers, it_resp *r) {
    const char *body = strcmp(method, "POST") == 0 ? "hello" : NULL;
    assert_int_equal(it_http(port, method, path, body, body ? strlen(body) : 0, headers, 5000, r),
                     0);
}

static void show(const char *method, const char *path, const it_resp *r) {
    fprintf(stderr, "%s %.200s -> %d\n%s\n\n%s\n", method, path, r->status, r->head,
            r->body ? r->body : "");
}

static void expect_status(int port, const char *method, const char *path, const char *headers,
                          int want) {
    it_resp r;
    ask(port, method, path, headers, &r);
    if (r.status != want) show(method, path, &r);
    assert_int_equal(r.status, want);
    it_resp_free(&r);
}

#define INVALID_CHALLENGE "Bearer realm=\"holdline\", error=\"invalid_token\", error_description=\""

/* A 401 or 403: the JSON error, a detail holding `detail`, and the
 * challenge: `Bearer realm="holdline"` alone when no token came, with
 * error="invalid_token" when one did, error="insufficient_scope" for 403. */
static void expect_refusal(int port, const char *method, const char *path, const char *headers,
                           int want, int token_sent, const char *detail) {
    it_resp r;
    ask(port, method, path, headers, &r);
    it_json j;
    int parsed = it_json_parse(r.body, &j) == 0;
    char chal[512] = "";
    it_resp_header(&r, "WWW-Authenticate", chal, sizeof(chal));
    int ok = r.status == want && parsed &&
             strcmp(j.error, want == 401 ? "unauthorized" : "forbidden") == 0 &&
             (detail == NULL || strstr(j.detail, detail) != NULL);
    if (want == 403)
        ok = ok && strcmp(chal, "Bearer realm=\"holdline\", error=\"insufficient_scope\"") == 0;
    else if (token_sent)
        ok = ok && strncmp(chal, INVALID_CHALLENGE, strlen(INVALID_CHALLENGE)) == 0;
    else
        ok = ok && strcmp(chal, "Bearer realm=\"holdline\"") == 0;
    if (!ok) {
        fprintf(stderr, "want %d with detail '%s'\n", want, detail ? detail : "");
        show(method, path, &r);
    }
    assert_true(ok);
    if (parsed) it_json_free(&j);
    it_resp_free(&r);
}

static void expect_401(int port, const char *method, const char *path, const char *headers,
                       const char *detail) {
    expect_refusal(port, method, path, headers, 401, 1, detail);
}

static void expect_401_missing(int port, const char *method, const char *path, const char *headers,
                               const char *detail) {
    expect_refusal(port, method, path, headers, 401, 0, detail);
}

static void expect_403(int port, const char *method, const char *path, const char *headers,
                       const char *detail) {
    expect_refusal(port, method, path, headers, 403, 1, detail);
}

/* Channels with a message in their history, so that a poll from cursor=0
 * answers at once. */
static const char *const seeded[] = {"news",  "sports",         "user.42.inbox", "user.420",
                                     "lobby", "public.weather", "es.news",       NULL};

static int seed(void) {
    for (size_t i = 0; seeded[i]; i++) {
        char path[128];
        snprintf(path, sizeof(path), "/publish/%s", seeded[i]);
        it_resp r;
        if (it_http(strict.port, "POST", path, "first", 5,
                    "Authorization: Bearer " PUBLISH_KEY "\r\n", 5000, &r) != 0)
            return -1;
        int st = r.status;
        it_resp_free(&r);
        if (st != 201) return -1;
    }
    return 0;
}

/* GET /poll/{chans} from the start of their history. */
static const char *poll_path(const char *chans) {
    return str("/poll/%s?cursor=0&timeout=1", chans);
}

/* ---- Reading a stream -------------------------------------------------- */

typedef struct stream {
    int fd;
    char *raw; /* everything received */
    size_t len, cap;
    int closed;          /* the server closed the connection */
    long long closed_at; /* wall clock, ms */
    char *body;          /* the de-chunked body so far */
} stream;

static void stream_open(stream *s, int port, const char *path, const char *headers) {
    memset(s, 0, sizeof(*s));
    s->fd = it_connect(port);
    assert_true(s->fd >= 0);
    const char *req =
        str("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n%s\r\n", path,
            headers ? headers : "");
    assert_int_equal(it_write_all(s->fd, req, strlen(req)), 0);
}

static void stream_close(stream *s) {
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
    free(s->raw);
    free(s->body);
    s->raw = s->body = NULL;
}

static void stream_dechunk(stream *s) {
    free(s->body);
    s->body = calloc(1, s->len + 1);
    assert_non_null(s->body);
    char *head_end = s->raw ? strstr(s->raw, "\r\n\r\n") : NULL;
    if (head_end == NULL) return;
    const char *p = head_end + 4, *lim = s->raw + s->len;
    size_t blen = 0;
    while (p < lim) {
        const char *nl = memmem(p, (size_t)(lim - p), "\r\n", 2);
        if (nl == NULL) break;
        size_t size = strtoul(p, NULL, 16);
        if (size == 0 || (size_t)(lim - (nl + 2)) < size + 2) break;
        memcpy(s->body + blen, nl + 2, size);
        blen += size;
        p = nl + 2 + size + 2;
    }
}

/* Waits up to left_ms for bytes and takes what came. */
static void stream_pull(stream *s, long long left_ms) {
    struct pollfd pf = {s->fd, POLLIN, 0};
    if (poll(&pf, 1, (int)left_ms) < 0 && errno != EINTR) return;
    if (s->cap - s->len < 4096) {
        s->cap = s->cap ? s->cap * 2 : 16384;
        s->raw = realloc(s->raw, s->cap + 1);
        assert_non_null(s->raw);
    }
    ssize_t n = recv(s->fd, s->raw + s->len, s->cap - s->len, MSG_DONTWAIT);
    if (n > 0) s->len += (size_t)n;
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        s->closed = 1;
        s->closed_at = wall_ms();
    }
    s->raw[s->len] = '\0';
}

/* Reads until the body holds want (NULL: until the server closes) or
 * timeout_ms passes; returns 1 if that came. */
static int stream_wait(stream *s, const char *want, int timeout_ms) {
    long long until = it_now_ms() + timeout_ms;
    for (;;) {
        stream_dechunk(s);
        if (want ? strstr(s->body, want) != NULL : s->closed) return 1;
        long long left = until - it_now_ms();
        if (left <= 0 || s->closed) return 0;
        stream_pull(s, left);
    }
}

/* Reads until the answer's head is in (a stream's or a refusal's). */
static int stream_head(stream *s, int timeout_ms) {
    long long until = it_now_ms() + timeout_ms;
    while (s->raw == NULL || strstr(s->raw, "\r\n\r\n") == NULL) {
        long long left = until - it_now_ms();
        if (left <= 0 || s->closed) return 0;
        stream_pull(s, left);
    }
    return 1;
}

/* ---- Group ------------------------------------------------------------ */

static int setup(void **state) {
    (void)state;
    if (make_keys() != 0) return -1;
    if (it_redis_start(&redis) != 0) return -1;
    const char *const strict_env[] = {"HOLDLINE_HTTP_WORKERS=2",
                                      LOOPBACK,
                                      "HOLDLINE_AUTH_MODE=jwt",
                                      "HOLDLINE_AUTH_JWT_KEY=" SECRET,
                                      "HOLDLINE_AUTH_AUDIENCE=" AUDIENCE,
                                      "HOLDLINE_AUTH_ISSUER=" ISSUER,
                                      "HOLDLINE_AUTH_PUBLIC_CHANNELS=lobby,public.*",
                                      "HOLDLINE_PUBLISH_KEY=" PUBLISH_KEY,
                                      "HOLDLINE_HTTP_CORS_ORIGINS=" ORIGIN,
                                      NULL};
    const char *const lax_env[] = {"HOLDLINE_HTTP_WORKERS=2",
                                   LOOPBACK,
                                   "HOLDLINE_AUTH_MODE=jwt",
                                   "HOLDLINE_AUTH_JWT_KEY=" SECRET,
                                   "HOLDLINE_AUTH_QUERY_TOKEN=true",
                                   "HOLDLINE_AUTH_LEEWAY_S=0",
                                   "HOLDLINE_HTTP_MAX_HEADER_BYTES=40000",
                                   NULL};
    char rs_key[160], es_key[160];
    snprintf(rs_key, sizeof(rs_key), "HOLDLINE_AUTH_JWT_KEY_FILE=%s", rsa_pub);
    snprintf(es_key, sizeof(es_key), "HOLDLINE_AUTH_JWT_KEY_FILE=%s", ec_pub);
    const char *const rs_env[] = {
        "HOLDLINE_HTTP_WORKERS=1",           LOOPBACK, "HOLDLINE_AUTH_MODE=jwt",
        "HOLDLINE_AUTH_JWT_ALGORITHM=RS256", rs_key,   NULL};
    const char *const es_env[] = {
        "HOLDLINE_HTTP_WORKERS=1",           LOOPBACK, "HOLDLINE_AUTH_MODE=jwt",
        "HOLDLINE_AUTH_JWT_ALGORITHM=ES256", es_key,   NULL};
    if (it_node_start_env(&strict, redis.port, NULL, strict_env) != 0) return -1;
    if (it_node_start_env(&lax, redis.port, NULL, lax_env) != 0) return -1;
    if (it_node_start_env(&rs, redis.port, NULL, rs_env) != 0) return -1;
    if (it_node_start_env(&es, redis.port, NULL, es_env) != 0) return -1;
    return seed();
}

static int teardown(void **state) {
    (void)state;
    it_node *nodes[] = {&strict, &lax, &rs, &es};
    int failed = 0;
    for (size_t i = 0; i < 4; i++) {
        int st = it_node_stop(nodes[i]);
        if (st != 0 || it_log_has_crash(nodes[i]->log)) {
            fprintf(stderr, "node exit status %d (want 0), or a crash report in %s\n", st,
                    nodes[i]->log);
            failed = 1;
        }
    }
    it_redis_stop(&redis);
    free_kept();
    return failed ? -1 : 0;
}

/* ---- Who may read ------------------------------------------------------- */

static void test_a_poll_without_a_token_gets_401_with_a_bearer_challenge(void **state) {
    (void)state;
    expect_401_missing(strict.port, "GET", poll_path("news"), NULL, "this needs a token");
    expect_401_missing(strict.port, "GET", "/events/news", NULL, "this needs a token");
    expect_401_missing(strict.port, "GET", "/channels/news", NULL, "this needs a token");
    /* An Authorization header of another scheme is no token. */
    expect_401_missing(strict.port, "GET", poll_path("news"), "Authorization: Basic dTpw\r\n",
                       "this needs a token");
}

static void test_a_token_granting_the_channel_opens_poll_stream_and_channel_info(void **state) {
    (void)state;
    const char *t = strict_token("'subscribe':['news']");
    it_resp r;
    ask(strict.port, "GET", poll_path("news"), bearer(t), &r);
    assert_int_equal(r.status, 200);
    it_json j;
    assert_int_equal(it_json_parse(r.body, &j), 0);
    assert_true(j.n >= 1);
    assert_string_equal(j.msgs[0].channel, "news");
    it_json_free(&j);
    it_resp_free(&r);

    ask(strict.port, "GET", "/channels/news", bearer(t), &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(it_json_parse(r.body, &j), 0);
    assert_string_equal(j.channel, "news");
    assert_true(j.length >= 1);
    it_json_free(&j);
    it_resp_free(&r);

    stream s;
    stream_open(&s, strict.port, "/events/news", bearer(t));
    assert_true(stream_wait(&s, "\nid: ", 5000));
    assert_non_null(strstr(s.raw, "HTTP/1.1 200"));
    stream_close(&s);
}

static void test_a_token_granted_news_gets_403_on_sports(void **state) {
    (void)state;
    const char *t = strict_token("'subscribe':['news']");
    expect_403(strict.port, "GET", poll_path("sports"), bearer(t),
               "the token does not grant subscribe on 'sports'");
    expect_403(strict.port, "GET", "/events/sports", bearer(t),
               "the token does not grant subscribe on 'sports'");
    expect_403(strict.port, "GET", "/channels/sports", bearer(t),
               "the token does not grant subscribe on 'sports'");
}

static void test_a_multi_channel_poll_needs_every_channel_granted(void **state) {
    (void)state;
    const char *news = strict_token("'subscribe':['news']");
    const char *both = strict_token("'subscribe':['news','sports']");
    expect_403(strict.port, "GET", poll_path("news,sports"), bearer(news),
               "does not grant subscribe on 'sports'");
    expect_403(strict.port, "GET", poll_path("sports,news"), bearer(news),
               "does not grant subscribe on 'sports'");
    expect_403(strict.port, "GET", "/events/news,sports", bearer(news),
               "does not grant subscribe on 'sports'");
    expect_status(strict.port, "GET", poll_path("news,sports"), bearer(both), 200);
    /* A public channel in the list needs no grant; the others still do. */
    expect_status(strict.port, "GET", poll_path("news,lobby"), bearer(news), 200);
    expect_401_missing(strict.port, "GET", poll_path("lobby,news"), NULL, "this needs a token");
}

static void test_a_prefix_pattern_grants_below_its_dot_only(void **state) {
    (void)state;
    const char *t = strict_token("'subscribe':['user.42.*']");
    expect_status(strict.port, "GET", poll_path("user.42.inbox"), bearer(t), 200);
    expect_403(strict.port, "GET", poll_path("user.420"), bearer(t),
               "does not grant subscribe on 'user.420'");
    expect_403(strict.port, "GET", poll_path("user.42"), bearer(t),
               "does not grant subscribe on 'user.42'");
    const char *all = strict_token("'subscribe':['*']");
    expect_status(strict.port, "GET", poll_path("user.420,sports"), bearer(all), 200);
}

static void test_public_channels_are_open_without_a_token(void **state) {
    (void)state;
    expect_status(strict.port, "GET", poll_path("lobby"), NULL, 200);
    expect_status(strict.port, "GET", poll_path("public.weather"), NULL, 200);
    expect_status(strict.port, "GET", poll_path("lobby,public.weather"), NULL, 200);
    expect_status(strict.port, "GET", "/channels/lobby", NULL, 200);
    /* "public.*" is a prefix: "public" itself and "publicity" are not in. */
    expect_401_missing(strict.port, "GET", poll_path("publicity"), NULL, NULL);
    expect_401_missing(strict.port, "GET", "/channels/public", NULL, NULL);
}

/* ---- Where the token comes from ---------------------------------------- */

static void test_a_token_in_the_cookie_is_taken_for_reads(void **state) {
    (void)state;
    const char *t = strict_token("'subscribe':['news']");
    expect_status(strict.port, "GET", poll_path("news"), cookie(t), 200);
    expect_status(strict.port, "GET", "/channels/news", cookie(t), 200);
    expect_403(strict.port, "GET", poll_path("sports"), cookie(t), "subscribe on 'sports'");
    /* Another cookie's name is not ours. */
    expect_401_missing(strict.port, "GET", poll_path("news"), str("Cookie: session=%s\r\n", t),
                       NULL);
}

static void test_the_header_token_is_judged_before_the_cookie(void **state) {
    (void)state;
    const char *good = strict_token("'subscribe':['news']");
    const char *other = strict_token("'subscribe':['sports']");
    expect_status(strict.port, "GET", poll_path("news"), str("%s%s", bearer(good), cookie(other)),
                  200);
    /* The header's token is the one judged, even when the cookie's would
     * pass. */
    expect_403(strict.port, "GET", poll_path("news"), str("%s%s", bearer(other), cookie(good)),
               "subscribe on 'news'");
}

static void test_a_query_token_works_only_where_query_token_is_on(void **state) {
    (void)state;
    const char *t = lax_token("'subscribe':['news']");
    expect_status(lax.port, "GET", str("/poll/news?cursor=0&timeout=1&token=%s", t), NULL, 200);
    expect_status(lax.port, "GET", str("/channels/news?token=%s", t), NULL, 200);
    expect_403(lax.port, "GET", str("/poll/sports?cursor=0&timeout=1&token=%s", t), NULL,
               "subscribe on 'sports'");
    const char *s = strict_token("'subscribe':['news']");
    expect_401(strict.port, "GET", str("/poll/news?cursor=0&timeout=1&token=%s", s), NULL,
               "this node does not take ?token= (auth.query_token is off)");
    /* With the token in the header too, the header's is taken. */
    expect_status(strict.port, "GET", str("/poll/news?cursor=0&timeout=1&token=%s", s), bearer(s),
                  200);
}

/* ---- Tokens that are not good enough ----------------------------------- */

static void test_an_unsigned_alg_none_token_gets_401(void **state) {
    (void)state;
    const char *claims = strict_claims("'subscribe':['news']");
    const char *none = forge("{\"alg\":\"none\",\"typ\":\"JWT\"}", claims, "");
    const char *none_sig = forge("{\"alg\":\"none\",\"typ\":\"JWT\"}", claims,
                                 signature_of(strict_token("'subscribe':['news']")));
    const char *none_caps = forge("{\"alg\":\"NONE\"}", claims, "");
    expect_401(strict.port, "GET", poll_path("news"), bearer(none), "alg none");
    expect_401(strict.port, "GET", poll_path("news"), bearer(none_sig), "alg none");
    expect_401(strict.port, "GET", poll_path("news"), bearer(none_caps), "alg none");
    expect_401(strict.port, "GET", poll_path("news"), cookie(none), "alg none");
    const char *none_rs = forge("{\"alg\":\"none\"}", plain_claims("'subscribe':['news']"), "");
    expect_401(rs.port, "GET", poll_path("news"), bearer(none_rs), "alg none");
}

static void test_an_hs256_token_signed_with_the_rs256_public_key_gets_401(void **state) {
    (void)state;
    /* Key confusion: a verifier that let the token's alg choose would
     * take the public key, which anyone may have, as the HMAC secret. */
    size_t n;
    char *pem = slurp(rsa_pub, &n);
    assert_non_null(pem);
    const char *claims = plain_claims("'subscribe':['news']");
    const char *with_nl = sign(JWT_ALG_HS256, pem, n, claims);
    const char *without_nl = sign(JWT_ALG_HS256, pem, n - 1, claims); /* as the node holds it */
    free(pem);
    expect_401(rs.port, "GET", poll_path("news"), bearer(with_nl), "not signed with RS256");
    expect_401(rs.port, "GET", poll_path("news"), bearer(without_nl), "not signed with RS256");
    /* Any HS token, and the other algorithms, are refused as well. */
    expect_401(rs.port, "GET", poll_path("news"), bearer(lax_token("'subscribe':['news']")),
               "not signed with RS256");
    expect_401(rs.port, "GET", poll_path("news"), bearer(sign_pem(JWT_ALG_ES256, ec_priv, claims)),
               "not signed with RS256");
    /* And the real thing passes. */
    const char *good = sign_pem(JWT_ALG_RS256, rsa_priv, claims);
    expect_status(rs.port, "GET", poll_path("news"), bearer(good), 200);
    /* A payload swapped under a real signature does not. */
    const char *dot = strchr(good, '.');
    const char *more = plain_claims("'subscribe':['*']");
    const char *swapped =
        str("%.*s.%s.%s", (int)(dot - good), good, b64url(more, strlen(more)), signature_of(good));
    expect_401(rs.port, "GET", poll_path("sports"), bearer(swapped), "signature does not verify");
}

static void test_a_token_of_another_hs_algorithm_or_secret_gets_401(void **state) {
    (void)state;
    const char *claims = strict_claims("'subscribe':['news']");
    const char *hs512 = sign(JWT_ALG_HS512, SECRET SECRET, 2 * strlen(SECRET), claims);
    expect_401(strict.port, "GET", poll_path("news"), bearer(hs512), "not signed with HS256");
    const char *other = "another-secret-of-enough-length-0123456789";
    const char *forged = sign(JWT_ALG_HS256, other, strlen(other), claims);
    expect_401(strict.port, "GET", poll_path("news"), bearer(forged), "signature does not verify");
    /* One character of the signature changed. */
    char *flipped = keep(strdup(strict_token("'subscribe':['news']")));
    char *last = flipped + strlen(flipped) - 2;
    *last = *last == 'A' ? 'B' : 'A';
    expect_401(strict.port, "GET", poll_path("news"), bearer(flipped), NULL);
}

static void test_an_expired_token_gets_401_and_one_within_the_leeway_passes(void **state) {
    (void)state;
    const char *grants = "'holdline':{'subscribe':['news']}";
    const char *expired = sign_hs(
        json("{'aud':'%s','iss':'%s','exp':%lld,%s}", AUDIENCE, ISSUER, now_s() - HOUR, grants));
    expect_401(strict.port, "GET", poll_path("news"), bearer(expired), "the token expired");
    expect_401(strict.port, "GET", "/channels/news", cookie(expired), "the token expired");
    /* auth.leeway_s is 30 on the strict node. */
    const char *just = sign_hs(
        json("{'aud':'%s','iss':'%s','exp':%lld,%s}", AUDIENCE, ISSUER, now_s() - 5, grants));
    expect_status(strict.port, "GET", poll_path("news"), bearer(just), 200);
    /* ... and 0 on the lax one. */
    const char *gone = sign_hs(json("{'exp':%lld,%s}", now_s() - 1, grants));
    expect_401(lax.port, "GET", poll_path("news"), bearer(gone), "the token expired");
    /* exp is required. */
    const char *forever = sign_hs(json("{'aud':'%s','iss':'%s',%s}", AUDIENCE, ISSUER, grants));
    expect_401(strict.port, "GET", poll_path("news"), bearer(forever), "needs an exp claim");
}

static void test_a_token_not_valid_yet_or_issued_in_the_future_gets_401(void **state) {
    (void)state;
    const char *grants = "'holdline':{'subscribe':['news']}";
    long long now = now_s();
    const char *nbf = sign_hs(json("{'aud':'%s','iss':'%s','exp':%lld,'nbf':%lld,%s}", AUDIENCE,
                                   ISSUER, now + 2 * HOUR, now + HOUR, grants));
    expect_401(strict.port, "GET", poll_path("news"), bearer(nbf), "not valid yet (nbf)");
    const char *iat = sign_hs(json("{'aud':'%s','iss':'%s','exp':%lld,'iat':%lld,%s}", AUDIENCE,
                                   ISSUER, now + 2 * HOUR, now + HOUR, grants));
    expect_401(strict.port, "GET", poll_path("news"), bearer(iat), "issued in the future (iat)");
    /* Within the leeway, both pass. */
    const char *soon = sign_hs(json("{'aud':'%s','iss':'%s','exp':%lld,'nbf':%lld,'iat':%lld,%s}",
                                    AUDIENCE, ISSUER, now + HOUR, now + 10, now + 10, grants));
    expect_status(strict.port, "GET", poll_path("news"), bearer(soon), 200);
}

static void test_a_token_for_another_audience_or_issuer_gets_401(void **state) {
    (void)state;
    const char *grants = "'holdline':{'subscribe':['news']}";
    long long exp = now_s() + HOUR;
    const char *wrong_aud =
        sign_hs(json("{'aud':'other-app','iss':'%s','exp':%lld,%s}", ISSUER, exp, grants));
    expect_401(strict.port, "GET", poll_path("news"), bearer(wrong_aud),
               "not meant for this audience");
    const char *no_aud = sign_hs(json("{'iss':'%s','exp':%lld,%s}", ISSUER, exp, grants));
    expect_401(strict.port, "GET", poll_path("news"), bearer(no_aud),
               "not meant for this audience");
    const char *aud_list = sign_hs(
        json("{'aud':['other-app','%s'],'iss':'%s','exp':%lld,%s}", AUDIENCE, ISSUER, exp, grants));
    expect_status(strict.port, "GET", poll_path("news"), bearer(aud_list), 200);
    const char *wrong_iss = sign_hs(
        json("{'aud':'%s','iss':'https://evil.example','exp':%lld,%s}", AUDIENCE, exp, grants));
    expect_401(strict.port, "GET", poll_path("news"), bearer(wrong_iss), "expected issuer");
    const char *no_iss = sign_hs(json("{'aud':'%s','exp':%lld,%s}", AUDIENCE, exp, grants));
    expect_401(strict.port, "GET", poll_path("news"), bearer(no_iss), "expected issuer");
    /* A node with no auth.audience is no token's audience. */
    expect_401(lax.port, "GET", poll_path("news"), bearer(aud_list),
               "names an audience (aud) but this node has no auth.audience");
}

static void test_malformed_tokens_and_bad_grant_patterns_get_401(void **state) {
    (void)state;
    const char *bad[] = {"not-a-jwt",  "a.b", "a.b.c.d", "..", "eyJhbGciOiJIUzI1NiJ9..sig",
                         "!!!.???.###"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_401(strict.port, "GET", poll_path("news"), bearer(bad[i]), NULL);
    const char *patterns[] = {"'subscribe':['news*x']", "'subscribe':'news'", "'subscribe':['a b']",
                              "'subscribe':[42]", "'publish':['**']"};
    for (size_t i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++)
        expect_401(strict.port, "GET", poll_path("news"), bearer(strict_token(patterns[i])),
                   "must be a list of channel names or prefixes ending in *");
    const char *not_object = sign_hs(json("{'aud':'%s','iss':'%s','exp':%lld,'holdline':['news']}",
                                          AUDIENCE, ISSUER, now_s() + HOUR));
    expect_401(strict.port, "GET", poll_path("news"), bearer(not_object), "must be an object");
    /* No holdline claim: valid, granting nothing. */
    const char *none =
        sign_hs(json("{'aud':'%s','iss':'%s','exp':%lld}", AUDIENCE, ISSUER, now_s() + HOUR));
    expect_403(strict.port, "GET", poll_path("news"), bearer(none), "subscribe on 'news'");
}

/* ---- Big tokens -------------------------------------------------------- */

static void test_an_8_kb_token_with_many_grants_is_accepted(void **state) {
    (void)state;
    char *grants = keep(malloc(16384));
    size_t n = (size_t)snprintf(grants, 16384, "'subscribe':['news'");
    const char *t = NULL;
    for (int i = 0; n < 16000; i++) {
        n += (size_t)snprintf(grants + n, 16384 - n, ",'tenant.%04d.room.*'", i);
        if (i % 20 == 19) {
            char *probe = keep(malloc(n + 2));
            snprintf(probe, n + 2, "%s]", grants);
            t = strict_token(probe);
            if (strlen(t) >= 8192) break;
        }
    }
    assert_true(strlen(t) >= 8192 && strlen(t) < 10000);
    expect_status(strict.port, "GET", poll_path("news"), bearer(t), 200);
    expect_status(strict.port, "GET", poll_path("news"), cookie(t), 200);
    expect_status(strict.port, "GET", "/channels/tenant.0150.room.7", bearer(t), 200);
    expect_403(strict.port, "GET", poll_path("sports"), bearer(t), "subscribe on 'sports'");
}

static void test_an_8_kb_garbage_token_gets_401_and_the_node_stays_healthy(void **state) {
    (void)state;
    char *junk = keep(malloc(8193));
    for (size_t i = 0; i < 8192; i++)
        junk[i] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."[(i * 7919) % 65];
    junk[8192] = '\0';
    for (int i = 0; i < 20; i++) {
        expect_401(strict.port, "GET", poll_path("news"), bearer(junk), NULL);
        expect_401(strict.port, "GET", poll_path("news"), cookie(junk), NULL);
        expect_401(strict.port, "POST", "/publish/news", bearer(junk), NULL);
    }
    /* Shaped like a JWT, 8 KB of base64url that decodes to no JSON. */
    char *shaped = keep(strdup(junk));
    for (char *p = shaped; *p; p++)
        if (*p == '.') *p = 'x';
    shaped[100] = shaped[4000] = '.';
    expect_401(strict.port, "GET", poll_path("news"), bearer(shaped), "base64url");
    expect_status(strict.port, "GET", "/healthz", NULL, 200);
    expect_status(strict.port, "GET", "/readyz", NULL, 200);
    expect_status(strict.port, "GET", poll_path("news"),
                  bearer(strict_token("'subscribe':['news']")), 200);
    assert_false(it_log_has_crash(strict.log));
}

static void test_a_token_over_16384_bytes_gets_401_unread(void **state) {
    (void)state;
    /* The lax node takes 40000 bytes of headers, so the token's own limit
     * is what refuses it. */
    char *grants = keep(malloc(24000));
    size_t n = (size_t)snprintf(grants, 24000, "'subscribe':['news'");
    for (int i = 0; n < 13500; i++)
        n += (size_t)snprintf(grants + n, 24000 - n, ",'tenant.%04d.room.*'", i);
    snprintf(grants + n, 24000 - n, "]");
    const char *t = lax_token(grants);
    assert_true(strlen(t) > 16384 && strlen(t) < 30000);
    expect_401(lax.port, "GET", poll_path("news"), bearer(t), "longer than 16384 bytes");
    expect_status(lax.port, "GET", "/healthz", NULL, 200);
}

/* ---- Publishing ------------------------------------------------------- */

static void test_publish_takes_publish_key_or_a_publish_grant(void **state) {
    (void)state;
    expect_status(strict.port, "POST", "/publish/news", "Authorization: Bearer " PUBLISH_KEY "\r\n",
                  201);
    expect_status(strict.port, "POST", "/publish/news", bearer(strict_token("'publish':['news']")),
                  201);
    expect_status(strict.port, "POST", "/publish/user.42.outbox",
                  bearer(strict_token("'publish':['user.42.*']")), 201);
    expect_status(lax.port, "POST", "/publish/news", bearer(lax_token("'publish':['news']")), 201);
    const char *es_t = sign_pem(JWT_ALG_ES256, ec_priv, plain_claims("'publish':['es.news']"));
    expect_status(es.port, "POST", "/publish/es.news", bearer(es_t), 201);
}

static void test_publish_without_a_publish_grant_gets_401_or_403(void **state) {
    (void)state;
    expect_401_missing(strict.port, "POST", "/publish/news", NULL,
                       "publishing needs a token in the header");
    expect_401(strict.port, "POST", "/publish/news", "Authorization: Bearer wrong-key\r\n", NULL);
    expect_403(strict.port, "POST", "/publish/news", bearer(strict_token("'subscribe':['news']")),
               "the token does not grant publish on 'news'");
    expect_403(strict.port, "POST", "/publish/user.420",
               bearer(strict_token("'publish':['user.42.*']")), "publish on 'user.420'");
    expect_401(
        strict.port, "POST", "/publish/news",
        bearer(sign_hs(json("{'aud':'%s','iss':'%s','exp':%lld,'holdline':{'publish':['news']}}",
                            AUDIENCE, ISSUER, now_s() - HOUR))),
        "the token expired");
    expect_401_missing(lax.port, "POST", "/publish/news", NULL, NULL);
    expect_403(lax.port, "POST", "/publish/news", bearer(lax_token("'subscribe':['*']")),
               "publish on 'news'");
}

static void test_publish_never_takes_a_token_from_a_cookie_or_the_query(void **state) {
    (void)state;
    /* A cookie goes with every request a page makes, whoever's page. */
    const char *t = strict_token("'publish':['news']");
    expect_401_missing(strict.port, "POST", "/publish/news", cookie(t), NULL);
    expect_401_missing(strict.port, "POST", "/publish/news",
                       str("Cookie: holdline_token=%s\r\n", PUBLISH_KEY), NULL);
    const char *l = lax_token("'publish':['news']");
    expect_401_missing(lax.port, "POST", str("/publish/news?token=%s", l), NULL, NULL);
    expect_401_missing(lax.port, "POST", "/publish/news", cookie(l), NULL);
}

static void test_publishing_to_a_public_channel_still_needs_a_grant(void **state) {
    (void)state;
    expect_401_missing(strict.port, "POST", "/publish/lobby", NULL, NULL);
    expect_403(strict.port, "POST", "/publish/public.weather",
               bearer(strict_token("'subscribe':['public.*']")), "publish on 'public.weather'");
    expect_status(strict.port, "POST", "/publish/lobby",
                  bearer(strict_token("'publish':['lobby']")), 201);
}

/* ---- Other algorithms --------------------------------------------------- */

static void test_es256_tokens_work_end_to_end(void **state) {
    (void)state;
    const char *claims = plain_claims("'subscribe':['es.*'],'publish':['es.news']");
    const char *t = sign_pem(JWT_ALG_ES256, ec_priv, claims);
    it_resp r;
    ask(es.port, "POST", "/publish/es.news", bearer(t), &r);
    assert_int_equal(r.status, 201);
    it_json j;
    assert_int_equal(it_json_parse(r.body, &j), 0);
    char id[64];
    snprintf(id, sizeof(id), "%s", j.id);
    it_json_free(&j);
    it_resp_free(&r);

    ask(es.port, "GET", poll_path("es.news"), bearer(t), &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(it_json_parse(r.body, &j), 0);
    assert_true(j.n >= 1);
    assert_string_equal(j.msgs[j.n - 1].id, id);
    assert_string_equal(j.msgs[j.n - 1].data, "hello");
    it_json_free(&j);
    it_resp_free(&r);

    expect_status(es.port, "GET", "/channels/es.news", cookie(t), 200);
    expect_403(es.port, "GET", poll_path("news"), bearer(t), "subscribe on 'news'");
    expect_401(es.port, "GET", poll_path("es.news"),
               bearer(sign_pem(JWT_ALG_ES256, ec_other, claims)), "signature does not verify");
    expect_401(es.port, "GET", poll_path("es.news"),
               bearer(sign_pem(JWT_ALG_RS256, rsa_priv, claims)), "not signed with ES256");
}

/* ---- CORS -------------------------------------------------------------- */

static void test_refusals_carry_cors_headers_for_an_allowed_origin(void **state) {
    (void)state;
    const char *origin = "Origin: " ORIGIN "\r\n";
    const char *cases[][2] = {
        {poll_path("news"), origin},
        {poll_path("sports"), str("%s%s", origin, bearer(strict_token("'subscribe':['news']")))},
    };
    int want[] = {401, 403};
    for (size_t i = 0; i < 2; i++) {
        it_resp r;
        ask(strict.port, "GET", cases[i][0], cases[i][1], &r);
        assert_int_equal(r.status, want[i]);
        char v[256];
        assert_int_equal(it_resp_header(&r, "Access-Control-Allow-Origin", v, sizeof(v)), 0);
        assert_string_equal(v, ORIGIN);
        assert_int_equal(it_resp_header(&r, "Access-Control-Expose-Headers", v, sizeof(v)), 0);
        assert_string_equal(v, "Holdline-Cursor, WWW-Authenticate");
        assert_int_equal(it_resp_header(&r, "Access-Control-Allow-Credentials", v, sizeof(v)), 0);
        assert_string_equal(v, "true");
        assert_int_equal(it_resp_header(&r, "WWW-Authenticate", v, sizeof(v)), 0);
        it_resp_free(&r);
    }
    /* An origin not listed gets none of them. */
    it_resp r;
    ask(strict.port, "GET", poll_path("news"), "Origin: https://evil.example\r\n", &r);
    assert_int_equal(r.status, 401);
    char v[256];
    assert_int_not_equal(it_resp_header(&r, "Access-Control-Allow-Origin", v, sizeof(v)), 0);
    assert_int_not_equal(it_resp_header(&r, "Access-Control-Allow-Credentials", v, sizeof(v)), 0);
    it_resp_free(&r);
}

/* ---- Streams ----------------------------------------------------------- */

static void test_a_stream_takes_its_token_from_a_cookie_or_the_query_as_eventsource_sends_no_header(
    void **state) {
    (void)state;
    stream s;
    stream_open(&s, strict.port, "/events/news", cookie(strict_token("'subscribe':['news']")));
    assert_true(stream_wait(&s, "\nid: ", 5000));
    assert_non_null(strstr(s.raw, "HTTP/1.1 200"));
    assert_non_null(strcasestr(s.raw, "Content-Type: text/event-stream"));
    stream_close(&s);
    const char *q = lax_token("'subscribe':['news']");
    stream_open(&s, lax.port, str("/events/news?token=%s", q), NULL);
    assert_true(stream_wait(&s, "\nid: ", 5000));
    assert_non_null(strstr(s.raw, "HTTP/1.1 200"));
    stream_close(&s);
}

static void test_a_stream_ends_at_exp_with_token_expired_and_its_cursor(void **state) {
    (void)state;
    /* The lax node has auth.leeway_s = 0: the stream ends at exp itself. */
    long long exp = now_s() + 3;
    const char *t = sign_hs(json("{'exp':%lld,'holdline':{'subscribe':['news']}}", exp));
    stream s;
    stream_open(&s, lax.port, "/events/news", bearer(t));
    assert_true(stream_wait(&s, "\nid: ", 5000));
    assert_non_null(strstr(s.raw, "HTTP/1.1 200"));
    /* The connection closes, so that the client comes back on a new one. */
    int closed = stream_wait(&s, NULL, 6000);
    if (!closed) fprintf(stderr, "the stream did not close; it sent:\n%s\n", s.raw);
    assert_true(closed);
    assert_int_equal(strcmp(s.raw + s.len - 7, "\r\n0\r\n\r\n"), 0); /* after its last chunk */
    long long late = s.closed_at - exp * 1000;
    printf("the stream closed %lld ms after exp\n", late);
    assert_true(late > -300 && late < 2000);
    /* The last event before the end says why and where the client stands:
     * the id it was last given. */
    const char *ev = strstr(s.body, "event: token_expired\ndata: {\"cursor\":\"");
    assert_non_null(ev);
    const char *last_id = NULL;
    for (const char *p = s.body; p < ev; p = strchr(p, '\n') + 1)
        if (strncmp(p, "id: ", 4) == 0) last_id = p + 4;
    assert_non_null(last_id);
    const char *want = str("event: token_expired\ndata: {\"cursor\":\"%.*s\"}\n\n",
                           (int)strcspn(last_id, "\n"), last_id);
    assert_string_equal(ev, want);
    stream_close(&s);
    /* Back with the same token: it is spent. */
    expect_401(lax.port, "GET", "/events/news", bearer(t), "the token expired");
}

static void test_a_poll_is_held_no_longer_than_its_token_is_good(void **state) {
    (void)state;
    /* leeway 0 on the lax node: the token is good for 2 more seconds, the
     * poll asks for 20; it is answered "no event" when the token ends. */
    const char *t = sign_hs(json("{'exp':%lld,'holdline':{'subscribe':['news']}}", now_s() + 2));
    long long t0 = it_now_ms();
    it_resp r;
    assert_int_equal(
        it_http(lax.port, "GET", "/poll/news?timeout=20", NULL, 0, bearer(t), 10000, &r), 0);
    long long took = it_now_ms() - t0;
    assert_int_equal(r.status, 200);
    it_json j;
    assert_int_equal(it_json_parse(r.body, &j), 0);
    assert_int_equal(j.n, 0);
    it_json_free(&j);
    it_resp_free(&r);
    printf("a poll with 2 s of token left was answered after %lld ms\n", took);
    assert_true(took >= 900 && took < 3500);
}

/* ---- Tokens stay out of logs ------------------------------------------- */

static void test_tokens_never_appear_in_the_log_even_at_debug(void **state) {
    (void)state;
    it_node n;
    const char *const env[] = {"HOLDLINE_HTTP_WORKERS=1",
                               LOOPBACK,
                               "HOLDLINE_AUTH_MODE=jwt",
                               "HOLDLINE_AUTH_JWT_KEY=" SECRET,
                               "HOLDLINE_AUTH_QUERY_TOKEN=true",
                               "HOLDLINE_LOG_LEVEL=debug",
                               NULL};
    assert_int_equal(it_node_start_env(&n, redis.port, NULL, env), 0);
    const char *grants = "'holdline':{'subscribe':['news'],'publish':['news']}";
    const char *other = "another-secret-of-enough-length-0123456789";
    const char *tokens[] = {
        sign_hs(json("{'exp':%lld,%s}", now_s() + HOUR, grants)),
        sign(JWT_ALG_HS256, other, strlen(other), json("{'exp':%lld,%s}", now_s() + HOUR, grants)),
        sign_hs(json("{'exp':%lld,%s}", now_s() - HOUR, grants)),
        sign_hs(json("{'exp':%lld,'aud':'x',%s}", now_s() + HOUR, grants)),
        forge("{\"alg\":\"none\"}", json("{'exp':%lld,%s}", now_s() + HOUR, grants), ""),
    };
    size_t ntok = sizeof(tokens) / sizeof(tokens[0]);
    char pad[20001];
    memset(pad, 'p', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    char long_query[3001];
    memset(long_query, 'q', sizeof(long_query) - 1);
    long_query[sizeof(long_query) - 1] = '\0';
    for (size_t i = 0; i < ntok; i++) {
        const char *t = tokens[i];
        const char *asks[][3] = {
            {"GET", poll_path("news"), bearer(t)},
            {"GET", poll_path("news"), cookie(t)},
            {"GET", str("/poll/news?cursor=0&timeout=1&token=%s", t), NULL},
            {"GET", str("/channels/news?token=%s", t), bearer(t)},
            {"POST", "/publish/news", bearer(t)},
            {"POST", str("/publish/news?token=%s", t), cookie(t)},
            {"GET", str("/nowhere?token=%s", t), bearer(t)},
            {"GET", str("/poll/bad$chan?token=%s", t), bearer(t)},
            {"GET", str("/poll/news?cursor=bogus&token=%s", t), cookie(t)},
            {"GET", str("/poll/news?timeout=9999&token=%s", t), NULL},
            {"DELETE", str("/poll/news?token=%s", t), bearer(t)},
            {"GET", poll_path("news"), str("X-Pad: %s\r\n%s", pad, bearer(t))},
            {"GET", str("/poll/news?pad=%s&token=%s", long_query, t), bearer(t)},
            {"GET", poll_path("news"), str("Authorization: Bearer %s %s\r\n", t, t)},
            {"GET", poll_path("news"), str("Authorization: %s\r\n", t)},
        };
        for (size_t k = 0; k < sizeof(asks) / sizeof(asks[0]); k++) {
            it_resp r;
            const char *body = strcmp(asks[k][0], "POST") == 0 ? "hello" : NULL;
            if (it_http(n.port, asks[k][0], asks[k][1], body, body ? 5 : 0, asks[k][2], 3000, &r) ==
                0)
                it_resp_free(&r);
        }
        /* Requests libmicrohttpd refuses itself, and logs: a header line
         * that is the token alone, an HTTP version it does not know, a
         * request line without one, and a body both chunked and not. */
        const char *raw[] = {
            str("GET /poll/news?token=%s HTTP/1.1\r\nHost: x\r\n%s\r\n\r\n", t, t),
            str("GET /poll/news?token=%s HTTP/9.9\r\nHost: x\r\n%s\r\n", t, bearer(t)),
            str("GET /poll/news?token=%s\r\n\r\n", t),
            str("GET /poll/news?cursor=0&timeout=1 HTTP/1.1\r\nHost: x\r\n"
                "Cookie: holdline_token=%s\r\n"
                "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                t),
        };
        for (size_t k = 0; k < sizeof(raw) / sizeof(raw[0]); k++) {
            it_resp r;
            it_raw(n.port, raw[k], strlen(raw[k]), 2000, &r);
            it_resp_free(&r);
        }
        stream s;
        stream_open(&s, n.port, str("/events/news?token=%s", t), bearer(t));
        assert_true(stream_head(&s, 2000));
        stream_close(&s);
    }
    assert_int_equal(it_node_stop(&n), 0);
    size_t len;
    char *log = slurp(n.log, &len);
    assert_non_null(log);
    assert_non_null(strstr(log, " debug ")); /* it did log at debug */
    for (size_t i = 0; i < ntok; i++) {
        const char *sig = signature_of(tokens[i]);
        const char *payload = strchr(tokens[i], '.') + 1;
        const char *payload_seg = str("%.*s", (int)(strchr(payload, '.') - payload), payload);
        int leaked = strstr(log, tokens[i]) != NULL || (*sig && strstr(log, sig) != NULL) ||
                     strstr(log, payload_seg) != NULL;
        if (leaked) fprintf(stderr, "token %zu is in %s\n", i, n.log);
        assert_false(leaked);
    }
    assert_false(it_log_has_crash(n.log));
    free(log);
}

/* ---- Bad keys stop the node at start ----------------------------------- */

static void test_a_key_that_does_not_fit_the_algorithm_stops_the_node_at_start(void **state) {
    (void)state;
    char pem_env[4096];
    size_t n;
    char *pem = slurp(rsa_pub, &n);
    assert_non_null(pem);
    snprintf(pem_env, sizeof(pem_env), "HOLDLINE_AUTH_JWT_KEY=%s", pem);
    free(pem);
    const char *file = "HOLDLINE_AUTH_JWT_KEY_FILE=";
    struct {
        const char *alg, *key, *message;
    } cases[] = {
        {"HS256", str("%s%s/no-such-key", file, it_run_dir()), "auth.jwt_key_file: cannot read"},
        {"HS256", "HOLDLINE_AUTH_JWT_KEY=short-secret",
         "auth.jwt_key: a HS256 secret must be at least 32 bytes"},
        {"HS512", "HOLDLINE_AUTH_JWT_KEY=" SECRET,
         "auth.jwt_key: a HS512 secret must be at least 64 bytes"},
        {"HS256", pem_env, "this is a PEM key, but auth.jwt_algorithm is HS256"},
        {"HS256", str("%s%s", file, rsa_pub), "this is a PEM key, but auth.jwt_algorithm is HS256"},
        {"RS256", str("%s%s", file, rsa_priv), "auth.jwt_key_file: not a PEM public key"},
        {"RS256", str("%s%s", file, not_a_key), "auth.jwt_key_file: not a PEM public key"},
        {"RS256", "HOLDLINE_AUTH_JWT_KEY=" SECRET, "auth.jwt_key: not a PEM public key"},
        {"RS256", str("%s%s", file, ec_pub), "RS256 needs an RSA public key"},
        {"RS256", str("%s%s", file, rsa1024_pub), "an RSA key must have at least 2048 bits"},
        {"ES256", str("%s%s", file, ec384_pub),
         "ES256 needs an EC public key on the curve prime256v1"},
        {"ES256", str("%s%s", file, rsa_pub),
         "ES256 needs an EC public key on the curve prime256v1"},
    };
    enum { N = sizeof(cases) / sizeof(cases[0]) };
    pid_t pid[N];
    char log[N][128];
    /* All at once: each should be gone as soon as it read its settings. */
    for (size_t i = 0; i < N; i++) {
        snprintf(log[i], sizeof(log[i]), "%s/badkey-%zu.log", it_run_dir(), i);
        const char *port = str("%d", it_free_port());
        const char *redis_addr = str("127.0.0.1:%d", redis.port);
        const char *argv[] = {it_holdline_bin(), "-c", "config/holdline.cfg", "-p", port, "--redis",
                              redis_addr,        NULL};
        const char *env[] = {LOOPBACK, "HOLDLINE_AUTH_MODE=jwt",
                             str("HOLDLINE_AUTH_JWT_ALGORITHM=%s", cases[i].alg), cases[i].key,
                             NULL};
        pid[i] = it_spawn_env(argv, env, log[i]);
        assert_true(pid[i] > 0);
    }
    for (size_t i = 0; i < N; i++) {
        int st = it_stop(pid[i], 0, 10000);
        char *text = slurp(log[i], NULL);
        /* Refused in an orderly way: an exit, not a crash or a leak. */
        int ok = st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) != 0 && text &&
                 strstr(text, cases[i].message) != NULL && !it_log_has_crash(log[i]);
        if (!ok)
            fprintf(stderr, "case %zu (%s): status %d, want a non-zero exit and '%s'; log:\n%s\n",
                    i, cases[i].alg, st, cases[i].message, text ? text : "(none)");
        free(text);
        assert_true(ok);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_poll_without_a_token_gets_401_with_a_bearer_challenge),
        cmocka_unit_test(test_a_token_granting_the_channel_opens_poll_stream_and_channel_info),
        cmocka_unit_test(test_a_token_granted_news_gets_403_on_sports),
        cmocka_unit_test(test_a_multi_channel_poll_needs_every_channel_granted),
        cmocka_unit_test(test_a_prefix_pattern_grants_below_its_dot_only),
        cmocka_unit_test(test_public_channels_are_open_without_a_token),
        cmocka_unit_test(test_a_token_in_the_cookie_is_taken_for_reads),
        cmocka_unit_test(test_the_header_token_is_judged_before_the_cookie),
        cmocka_unit_test(test_a_query_token_works_only_where_query_token_is_on),
        cmocka_unit_test(test_an_unsigned_alg_none_token_gets_401),
        cmocka_unit_test(test_an_hs256_token_signed_with_the_rs256_public_key_gets_401),
        cmocka_unit_test(test_a_token_of_another_hs_algorithm_or_secret_gets_401),
        cmocka_unit_test(test_an_expired_token_gets_401_and_one_within_the_leeway_passes),
        cmocka_unit_test(test_a_token_not_valid_yet_or_issued_in_the_future_gets_401),
        cmocka_unit_test(test_a_token_for_another_audience_or_issuer_gets_401),
        cmocka_unit_test(test_malformed_tokens_and_bad_grant_patterns_get_401),
        cmocka_unit_test(test_an_8_kb_token_with_many_grants_is_accepted),
        cmocka_unit_test(test_an_8_kb_garbage_token_gets_401_and_the_node_stays_healthy),
        cmocka_unit_test(test_a_token_over_16384_bytes_gets_401_unread),
        cmocka_unit_test(test_publish_takes_publish_key_or_a_publish_grant),
        cmocka_unit_test(test_publish_without_a_publish_grant_gets_401_or_403),
        cmocka_unit_test(test_publish_never_takes_a_token_from_a_cookie_or_the_query),
        cmocka_unit_test(test_publishing_to_a_public_channel_still_needs_a_grant),
        cmocka_unit_test(test_es256_tokens_work_end_to_end),
        cmocka_unit_test(test_refusals_carry_cors_headers_for_an_allowed_origin),
        cmocka_unit_test(
            test_a_stream_takes_its_token_from_a_cookie_or_the_query_as_eventsource_sends_no_header),
        cmocka_unit_test(test_a_stream_ends_at_exp_with_token_expired_and_its_cursor),
        cmocka_unit_test(test_a_poll_is_held_no_longer_than_its_token_is_good),
        cmocka_unit_test(test_tokens_never_appear_in_the_log_even_at_debug),
        cmocka_unit_test(test_a_key_that_does_not_fit_the_algorithm_stops_the_node_at_start),
    };
    return it_finish(
        cmocka_run_group_tests_name("auth (redis + 4 jwt nodes)", tests, setup, teardown));
}

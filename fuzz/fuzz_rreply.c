/* fuzz_rreply.c -- libFuzzer target for core/store/hl_rreply.h: what a
 * worker makes of Redis's replies. The input is RESP text, read by
 * hiredis's own reader (redisReader) into the tree the parsers take, as
 * on a live link; every parser then runs on whatever reply came out.
 *
 * Checked beyond the sanitizers: a holdline_read reply that parses has an
 * epoch other than 0, reports a missing stream exactly when it has two
 * elements, and its entries (if any) are an array of the reply; every
 * entry's message is valid as far as hl_msg promises (NUL-terminated JSON
 * of its length); the publish kind follows the reply's type; epochs of
 * any text are nonzero and stable; a slot map's ranges are inside
 * 0..16383, upright, with a port and a host; a MOVED or ASK that parses
 * names a slot, a port and a host. */
#include <hiredis/hiredis.h>

#include "fuzz.h"
#include "hl_common.h"
#include "hl_rreply.h"

static void check_read(const redisReply *rep) {
    hl_stream_state st;
    uint64_t epoch = 0;
    const redisReply *entries = NULL;
    if (hl_rreply_read(rep, &st, &epoch, &entries) != HL_OK) {
        FUZZ_CHECK(entries == NULL);
        return;
    }
    FUZZ_CHECK(epoch != 0);
    FUZZ_CHECK(rep->type == REDIS_REPLY_ARRAY);
    FUZZ_CHECK(st.exists == (rep->elements == 8));
    if (!st.exists) {
        FUZZ_CHECK(entries == NULL);
        return;
    }
    FUZZ_CHECK(entries == rep->element[7] && entries->type == REDIS_REPLY_ARRAY);
    for (size_t i = 0; i < entries->elements; i++) {
        hl_msg *m = hl_rreply_entry(entries->element[i], "ch", 2);
        if (m == NULL) continue;
        FUZZ_CHECK(m->json[m->len] == '\0' && strlen(m->json) == m->len);
        FUZZ_CHECK(m->next == NULL);
        free(m);
    }
}

static void check_publish(const redisReply *rep) {
    const char *id;
    size_t len;
    hl_publish_reply k = hl_rreply_publish(rep, &id, &len);
    switch (rep->type) {
    case REDIS_REPLY_STRING: FUZZ_CHECK(k == HL_PUB_STORED); break;
    case REDIS_REPLY_STATUS: FUZZ_CHECK(k == HL_PUB_DUPLICATE); break;
    case REDIS_REPLY_ERROR: FUZZ_CHECK(k == HL_PUB_REFUSED); break;
    default: FUZZ_CHECK(k == HL_PUB_BAD && len == 0);
    }
    if (k != HL_PUB_BAD) FUZZ_CHECK(id == rep->str && len == rep->len);
}

/* hiredis 0.14 allocates an array of whatever size a header announces:
 * inputs announcing more than a live reply of holdline's could hold are
 * skipped, or the run would only test malloc. */
static int huge_header(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '*' && p[i] != '$' && p[i] != '%' && p[i] != '~') continue;
        unsigned long long v = 0;
        size_t k = i + 1;
        for (; k < n && p[k] >= '0' && p[k] <= '9' && v < 100000000ULL; k++)
            v = v * 10 + (p[k] - '0');
        if (v > 100000) return 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint64_t e = hl_rreply_epoch((const char *)data, size);
    FUZZ_CHECK(e != 0 && e == hl_rreply_epoch((const char *)data, size));

    if (huge_header(data, size)) return 0;
    redisReader *rd = redisReaderCreate();
    if (rd == NULL) return 0;
    void *reply = NULL;
    if (redisReaderFeed(rd, (const char *)data, size) == REDIS_OK &&
        redisReaderGetReply(rd, &reply) == REDIS_OK && reply != NULL) {
        const redisReply *rep = reply;
        check_read(rep);
        check_publish(rep);
        long long ms;
        if (hl_rreply_time(rep, &ms) == HL_OK) FUZZ_CHECK(ms >= 0);
        (void)hl_rreply_library_missing(rep);
        if (hl_rreply_readonly(rep)) FUZZ_CHECK(rep->type == REDIS_REPLY_ERROR);
        char host[32];
        int port = 0;
        if (hl_rreply_master_addr(rep, host, sizeof(host), &port) == HL_OK)
            FUZZ_CHECK(port >= 1 && port <= 65535 && memchr(host, '\0', sizeof(host)) != NULL &&
                       host[0] != '\0');
        hl_slot_range ranges[8];
        int nr = hl_rreply_cluster_slots(rep, "seed", ranges, 8);
        FUZZ_CHECK(nr >= -1 && nr <= 8);
        for (int i = 0; i < nr; i++)
            FUZZ_CHECK(ranges[i].lo <= ranges[i].hi && ranges[i].hi < 16384 &&
                       ranges[i].port >= 1 && ranges[i].port <= 65535 && ranges[i].host[0] != '\0');
        if (rep->type == REDIS_REPLY_ERROR) {
            unsigned slot = 0;
            int rport = 0;
            hl_redirect k =
                hl_rreply_redirect(rep->str, rep->len, "seed", &slot, host, sizeof(host), &rport);
            if (k == HL_REDIR_MOVED || k == HL_REDIR_ASK)
                FUZZ_CHECK(slot < 16384 && rport >= 1 && rport <= 65535 && host[0] != '\0' &&
                           memchr(host, '\0', sizeof(host)) != NULL);
        }
        hl_redis_role role = hl_rreply_role(rep);
        FUZZ_CHECK(role >= HL_ROLE_UNKNOWN && role <= HL_ROLE_SENTINEL);
        if (rep->type == REDIS_REPLY_ARRAY)
            for (size_t i = 0; i < rep->elements; i++)
                check_read(rep->element[i]);
        freeReplyObject(reply);
    }
    redisReaderFree(rd);
    return 0;
}

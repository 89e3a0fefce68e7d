#include "hl_codec.h"

#include <string.h>

void hl_codec_message(hl_buf *b, const char *name, size_t nlen, const hl_sid *id, const char *data,
                      size_t dlen) {
    hl_buf_puts(b, "{\"channel\":");
    hl_json_string(b, name, nlen);
    if (id) {
        char ids[HL_SID_MAXLEN + 1];
        hl_sid_format(*id, ids);
        hl_buf_printf(b, ",\"id\":\"%s\",\"data\":", ids);
    } else {
        hl_buf_puts(b, ",\"id\":null,\"data\":");
    }
    hl_json_string(b, data, dlen);
    hl_buf_puts(b, "}");
}

void hl_codec_poll_answer(hl_buf *b, const char *cursor, size_t clen, const hl_codec_item *items,
                          size_t n, int missed) {
    hl_buf_puts(b, "{\"cursor\":\"");
    hl_buf_append(b, cursor, clen);
    hl_buf_puts(b, "\",\"messages\":[");
    for (size_t i = 0; i < n; i++) {
        if (i > 0) hl_buf_puts(b, ",");
        hl_buf_append(b, items[i].json, items[i].len);
    }
    hl_buf_puts(b, missed ? "],\"missed\":true}" : "],\"missed\":false}");
}

void hl_codec_publish_answer(hl_buf *b, const char *name, size_t nlen, const char *id, size_t idlen,
                             int duplicate) {
    hl_buf_puts(b, "{\"channel\":");
    hl_json_string(b, name, nlen);
    hl_buf_puts(b, ",\"id\":");
    hl_json_string(b, id, idlen);
    hl_buf_puts(b, duplicate ? ",\"duplicate\":true}" : "}");
}

void hl_codec_channel_info(hl_buf *b, const char *name, size_t nlen, const hl_sid *last,
                           long long length) {
    hl_buf_puts(b, "{\"channel\":");
    hl_json_string(b, name, nlen);
    if (last) {
        char id[HL_SID_MAXLEN + 1];
        hl_sid_format(*last, id);
        hl_buf_printf(b, ",\"last_id\":\"%s\",\"length\":%lld}", id, length);
    } else {
        hl_buf_puts(b, ",\"last_id\":null,\"length\":0}");
    }
}

void hl_codec_error(hl_buf *b, const char *code, const char *detail) {
    hl_json_error(b, code, detail);
}

void hl_codec_ready(hl_buf *b, const char *degraded) {
    if (degraded[0] == '\0') {
        hl_buf_puts(b, "{\"status\":\"ready\"}");
        return;
    }
    hl_buf_puts(b, "{\"status\":\"degraded\",\"detail\":");
    hl_json_string(b, degraded, strlen(degraded));
    hl_buf_puts(b, "}");
}

static void field(hl_buf *b, const char *name, const char *v, size_t n) {
    hl_buf_puts(b, name);
    hl_buf_append(b, v, n);
    hl_buf_puts(b, "\n");
}

void hl_codec_sse_open(hl_buf *b, int retry_ms, const char *cursor, size_t clen) {
    hl_buf_printf(b, "retry: %d\n", retry_ms);
    if (clen > 0) field(b, "id: ", cursor, clen);
    hl_buf_puts(b, "\n");
}

void hl_codec_sse_message(hl_buf *b, const char *cursor, size_t clen, const char *json,
                          size_t jlen) {
    if (clen > 0) field(b, "id: ", cursor, clen);
    field(b, "data: ", json, jlen);
    hl_buf_puts(b, "\n");
}

void hl_codec_sse_missed(hl_buf *b, const char *cursor, size_t clen, int with_id) {
    hl_buf_puts(b, "event: missed\n");
    if (with_id) field(b, "id: ", cursor, clen);
    hl_buf_puts(b, "data: {\"cursor\":\"");
    hl_buf_append(b, cursor, clen);
    hl_buf_puts(b, "\",\"missed\":true}\n\n");
}

void hl_codec_sse_token_expired(hl_buf *b, const char *cursor, size_t clen) {
    hl_buf_puts(b, "event: token_expired\ndata: {\"cursor\":\"");
    hl_buf_append(b, cursor, clen);
    hl_buf_puts(b, "\"}\n\n");
}

void hl_codec_sse_position(hl_buf *b, const char *cursor, size_t clen) {
    field(b, "id: ", cursor, clen);
    hl_buf_puts(b, "\n");
}

void hl_codec_sse_heartbeat(hl_buf *b) {
    hl_buf_puts(b, ": hb\n\n");
}

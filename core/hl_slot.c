#include "hl_slot.h"

#include <string.h>

uint16_t hl_slot_crc16(const char *p, size_t n) {
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)((uint16_t)(unsigned char)p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    return crc;
}

unsigned hl_slot_of(const char *p, size_t n) {
    const char *open = memchr(p, '{', n);
    if (open != NULL) {
        size_t rest = n - (size_t)(open + 1 - p);
        const char *close = memchr(open + 1, '}', rest);
        if (close != NULL && close > open + 1)
            return hl_slot_crc16(open + 1, (size_t)(close - open - 1)) & (HL_SLOTS - 1);
    }
    return hl_slot_crc16(p, n) & (HL_SLOTS - 1);
}

static const char tag_chars[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

long hl_slot_tags_build(hl_slot_tags *t) {
    const size_t nc = sizeof(tag_chars) - 1;
    memset(t, 0, sizeof(*t));
    long tried = 0, left = HL_SLOTS;
    char s[HL_SLOT_TAG_MAX + 1];
    for (int len = 1; len <= HL_SLOT_TAG_MAX && left > 0; len++) {
        size_t idx[HL_SLOT_TAG_MAX] = {0};
        for (;;) {
            for (int k = 0; k < len; k++)
                s[k] = tag_chars[idx[k]];
            s[len] = '\0';
            unsigned slot = hl_slot_crc16(s, (size_t)len) & (HL_SLOTS - 1);
            tried++;
            if (t->tag[slot][0] == '\0') {
                memcpy(t->tag[slot], s, (size_t)len + 1);
                if (--left == 0) break;
            }
            /* The next string of this length, the last character fastest. */
            int k = len - 1;
            while (k >= 0 && ++idx[k] == nc)
                idx[k--] = 0;
            if (k < 0) break;
        }
    }
    return tried;
}

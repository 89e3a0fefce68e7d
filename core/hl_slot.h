/* hl_slot.h -- Redis Cluster's key slots, for cluster mode.
 *
 * A key's slot is CRC16-XMODEM (polynomial 0x1021, initial value 0, no
 * reflection) of its hash tag, modulo 16384. The hash tag is what stands
 * between the first '{' and the first '}' after it, when that is not
 * empty; otherwise the whole key. So `{holdline:news}:log` and the
 * channel `holdline:news` share a slot.
 *
 * The epoch tags: for each slot, the first string of [0-9a-zA-Z] (by
 * length, then in that order of characters) whose slot it is; a key
 * `...{<tag>}` then lands in that slot. They are part of the data format
 * (an epoch key's name): the enumeration must never change. Pure. */
#ifndef HL_SLOT_H
#define HL_SLOT_H

#include <stddef.h>
#include <stdint.h>

#define HL_SLOTS 16384
/* Every slot has a tag of at most this many characters. */
#define HL_SLOT_TAG_MAX 3

uint16_t hl_slot_crc16(const char *p, size_t n);

/* The slot of key p[0..n). */
unsigned hl_slot_of(const char *p, size_t n);

typedef struct hl_slot_tags {
    char tag[HL_SLOTS][HL_SLOT_TAG_MAX + 1]; /* NUL-terminated */
} hl_slot_tags;

/* Fills t. Returns the CRC16s it computed (every slot is covered; the
 * tests check that). */
long hl_slot_tags_build(hl_slot_tags *t);

#endif

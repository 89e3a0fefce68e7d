/* hl_rlib.h -- holdline's Redis Function library, the Redis side of the
 * data model (hl_history.h has the framing and the rules a reply is read
 * by). The key names it checks are the ones hl_rkeys.h makes. Pure. */
#ifndef HL_RLIB_H
#define HL_RLIB_H

#include "hl_json.h"

/* Appends the source of the Redis Function library "holdline" (for
 * FUNCTION LOAD REPLACE) with the history length (MAXLEN ~) and the TTL in
 * milliseconds written in, and the command that announces a message:
 * SPUBLISH when sharded (cluster mode: the shard channel is in the slot
 * of the stream), else PUBLISH. It defines:
 *
 *   FCALL holdline_publish 1 <stream key> <data>
 *       XADD + PEXPIRE + (S)PUBLISH of the frame, atomically; returns the
 *       id. A channel name with a brace is refused before any write.
 *   FCALL holdline_read 2 <stream key> <epoch key> <after> <count> <epoch>
 *       (in cluster mode the epoch key is the one of the stream's slot)
 *       Sets the epoch key to <epoch> unless it exists, and returns
 *       {epoch, now_ms} for a stream that does not exist, else
 *       {epoch, now_ms, length, first id, last id, max deleted id,
 *        entries added, entries}
 *       where entries are up to <count> entries after <after> ("0" for
 *       all), or the last <count> entries, newest first, if <after> is "+". */
void hl_rlib_source(hl_buf *b, long long length, long long ttl_ms, int sharded);

#endif

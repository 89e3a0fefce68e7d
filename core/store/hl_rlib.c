#include "hl_rlib.h"

/* The library keeps no state between calls; everything it needs is in
 * its arguments or written in here. Lua's "\030" is the byte 0x1E. */
static const char library_head[] = "#!lua name=holdline\n";

static const char library_body[] =
    "local function publish(keys, args)\n"
    "  if (#keys ~= 1 and #keys ~= 2) or #args ~= 1 then\n"
    "    return redis.error_reply('ERR holdline_publish takes one key, {<prefix><channel>}:log, "
    "an optional second, {<prefix><channel>}:idem:<idempotency key>, and one argument, the "
    "data')\n"
    "  end\n"
    "  local channel = string.match(keys[1], '^{(.+)}:log$')\n"
    "  if not channel then\n"
    "    return redis.error_reply('ERR holdline_publish: the key must be "
    "{<prefix><channel>}:log')\n"
    "  end\n"
    "  local idem = keys[2]\n"
    "  if idem then\n"
    "    local base = '{' .. channel .. '}:idem:'\n"
    "    if #idem <= #base or string.sub(idem, 1, #base) ~= base then\n"
    "      return redis.error_reply('ERR holdline_publish: the second key must be "
    "{<prefix><channel>}:idem:<idempotency key>')\n"
    "    end\n"
    "    -- A retry of a publish that went through: the first id, as a\n"
    "    -- status reply so that the caller can tell.\n"
    "    local first = redis.call('GET', idem)\n"
    "    if first then return {ok = first} end\n"
    "  end\n"
    "  local id = redis.call('XADD', keys[1], 'MAXLEN', '~', MAXLEN, '*', 'd', args[1])\n"
    "  redis.call('PEXPIRE', keys[1], TTL_MS)\n"
    "  if idem then redis.call('SET', idem, id, 'PX', TTL_MS) end\n"
    "  redis.call('PUBLISH', channel, '\\030' .. id .. '\\n' .. args[1])\n"
    "  return id\n"
    "end\n"
    "\n"
    "local function read(keys, args)\n"
    "  local epoch = redis.call('SET', keys[2], args[3], 'NX', 'GET')\n"
    "  if not epoch then epoch = args[3] end\n"
    "  local t = redis.call('TIME')\n"
    "  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "  if redis.call('EXISTS', keys[1]) == 0 then return {epoch, now} end\n"
    "  local info = redis.call('XINFO', 'STREAM', keys[1])\n"
    "  local f = {}\n"
    "  for i = 1, #info, 2 do f[info[i]] = info[i + 1] end\n"
    "  local entries = {}\n"
    "  if tonumber(args[2]) <= 0 then\n"
    "    -- COUNT 0 would answer nil, not an empty list.\n"
    "  elseif args[1] == '+' then\n"
    "    entries = redis.call('XREVRANGE', keys[1], '+', '-', 'COUNT', args[2])\n"
    "  else\n"
    "    entries = redis.call('XRANGE', keys[1], '(' .. args[1], '+', 'COUNT', args[2])\n"
    "  end\n"
    "  return {epoch, now, f['length'], f['recorded-first-entry-id'], f['last-generated-id'],\n"
    "          f['max-deleted-entry-id'], f['entries-added'], entries}\n"
    "end\n"
    "\n"
    "redis.register_function('holdline_publish', publish)\n"
    "redis.register_function('holdline_read', read)\n";

void hl_rlib_source(hl_buf *b, long long length, long long ttl_ms) {
    hl_buf_puts(b, library_head);
    hl_buf_printf(b, "local MAXLEN = %lld\nlocal TTL_MS = %lld\n\n", length, ttl_ms);
    hl_buf_puts(b, library_body);
}

-- post: one chat message of a viewer (or a host, or a system line), after every check that
-- touches shared state, atomically: de-duplication, ban, timeout, slow mode, the per-viewer rate.
-- KEYS: the nine chat keys (lib/chat.lua), then 10: this message's de-duplication key.
-- ARGV: 1 viewer, 2 exempt ('1': a host, moderator or system line: no slow mode, no rate),
--       3 mode ('post' | 'hold': keep it for a moderator instead of posting), 4 rate (tokens/s),
--       5 burst, 6 log maxlen, 7 de-duplication ttl ms, 8 held id (mode hold), 9 uid, 10 name,
--       11 role, 12 text, 13 kind, 14 blocked word (mode hold)
-- Returns: {code, id, n, at, extra}
--   code 'posted' | 'held' | 'duplicate' (id: the first answer's id) | 'banned' |
--        'timeout' (extra: until, epoch ms) | 'slow' (extra: ms to wait) | 'rate' (extra: ms to wait)
--- @include "lib/chat.lua"

local viewer, exempt, mode = ARGV[1], ARGV[2] == '1', ARGV[3]
local rate, burst, maxlen, seen_ttl = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local held_id, uid, name, role, text, kind, word = ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12], ARGV[13], ARGV[14]
local K_SEEN = KEYS[10]

local seen = redis.call('GET', K_SEEN)
if seen then
  local code, id = string.match(seen, '^(%a+):(.*)$')
  return {'duplicate', id, 0, 0, code}
end
local now = now_ms()

local restricted = redis.call('HGET', K_RESTRICT, viewer)
if restricted then
  local until_ms = tonumber(string.match(restricted, '^(-?%d+)'))
  if until_ms < 0 then
    return {'banned', '', 0, 0, -1}
  elseif until_ms > now then
    return {'timeout', '', 0, 0, until_ms}
  end
  redis.call('HDEL', K_RESTRICT, viewer) -- the timeout is over
end

if not exempt then
  local slow = tonumber(redis.call('HGET', K_STATE, 'slow') or '0')
  if slow > 0 then
    local last = tonumber(redis.call('HGET', K_LAST, viewer) or '0')
    if now - last < slow * 1000 then
      return {'slow', '', 0, 0, slow * 1000 - (now - last)}
    end
  end
  local tokens, stamp = burst, now
  local bucket = redis.call('HGET', K_BUCKET, viewer)
  if bucket then
    local t, s = string.match(bucket, '^([%d.]+):(%d+)$')
    tokens = math.min(burst, tonumber(t) + (now - tonumber(s)) * rate / 1000)
  end
  if tokens < 1 then
    return {'rate', '', 0, 0, math.ceil((1 - tokens) * 1000 / rate)}
  end
  redis.call('HSET', K_BUCKET, viewer, string.format('%.3f', tokens - 1) .. ':' .. stamp)
  redis.call('HSET', K_LAST, viewer, now)
end

redis.call('HSET', K_WHO, uid, viewer)
local answer
if mode == 'hold' then
  redis.call('HSET', K_HELD, held_id, cjson.encode({
    viewer = viewer, uid = uid, name = name, role = role, text = text, kind = kind, at = now, word = word}))
  redis.call('XADD', K_LOG, 'MAXLEN', '~', maxlen, '*', 'k', 'h', 'hid', held_id, 'v', viewer, 'u', uid,
    'nm', name, 't', text, 'w', word, 'at', now)
  redis.call('SET', K_SEEN, 'held:' .. held_id, 'PX', seen_ttl)
  answer = {'held', held_id, 0, now, ''}
else
  local n = redis.call('HINCRBY', K_STATE, 'n', 1)
  local id = redis.call('XADD', K_LOG, 'MAXLEN', '~', maxlen, '*', 'k', 'm', 'n', n, 'at', now, 'v', viewer,
    'u', uid, 'nm', name, 'r', role, 't', text, 'c', kind)
  redis.call('SET', K_SEEN, 'posted:' .. id, 'PX', seen_ttl)
  answer = {'posted', id, n, now, ''}
end
keep_expiry()
return answer

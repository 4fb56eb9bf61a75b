-- held: a moderator approves a held message (it is posted as its author wrote it) or rejects it.
-- KEYS: the nine chat keys (lib/chat.lua).
-- ARGV: 1 held id, 2 'approve' | 'reject', 3 log maxlen, 4 actor name, 5 actor role, 6 actor uid
-- Returns: {code, id, n}   code 'approved' (id, n: the posted message) | 'rejected' | 'gone'
--- @include "lib/chat.lua"

local held_id, action, maxlen = ARGV[1], ARGV[2], tonumber(ARGV[3])
local raw = redis.call('HGET', K_HELD, held_id)
if not raw then
  return {'gone', '', 0}
end
local m = cjson.decode(raw)
redis.call('HDEL', K_HELD, held_id)
redis.call('XADD', K_LOG, 'MAXLEN', '~', maxlen, '*', 'k', 'hx', 'hid', held_id)
local answer = {'rejected', '', 0}
if action == 'approve' then
  local n = redis.call('HINCRBY', K_STATE, 'n', 1)
  local id = redis.call('XADD', K_LOG, 'MAXLEN', '~', maxlen, '*', 'k', 'm', 'n', n, 'at', now_ms(),
    'v', m.viewer, 'u', m.uid, 'nm', m.name, 'r', m.role, 't', m.text, 'c', m.kind)
  answer = {'approved', id, n}
end
audit(ARGV[4], ARGV[5], ARGV[6], action, m.uid, m.name, held_id)
keep_expiry()
return answer

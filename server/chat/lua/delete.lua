-- delete: remove messages from the show's chat, for everyone and from the history in Redis.
-- KEYS: the nine chat keys (lib/chat.lua).
-- ARGV: 1 log maxlen, 2 actor name, 3 actor role, 4 actor uid, 5 reason, 6.. message ids
-- Returns: the number of messages removed (0: none of them exists any more).
--- @include "lib/chat.lua"

local maxlen = tonumber(ARGV[1])
local removed = {}
local unpinned = false
local pin = redis.call('HGET', K_STATE, 'pin')
for i = 6, #ARGV do
  local id = ARGV[i]
  local found = redis.call('XRANGE', K_LOG, id, id)
  if #found == 1 then
    local f = {}
    local fields = found[1][2]
    for j = 1, #fields, 2 do
      f[fields[j]] = fields[j + 1]
    end
    if f.k == 'm' then
      redis.call('XDEL', K_LOG, id)
      removed[#removed + 1] = id
      audit(ARGV[2], ARGV[3], ARGV[4], 'delete', f.u, f.nm, ARGV[5])
      if pin and cjson.decode(pin).id == id then
        redis.call('HDEL', K_STATE, 'pin')
        unpinned = true
      end
    end
  end
end
if #removed > 0 then
  redis.call('XADD', K_LOG, 'MAXLEN', '~', maxlen, '*', 'k', 'd', 'ids', table.concat(removed, ','))
end
if unpinned then
  settings_event(maxlen)
end
keep_expiry()
return #removed

-- expire: the chat of a show that ended is kept for the retention period, then Redis drops it;
-- a show started again keeps its chat until it ends again.
-- KEYS: the nine chat keys (lib/chat.lua).
-- ARGV: 1 'end' | 'start', 2 retention ms
-- Returns: the expiry instant (epoch ms; 0 after 'start')
--- @include "lib/chat.lua"

if ARGV[1] == 'start' then
  redis.call('HDEL', K_STATE, 'expire_at')
  for i = 1, 9 do
    redis.call('PERSIST', KEYS[i])
  end
  return 0
end
local at = now_ms() + tonumber(ARGV[2])
redis.call('HSET', K_STATE, 'expire_at', at)
keep_expiry()
return at

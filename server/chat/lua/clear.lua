-- clear: every message so far disappears for everyone; the log before the clear is trimmed, so
-- the history in Redis goes too.
-- KEYS: the nine chat keys (lib/chat.lua).
-- ARGV: 1 log maxlen, 2 actor name, 3 actor role, 4 actor uid, 5 reason
-- Returns: upto, the number (n) of the last message removed.
--- @include "lib/chat.lua"

local upto = tonumber(redis.call('HGET', K_STATE, 'n') or '0')
local id = redis.call('XADD', K_LOG, 'MAXLEN', '~', tonumber(ARGV[1]), '*', 'k', 'c', 'upto', upto)
redis.call('XTRIM', K_LOG, 'MINID', id)
audit(ARGV[2], ARGV[3], ARGV[4], 'clear', '', '', ARGV[5])
keep_expiry()
return upto

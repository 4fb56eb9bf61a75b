-- restrict: time a viewer out, ban it from the show's chat, or lift either.
-- KEYS: the nine chat keys (lib/chat.lua).
-- ARGV: 1 viewer, 2 action 'timeout' | 'ban' | 'unban', 3 seconds (timeout), 4 disconnect ('1': the
--       viewer may not watch either while banned), 5 log maxlen, 6 actor name, 7 actor role,
--       8 actor uid, 9 target uid, 10 target name, 11 reason, 12 scope ('show' | 'deployment': the
--       ban itself lives in the deployment's hash, written by the caller; recorded here)
-- Returns: until (epoch ms; -1 for a ban, 0 when lifted)
--- @include "lib/chat.lua"

local viewer, action, seconds, disconnect = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local until_ms = 0
if ARGV[12] == 'show' then
  if action == 'unban' then
    redis.call('HDEL', K_RESTRICT, viewer)
  else
    until_ms = -1
    if action == 'timeout' then
      until_ms = now_ms() + seconds * 1000
    end
    redis.call('HSET', K_RESTRICT, viewer, until_ms .. ':' .. disconnect)
  end
end
redis.call('XADD', K_LOG, 'MAXLEN', '~', tonumber(ARGV[5]), '*', 'k', 'r', 'v', viewer, 'until', until_ms,
  'dc', disconnect, 'scope', ARGV[12])
local detail = ARGV[11]
if action == 'timeout' then
  detail = seconds .. 's' .. (detail ~= '' and (' · ' .. detail) or '')
end
audit(ARGV[6], ARGV[7], ARGV[8], action .. (ARGV[12] == 'deployment' and ':deployment' or ''), ARGV[9], ARGV[10], detail)
keep_expiry()
return until_ms

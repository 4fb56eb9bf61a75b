-- configure: change the show's chat settings (slow mode, claim keyword, blocked words and what
-- they do) or the pinned message, and tell every node.
-- KEYS: the nine chat keys (lib/chat.lua).
-- ARGV: 1 log maxlen, 2 actor name, 3 actor role, 4 actor uid, 5 action, 6 detail, 7 pin id ('' or
--       a message id that must still exist for a pin to be set), then field/value pairs of the
--       settings hash ('' deletes the field): slow, kw, words, wact, pin
-- Returns: 1, or 0 when the message to pin no longer exists (nothing changed).
--- @include "lib/chat.lua"

local maxlen = tonumber(ARGV[1])
if ARGV[7] ~= '' and #redis.call('XRANGE', K_LOG, ARGV[7], ARGV[7]) == 0 then
  return 0
end
for i = 8, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', K_STATE, ARGV[i])
  else
    redis.call('HSET', K_STATE, ARGV[i], ARGV[i + 1])
  end
end
settings_event(maxlen)
audit(ARGV[2], ARGV[3], ARGV[4], ARGV[5], '', '', ARGV[6])
keep_expiry()
return 1

-- sweep: expire holds whose deadline has passed, hand the units to the waitlist, and close a
-- drop whose end time has come. Every node runs it; a bounded batch per call.
-- KEYS: the ten drop keys of lib/drop.lua.
-- ARGV: max_holds (how many due holds this call may expire).
-- Returns: {code, counters, expired, more, next_due_ms, closed}
--   code 'ok' | 'unknown_drop'; more 1 when due holds are left for another call;
--   next_due_ms the earliest deadline still pending (0 if none); closed 1 if this call ended
--   the drop because its end time passed.
--- @include "lib/drop.lua"

if not load_drop() then
  return {'unknown_drop', {}, 0, 0, 0, 0}
end
local expired = expire_due(tonumber(ARGV[1]))
local closed = 0
if D.state == 'live' and D.ends_at > 0 and NOW >= D.ends_at then
  D.state = 'closed'
  -- closed_at is when sales stopped (the end time, not this sweep's NOW, which may be late):
  -- the reconciler keeps a drop in its window from then, as it does for a host's close.
  redis.call('HSET', K_META, 'state', 'closed', 'end_reason', 'time', 'closed_at', D.ends_at)
  ledger('close', 0, 0, 0, 0, 0, {'reason', 'time'})
  closed = 1
end
handout()
save()
local more = redis.call('ZCOUNT', K_EXPIRY, '-inf', NOW) > 0 and 1 or 0
local first = redis.call('ZRANGE', K_EXPIRY, 0, 0, 'WITHSCORES')
local next_due = first[2] and tonumber(first[2]) or 0
return {'ok', counters(), expired, more, next_due, closed}

-- set_state: launch a drop (live) or end it (closed). Launching serves the waitlist first.
-- KEYS: the twelve drop keys of lib/drop.lua.
-- ARGV: state ('live' | 'closed'), reason (why it ended: 'host', 'sold_out', 'time'),
--       ends_at ('' = unchanged, 0 = no end time, else epoch ms; only with 'live'),
--       duration_ms ('' or the drop's length from now, by Redis' clock; only with 'live')
-- Returns: {code, counters, state, ends_at}
--   code: 'changed' | 'unchanged' (already in that state) | 'unknown_drop'
--- @include "lib/drop.lua"

if not load_drop() then
  return {'unknown_drop', {}, '', 0}
end
local state, reason = ARGV[1], ARGV[2]
if state == 'live' then
  if ARGV[4] ~= '' then
    D.ends_at = NOW + tonumber(ARGV[4])
  elseif ARGV[3] ~= '' then
    D.ends_at = tonumber(ARGV[3])
  end
  redis.call('HSET', K_META, 'ends_at', D.ends_at)
end
if D.state == state then
  return {'unchanged', counters(), D.state, D.ends_at}
end
D.state = state
if state == 'live' then
  redis.call('HSET', K_META, 'state', state, 'end_reason', '', 'opened_at', NOW)
  ledger('open', 0, 0, 0, 0, 0, {'ends_at', D.ends_at})
  handout()
else
  redis.call('HSET', K_META, 'state', state, 'end_reason', reason, 'closed_at', NOW)
  ledger('close', 0, 0, 0, 0, 0, {'reason', reason})
end
save()
return {'changed', counters(), D.state, D.ends_at}

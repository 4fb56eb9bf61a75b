-- adjust: restock (delta > 0) or withdraw units (delta < 0). total and available move
-- together; never below what is held + sold. New units go to the waitlist first.
-- KEYS: the twelve drop keys of lib/drop.lua.
-- ARGV: request_id, delta
-- Returns: {code, counters, duplicate}
--   code: 'adjusted' | 'unknown_drop' | 'insufficient' (available + delta < 0; nothing changed)
--- @include "lib/drop.lua"

if not load_drop() then
  return {'unknown_drop', {}, 0}
end
local request_id, delta = ARGV[1], tonumber(ARGV[2])
if redis.call('HEXISTS', K_REQUESTS, request_id) == 1 then
  return {'adjusted', counters(), 1}
end
expire_due(EXPIRE_BATCH)
-- Units that just came back from expired holds go to the waitlist first, as everywhere else,
-- even when this withdrawal is then refused: no unit sits on sale while someone waits for it.
handout()
if D.available + delta < 0 then
  save()
  return {'insufficient', counters(), 0}
end
D.total = D.total + delta
D.available = D.available + delta
redis.call('HSET', K_REQUESTS, request_id, cmsgpack.pack({'adjusted', delta}))
ledger(delta >= 0 and 'restock' or 'withdraw', delta, 0, 0, delta, 0, {'req', request_id})
handout()
save()
return {'adjusted', counters(), 0}

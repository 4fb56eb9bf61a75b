-- fast_forward: move this drop's clock ahead, for rehearsals ("what happens when every hold
-- runs out?") and for tests that jump time. Never moves it back: deadlines stay monotonic.
-- KEYS: the twelve drop keys of lib/drop.lua.
-- ARGV: ms (> 0)
-- Returns: {code, clock_ms}   code: 'ok' | 'unknown_drop'
--- @include "lib/drop.lua"

if not load_drop() then
  return {'unknown_drop', 0}
end
local clock = redis.call('HINCRBY', K_META, 'clock_ms', tonumber(ARGV[1]))
ledger('fast_forward', 0, 0, 0, 0, 0, {'ms', ARGV[1]})
return {'ok', clock}

-- configure: change a drop's rules. Holds already granted keep their deadline.
-- KEYS: the twelve drop keys of lib/drop.lua.
-- ARGV: limit, hold_ms, ends_at — each '' to leave it unchanged; ends_at 0 clears the end time.
-- Returns: {code, counters}   code: 'configured' | 'unknown_drop'
--- @include "lib/drop.lua"

if not load_drop() then
  return {'unknown_drop', {}}
end
local names = {'limit', 'hold_ms', 'ends_at'}
local changes = {}
for i, name in ipairs(names) do
  if ARGV[i] ~= '' then
    redis.call('HSET', K_META, name, tonumber(ARGV[i]))
    changes[#changes + 1] = name
    changes[#changes + 1] = ARGV[i]
  end
end
ledger('configure', 0, 0, 0, 0, 0, changes)
return {'configured', counters()}

-- define: create a drop in state 'draft' with its stock and rules. Defining it again with the
-- same settings is a no-op (a retried create); with other settings it is a conflict.
-- KEYS: the twelve drop keys of lib/drop.lua.
-- ARGV: drop_id, show_id, total, limit (0 = none), hold_ms, salt (128 random bits, hex: seeds the
--       nonces of the drop's hold references; kept in meta, never returned), then optionally
--       cprefix ('' or '<variant>|': whose per-customer counts this limit reads, lib/drop.lua),
--       variants (how many the drop has: a drop with variants sells none itself), and pairs of
--       (meta field, value) describing it, written once (a variant's name and SKU; a drop's
--       variants as `v:<variant>` -> `<position>|<sku>`). A variant is defined like a drop, with
--       its own keys and drop_id `<drop>~<variant>` (stock/keys.py).
-- Returns: {code, counters}   code: 'defined' | 'exists' | 'conflict'
--- @include "lib/drop.lua"

local drop_id, show_id = ARGV[1], ARGV[2]
local total, limit, hold_ms = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local cprefix, variants = ARGV[7] or '', tonumber(ARGV[8] or '0')
if load_drop() then
  local same = redis.call('HMGET', K_META, 'show', 'initial_total', 'limit', 'hold_ms', 'cprefix', 'variants')
  if same[1] == show_id and tonumber(same[2]) == total and tonumber(same[3]) == limit
      and tonumber(same[4]) == hold_ms and (same[5] or '') == cprefix and tonumber(same[6] or '0') == variants then
    return {'exists', counters()}
  end
  return {'conflict', counters()}
end
redis.call('HSET', K_META, 'id', drop_id, 'show', show_id, 'state', 'draft', 'total', 0,
  'available', 0, 'held', 0, 'sold', 0, 'oversold', 0, 'limit', limit, 'hold_ms', hold_ms,
  'ends_at', 0, 'hold_seq', 0, 'wait_seq', 0, 'clock_ms', 0, 'initial_total', total, 'salt', ARGV[6],
  'cprefix', cprefix, 'variants', variants)
for i = 9, #ARGV - 1, 2 do
  redis.call('HSET', K_META, ARGV[i], ARGV[i + 1])
end
load_drop()
D.total = total
D.available = total
ledger('define', total, 0, 0, total, 0, {'show', show_id, 'limit', limit, 'hold_ms', hold_ms})
save()
return {'defined', counters()}

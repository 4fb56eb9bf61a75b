-- Mark a SKU dirty on every channel after its drop's ledger moved, once per ledger position.
-- KEYS[1]  cursor hash: drop id -> last ledger id marked
-- KEYS[2]  stock hash: sku -> "<available> <change ms>"
-- KEYS[3 .. 2+n]      dirty hash of each channel: sku -> "<generation> <first unpushed change ms>"
-- KEYS[3+n .. 2+2n]   unapplied hash of each channel: sku -> units the platform sold that the
--                     ledger has not shown yet (see push.py)
-- ARGV[1] drop id, ARGV[2] the cursor the caller read ('' = none), ARGV[3] the new cursor,
-- ARGV[4] sku, ARGV[5] available after the change, ARGV[6] change ms, ARGV[7] n,
-- ARGV[7+i] units of channel i's own orders applied by these ledger entries (sold minus restocked)
-- Returns 1 if marked, 0 if another node marked this position first (nothing written).
local n = tonumber(ARGV[7])
local cursor = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if cursor ~= ARGV[2] then
  return 0
end
local sku = ARGV[4]
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[2], sku, ARGV[5] .. ' ' .. ARGV[6])
for i = 1, n do
  local dirty = KEYS[2 + i]
  local raw = redis.call('HGET', dirty, sku)
  if raw then
    local gen, first = string.match(raw, '^(%d+) (%d+)$')
    redis.call('HSET', dirty, sku, (tonumber(gen) + 1) .. ' ' .. first)
  else
    redis.call('HSET', dirty, sku, '1 ' .. ARGV[6])
  end
  local applied = tonumber(ARGV[7 + i])
  if applied ~= 0 then
    redis.call('HINCRBY', KEYS[2 + n + i], sku, -applied)
  end
end
return 1

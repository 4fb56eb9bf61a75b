-- erase: the right to deletion (DESIGN §10). Replaces a customer's id by a tombstone in holds,
-- order lines, the per-customer counter, the waitlist and every ledger entry of this drop,
-- changing no counter. The ledger is rewritten under the same entry ids, so readers that
-- resume from an id are unaffected. Cost is linear in the drop's history: a rare operation.
-- KEYS: the twelve drop keys of lib/drop.lua.
-- ARGV: customer, tombstone
-- Returns: {code, counters, places}   code: 'erased' | 'unknown_drop'; places = ids replaced
--- @include "lib/drop.lua"

if not load_drop() then
  return {'unknown_drop', {}, 0}
end
local customer, tombstone = ARGV[1], ARGV[2]
local places = 0

local holds = redis.call('HGETALL', K_HOLDS)
for i = 1, #holds, 2 do
  local h = cmsgpack.unpack(holds[i + 1])
  if h.c == customer then
    h.c = tombstone
    put_hold(holds[i], h)
    places = places + 1
  end
end

local lines = redis.call('HGETALL', K_ORDERS)
for i = 1, #lines, 2 do
  local rec = cmsgpack.unpack(lines[i + 1])
  if type(rec) == 'table' and rec.c == customer then
    rec.c = tombstone
    redis.call('HSET', K_ORDERS, lines[i], cmsgpack.pack(rec))
    places = places + 1
  end
end

local units = redis.call('HGET', K_CUSTOMERS, D.cprefix .. customer)
if units then
  redis.call('HDEL', K_CUSTOMERS, D.cprefix .. customer)
  redis.call('HSET', K_CUSTOMERS, D.cprefix .. tombstone, units)
  places = places + 1
end

local position = redis.call('ZSCORE', K_WAITLIST, customer)
if position then
  local wanted = redis.call('HGET', K_WAITQTY, customer)
  redis.call('ZREM', K_WAITLIST, customer)
  redis.call('HDEL', K_WAITQTY, customer)
  redis.call('ZADD', K_WAITLIST, position, tombstone)
  redis.call('HSET', K_WAITQTY, tombstone, wanted or '1')
  places = places + 1
end

-- The customer of a packed entry's reservation i is item 3i+1 of its comma-separated `b`
-- (lib/drop.lua, flush_reserves); returns the rewritten `b` and how many it replaced.
local function erase_packed(packed)
  local items, replaced = {}, 0
  for item in string.gmatch(packed, '[^,]+') do
    if #items % 3 == 0 and item == customer then
      item = tombstone
      replaced = replaced + 1
    end
    items[#items + 1] = item
  end
  return table.concat(items, ','), replaced
end

local entries = redis.call('XRANGE', K_LEDGER, '-', '+')
local touched = 0
for _, entry in ipairs(entries) do
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == 'cust' and fields[i + 1] == customer then
      fields[i + 1] = tombstone
      touched = touched + 1
    elseif fields[i] == 'b' then
      local packed, replaced = erase_packed(fields[i + 1])
      fields[i + 1] = packed
      touched = touched + replaced
    end
  end
end
if touched > 0 then
  redis.call('DEL', K_LEDGER)
  for _, entry in ipairs(entries) do
    redis.call('XADD', K_LEDGER, entry[1], unpack(entry[2]))
  end
  places = places + touched
end
if places > 0 then
  ledger('erase', 0, 0, 0, 0, 0, {'cust', tombstone})
end
return {'erased', counters(), places}

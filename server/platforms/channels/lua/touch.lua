-- Mark one SKU dirty on one channel without a stock change (a new mapping, a retry after an error).
-- KEYS[1] the channel's dirty hash. ARGV[1] sku, ARGV[2] change ms.
-- Returns the new dirty value.
local raw = redis.call('HGET', KEYS[1], ARGV[1])
local value
if raw then
  local gen, first = string.match(raw, '^(%d+) (%d+)$')
  value = (tonumber(gen) + 1) .. ' ' .. first
else
  value = '1 ' .. ARGV[2]
end
redis.call('HSET', KEYS[1], ARGV[1], value)
return value

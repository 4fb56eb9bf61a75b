-- A reference, not part of the engine: the least a reservation with a hold can cost Redis, run by
-- bench/stock.py through redis-benchmark beside the real reserve script so that every engine
-- figure is a ratio to it, measured in the same run (issue 17). It does what any reserve must:
-- read the clock, a conditional decrement of the stock, a hold record and an expiry entry. It
-- has none of the engine's guarantees (no idempotency, no limits, no ledger, no waitlist).
-- KEYS: 1 stock (hash, field 'available'), 2 holds (hash: hold id -> qty), 3 expiry (zset)
-- ARGV: hold_ms, then pairs (hold id, qty), served in order
-- Returns: how many holds were granted
local available = tonumber(redis.call('HGET', KEYS[1], 'available') or '0')
local t = redis.call('TIME')
local deadline = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
local holds, expiry = {}, {}
for i = 2, #ARGV - 1, 2 do
  local qty = tonumber(ARGV[i + 1])
  if qty <= available then
    available = available - qty
    holds[#holds + 1] = ARGV[i]
    holds[#holds + 1] = qty
    expiry[#expiry + 1] = deadline
    expiry[#expiry + 1] = ARGV[i]
  end
end
if #holds > 0 then
  redis.call('HSET', KEYS[1], 'available', available)
  redis.call('HSET', KEYS[2], unpack(holds))
  redis.call('ZADD', KEYS[3], unpack(expiry))
end
return #holds / 2

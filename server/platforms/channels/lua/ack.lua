-- Record what a channel holds for a SKU, and clear its dirty mark unless it moved meanwhile.
-- KEYS[1] the channel's dirty hash, KEYS[2] its state hash, KEYS[3] its unapplied hash
-- ARGV[1] sku, ARGV[2] the dirty value the flush read ('' = do not clear), ARGV[3] the state JSON,
-- ARGV[4] units to add to unapplied (a compare-and-swap saw the platform's own sales)
-- Returns {cleared (0/1), Redis time in ms}.
local cleared = 0
if ARGV[2] ~= '' and redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  cleared = 1
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
local extra = tonumber(ARGV[4])
if extra ~= 0 then
  redis.call('HINCRBY', KEYS[3], ARGV[1], extra)
end
local now = redis.call('TIME')
return {cleared, tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)}

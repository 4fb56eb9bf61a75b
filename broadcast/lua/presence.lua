-- presence: a node reports its viewer count for one show; returns the show's audience.
-- KEYS: 1 counts (hash: node -> viewers), 2 seen (zset: node -> last report, ms by Redis' TIME),
--       3 the hash of report times that nodes kept on their own clocks before (deleted)
-- ARGV: node, count (a number: report it | 'leave': remove the node's entry | '': only read),
--       ttl_ms (an entry older than this is a dead node's: deleted, not counted),
--       exclude (a node whose entry is left out of the sum, '' = none)
-- Returns: {total, now_ms}   total: the sum of fresh entries; now_ms: Redis' clock.
-- One clock: freshness is judged by Redis' TIME, never by the nodes' own clocks, so skewed
-- nodes neither drop out of the count nor stay in it forever. Counts without a report time
-- (written before this script) are stale by definition and deleted too.
local node, count, ttl, exclude = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
redis.call('DEL', KEYS[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if count == 'leave' then
  redis.call('HDEL', KEYS[1], node)
  redis.call('ZREM', KEYS[2], node)
elseif count ~= '' then
  redis.call('HSET', KEYS[1], node, tonumber(count))
  redis.call('ZADD', KEYS[2], now, node)
end
for _, dead in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. (now - ttl))) do
  redis.call('HDEL', KEYS[1], dead)
  redis.call('ZREM', KEYS[2], dead)
end
local total = 0
local counts = redis.call('HGETALL', KEYS[1])
for i = 1, #counts, 2 do
  local name = counts[i]
  if not redis.call('ZSCORE', KEYS[2], name) then
    redis.call('HDEL', KEYS[1], name)
  elseif name ~= exclude then
    total = total + tonumber(counts[i + 1])
  end
end
return {total, now}

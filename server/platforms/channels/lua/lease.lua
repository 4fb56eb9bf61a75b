-- Take or renew a channel's lease. KEYS[1] the lease key. ARGV[1] this node's token, ARGV[2] ms.
-- Returns 1 when this node holds the lease for ARGV[2] ms from now, 0 when another node does.
local holder = redis.call('GET', KEYS[1])
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0

-- Give a lease up if this node holds it. KEYS[1] the lease key, ARGV[1] this node's token.
-- Returns 1 if released.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0

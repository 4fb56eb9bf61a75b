-- order_sale: remember which drop each line of a platform order went to, and tell whether a
-- whole-order cancellation came first. Write first, then read, in one step: a concurrent
-- order_cancel either sees these lines or is seen here (see server/platforms/webhooks/apply.py).
-- KEYS: 1 the order's hash, ld:order:<platform>:<order id>
-- ARGV: 1 ttl_seconds of the hash (refreshed); 2.. 'l:<line id>', drop id, 'l:<line id>', drop id ...
-- Returns: the cancel event recorded by a whole-order cancellation, or nil if there was none

local ttl = tonumber(ARGV[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], ttl)
return redis.call('HGET', KEYS[1], 'cancelled')

-- order_cancel: mark a platform order cancelled as a whole, and list the lines its sales
-- recorded, in one step (the counterpart of order_sale.lua). The first cancel event is kept.
-- KEYS: 1 the order's hash, ld:order:<platform>:<order id>
-- ARGV: 1 ttl_seconds of the hash (refreshed); 2 the cancel event name
-- Returns: {'l:<line id>', drop id, ...} for every line recorded so far (maybe empty)

local ttl = tonumber(ARGV[1])
redis.call('HSETNX', KEYS[1], 'cancelled', ARGV[2])
redis.call('EXPIRE', KEYS[1], ttl)
local all = redis.call('HGETALL', KEYS[1])
local lines = {}
for i = 1, #all, 2 do
  if string.sub(all[i], 1, 2) == 'l:' then
    lines[#lines + 1] = all[i]
    lines[#lines + 1] = all[i + 1]
  end
end
return lines

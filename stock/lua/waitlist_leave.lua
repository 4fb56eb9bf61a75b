-- waitlist_leave: a viewer gives up its place in the waitlist.
-- KEYS: the twelve drop keys of lib/drop.lua.
-- ARGV: customer
-- Returns: {code, counters}   code: 'left' | 'not_waiting' | 'unknown_drop'
--- @include "lib/drop.lua"

if not load_drop() then
  return {'unknown_drop', {}}
end
local customer = ARGV[1]
if redis.call('ZREM', K_WAITLIST, customer) == 0 then
  return {'not_waiting', counters()}
end
redis.call('HDEL', K_WAITQTY, customer)
ledger('wait_leave', 0, 0, 0, 0, 0, {'cust', customer})
return {'left', counters()}

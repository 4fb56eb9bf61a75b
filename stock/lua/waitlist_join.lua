-- waitlist_join: a viewer who met sold_out queues for units that come back (FIFO).
-- KEYS: the twelve drop keys of lib/drop.lua.
-- ARGV: customer, qty
-- Returns: {code, counters, position}
--   code: 'waitlisted' | 'duplicate' (already waiting; its position) | 'available' (units are
--         on sale: reserve instead) | 'not_live' | 'limit_exceeded' | 'unknown_drop'
--- @include "lib/drop.lua"

if not load_drop() then
  return {'unknown_drop', {}, 0}
end
local customer, qty = ARGV[1], tonumber(ARGV[2])
if redis.call('ZSCORE', K_WAITLIST, customer) then
  return {'duplicate', counters(), redis.call('ZRANK', K_WAITLIST, customer) + 1}
end
if not is_selling() then
  return {'not_live', counters(), 0}
end
if D.limit > 0 and customer_units(customer) + qty > D.limit then
  return {'limit_exceeded', counters(), 0}
end
expire_due(EXPIRE_BATCH)
handout()
if D.available >= qty then
  save()
  return {'available', counters(), 0}
end
D.wait_seq = D.wait_seq + 1
redis.call('ZADD', K_WAITLIST, D.wait_seq, customer)
redis.call('HSET', K_WAITQTY, customer, qty)
ledger('wait_join', 0, 0, 0, 0, 0, {'cust', customer, 'qty', qty})
save()
return {'waitlisted', counters(), redis.call('ZRANK', K_WAITLIST, customer) + 1}

-- cancel: a platform cancelled or refunded units of an order line. Units counted in sold go
-- back on sale (waitlist first); units counted as oversold lower oversold instead (they were
-- never in sold). A cancel that comes before its order leaves a tombstone: that order is
-- then ignored — unless the checkout had confirmed a hold with this order id, which is
-- restocked as the line it stands for.
-- KEYS: the ten drop keys of lib/drop.lua.
-- ARGV: line_key, event ('cancel' or a refund id: each event counts once), order_id,
--       qty (0 = everything left on the line)
-- Returns: {code, counters, restocked, unoversold}
--   code: 'restocked' | 'duplicate' | 'tombstoned' | 'unknown_drop'
--- @include "lib/drop.lua"
--- @include "lib/orders.lua"

if not load_drop() then
  return {'unknown_drop', {}, 0, 0}
end
local line_key, event, order_id, qty = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local event_key = line_key .. '#' .. event
if redis.call('HEXISTS', K_ORDERS, event_key) == 1 then
  return {'duplicate', counters(), 0, 0}
end
redis.call('HSET', K_ORDERS, event_key, 1)

local rec = get_line(line_key)
if not rec then
  local hold_id, h = find_hold('', order_id, line_key)
  if h then
    h.m = line_key
    put_hold(hold_id, h)
    rec = {st = 'sold', sold = h.q, over = 0, bs = 0, bo = 0, hold = hold_id, c = h.c, cq = h.q}
  else
    put_line(line_key, {st = 'cancelled_first', sold = 0, over = 0, bs = 0, bo = 0, hold = '',
      c = '', cq = 0})
    ledger('cancel_first', 0, 0, 0, 0, 0, {'line', line_key, 'order', order_id, 'event', event})
    return {'tombstoned', counters(), 0, 0}
  end
end
if rec.st ~= 'sold' then
  return {'tombstoned', counters(), 0, 0}
end

local left = rec.sold + rec.over - rec.bs - rec.bo
local n = left
if qty > 0 then
  n = math.min(qty, left)
end
local from_over = math.min(n, rec.over - rec.bo)
local from_sold = n - from_over
rec.bo = rec.bo + from_over
rec.bs = rec.bs + from_sold
D.oversold = D.oversold - from_over
D.sold = D.sold - from_sold
D.available = D.available + from_sold
if rec.c ~= '' then
  local freed = math.min(from_sold, rec.cq)
  rec.cq = rec.cq - freed
  customer_add(rec.c, -freed)
end
put_line(line_key, rec)
ledger('cancel', from_sold, 0, -from_sold, 0, -from_over, {'line', line_key, 'order', order_id,
  'event', event, 'qty', n, 'hold', rec.hold})
handout()
save()
return {'restocked', counters(), from_sold, from_over}

-- cancel: a platform cancelled or refunded units of an order line. Units counted in sold go
-- back on sale (waitlist first); units counted as oversold lower oversold instead (they were
-- never in sold). One that comes before its order leaves a tombstone saying what it gave back:
-- a whole-line cancel makes the order be ignored, a partial refund is applied by the order when
-- it comes, so every delivery order ends in the same state. If the checkout had confirmed a hold
-- with this order id, that hold is restocked as the line it stands for instead.
-- KEYS: the twelve drop keys of lib/drop.lua.
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
  local hold_id, h = find_hold('', '', order_id, line_key)
  if h then
    h.m = line_key
    put_hold(hold_id, h)
    rec = {st = 'sold', sold = h.q, over = 0, bs = 0, bo = 0, hold = hold_id, c = h.c, cq = h.q}
  else
    rec = {st = 'cancelled_first', sold = 0, over = 0, bs = 0, bo = 0, hold = '', c = '', cq = 0,
      whole = 0, rf = {}}
  end
end
if rec.st == 'cancelled_first' then
  if rec.whole == 0 then
    if qty == 0 then
      rec.whole = 1
    else
      rec.rf[#rec.rf + 1] = {event, qty}
    end
    put_line(line_key, rec)
  end
  ledger('cancel_first', 0, 0, 0, 0, 0, {'line', line_key, 'order', order_id, 'event', event,
    'qty', qty > 0 and qty or ''})
  return {'tombstoned', counters(), 0, 0}
end
if rec.st ~= 'sold' then
  return {'tombstoned', counters(), 0, 0}
end

local from_sold, from_over = give_back(line_key, rec, event, order_id, qty)
put_line(line_key, rec)
handout()
save()
return {'restocked', counters(), from_sold, from_over}

-- order: a platform sold units of this drop (a paid/created order line from a webhook).
-- It confirms the hold it names (or one the checkout confirmed with this order id); what the
-- hold does not cover comes from available; what available cannot cover counts as oversold.
-- KEYS: the twelve drop keys of lib/drop.lua.
-- ARGV: line_key (platform|order|line), order_id, qty, hold_id ('' if none), nonce (of the hold
--       reference the order carried, verified by the caller's MAC check; the hold must have it),
--       why ('' or the reason the caller found the order's hold reference unusable before asking:
--       'hold_ref_invalid' (failed the MAC check), 'hold_other_drop'; recorded in the ledger)
-- Returns: {code, counters, sold, oversold, hold_id, why, state}
--   code: 'applied' | 'duplicate' (line seen before: its first result) |
--         'ignored' (a whole-line cancel for this line came first: a live hold it names is
--         released) | 'unknown_drop'
--   why: '' or why the named hold did not pay: 'hold_not_found' | 'hold_ref_invalid' |
--        'hold_taken' | 'hold_expired' | 'hold_released'
--   state: the drop's state ('closed': a platform sold units of a drop that has ended)
--- @include "lib/drop.lua"
--- @include "lib/orders.lua"

if not load_drop() then
  return {'unknown_drop', {}, 0, 0, '', '', ''}
end
local line_key, order_id, qty, wanted_hold, nonce = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local why_given = ARGV[6] or ''
local rec = get_line(line_key)
local pending = {}  -- partial refunds that came before this order: applied once it is sold
if rec then
  if rec.st == 'cancelled_first' and rec.whole ~= 0 then
    rec.st = 'ignored'
    put_line(line_key, rec)
    ledger('order_ignored', 0, 0, 0, 0, 0, {'line', line_key})
    -- The hold this cancelled order was for will never be paid: its units go back now, as the
    -- cancel would have given them back had the order come first.
    local hold_id, h = find_hold(wanted_hold, nonce, order_id, line_key)
    if h and h.s == 'held' then
      end_hold(hold_id, h, h.e <= NOW and 'expired' or 'released')
      handout()
      save()
    end
    return {'ignored', counters(), 0, 0, '', '', D.state}
  end
  if rec.st == 'ignored' then
    return {'ignored', counters(), 0, 0, '', '', D.state}
  end
  if rec.st ~= 'cancelled_first' then
    return {'duplicate', counters(), rec.sold, rec.over, rec.hold, '', D.state}
  end
  pending = rec.rf
end

local hold_id, h, why = find_hold(wanted_hold, nonce, order_id, line_key)
if not h and wanted_hold == '' and why_given ~= '' then
  why = why_given
end
local da, dh, ds = 0, 0, 0
local covered, customer = 0, ''
if h and h.s == 'held' and h.e <= NOW then
  -- Past its deadline: the hold is gone, but the sale it was for is real. No hand-out to the
  -- waitlist before this line has taken what it needs.
  end_hold(hold_id, h, 'expired')
end
if h and h.s == 'held' then
  h.s = 'confirmed'
  h.o = order_id
  redis.call('ZREM', K_EXPIRY, hold_id)
  D.held = D.held - h.q
  D.sold = D.sold + h.q
  dh, ds = -h.q, h.q
  tally('holds_confirmed', 1)
end
if h and h.s == 'confirmed' then
  h.m = line_key
  put_hold(hold_id, h)
  covered, customer = h.q, h.c
else
  if h then
    why = 'hold_' .. h.s
  end
  hold_id = ''
end

local over = 0
local rest = qty - covered
if rest > 0 then
  local take = math.min(rest, D.available)
  D.available = D.available - take
  D.sold = D.sold + take
  da, ds = da - take, ds + take
  over = rest - take
  D.oversold = D.oversold + over
elseif rest < 0 then
  -- The hold was for more units than the order bought: the surplus goes back on sale.
  D.sold = D.sold + rest
  D.available = D.available - rest
  da, ds = da - rest, ds + rest
  customer_add(customer, rest)
  covered = qty
end
rec = {st = 'sold', sold = qty - over, over = over, bs = 0, bo = 0, hold = hold_id, c = customer, cq = covered}
if over > 0 then
  tally('oversold_lines', 1)
end
ledger('order', da, dh, ds, 0, over, {'line', line_key, 'order', order_id, 'qty', qty,
  'hold', hold_id, 'cust', customer, 'alert', over > 0 and 'oversold' or '', 'why', why,
  'state', D.state ~= 'live' and D.state or ''})
for _, refund in ipairs(pending) do
  give_back(line_key, rec, refund[1], order_id, tonumber(refund[2]))
end
put_line(line_key, rec)
handout()
save()
return {'applied', counters(), qty - over, over, hold_id, why, D.state}

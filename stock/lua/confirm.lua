-- confirm: a live hold becomes a sale (held -> sold), e.g. when the trusted checkout is paid.
-- KEYS: the twelve drop keys of lib/drop.lua.
-- ARGV: hold_id, order_ref (the platform's order id, so its webhook is matched later; may be ''),
--       nonce (from a verified hold reference: the hold must have it; '' for a trusted caller that
--       names the hold by id, e.g. the demo's own bots)
-- Returns: {code, counters, qty, order_ref, duplicate}
--   code: 'confirmed' | 'unknown_drop' | 'unknown_hold' | 'expired' | 'released' | 'hold_taken'
--   duplicate 1 when the hold was confirmed before with this same order_ref. A hold confirmed
--   with another order ref is 'hold_taken' (two payments for one hold: a conflict, not a retry);
--   its order_ref is then the one it was confirmed with.
--- @include "lib/drop.lua"

if not load_drop() then
  return {'unknown_drop', {}, 0, '', 0}
end
local hold_id, order_ref, nonce = ARGV[1], ARGV[2], ARGV[3]
local h = get_hold(hold_id)
if not h or (nonce ~= '' and h.n ~= nonce) then
  -- A reference for another incarnation of this hold id names no hold at all.
  return {'unknown_hold', counters(), 0, '', 0}
end
if h.s == 'confirmed' then
  if h.o == order_ref then
    return {'confirmed', counters(), h.q, h.o, 1}
  end
  -- Recorded for reconciliation (no counter moves): someone paid for a hold already sold.
  ledger('confirm_conflict', 0, 0, 0, 0, 0, {'hold', hold_id, 'order', order_ref, 'by', h.o})
  return {'hold_taken', counters(), h.q, h.o, 0}
end
if h.s == 'held' and h.e <= NOW then
  -- The sweeper has not reached it yet: it is expired all the same, and says so.
  end_hold(hold_id, h, 'expired')
  handout()
  save()
end
if h.s ~= 'held' then
  return {h.s, counters(), h.q, '', 0}
end

h.s = 'confirmed'
h.o = order_ref
put_hold(hold_id, h)
redis.call('ZREM', K_EXPIRY, hold_id)
if order_ref ~= '' then
  local refs = redis.call('HGET', K_ORDERREFS, order_ref)
  redis.call('HSET', K_ORDERREFS, order_ref, refs and (refs .. ',' .. hold_id) or hold_id)
end
D.held = D.held - h.q
D.sold = D.sold + h.q
tally('holds_confirmed', 1)
ledger('confirm', 0, -h.q, h.q, 0, 0, {'hold', hold_id, 'cust', h.c, 'qty', h.q, 'order', order_ref})
save()
return {'confirmed', counters(), h.q, order_ref, 0}

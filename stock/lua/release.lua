-- release: a live hold gives its units back (held -> available), first to the waitlist.
-- KEYS: the twelve drop keys of lib/drop.lua.
-- ARGV: hold_id, customer ('' = any: a trusted caller; else the hold must be this customer's).
--       nonce (optional: from a verified hold reference; the hold must have it)
-- Returns: {code, counters, qty, duplicate}
--   code: 'released' | 'unknown_drop' | 'unknown_hold' | 'not_owner' | 'expired' | 'confirmed'
--   duplicate 1 when the hold had been released before.
--- @include "lib/drop.lua"

if not load_drop() then
  return {'unknown_drop', {}, 0, 0}
end
local hold_id, customer, nonce = ARGV[1], ARGV[2], ARGV[3] or ''
local h = get_hold(hold_id)
if not h or (nonce ~= '' and h.n ~= nonce) then
  return {'unknown_hold', counters(), 0, 0}
end
if customer ~= '' and h.c ~= customer then
  return {'not_owner', counters(), 0, 0}
end
if h.s == 'released' then
  return {'released', counters(), h.q, 1}
end
if h.s == 'held' then
  end_hold(hold_id, h, h.e <= NOW and 'expired' or 'released')
  handout()
  save()
  if h.s == 'released' then
    return {'released', counters(), h.q, 0}
  end
end
return {h.s, counters(), h.q, 0}

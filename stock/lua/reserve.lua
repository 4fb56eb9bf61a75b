-- reserve: take units from `available` into holds, for one request or a batch of them.
-- KEYS: the ten drop keys of lib/drop.lua.
-- ARGV: n, then n triples (request_id, customer, qty), answered in this order (FIFO).
-- Returns: {status, counters, answers}
--   status   'ok' | 'unknown_drop'
--   counters {total, available, held, sold, oversold} after the whole batch
--   answers  n × {code, hold_id, qty, expires_ms, duplicate}
--            code: 'reserved' | 'sold_out' | 'limit_exceeded' | 'not_live' | 'invalid';
--            duplicate 1 when the request id had been answered before: that first answer again.
--- @include "lib/drop.lua"

if not load_drop() then
  return {'unknown_drop', {}, {}}
end
local n = tonumber(ARGV[1])

-- Lazy expiry first, so units whose holds just ran out are on sale to this very batch.
expire_due(EXPIRE_BATCH)
handout()

local answers = {}
local fresh = {}     -- request id -> answer, for ids answered earlier in this same batch
local to_record = {} -- HSET arguments, written once after the loop
for i = 0, n - 1 do
  local request_id = ARGV[2 + i * 3]
  local customer = ARGV[3 + i * 3]
  local qty = tonumber(ARGV[4 + i * 3])
  local recorded = fresh[request_id]
  if not recorded then
    local raw = redis.call('HGET', K_REQUESTS, request_id)
    recorded = raw and cmsgpack.unpack(raw)
  end
  if recorded then
    local a = recorded
    answers[#answers + 1] = {a[1], a[2], a[3], a[4], 1}
  else
    local code, hold_id, expires = 'reserved', '', 0
    if not is_selling() then
      code = 'not_live'
    elseif not qty or qty < 1 or qty ~= math.floor(qty) then
      code = 'invalid'
    elseif D.limit > 0 and customer_units(customer) + qty > D.limit then
      code = 'limit_exceeded'
    elseif qty > D.available then
      code = 'sold_out'
    else
      hold_id, expires = create_hold(customer, qty, request_id, 'reserve')
    end
    if code ~= 'reserved' then
      qty = 0
      tally('rejected_' .. code, 1)
    end
    local a = {code, hold_id, qty or 0, expires}
    fresh[request_id] = a
    to_record[#to_record + 1] = request_id
    to_record[#to_record + 1] = cmsgpack.pack(a)
    answers[#answers + 1] = {code, hold_id, qty or 0, expires, 0}
  end
end
if #to_record > 0 then
  redis.call('HSET', K_REQUESTS, unpack(to_record))
end
save()
return {'ok', counters(), answers}

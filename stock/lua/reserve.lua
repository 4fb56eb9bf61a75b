-- reserve: take units from `available` into holds, for one request or a batch of them.
-- KEYS: the twelve drop keys of lib/drop.lua.
-- ARGV: n, reject_ttl_ms, then n quadruples (request_id, customer, qty, nonce), answered in this
--       order (FIFO). nonce: 32 hex digits drawn by the engine for this request, which become the
--       nonce of its hold if one is granted (lib/drop.lua: create_hold). A retry's answer carries the
--       nonce stored with its hold, never the one it came with.
-- Returns: {status, counters, answers}
--   status   'ok' | 'unknown_drop'
--   counters {total, available, held, sold, oversold} after the whole batch
--   answers  flat, 6 values per request (one table per call, not one per request):
--            code, hold_id, qty, expires_ms, duplicate, nonce
--            code: 'reserved' | 'sold_out' | 'limit_exceeded' | 'not_live' | 'invalid';
--            duplicate 1 when the request id had been answered before: that first answer again;
--            nonce: what the hold's reference must carry (stock/holdref.py), '' when rejected.
-- Idempotency: a granted hold's answer is kept as long as the drop (K_REQUESTS). A rejection
-- changed nothing, so forgetting it is safe (a retry after that is simply a new attempt): it is
-- kept between reject_ttl_ms and twice that, in two hashes that take turns by Redis' clock.
--- @include "lib/drop.lua"

if not load_drop() then
  return {'unknown_drop', {}, {}}
end
local n = tonumber(ARGV[1])
local reject_ttl = tonumber(ARGV[2])

-- Generation `gen` writes to K_REJ_NEW and still reads K_REJ_OLD (generation gen - 1). The first
-- call of a generation empties what is older than that.
local gen = math.floor(NOW / reject_ttl)
local K_REJ_NEW, K_REJ_OLD = KEYS[11 + gen % 2], KEYS[11 + (gen + 1) % 2]
local last_gen = tonumber(redis.call('HGET', K_META, 'rej_gen') or '-2')
if last_gen ~= gen then
  redis.call('DEL', K_REJ_NEW)
  if last_gen ~= gen - 1 then
    redis.call('DEL', K_REJ_OLD)
  end
  redis.call('HSET', K_META, 'rej_gen', gen)
end

-- Lazy expiry first, so units whose holds just ran out are on sale to this very batch.
expire_due(EXPIRE_BATCH)
handout()

-- Everything the batch needs to read is read up front, one command per key: the recorded
-- answers of its request ids (granted, then rejections of this and the last generation, skipped
-- when that hash does not exist, as it does not in most calls of a selling drop) and the units its
-- customers hold. Per reservation that leaves no redis.call at all (bench/stock.py).
local request_ids, customers = {}, {}
for i = 0, n - 1 do
  request_ids[i + 1] = ARGV[3 + i * 4]
  customers[i + 1] = ARGV[4 + i * 4]
end
local granted, rej_new, rej_old = {}, {}, {}
if n > 0 then
  granted = redis.call('HMGET', K_REQUESTS, unpack(request_ids))
  if redis.call('EXISTS', K_REJ_NEW) == 1 then
    rej_new = redis.call('HMGET', K_REJ_NEW, unpack(request_ids))
  end
  if redis.call('EXISTS', K_REJ_OLD) == 1 then
    rej_old = redis.call('HMGET', K_REJ_OLD, unpack(request_ids))
  end
  load_units(customers)
end

-- A granted request is recorded as its hold id alone: qty, deadline and nonce never change in the
-- hold record, so a retry's answer is read from there (a retry is rare; a record per hold is not).
-- Anything else is a msgpack array (a rejection, or a granted answer recorded by an earlier version).
local function recorded_answer(i)
  local raw = granted[i]
  if raw and string.byte(raw, 1) < 0x90 then
    local h = get_hold(raw)
    return h and {'reserved', raw, h.q, h.e, h.n}
  end
  raw = raw or rej_new[i] or rej_old[i]
  return raw and cmsgpack.unpack(raw)
end

PACK = true -- this call's reservations go to the ledger as one entry (lib/drop.lua)
local answers = {}
local fresh = {}     -- request id -> where its answer starts in `answers`, for ids answered earlier in this batch
local to_record = {} -- HSET arguments for granted holds, written once after the loop
local to_reject = {} -- the same for rejections
for i = 0, n - 1 do
  local request_id = ARGV[3 + i * 4]
  local customer = ARGV[4 + i * 4]
  local qty = tonumber(ARGV[5 + i * 4])
  local at = i * 6
  local earlier = fresh[request_id]
  local recorded = not earlier and recorded_answer(i + 1)
  if earlier then
    for k = 0, 5 do
      answers[at + 1 + k] = answers[earlier + k]
    end
    answers[at + 5] = 1
  elseif recorded then
    local a = recorded
    answers[at + 1], answers[at + 2], answers[at + 3] = a[1], a[2], a[3]
    answers[at + 4], answers[at + 5], answers[at + 6] = a[4], 1, a[5] or ''
  else
    local code, hold_id, expires, nonce = 'reserved', '', 0, ARGV[6 + i * 4] or ''
    if D.variants > 0 then
      code = 'invalid' -- a drop with variants sells them, never itself: the request names none
    elseif not is_selling() then
      code = 'not_live'
    elseif not qty or qty < 1 or qty ~= math.floor(qty) or #nonce ~= 32 then
      code = 'invalid' -- a malformed qty, or not a nonce the engine draws (128 bits, lowercase hex)
    elseif D.limit > 0 and customer_units(customer) + qty > D.limit then
      code = 'limit_exceeded'
    elseif qty > D.available then
      code = 'sold_out'
    else
      hold_id, expires = create_hold(customer, qty, request_id, 'reserve', nonce)
    end
    if code == 'reserved' then
      to_record[#to_record + 1] = request_id
      to_record[#to_record + 1] = hold_id
    else
      qty, nonce = 0, ''
      tally('rejected_' .. code, 1)
      to_reject[#to_reject + 1] = request_id
      to_reject[#to_reject + 1] = cmsgpack.pack({code, hold_id, 0, expires, nonce})
    end
    fresh[request_id] = at + 1
    answers[at + 1], answers[at + 2], answers[at + 3] = code, hold_id, qty or 0
    answers[at + 4], answers[at + 5], answers[at + 6] = expires, 0, nonce
  end
end
if #to_record > 0 then
  redis.call('HSET', K_REQUESTS, unpack(to_record))
end
if #to_reject > 0 then
  redis.call('HSET', K_REJ_NEW, unpack(to_reject))
  -- A drop that goes quiet forgets its rejections too, without waiting for the next call.
  redis.call('PEXPIRE', K_REJ_NEW, 2 * reject_ttl)
end
save()
return {'ok', counters(), answers}

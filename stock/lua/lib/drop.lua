-- Shared prelude of every drop script. stock/scripts.py splices it in where a script says
-- `--- @include "lib/drop.lua"`, once, when the scripts are loaded (BullMQ assembles its
-- scripts the same way): no script text is ever built from run-time values.
--
-- KEYS, the same twelve in this order for every drop script, all under one {drop:<id>} hash tag:
--   1 meta       hash   id, show, state, total, available, held, sold, oversold, limit, hold_ms,
--                       ends_at, end_reason, initial_total, hold_seq, wait_seq, clock_ms, tallies,
--                       salt (secret: seeds the nonces of hand-outs, never read outside Lua), rej_gen,
--                       cprefix (whose per-customer counts: customer_units), variants (how many
--                       a drop has; a drop with variants sells none itself: stock/keys.py)
--   2 holds      hash   hold id -> msgpack {c=customer, q=qty, e=expires_ms, s=state, r=request,
--                       o=order ref, m=order line it was matched with, n=nonce of its reference}
--   3 expiry     zset   hold id -> expires_ms, for live holds only (the sweeper's index)
--   4 requests   hash   request id -> hold id of a granted reservation, or msgpack of an adjustment
--   5 customers  hash   customer -> units held + sold that count toward the per-customer limit
--                       (a variant's scripts get its drop's hash here: see cprefix)
--   6 orders     hash   platform|order|line -> msgpack line record; line#event -> 1 (cancel events)
--   7 waitlist   zset   customer -> join sequence number (FIFO order)
--   8 waitqty    hash   customer -> units wanted
--   9 ledger     stream one entry per change, deltas and counters after it
--  10 orderrefs  hash   order ref -> comma-separated ids of holds confirmed with it
--  11 rejects0   hash   request id -> msgpack of a rejected answer, two generations that take
--  12 rejects1          turns (reserve.lua): rejections are forgotten after a bounded time
local K_META, K_HOLDS, K_EXPIRY, K_REQUESTS, K_CUSTOMERS = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local K_ORDERS, K_WAITLIST, K_WAITQTY, K_LEDGER, K_ORDERREFS = KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]

-- How many due holds one call expires inline, and how many waitlist entries it serves: keeps
-- every script short (Redis runs one script at a time); the sweeper carries on with the rest.
local EXPIRE_BATCH = 64
local HANDOUT_BATCH = 64

local META_FIELDS = {
  'id', 'show', 'state', 'total', 'available', 'held', 'sold', 'oversold', 'limit', 'hold_ms',
  'ends_at', 'hold_seq', 'wait_seq', 'clock_ms', 'salt', 'cprefix', 'variants',
}
local NUMERIC = {
  total = true, available = true, held = true, sold = true, oversold = true, limit = true,
  hold_ms = true, ends_at = true, hold_seq = true, wait_seq = true, clock_ms = true, variants = true,
}

-- D: the drop's meta, loaded once per call; counters are written back by save().
local D = nil
local NOW = 0
local REAL_MS = 0 -- Redis' clock without the drop's fast-forward: what stream ids are made of

local function load_drop()
  local values = redis.call('HMGET', K_META, unpack(META_FIELDS))
  if not values[1] then
    return false
  end
  D = {}
  for i, name in ipairs(META_FIELDS) do
    local v = values[i]
    if NUMERIC[name] then
      D[name] = tonumber(v or '0')
    else
      D[name] = v or ''
    end
  end
  -- Redis' own clock, never the client's (DESIGN §2). clock_ms is the drop's rehearsal
  -- fast-forward (StockEngine.fast_forward), 0 unless a dry run moved it.
  local t = redis.call('TIME')
  REAL_MS = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  NOW = REAL_MS + D.clock_ms
  if D.salt == '' then
    -- A drop defined before hold references existed: give it a salt once. Weaker than the random
    -- one define.lua stores (it comes from the clock), but a reference still needs the server's
    -- MAC key (stock/holdref.py), which never reaches Redis.
    D.salt = redis.sha1hex(K_META .. ':' .. t[1] .. ':' .. t[2])
    redis.call('HSET', K_META, 'salt', D.salt)
  end
  return true
end

local function is_selling()
  return D.state == 'live' and (D.ends_at == 0 or NOW < D.ends_at)
end

-- Writes that can wait for save(): new holds, their expiry entries and tallies, one command
-- each per call instead of one per hold (a batch of 512 reservations is one HSET, not 512).
-- New holds are never read back in the script that creates them.
local NEW_HOLDS, NEW_EXPIRY, TALLIES = {}, {}, {}

-- The decimal text of an integer, made once per value and call: a number handed to redis.call or
-- table.concat is formatted anew each time (an sprintf), and a batch repeats the same few values
-- (its holds' deadline, qty 1, small unit counts) once per hold.
local TEXT = {}
local function text(x)
  local t = TEXT[x]
  if not t then
    t = string.format('%d', x)
    TEXT[x] = t
  end
  return t
end
-- Per-customer units (K_CUSTOMERS) read once and written back once per call by save(): a batch
-- of reservations is one HMGET and one HSET, not an HGET and an HINCRBY per reservation.
local UNITS, UNITS_DIRTY = {}, {}

local function save_units()
  local sets, dels = {}, {}
  for customer in pairs(UNITS_DIRTY) do
    local units = UNITS[customer]
    if units > 0 then
      sets[#sets + 1] = customer
      sets[#sets + 1] = text(units)
    else
      dels[#dels + 1] = customer
    end
  end
  if #sets > 0 then
    redis.call('HSET', K_CUSTOMERS, unpack(sets))
  end
  if #dels > 0 then
    redis.call('HDEL', K_CUSTOMERS, unpack(dels))
  end
  UNITS_DIRTY = {}
end

local flush_reserves -- defined below ledger(); save() writes what is still pending

local function save()
  flush_reserves()
  redis.call('HSET', K_META, 'total', D.total, 'available', D.available, 'held', D.held,
    'sold', D.sold, 'oversold', D.oversold, 'hold_seq', D.hold_seq, 'wait_seq', D.wait_seq)
  save_units()
  if #NEW_HOLDS > 0 then
    redis.call('HSET', K_HOLDS, unpack(NEW_HOLDS))
    redis.call('ZADD', K_EXPIRY, unpack(NEW_EXPIRY))
    NEW_HOLDS, NEW_EXPIRY = {}, {}
  end
  for field, n in pairs(TALLIES) do
    redis.call('HINCRBY', K_META, field, n)
  end
  TALLIES = {}
end

local function counters()
  return {D.total, D.available, D.held, D.sold, D.oversold}
end

-- One ledger entry per change: the deltas (replayed by stock.ledger.replay) and the counters
-- after it (read by the hub to publish stock without another round-trip).
-- A delta of 0 is left out (it is what a missing delta means): the ledger write is the
-- largest cost of a reservation in Redis (bench/stock.py), so every field counts.
local LAST_ID = nil -- id of this call's last ledger entry

-- Returns the new entry's id, or nil if Redis refused an explicit `id` (only then is pcall used).
local function write_entry(id, op, da, dh, ds, dt, dover, extra, counters_after)
  local args = {K_LEDGER, id, 'op', op}
  local deltas = {'da', da, 'dh', dh, 'ds', ds, 'dt', dt, 'do', dover}
  for i = 1, #deltas, 2 do
    if deltas[i + 1] ~= 0 then
      args[#args + 1] = deltas[i]
      args[#args + 1] = deltas[i + 1]
    end
  end
  local c = counters_after or D
  for _, v in ipairs({'a', c.available, 'h', c.held, 's', c.sold, 't', c.total, 'o', c.oversold, 'ts', NOW}) do
    args[#args + 1] = v
  end
  if extra then
    for i = 1, #extra, 2 do
      if extra[i + 1] ~= nil and extra[i + 1] ~= '' then
        args[#args + 1] = extra[i]
        args[#args + 1] = extra[i + 1]
      end
    end
  end
  if id ~= '*' then
    local added = redis.pcall('XADD', unpack(args))
    if type(added) == 'table' and added.err then
      return nil
    end
    LAST_ID = added
    return added
  end
  LAST_ID = redis.call('XADD', unpack(args))
  return LAST_ID
end

-- Reservations of one reserve call are written to the ledger as ONE entry (op 'reserves'):
-- one XADD per batch instead of one wide entry per hold, the largest per-reservation cost in
-- Redis (docs/benchmarks.md). stock.ledger.decode_entries expands it back into one 'reserve'
-- entry per hold, exactly as if each had been written alone, with ids of their own: the packed
-- entry is added under an explicit id <ms>-<seq+n-1> where <ms>-<seq> is the first id after the
-- stream's last one, so the ids <ms>-<seq> … <ms>-<seq+n-1> belong to its n reservations and to
-- no other entry (readers page through them one by one). Fields: drop, n, first (hold sequence of the
-- first hold; the n holds are consecutive), exp (their common deadline), b = customer,qty,request
-- of each hold, comma-separated (ids never contain a comma: stock/keys.py).
local PACK = false  -- reserve.lua turns it on
local PACKED, PACK_FIRST, PACK_QTY, PACK_EXP = {}, 0, 0, 0

flush_reserves = function()
  local n = #PACKED / 3
  if n == 0 then
    return
  end
  local list, qty = PACKED, PACK_QTY
  PACKED, PACK_QTY = {}, 0
  if n == 1 then
    write_entry('*', 'reserve', -qty, qty, 0, 0, 0, {'hold', D.id .. '.' .. PACK_FIRST, 'cust', list[1],
      'qty', qty, 'req', list[3], 'exp', PACK_EXP})
    return
  end
  local last = LAST_ID
  if not last then
    local tip = redis.call('XREVRANGE', K_LEDGER, '+', '-', 'COUNT', 1)
    last = tip[1] and tip[1][1] or '0-0'
  end
  local last_ms, last_seq = string.match(last, '^(%d+)-(%d+)$')
  last_ms, last_seq = tonumber(last_ms), tonumber(last_seq)
  local ms, seq = REAL_MS, 0
  if ms <= last_ms then
    ms, seq = last_ms, last_seq + 1
  end
  if write_entry(string.format('%d-%d', ms, seq + n - 1), 'reserves', -qty, qty, 0, 0, 0,
      {'drop', D.id, 'n', n, 'first', PACK_FIRST, 'exp', PACK_EXP, 'b', table.concat(list, ',')}) then
    return
  end
  -- Redis refused the id: the stream's last id is above its last entry (entries deleted from its
  -- tail by hand). Nothing has been written yet by this flush, so write one plain entry per hold.
  local later = qty
  for i = 1, n do
    local q = tonumber(list[3 * i - 1])
    later = later - q
    local after = {available = D.available + later, held = D.held - later, sold = D.sold, total = D.total,
      oversold = D.oversold}
    write_entry('*', 'reserve', -q, q, 0, 0, 0, {'hold', D.id .. '.' .. (PACK_FIRST + i - 1), 'cust', list[3 * i - 2],
      'qty', q, 'req', list[3 * i], 'exp', PACK_EXP}, after)
  end
end

-- One ledger entry per change: the deltas (replayed by stock.ledger.replay) and the counters
-- after it. Reservations still pending are written first, so the ledger keeps the order of changes.
local function ledger(op, da, dh, ds, dt, dover, extra)
  flush_reserves()
  return write_entry('*', op, da, dh, ds, dt, dover, extra)
end

local function tally(field, n)
  TALLIES[field] = (TALLIES[field] or 0) + n
end

-- A variant's customers key is its drop's (stock/keys.py): `cprefix` is '' when the drop's limit
-- counts across its variants, '<variant>|' when each variant counts its own (never in a customer id).
local function customer_units(customer)
  local field = D.cprefix .. customer
  local units = UNITS[field]
  if units == nil then
    units = tonumber(redis.call('HGET', K_CUSTOMERS, field) or '0')
    UNITS[field] = units
  end
  return units
end

-- Reads the units of many customers in one HMGET (reserve.lua, before its batch).
local function load_units(customers)
  local missing = {}
  for _, customer in ipairs(customers) do
    local field = D.cprefix .. customer
    if UNITS[field] == nil then
      missing[#missing + 1] = field
    end
  end
  if #missing > 0 then
    local values = redis.call('HMGET', K_CUSTOMERS, unpack(missing))
    for i, field in ipairs(missing) do
      if UNITS[field] == nil then
        UNITS[field] = tonumber(values[i] or '0')
      end
    end
  end
end

local function customer_add(customer, n)
  if n == 0 then
    return
  end
  UNITS[D.cprefix .. customer] = customer_units(customer) + n
  UNITS_DIRTY[D.cprefix .. customer] = true
end

local function get_hold(hold_id)
  local raw = redis.call('HGET', K_HOLDS, hold_id)
  if not raw then
    return nil
  end
  local h = cmsgpack.unpack(raw)
  -- A new hold is stored without its (empty) order ref and matched line: see create_hold.
  h.o, h.m = h.o or '', h.m or ''
  return h
end

local function put_hold(hold_id, h)
  redis.call('HSET', K_HOLDS, hold_id, cmsgpack.pack(h))
end

-- available -> held; the caller has checked stock and the customer's limit.
-- Returns hold_id, expires, nonce. The nonce (128 bits, 32 hex) is what a hold reference must carry
-- to name this hold (stock/holdref.py), so it must be unguessable and never repeat. A reservation's
-- comes drawn by the engine (`nonce`: os.urandom in stock/engine.py); only Redis' effects are
-- replicated and written to the AOF (the hold record, nonce included, as before), never this
-- script's input, so a replica or a replayed AOF holds the same nonce. Holds made here without one
-- (waitlist hand-outs) get the SHA-1 of the drop's secret salt, the hold id, its customer and the
-- instant: as unguessable without the salt, and different for every (hold id, customer, instant).
local function create_hold(customer, qty, request_id, op, nonce)
  D.hold_seq = D.hold_seq + 1
  local hold_id = D.id .. '.' .. D.hold_seq
  local expires = NOW + D.hold_ms
  nonce = nonce or string.sub(redis.sha1hex(D.salt .. '|' .. hold_id .. '|' .. customer .. '|' .. NOW), 1, 32)
  NEW_HOLDS[#NEW_HOLDS + 1] = hold_id
  -- o (order ref) and m (matched line) are left out while empty: get_hold fills them in. Every byte
  -- of a new hold is written to the AOF too (bench/stock.py).
  NEW_HOLDS[#NEW_HOLDS + 1] = cmsgpack.pack({c = customer, q = qty, e = expires, s = 'held', r = request_id,
    n = nonce})
  NEW_EXPIRY[#NEW_EXPIRY + 1] = text(expires)
  NEW_EXPIRY[#NEW_EXPIRY + 1] = hold_id
  customer_add(customer, qty)
  D.available = D.available - qty
  D.held = D.held + qty
  tally('holds_created', 1)
  -- A hand-out's viewer learns of its hold from the ledger (server/live.py), so its nonce goes there;
  -- a reservation's answer carries it instead, and the ledger of the hot path stays as small.
  if PACK and op == 'reserve' then
    if #PACKED == 0 then
      PACK_FIRST, PACK_EXP = D.hold_seq, expires
    end
    PACKED[#PACKED + 1] = customer
    PACKED[#PACKED + 1] = text(qty)
    PACKED[#PACKED + 1] = request_id
    PACK_QTY = PACK_QTY + qty
  else
    ledger(op, -qty, qty, 0, 0, 0, {'hold', hold_id, 'cust', customer, 'qty', qty, 'req', request_id,
      'exp', expires, 'nonce', op == 'handout' and nonce or ''})
  end
  return hold_id, expires, nonce
end

-- held -> available for a live hold that is released or expired.
local function end_hold(hold_id, h, state)
  h.s = state
  put_hold(hold_id, h)
  redis.call('ZREM', K_EXPIRY, hold_id)
  customer_add(h.c, -h.q)
  D.held = D.held - h.q
  D.available = D.available + h.q
  tally('holds_' .. state, 1)
  ledger(state == 'expired' and 'expire' or 'release', h.q, -h.q, 0, 0, 0,
    {'hold', hold_id, 'cust', h.c, 'qty', h.q})
end

-- Expires up to `limit` holds whose deadline has passed; returns how many it expired.
local function expire_due(limit)
  local due = redis.call('ZRANGEBYSCORE', K_EXPIRY, '-inf', NOW, 'LIMIT', 0, limit)
  for _, hold_id in ipairs(due) do
    local h = get_hold(hold_id)
    if h and h.s == 'held' then
      end_hold(hold_id, h, 'expired')
    else
      redis.call('ZREM', K_EXPIRY, hold_id)
    end
  end
  return #due
end

-- Units that came back go first to the waitlist, FIFO, as holds (DESIGN §3). A head that
-- wants more than is left gets what is left; one now over its limit is skipped.
local function handout()
  local served = 0
  while D.available > 0 and served < HANDOUT_BATCH and is_selling() do
    local head = redis.call('ZRANGE', K_WAITLIST, 0, 0)
    if #head == 0 then
      break
    end
    local customer = head[1]
    local wanted = tonumber(redis.call('HGET', K_WAITQTY, customer) or '1')
    redis.call('ZREM', K_WAITLIST, customer)
    redis.call('HDEL', K_WAITQTY, customer)
    local give = math.min(wanted, D.available)
    if D.limit > 0 and customer_units(customer) + give > D.limit then
      ledger('wait_skip', 0, 0, 0, 0, 0, {'cust', customer, 'qty', wanted})
    else
      create_hold(customer, give, 'waitlist', 'handout')
    end
    served = served + 1
  end
end

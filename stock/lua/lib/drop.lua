-- Shared prelude of every drop script. stock/scripts.py splices it in where a script says
-- `--- @include "lib/drop.lua"`, once, when the scripts are loaded (BullMQ assembles its
-- scripts the same way): no script text is ever built from run-time values.
--
-- KEYS, the same twelve in this order for every drop script, all under one {drop:<id>} hash tag:
--   1 meta       hash   id, show, state, total, available, held, sold, oversold, limit, hold_ms,
--                       ends_at, end_reason, initial_total, hold_seq, wait_seq, clock_ms, tallies,
--                       salt (secret: seeds hold nonces, never read outside Lua), rej_gen
--   2 holds      hash   hold id -> msgpack {c=customer, q=qty, e=expires_ms, s=state, r=request,
--                       o=order ref, m=order line it was matched with, n=nonce of its reference}
--   3 expiry     zset   hold id -> expires_ms, for live holds only (the sweeper's index)
--   4 requests   hash   request id -> msgpack of the first answer (reserve, adjust)
--   5 customers  hash   customer -> units held + sold that count toward the per-customer limit
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
  'ends_at', 'hold_seq', 'wait_seq', 'clock_ms', 'salt',
}
local NUMERIC = {
  total = true, available = true, held = true, sold = true, oversold = true, limit = true,
  hold_ms = true, ends_at = true, hold_seq = true, wait_seq = true, clock_ms = true,
}

-- D: the drop's meta, loaded once per call; counters are written back by save().
local D = nil
local NOW = 0

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
  NOW = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + D.clock_ms
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

local function save()
  redis.call('HSET', K_META, 'total', D.total, 'available', D.available, 'held', D.held,
    'sold', D.sold, 'oversold', D.oversold, 'hold_seq', D.hold_seq, 'wait_seq', D.wait_seq)
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
local function ledger(op, da, dh, ds, dt, dover, extra)
  local args = {K_LEDGER, '*', 'op', op}
  local deltas = {'da', da, 'dh', dh, 'ds', ds, 'dt', dt, 'do', dover}
  for i = 1, #deltas, 2 do
    if deltas[i + 1] ~= 0 then
      args[#args + 1] = deltas[i]
      args[#args + 1] = deltas[i + 1]
    end
  end
  for _, v in ipairs({'a', D.available, 'h', D.held, 's', D.sold, 't', D.total, 'o', D.oversold, 'ts', NOW}) do
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
  return redis.call('XADD', unpack(args))
end

local function tally(field, n)
  TALLIES[field] = (TALLIES[field] or 0) + n
end

local function customer_add(customer, n)
  if n == 0 then
    return  -- and never pass -0 to HINCRBY: Lua formats it as '-0', which Redis refuses
  end
  local left = redis.call('HINCRBY', K_CUSTOMERS, customer, n)
  if left <= 0 then
    redis.call('HDEL', K_CUSTOMERS, customer)
  end
end

local function customer_units(customer)
  return tonumber(redis.call('HGET', K_CUSTOMERS, customer) or '0')
end

local function get_hold(hold_id)
  local raw = redis.call('HGET', K_HOLDS, hold_id)
  if not raw then
    return nil
  end
  return cmsgpack.unpack(raw)
end

local function put_hold(hold_id, h)
  redis.call('HSET', K_HOLDS, hold_id, cmsgpack.pack(h))
end

-- available -> held; the caller has checked stock and the customer's limit.
-- Returns hold_id, expires, nonce. The nonce (128 bits) is what a hold reference must carry to
-- name this hold (stock/holdref.py): unguessable without the drop's secret salt, and different for
-- every (hold id, customer, instant), so a reference never matches a hold it was not made for.
local function create_hold(customer, qty, request_id, op)
  D.hold_seq = D.hold_seq + 1
  local hold_id = D.id .. '.' .. D.hold_seq
  local expires = NOW + D.hold_ms
  local nonce = string.sub(redis.sha1hex(D.salt .. '|' .. hold_id .. '|' .. customer .. '|' .. NOW), 1, 32)
  NEW_HOLDS[#NEW_HOLDS + 1] = hold_id
  NEW_HOLDS[#NEW_HOLDS + 1] = cmsgpack.pack({c = customer, q = qty, e = expires, s = 'held', r = request_id,
    o = '', m = '', n = nonce})
  NEW_EXPIRY[#NEW_EXPIRY + 1] = expires
  NEW_EXPIRY[#NEW_EXPIRY + 1] = hold_id
  customer_add(customer, qty)
  D.available = D.available - qty
  D.held = D.held + qty
  tally('holds_created', 1)
  -- A hand-out's viewer learns of its hold from the ledger (server/live.py), so its nonce goes there;
  -- a reservation's answer carries it instead, and the ledger of the hot path stays as small.
  ledger(op, -qty, qty, 0, 0, 0, {'hold', hold_id, 'cust', customer, 'qty', qty, 'req', request_id,
    'exp', expires, 'nonce', op == 'handout' and nonce or ''})
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

-- Order-line helpers shared by order.lua and cancel.lua (spliced in after lib/drop.lua).
-- A line record (K_ORDERS[line_key]) is msgpack:
--   {st = 'sold' | 'cancelled_first' | 'ignored', sold = units counted in sold,
--    over = units counted in oversold, bs = sold units given back, bo = oversold units given back,
--    hold = hold id or '', c = customer of that hold or '', cq = units still counted for c}
-- A tombstone (st = 'cancelled_first': cancels or refunds that came before their order) also has
--   whole = 1 if one of them was for the whole line (the order is then ignored), else 0, and
--   rf = {{event, qty}, ...} the partial refunds, which the order applies once it arrives.
--   A tombstone without `whole` (written by an earlier version) counts as whole.

local function get_line(line_key)
  local raw = redis.call('HGET', K_ORDERS, line_key)
  if not raw then
    return nil
  end
  return cmsgpack.unpack(raw)
end

local function put_line(line_key, rec)
  redis.call('HSET', K_ORDERS, line_key, cmsgpack.pack(rec))
end

-- The hold a line pays for: the one it names (whose nonce must be `nonce`, from a verified hold
-- reference), else one confirmed by the checkout with this order's id and not yet matched to
-- another line. Returns hold_id, hold, why — or '', nil, why when none can pay, `why` saying
-- why a named hold cannot: 'hold_not_found' | 'hold_ref_invalid' | 'hold_taken' ('' if none named).
-- A reference that names no hold of this drop (unknown id, another nonce) counts as no reference
-- at all, exactly like one that failed the MAC check: the order id may still find its hold.
local function find_hold(hold_id, nonce, order_id, line_key)
  if hold_id ~= '' then
    local h = get_hold(hold_id)
    if not h or nonce == '' or h.n ~= nonce then
      local found_id, found = find_hold('', '', order_id, line_key)
      if found then
        return found_id, found, ''
      end
      return '', nil, h and 'hold_ref_invalid' or 'hold_not_found'
    end
  end
  if hold_id == '' then
    local refs = redis.call('HGET', K_ORDERREFS, order_id)
    if refs then
      for id in string.gmatch(refs, '[^,]+') do
        local h = get_hold(id)
        if h and h.s == 'confirmed' and (h.m == '' or h.m == line_key) then
          return id, h, ''
        end
      end
    end
    return '', nil, ''
  end
  local h = get_hold(hold_id)
  -- Matched to another line, or paid by the checkout with another order: not this order's.
  if (h.m ~= '' and h.m ~= line_key) or (h.s == 'confirmed' and h.o ~= '' and h.o ~= order_id) then
    return '', nil, 'hold_taken'
  end
  return hold_id, h, ''
end

-- Gives back `qty` units (0 = all that is left) of a sold line: units counted as oversold first
-- (they were never in sold), then sold units, which go back to available. Updates `rec` (the
-- caller writes it), the counters, the customer's tally and the ledger. Returns from_sold, from_over.
local function give_back(line_key, rec, event, order_id, qty)
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
  ledger('cancel', from_sold, 0, -from_sold, 0, -from_over, {'line', line_key, 'order', order_id,
    'event', event, 'qty', n, 'hold', rec.hold})
  return from_sold, from_over
end

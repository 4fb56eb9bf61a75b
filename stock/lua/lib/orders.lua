-- Order-line helpers shared by order.lua and cancel.lua (spliced in after lib/drop.lua).
-- A line record (K_ORDERS[line_key]) is msgpack:
--   {st = 'sold' | 'cancelled_first' | 'ignored', sold = units counted in sold,
--    over = units counted in oversold, bs = sold units given back, bo = oversold units given back,
--    hold = hold id or '', c = customer of that hold or '', cq = units still counted for c}

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

-- The hold a line pays for: the one it names, else one confirmed by the checkout with this
-- order's id and not yet matched to another line. Returns hold_id, hold or '', nil.
local function find_hold(hold_id, order_id, line_key)
  if hold_id == '' then
    local refs = redis.call('HGET', K_ORDERREFS, order_id)
    if refs then
      for id in string.gmatch(refs, '[^,]+') do
        local h = get_hold(id)
        if h and h.s == 'confirmed' and (h.m == '' or h.m == line_key) then
          return id, h
        end
      end
    end
    return '', nil
  end
  local h = get_hold(hold_id)
  if h and (h.m == '' or h.m == line_key) then
    return hold_id, h
  end
  return '', nil
end

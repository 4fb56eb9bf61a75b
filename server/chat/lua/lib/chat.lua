-- Shared by every chat script. KEYS are always the nine keys of one show's chat
-- (server/chat/keys.py, ``ChatKeys``), in this order, all under the show's hash tag:
local K_LOG, K_STATE, K_RESTRICT, K_LAST, K_BUCKET, K_HELD, K_AUDIT, K_CODES, K_WHO =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local AUDIT_MAXLEN = 10000

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- After the show ended its chat expires at one instant (expire.lua): a key written afterwards
-- (a moderation action, a late erase) gets the same deadline instead of living for ever.
local function keep_expiry()
  local at = redis.call('HGET', K_STATE, 'expire_at')
  if at then
    for i = 1, 9 do
      if redis.call('EXISTS', KEYS[i]) == 1 then
        redis.call('PEXPIREAT', KEYS[i], at)
      end
    end
  end
end

-- One audit record: who (actor name, role, uid), what (action), on whom/what, why.
local function audit(actor, actor_role, actor_uid, action, target_uid, target_name, detail)
  redis.call('XADD', K_AUDIT, 'MAXLEN', '~', AUDIT_MAXLEN, '*',
    'actor', actor, 'role', actor_role, 'au', actor_uid, 'action', action,
    'tu', target_uid, 'tn', target_name, 'detail', detail)
end

-- The settings event every node folds: the whole settings hash and the claim codes, so a node
-- that missed an earlier one still converges on the next.
local function settings_event(maxlen)
  local s = redis.call('HMGET', K_STATE, 'slow', 'kw', 'words', 'wact', 'pin')
  local codes = redis.call('HGETALL', K_CODES)
  local flat = {}
  for i = 1, #codes, 2 do
    if string.sub(codes[i], 1, 1) ~= '@' then
      flat[#flat + 1] = codes[i] .. '=' .. codes[i + 1]
    end
  end
  redis.call('XADD', K_LOG, 'MAXLEN', '~', maxlen, '*', 'k', 's',
    'slow', s[1] or '0', 'kw', s[2] or '', 'words', s[3] or '', 'wact', s[4] or 'hold', 'pin', s[5] or '',
    'codes', table.concat(flat, ','))
end

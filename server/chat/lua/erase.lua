-- erase: the right to deletion in one show's chat. Every message, held message and log entry of
-- the viewer, its restrictions, its rate and slow-mode state, its pseudonym and the audit records
-- that name it go; live viewers are told to remove the messages.
-- KEYS: the nine chat keys (lib/chat.lua).
-- ARGV: 1 viewer, 2 its uid (the pseudonyms recorded for it in K_WHO count too), 3 log maxlen
-- Returns: the number of records removed.
--- @include "lib/chat.lua"

local viewer, maxlen = ARGV[1], tonumber(ARGV[3])
local uids = {[ARGV[2]] = true}
local who = redis.call('HGETALL', K_WHO)
for i = 1, #who, 2 do
  if who[i + 1] == viewer then
    uids[who[i]] = true
  end
end
local count = 0
local messages = {}

local function fields_of(entry)
  local f = {}
  for j = 1, #entry[2], 2 do
    f[entry[2][j]] = entry[2][j + 1]
  end
  return f
end

for _, entry in ipairs(redis.call('XRANGE', K_LOG, '-', '+')) do
  local f = fields_of(entry)
  if f.v == viewer then
    redis.call('XDEL', K_LOG, entry[1])
    count = count + 1
    if f.k == 'm' then
      messages[#messages + 1] = entry[1]
    elseif f.k == 'h' then
      redis.call('XADD', K_LOG, 'MAXLEN', '~', maxlen, '*', 'k', 'hx', 'hid', f.hid)
    end
  end
end
local held = redis.call('HGETALL', K_HELD)
for i = 1, #held, 2 do
  if cjson.decode(held[i + 1]).viewer == viewer then
    redis.call('HDEL', K_HELD, held[i])
    count = count + 1
  end
end
for _, entry in ipairs(redis.call('XRANGE', K_AUDIT, '-', '+')) do
  local f = fields_of(entry)
  if uids[f.tu] or uids[f.au] then
    redis.call('XDEL', K_AUDIT, entry[1])
    count = count + 1
  end
end
count = count + redis.call('HDEL', K_RESTRICT, viewer) + redis.call('HDEL', K_LAST, viewer)
  + redis.call('HDEL', K_BUCKET, viewer)
for u in pairs(uids) do
  count = count + redis.call('HDEL', K_WHO, u)
end
local pin = redis.call('HGET', K_STATE, 'pin')
if pin and uids[cjson.decode(pin).uid] then
  redis.call('HDEL', K_STATE, 'pin')
  settings_event(maxlen)
end
if #messages > 0 then
  redis.call('XADD', K_LOG, 'MAXLEN', '~', maxlen, '*', 'k', 'd', 'ids', table.concat(messages, ','))
end
keep_expiry()
return count

-- codes: give each drop of a show its claim code (A, B, …, Z, AA, …) once, in the order given;
-- a code never changes after, so a card and a comment always agree.
-- KEYS: the nine chat keys (lib/chat.lua).
-- ARGV: 1 log maxlen, then the show's drop ids in run-of-show order
-- Returns: flat {drop, code, drop, code, …} for the drops given
--- @include "lib/chat.lua"

local function letters(index)
  local code = ''
  index = index + 1
  while index > 0 do
    local rest = (index - 1) % 26
    code = string.char(65 + rest) .. code
    index = math.floor((index - 1) / 26)
  end
  return code
end

local out = {}
local added = false
for i = 2, #ARGV do
  local drop = ARGV[i]
  local code = redis.call('HGET', K_CODES, drop)
  if not code then
    code = letters(redis.call('HINCRBY', K_STATE, 'code_n', 1) - 1)
    redis.call('HSET', K_CODES, drop, code, '@' .. code, drop)
    added = true
  end
  out[#out + 1] = drop
  out[#out + 1] = code
end
if added then
  settings_event(tonumber(ARGV[1]))
end
keep_expiry()
return out

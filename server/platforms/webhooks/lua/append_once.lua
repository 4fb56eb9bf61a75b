-- append_once: append an entry to a stream unless one of its subjects was seen before; remember
-- every subject. The check and the append are one atomic step, so N concurrent copies of one
-- delivery (a platform's retry storm, several nodes behind a load balancer) make one entry.
-- KEYS: 1 stream; 2..n one "seen" key per subject (all under the stream's hash tag)
-- ARGV: 1 ttl_seconds of the seen keys; 2 maxlen (0 = never trim: entries not yet applied must
--       not be lost); 3.. field, value, field, value ... of the entry
-- Returns: {entry_id, 0} when appended; {first_entry_id, 1} when a subject was seen (the id of the
--          entry that subject was first recorded with, '' if unknown)

local ttl = tonumber(ARGV[1])
local maxlen = tonumber(ARGV[2])

for i = 2, #KEYS do
  local first = redis.call('GET', KEYS[i])
  if first then
    return {first, 1}
  end
end

local args = {KEYS[1]}
if maxlen > 0 then
  args[#args + 1] = 'MAXLEN'
  args[#args + 1] = '~'
  args[#args + 1] = maxlen
end
args[#args + 1] = '*'
for i = 3, #ARGV do
  args[#args + 1] = ARGV[i]
end
local id = redis.call('XADD', unpack(args))
for i = 2, #KEYS do
  redis.call('SET', KEYS[i], id, 'EX', ttl)
end
return {id, 0}

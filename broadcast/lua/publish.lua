-- publish: append one event to a show's stream with the next seq, the same on every node.
-- KEYS: 1 seq (string counter), 2 epoch (string), 3 events (stream; entry id = '<seq>-0'),
--       4 published (hash: dedupe key -> seq)
-- ARGV: kind, body (JSON object without type/seq), dedupe key ('' = none), new epoch (used
--       only if the show has none: first event, or Redis lost the stream), maxlen,
--       run ('' | 'new': this event starts a run of the show, e.g. the show went live |
--       'scoped': the dedupe key holds within the current run only, e.g. the show ended)
-- Returns: {seq, epoch, fresh}   fresh 0 when the dedupe key had been published: its seq.
-- A run is named by the seq of the event that started it (field '@run' of KEYS[4]), so an
-- end deduplicated per run is published again after the show is restarted and ended again.
local kind, body, dedupe, new_epoch, maxlen = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local run = ARGV[6] or ''
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  epoch = new_epoch
  redis.call('SET', KEYS[2], epoch)
end
if dedupe ~= '' and run == 'scoped' then
  dedupe = dedupe .. '@' .. (redis.call('HGET', KEYS[4], '@run') or '0')
end
if dedupe ~= '' then
  local seen = redis.call('HGET', KEYS[4], dedupe)
  if seen then
    return {tonumber(seen), epoch, 0}
  end
end
local seq = redis.call('INCR', KEYS[1])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', maxlen, seq .. '-0', 'k', kind, 'b', body)
if dedupe ~= '' then
  redis.call('HSET', KEYS[4], dedupe, seq)
end
if run == 'new' then
  redis.call('HSET', KEYS[4], '@run', seq)
end
return {seq, epoch, 1}

-- undefine: forget a drop (or one variant of it) that was defined and never used, as if it had
-- never been defined. It undoes a run-of-show import that failed half-way (server/shows/importer.py):
-- only a drop nothing has happened to may go, so no sale, hold or ledger entry is ever lost.
-- KEYS: the twelve drop keys of lib/drop.lua.
-- ARGV: mode   'check' (say whether it could go, change nothing) | 'delete'
-- Returns: {code}   code: 'untouched' (check) | 'undefined' | 'in_use' | 'unknown_drop'
--- @include "lib/drop.lua"

if not load_drop() then
  return {'unknown_drop'}
end
-- Untouched: still a draft, no hold ever made, no waitlist, and the ledger holds only its definition.
if D.state ~= 'draft' or D.hold_seq ~= 0 or D.wait_seq ~= 0 or redis.call('XLEN', K_LEDGER) > 1 then
  return {'in_use'}
end
if ARGV[1] == 'check' then
  return {'untouched'}
end
redis.call('DEL', unpack(KEYS))
return {'undefined'}

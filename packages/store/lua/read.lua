-- Reads a stream after a cursor, with the stream's head seq, in one atomic step so the caller
-- can tell "caught up" from "trimmed" from "reset", and which of the entries read are collapsed.
-- KEYS[1] stream, KEYS[2] seq counter, KEYS[3] the stream's collapse hash (collapseKey -> latest
--   seq, lib/append.lua); ARGV: first id to read ("<after + 1>-0", built by the caller: Lua would
--   print a seq of 10^14 or more as 1e+14), count
-- Returns: { head, entries, collapsed } where entries is the XRANGE reply and collapsed lists the
-- ids of the entries whose collapseKey (field 'k') a later entry holds: superseded, not to be
-- delivered. One HGET per keyed entry read (at most count).
local head = tonumber(redis.call('GET', KEYS[2]) or '0')
local entries = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2])
local collapsed = {}
for _, entry in ipairs(entries) do
  local fields = entry[2]
  for j = 1, #fields, 2 do
    if fields[j] == 'k' then
      local latest = redis.call('HGET', KEYS[3], fields[j + 1])
      if latest and tonumber(latest) > tonumber(string.match(entry[1], '^(%d+)')) then
        collapsed[#collapsed + 1] = entry[1]
      end
    end
  end
end
return { head, entries, collapsed }

-- Appends one notification to a stream with the next contiguous seq (lib/append.lua) and, for an
-- inbox, returns the nodes where the device is present, so the worker learns seq and doorbell
-- targets in the same round trip.
-- KEYS[1] stream, KEYS[2] seq counter, KEYS[3] presence hash (for topics a key that never exists),
--   KEYS[4] the append's mark (lib/append.lua), used when ARGV[8] is '1', KEYS[5] the stream's
--   collapse hash (lib/append.lua), written when ARGV[9] is not ''
-- ARGV: id, data, ts, exp, maxlen, now, keepMs, once ('1': at most once per id, a fan-out step),
--   collapseKey ('' none), priority ('h', 'l' or '' for normal)
-- Returns: { seq, dup (1: the id was already appended, nothing was), node1, node2, ... }
local now = tonumber(ARGV[6])
local mark = nil
if ARGV[8] == '1' then mark = KEYS[4] end
local seq, dup = herald_append(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], now, tonumber(ARGV[7]), mark, ARGV[9], ARGV[10], KEYS[5])
local out = { seq, dup and 1 or 0 }
for _, node in ipairs(herald_live_nodes(KEYS[3], now)) do out[#out + 1] = node end
return out

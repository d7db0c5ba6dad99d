-- Appends one notification to a stream with the next contiguous seq (lib/append.lua) and, for an
-- inbox, returns the nodes where the device is present, so the worker learns seq and doorbell
-- targets in the same round trip.
-- KEYS[1] stream, KEYS[2] seq counter, KEYS[3] presence hash (for topics a key that never exists)
-- ARGV: id, data, ts, exp, maxlen, now, keepMs
-- Returns: { seq, node1, node2, ... }
local now = tonumber(ARGV[6])
local seq = herald_append(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], now, tonumber(ARGV[7]))
local out = { seq }
for _, node in ipairs(herald_live_nodes(KEYS[3], now)) do out[#out + 1] = node end
return out

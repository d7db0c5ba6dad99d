-- Reads a stream after a cursor, with the stream's head seq, in one atomic step so the caller
-- can tell "caught up" from "trimmed" from "reset".
-- KEYS[1] stream, KEYS[2] seq counter; ARGV: after (exclusive seq), count
-- Returns: { head, entries } where entries is the XRANGE reply.
local head = tonumber(redis.call('GET', KEYS[2]) or '0')
local entries = redis.call('XRANGE', KEYS[1], (tonumber(ARGV[1]) + 1) .. '-0', '+', 'COUNT', ARGV[2])
return { head, entries }

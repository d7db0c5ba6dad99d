-- Reads a stream after a cursor, with the stream's head seq, in one atomic step so the caller
-- can tell "caught up" from "trimmed" from "reset".
-- KEYS[1] stream, KEYS[2] seq counter; ARGV: first id to read ("<after + 1>-0", built by the
-- caller: Lua would print a seq of 10^14 or more as 1e+14), count
-- Returns: { head, entries } where entries is the XRANGE reply.
local head = tonumber(redis.call('GET', KEYS[2]) or '0')
local entries = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2])
return { head, entries }

-- A node's hello for one device, in one atomic step: the device's presence on this node (and
-- the client's address), then what the node needs to resume it: its durable topics, its acked
-- cursors and its inbox head. Presence and the head are read together, so an inbox entry is
-- either at or below the returned head, or appended after it by a script that saw this presence
-- (and rang this node).
-- KEYS[1] presence hash, KEYS[2] presence address hash, KEYS[3] device topics set,
-- KEYS[4] cursors hash, KEYS[5] inbox seq counter
-- ARGV[1] node id, ARGV[2] presence expiry (ms since epoch), ARGV[3] presence ttl ms,
-- ARGV[4] client address ('' for none)
-- Returns: { topics, cursors (HGETALL reply), inbox head }
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
return {
  redis.call('SMEMBERS', KEYS[3]),
  redis.call('HGETALL', KEYS[4]),
  tonumber(redis.call('GET', KEYS[5]) or '0'),
}

-- A node's hello for one device, in one atomic step: the device's presence on this node (and
-- the client's address, when and over what it connected), then what the node needs to resume
-- it: its durable topics, its acked cursors and its inbox head. Presence and the head are read
-- together, so an inbox entry is either at or below the returned head, or appended after it by
-- a script that saw this presence (and rang this node).
-- KEYS[1] presence hash, KEYS[2] presence address hash, KEYS[3] device topics set,
-- KEYS[4] cursors hash, KEYS[5] inbox seq counter, KEYS[6] presence info hash
-- ARGV[1] node id, ARGV[2] presence expiry (ms since epoch), ARGV[3] presence ttl ms,
-- ARGV[4] client address ('' for none), ARGV[5] transport, ARGV[6] now ms,
-- ARGV[7] device retention ms (of the info hash)
-- Returns: { topics, cursors (HGETALL reply), inbox head }
local now = tonumber(ARGV[6])
-- A second connection of the device on this node keeps the first one's `since`.
local prev = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
if prev <= now or redis.call('HEXISTS', KEYS[6], ARGV[1]) == 0 then
  redis.call('HSET', KEYS[6], ARGV[1], ARGV[6] .. '|' .. ARGV[5], 'seen', ARGV[6])
else
  redis.call('HSET', KEYS[6], 'seen', ARGV[6])
end
-- Fields of nodes that died without removing theirs (bounded by the node ids a device met in
-- its retention): dropped once there are more than a few.
if redis.call('HLEN', KEYS[6]) > 4 then
  for _, f in ipairs(redis.call('HKEYS', KEYS[6])) do
    if f ~= 'seen' and tonumber(redis.call('HGET', KEYS[1], f) or '0') <= now then
      redis.call('HDEL', KEYS[6], f)
    end
  end
end
redis.call('PEXPIRE', KEYS[6], ARGV[7])
return {
  redis.call('SMEMBERS', KEYS[3]),
  redis.call('HGETALL', KEYS[4]),
  tonumber(redis.call('GET', KEYS[5]) or '0'),
}

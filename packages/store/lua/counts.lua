-- Adds delivery counts to one or more notifications' statuses, but only while a status exists,
-- so late acks never recreate an expired status without a TTL. Many per call on one Redis.
-- KEYS: status hashes; ARGV: per key: n, field1, incr1, ..., fieldN, incrN
local a = 1
for k = 1, #KEYS do
  local n = tonumber(ARGV[a])
  a = a + 1
  local live = redis.call('EXISTS', KEYS[k]) == 1
  for _ = 1, n do
    if live then redis.call('HINCRBY', KEYS[k], ARGV[a], ARGV[a + 1]) end
    a = a + 2
  end
end
return #KEYS

-- Adds counts (targets, delivered, acked, pushed, pushFailed) to statuses that still exist, as
-- lib/status.lua's herald_status_add does: a status that is gone is left alone (an increment would
-- recreate it without a TTL). Many per call on one Redis.
-- KEYS: status hashes; ARGV: per key: n, field1, incr1, ..., fieldN, incrN
-- One EXISTS per status, not per field: a node's flush often carries delivered and acked of one
-- notification together (issue #14).
local a = 1
for k = 1, #KEYS do
  local n = tonumber(ARGV[a])
  a = a + 1
  if redis.call('EXISTS', KEYS[k]) == 1 then
    for _ = 1, n do
      redis.call('HINCRBY', KEYS[k], ARGV[a], ARGV[a + 1])
      a = a + 2
    end
  else
    a = a + 2 * n
  end
end
return #KEYS

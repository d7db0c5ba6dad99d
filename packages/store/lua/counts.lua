-- Adds counts (targets, delivered, acked, pushed, pushFailed) to statuses that still exist (lib/status.lua). Many
-- per call on one Redis.
-- KEYS: status hashes; ARGV: per key: n, field1, incr1, ..., fieldN, incrN
local a = 1
for k = 1, #KEYS do
  local n = tonumber(ARGV[a])
  a = a + 1
  for _ = 1, n do
    herald_status_add(KEYS[k], ARGV[a], ARGV[a + 1])
    a = a + 2
  end
end
return #KEYS

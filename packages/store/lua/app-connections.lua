-- A node's connection counts per app, written, and each app's connections on the OTHER live
-- nodes, read, in one step: every node runs this every few seconds for the apps with a
-- connection cap, and admits a hello while (others + its own count) is under the cap. Fields of
-- nodes whose heartbeat is older than the window are deleted: a crashed node's counts neither
-- count nor pile up. All keys carry the {nodes} hash tag: one slot.
-- KEYS[1] node registry (sorted set nodeId -> last heartbeat ms), KEYS[2..] app connection hashes
-- ARGV[1] oldest heartbeat ms that counts as live, ARGV[2] this node's id,
-- ARGV[3..] this node's count for KEYS[2..]
-- Returns: { others of KEYS[2], others of KEYS[3], ... }
local since, me = tonumber(ARGV[1]), ARGV[2]
local out = {}
for i = 2, #KEYS do
  redis.call('HSET', KEYS[i], me, ARGV[i + 1])
  local h = redis.call('HGETALL', KEYS[i])
  local sum = 0
  for j = 1, #h, 2 do
    if h[j] ~= me then
      local seen = redis.call('ZSCORE', KEYS[1], h[j])
      if seen and tonumber(seen) >= since then
        sum = sum + tonumber(h[j + 1])
      else
        redis.call('HDEL', KEYS[i], h[j])
      end
    end
  end
  out[#out + 1] = sum
end
return out

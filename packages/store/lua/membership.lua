-- A backend's topic subscription change for one device, in one call (one Redis or Sentinel, never
-- a cluster: the device's keys and the topic's are in different slots), then the doorbell to the
-- nodes holding the device, so a live connection follows at once.
-- KEYS[1] device topics set, KEYS[2] topic members set, KEYS[3] device cursors hash,
--   KEYS[4] topic seq counter, KEYS[5] device presence hash
-- ARGV: op ('sub' | 'unsub'), device, topic, wire stream name ('topic:<topic>'), retentionMs,
--   now, node channel prefix, doorbell message
-- Subscribing reads the topic's head and sets the device's cursor there (unless it has one) in the
-- same step as the membership, so the device gets exactly what is appended from then on.
-- Returns: doorbells published
if ARGV[1] == 'sub' then
  redis.call('SADD', KEYS[1], ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  redis.call('SADD', KEYS[2], ARGV[2])
  redis.call('HSETNX', KEYS[3], ARGV[4], tonumber(redis.call('GET', KEYS[4]) or '0'))
  redis.call('PEXPIRE', KEYS[3], ARGV[5])
else
  redis.call('SREM', KEYS[1], ARGV[3])
  redis.call('SREM', KEYS[2], ARGV[2])
  redis.call('HDEL', KEYS[3], ARGV[4])
end
local bells = 0
for _, node in ipairs(herald_live_nodes(KEYS[5], tonumber(ARGV[6]))) do
  redis.call('PUBLISH', ARGV[7] .. node, ARGV[8])
  bells = bells + 1
end
return bells

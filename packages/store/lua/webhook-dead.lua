-- Adds a webhook request that exhausted its retries to the app's dead letters, keeping the newest
-- `max` (docs/webhooks.md). Both keys carry the app's {wh} tag.
-- KEYS[1] dead-letter hash (id -> JSON), KEYS[2] dead-letter order (zset id -> failedAt)
-- ARGV: id, json, failedAt, max
-- Returns the number of dead letters dropped to stay within `max`.
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if over <= 0 then return 0 end
local old = redis.call('ZPOPMIN', KEYS[2], over)
for i = 1, #old, 2 do redis.call('HDEL', KEYS[1], old[i]) end
return over

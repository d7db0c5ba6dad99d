-- A fixed-window budget that a request spends `n` units of at once (the notifications a publish
-- fans out), all or nothing: a request that does not fit is refused and spends nothing.
-- KEYS[1]  the window's counter (string; expires with the window)
-- ARGV[1]  n: units this request needs (>= 1)
-- ARGV[2]  max: units per window
-- ARGV[3]  window length, ms
-- Returns {1, ttl_ms} when spent, {0, ttl_ms} when refused (ttl_ms: until the window ends).
local n = tonumber(ARGV[1])
local max = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used + n > max then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then ttl = window end
  return {0, ttl}
end
used = redis.call('INCRBY', KEYS[1], n)
if used == n then
  redis.call('PEXPIRE', KEYS[1], window)
  return {1, window}
end
return {1, redis.call('PTTL', KEYS[1])}

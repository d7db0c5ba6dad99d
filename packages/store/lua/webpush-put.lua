-- Stores one Web Push subscription of a device (replacing one with the same id), dropping the
-- oldest while the device already has `max`, and keeps the hash for the device retention.
-- KEYS[1] the device's webpush hash
-- ARGV: id, subscription JSON, createdAt ms, max, retention ms
local key, id = KEYS[1], ARGV[1]
local max = tonumber(ARGV[4])
if redis.call('HEXISTS', key, id) == 0 then
  while redis.call('HLEN', key) >= max do
    local all = redis.call('HGETALL', key)
    local oldest, oldestAt = nil, nil
    for i = 1, #all, 2 do
      local ok, sub = pcall(cjson.decode, all[i + 1])
      local at = (ok and type(sub) == 'table' and tonumber(sub.createdAt)) or 0
      if oldestAt == nil or at < oldestAt then oldest, oldestAt = all[i], at end
    end
    redis.call('HDEL', key, oldest)
  end
end
redis.call('HSET', key, id, ARGV[2])
redis.call('PEXPIRE', key, ARGV[5])
return redis.call('HLEN', key)

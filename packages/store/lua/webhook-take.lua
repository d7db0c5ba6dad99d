-- Takes dead letters out of the app's list for a replay: the given ids, or the oldest `count` when
-- no id is given. Returns their JSON (ids not found are skipped).
-- KEYS[1] dead-letter hash, KEYS[2] dead-letter order
-- ARGV: count, ids...
local ids = {}
if #ARGV > 1 then
  for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
else
  ids = redis.call('ZRANGE', KEYS[2], 0, tonumber(ARGV[1]) - 1)
end
local out = {}
for _, id in ipairs(ids) do
  local v = redis.call('HGET', KEYS[1], id)
  if v then
    out[#out + 1] = v
    redis.call('HDEL', KEYS[1], id)
    redis.call('ZREM', KEYS[2], id)
  end
end
return out

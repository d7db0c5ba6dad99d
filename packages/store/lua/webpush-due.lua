-- The Web Push check of a chunk of devices, in one call: which of them have a subscription and
-- have not acked the entry (cursor on its stream below its seq). Devices without subscriptions
-- cost one HLEN; nothing is written.
-- KEYS: per device: its webpush hash, its cursors hash
-- ARGV: per device: stream, seq of the entry on that stream
-- Returns, per due device: its index (1-based), then its subscriptions as HGETALL gives them.
local out = {}
for d = 1, #KEYS / 2 do
  local subs, cursors = KEYS[2 * d - 1], KEYS[2 * d]
  local stream, seq = ARGV[2 * d - 1], tonumber(ARGV[2 * d])
  if redis.call('HLEN', subs) > 0 then
    local acked = tonumber(redis.call('HGET', cursors, stream) or '-1')
    if acked < seq then
      out[#out + 1] = { d, redis.call('HGETALL', subs) }
    end
  end
end
return out

-- A whole direct publish in one call (one Redis, not a cluster: the status key is in another
-- slot): append (lib/append.lua), record the status as sent with its target count, ring.
-- KEYS[1] stream, KEYS[2] seq counter, KEYS[3] presence hash (inbox) or audience set (topic,
--   broadcast), KEYS[4] status hash
-- ARGV: id, data, ts, exp, maxlen, now, keepMs, statusExpireAt, target ('devices' | 'topic' |
--   'broadcast'), bellHead, bellTail, channel
--   The doorbell is bellHead .. seq .. bellTail .. '\n' .. data (header built by doorbell.ts);
--   an inbox rings channel .. nodeId for each node holding the device, a stream rings channel.
-- Returns: { seq, targets }
local data, ts, exp, now = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[6])
local target, channel = ARGV[9], ARGV[12]
local seq = herald_append(KEYS[1], KEYS[2], ARGV[1], data, ts, exp, ARGV[5], now, tonumber(ARGV[7]))

local targets = 1
if target ~= 'devices' then targets = redis.call('SCARD', KEYS[3]) end
-- Status before the doorbell: delivery counts flushed by nodes find it.
redis.call('HSET', KEYS[4], 'state', 'sent', 'target', target, 'createdAt', ts, 'exp', exp,
  'targets', targets, 'delivered', 0, 'acked', 0)
redis.call('PEXPIREAT', KEYS[4], ARGV[8])

local bell = ARGV[10] .. seq .. ARGV[11] .. '\n' .. data
if target == 'devices' then
  for _, node in ipairs(herald_live_nodes(KEYS[3], now)) do redis.call('PUBLISH', channel .. node, bell) end
else
  redis.call('PUBLISH', channel, bell)
end
return { seq, targets }

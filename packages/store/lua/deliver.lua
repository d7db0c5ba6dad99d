-- One delivery in one call (one Redis or Sentinel, never a cluster: the status key is in another
-- slot): append to one stream (lib/append.lua), record the target count in the status
-- (lib/status.lua), ring. For one device inbox, a topic or the broadcast stream.
-- KEYS[1] stream, KEYS[2] seq counter, KEYS[3] presence hash (inbox) or audience set (topic,
--   broadcast), KEYS[4] status hash, KEYS[5] the append's mark (lib/append.lua; used for 'count':
--   a fan-out step appends once per id)
-- ARGV: id, data, ts, exp, maxlen, now, keepMs, target ('devices' | 'topic' | 'broadcast'),
--   record ('sent': write the status as sent, a direct publish; 'count': add the targets to the
--   status the API created, a worker's fan-out step), statusExpireAt, bellHead, bellTail, channel
--   collapseKey ('' none), priority ('h', 'l' or '')
--   The doorbell is bellHead .. seq .. bellTail .. '\n' .. data (header built by doorbell.ts);
--   an inbox rings channel .. nodeId for each node holding the device, a stream rings channel.
-- Returns: { seq, targets, doorbells published, dup (1: already appended by an earlier run of the
--   step: nothing appended; the doorbell rings again, nodes drop what they have) }
local data, ts, exp, now = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[6])
local target, record, channel = ARGV[8], ARGV[9], ARGV[13]
local mark = nil
if record == 'count' then mark = KEYS[5] end
local seq, dup = herald_append(KEYS[1], KEYS[2], ARGV[1], data, ts, exp, ARGV[5], now, tonumber(ARGV[7]), mark, ARGV[14], ARGV[15], KEYS[6])

local targets = 1
if target ~= 'devices' then targets = redis.call('SCARD', KEYS[3]) end
-- Status before the doorbell: delivery counts flushed by nodes find it.
if record == 'sent' then
  herald_status_new(KEYS[4], ARGV[10], 'sent', target, ts, exp, targets, '', '')
else
  -- Counted again by a step run again, as SteppedDelivery does (there a run can fail between
  -- its append and its count, so a second count is the only way not to miss one).
  herald_status_add(KEYS[4], 'targets', targets)
end

local bell = ARGV[11] .. seq .. ARGV[12] .. '\n' .. data
local bells = 0
if target == 'devices' then
  for _, node in ipairs(herald_live_nodes(KEYS[3], now)) do
    redis.call('PUBLISH', channel .. node, bell)
    bells = bells + 1
  end
else
  redis.call('PUBLISH', channel, bell)
  bells = 1
end
return { seq, targets, bells, dup and 1 or 0 }

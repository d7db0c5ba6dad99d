-- Shared by status.lua, deliver.lua and counts.lua (prepended when the script is loaded, see
-- scripts.ts). The one place a notification's status hash is created and counted; status.ts reads
-- it, transition.lua moves its state. Fields: state, target, createdAt, exp, targets, delivered,
-- acked, pushed, pushFailed (Web Push, added by the worker), for scheduled ones deliverAt and
-- jobId, and `key`: the id of the API key that published it (webhooks route its events by it).

-- Writes a new status (replacing any), kept until expireAt (ms): its notification's expiry plus
-- HERALD_STATUS_KEEP_S. deliverAt and jobId are '' when there are none; apiKey (the publishing
-- key's id, for webhooks: docs/webhooks.md) is nil or '' when not recorded.
local function herald_status_new(key, expireAt, state, target, createdAt, exp, targets, deliverAt, jobId, apiKey)
  redis.call('DEL', key)
  redis.call('HSET', key, 'state', state, 'target', target, 'createdAt', createdAt, 'exp', exp,
    'targets', targets, 'delivered', 0, 'acked', 0, 'pushed', 0, 'pushFailed', 0)
  if deliverAt ~= '' then redis.call('HSET', key, 'deliverAt', deliverAt) end
  if jobId ~= '' then redis.call('HSET', key, 'jobId', jobId) end
  if apiKey and apiKey ~= '' then redis.call('HSET', key, 'key', apiKey) end
  redis.call('PEXPIREAT', key, expireAt)
end

-- Adds n to a count (targets, delivered, acked, pushed, pushFailed) of an existing status; a status that is gone
-- (expired and dropped, or never written) is left alone: an increment would recreate it without
-- a TTL.
local function herald_status_add(key, field, n)
  if redis.call('EXISTS', key) == 1 then redis.call('HINCRBY', key, field, n) end
end

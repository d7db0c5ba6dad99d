-- Records the id of the API key that published a notification in its status hash (webhooks route
-- the notification's events to that key's endpoints, docs/webhooks.md). A status that is gone is
-- left alone (an HSET would recreate it without a TTL).
-- KEYS[1] status hash
-- ARGV: apiKey
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'key', ARGV[1]) end
return 1

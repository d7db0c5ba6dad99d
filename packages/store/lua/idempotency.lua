-- Claims an Idempotency-Key for a notification id, or returns who holds it.
-- KEYS[1] idempotency key; ARGV: id, body hash, window ms
-- Returns: { 'new' } or { 'held', id, hash }
local v = redis.call('HMGET', KEYS[1], 'id', 'h')
if v[1] then return { 'held', v[1], v[2] } end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'h', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return { 'new' }

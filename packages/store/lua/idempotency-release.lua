-- Frees an Idempotency-Key, but only while it still names the notification that claimed it: a
-- request that failed late must not free a key another request has since completed.
-- KEYS[1] idempotency key; ARGV[1] notification id. Returns 1 when freed.
if redis.call('HGET', KEYS[1], 'id') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0

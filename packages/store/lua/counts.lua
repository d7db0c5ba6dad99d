-- Adds delivery counts to a notification's status, but only while the status exists, so late
-- acks never recreate an expired status without a TTL.
-- KEYS[1] status hash; ARGV: field1, n1, field2, n2, ...
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 1, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1

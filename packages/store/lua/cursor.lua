-- Stores acked cursors, only moving each one forward (acks from two nodes may arrive out of order).
-- KEYS[1] cursors hash; ARGV: stream1, seq1, stream2, seq2, ...; ARGV[#ARGV] ttl ms
local n = #ARGV - 1
for i = 1, n, 2 do
  local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '-1')
  if tonumber(ARGV[i + 1]) > cur then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
redis.call('PEXPIRE', KEYS[1], ARGV[#ARGV])
return 1

-- Stores acked cursors of one or more devices, each only moving forward (acks from two nodes may
-- arrive out of order). Many devices per call on one Redis; one per call on a cluster (slots).
-- KEYS: cursors hashes; ARGV[1] ttl ms, then per key: n, stream1, seq1, ..., streamN, seqN
local ttl = ARGV[1]
local a = 2
for k = 1, #KEYS do
  local n = tonumber(ARGV[a])
  a = a + 1
  for _ = 1, n do
    local stream, seq = ARGV[a], tonumber(ARGV[a + 1])
    a = a + 2
    local cur = tonumber(redis.call('HGET', KEYS[k], stream) or '-1')
    if seq > cur then redis.call('HSET', KEYS[k], stream, seq) end
  end
  redis.call('PEXPIRE', KEYS[k], ttl)
end
return #KEYS

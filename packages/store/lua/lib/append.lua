-- Shared by append.lua, deliver.lua and membership.lua (prepended when the script is loaded, see scripts.ts).

-- Appends one entry with the next contiguous seq, trims what expired or overflows, and keeps the
-- stream and its counter alive as long as their longest-lived entry plus keepMs. Returns the seq.
local function herald_append(stream, seqKey, id, data, ts, exp, maxlen, now, keepMs)
  local seq = redis.call('INCR', seqKey)
  if seq == 1 and redis.call('EXISTS', stream) == 1 then
    -- The counter was lost but the stream was not: continue after the stream's last id.
    local info = redis.call('XINFO', 'STREAM', stream)
    for i = 1, #info, 2 do
      if info[i] == 'last-generated-id' then
        seq = tonumber(string.match(info[i + 1], '^(%d+)')) + 1
        redis.call('SET', seqKey, seq)
      end
    end
  end

  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, string.format('%d-0', seq), 'i', id, 'd', data, 't', ts, 'e', exp)

  -- Drop expired entries at the head (bounded: a few per append keeps up with the append rate).
  local head = redis.call('XRANGE', stream, '-', '+', 'COUNT', 8)
  local cut = nil
  for _, entry in ipairs(head) do
    local fields = entry[2]
    local e = nil
    for j = 1, #fields, 2 do
      if fields[j] == 'e' then e = tonumber(fields[j + 1]) end
    end
    if e ~= nil and e <= now then cut = entry[1] else break end
  end
  if cut ~= nil then
    local cutSeq = tonumber(string.match(cut, '^(%d+)'))
    redis.call('XTRIM', stream, 'MINID', string.format('%d-0', cutSeq + 1))
  end

  local ttl = exp - now + keepMs
  if ttl < 1000 then ttl = 1000 end
  -- GT extends only; a key without a TTL counts as infinite for GT (0), so only then is PTTL needed.
  for _, key in ipairs({ stream, seqKey }) do
    if redis.call('PEXPIRE', key, ttl, 'GT') == 0 and redis.call('PTTL', key) < 0 then
      redis.call('PEXPIRE', key, ttl)
    end
  end
  return seq
end

-- Nodes where a device is connected now (presence hash nodeId -> expiry ms); drops expired ones.
local function herald_live_nodes(presence, now)
  local out = {}
  local p = redis.call('HGETALL', presence)
  for j = 1, #p, 2 do
    if tonumber(p[j + 1]) > now then
      out[#out + 1] = p[j]
    else
      redis.call('HDEL', presence, p[j])
    end
  end
  return out
end

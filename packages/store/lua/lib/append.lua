-- Shared by append.lua, deliver.lua and membership.lua (prepended when the script is loaded, see scripts.ts).

-- How long a fan-out step's mark (below) is kept at most: longer than the fan-out queue's whole
-- retry schedule (10 attempts, exponential from 500 ms: 8.5 minutes, packages/store/src/queue.ts)
-- plus its stalled re-runs (seconds each), so every retry of a step finds the marks of its first run.
local HERALD_MARK_MAX_MS = 900000

-- The last of the oldest n entries of a stream that have expired at `now` (nil: the oldest has
-- not), and whether all n were read and expired (more may follow).
local function herald_expired_head(stream, n, now)
  local head = redis.call('XRANGE', stream, '-', '+', 'COUNT', n)
  local cut = nil
  for _, entry in ipairs(head) do
    local fields = entry[2]
    local e = nil
    for j = 1, #fields, 2 do
      if fields[j] == 'e' then e = tonumber(fields[j + 1]) end
    end
    if e ~= nil and e <= now then cut = entry[1] else return cut, false end
  end
  return cut, #head == n
end

-- Appends one entry with the next contiguous seq, trims what expired or overflows, and keeps the
-- stream and its counter alive as long as their longest-lived entry plus keepMs.
-- mark: nil, or a key in the stream's slot (keys.ts appendMark) that makes the append happen once
-- per notification id: a worker's fan-out step that is run again (a retry after an error, a
-- stalled job taken over) finds the mark and appends nothing, instead of a second copy under the
-- same id with a higher seq, which an app restarted in between would show twice (issue #19's
-- Sentinel campaign). Returns the seq and whether it was already there.
-- ck: the publish's collapseKey ('' none), stored as field 'k' and as ck -> seq in the stream's
-- collapse hash ckHash (keys.ts collapse), which read.lua asks whether a later seq holds the
-- key. pri: 'h' or 'l' (priority high or low; '' normal), stored as field 'p'. Neither costs an
-- entry without them anything.
local function herald_append(stream, seqKey, id, data, ts, exp, maxlen, now, keepMs, mark, ck, pri, ckHash)
  if mark then
    local prev = redis.call('GET', mark)
    if prev then return tonumber(prev), true end
  end
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

  local add = { 'XADD', stream, 'MAXLEN', '~', maxlen, string.format('%d-0', seq), 'i', id, 'd', data, 't', ts, 'e', exp }
  if ck ~= '' then
    add[#add + 1] = 'k'
    add[#add + 1] = ck
  end
  if pri ~= '' then
    add[#add + 1] = 'p'
    add[#add + 1] = pri
  end
  redis.call(unpack(add))

  -- Drop expired entries at the head (bounded: a few per append keeps up with the append rate).
  -- The oldest entry alone first: in the common case it is alive and nothing more is read
  -- (reading 8 entries into Lua tables per append was most of this script's cost, issue #14).
  local cut, full = herald_expired_head(stream, 1, now)
  if full then cut = herald_expired_head(stream, 8, now) end
  if cut ~= nil then
    local cutSeq = tonumber(string.match(cut, '^(%d+)'))
    redis.call('XTRIM', stream, 'MINID', string.format('%d-0', cutSeq + 1))
  end

  local alive = { stream, seqKey }
  if ck ~= '' then
    redis.call('HSET', ckHash, ck, seq)
    alive[3] = ckHash
    -- Bounded: keys whose latest entry was trimmed are useless. Past the stream's length bound
    -- (plus slack), a sample of them is dropped per keyed append (32 fields: O(1) per append,
    -- and with the hash over the bound most fields are stale, so it keeps up).
    if redis.call('HLEN', ckHash) > tonumber(maxlen) + 64 then
      local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1]
      local firstSeq = seq
      if first then firstSeq = tonumber(string.match(first[1], '^(%d+)')) end
      local sample = redis.call('HRANDFIELD', ckHash, 32, 'WITHVALUES')
      for i = 1, #sample, 2 do
        if tonumber(sample[i + 1]) < firstSeq then redis.call('HDEL', ckHash, sample[i]) end
      end
    end
  end
  local ttl = exp - now + keepMs
  if ttl < 1000 then ttl = 1000 end
  -- GT extends only; a key without a TTL counts as infinite for GT (0), so only then is PTTL needed.
  -- The collapse hash outlives every keyed entry it names (each keyed append extends it).
  for _, key in ipairs(alive) do
    if redis.call('PEXPIRE', key, ttl, 'GT') == 0 and redis.call('PTTL', key) < 0 then
      redis.call('PEXPIRE', key, ttl)
    end
  end
  if mark then
    local markMs = exp - now
    if markMs > HERALD_MARK_MAX_MS then markMs = HERALD_MARK_MAX_MS end
    if markMs < 1000 then markMs = 1000 end
    redis.call('SET', mark, seq, 'PX', markMs)
  end
  return seq, false
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

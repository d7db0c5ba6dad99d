-- Moves a notification's state only from an allowed one, so cancel and send cannot both win.
-- KEYS[1] status hash
-- ARGV: to, targets (the target count to record with the move, '' to leave it), from1, from2, ...
-- Returns the state found ('' when the status does not exist).
local cur = redis.call('HGET', KEYS[1], 'state')
if not cur then return '' end
for i = 3, #ARGV do
  if cur == ARGV[i] then
    redis.call('HSET', KEYS[1], 'state', ARGV[1])
    if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'targets', ARGV[2]) end
    return cur
  end
end
return cur

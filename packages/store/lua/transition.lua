-- Moves a notification's state only from an allowed one, so cancel and send cannot both win.
-- KEYS[1] status hash; ARGV: to, from1, from2, ...
-- Returns the state found ('' when the status does not exist).
local cur = redis.call('HGET', KEYS[1], 'state')
if not cur then return '' end
for i = 2, #ARGV do
  if cur == ARGV[i] then
    redis.call('HSET', KEYS[1], 'state', ARGV[1])
    return cur
  end
end
return cur

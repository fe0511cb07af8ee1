-- Node ARGV[1] has no subscriber left in channel ARGV[2].
-- KEYS[1] the channel's node set   KEYS[2] the node's channel set
-- Returns 1 when no node is left (the channel became vacant), else 0.
local removed = redis.call('srem', KEYS[1], ARGV[1])
redis.call('srem', KEYS[2], ARGV[2])
if removed == 1 and redis.call('scard', KEYS[1]) == 0 then
  return 1
end
return 0

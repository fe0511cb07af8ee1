-- Node ARGV[1] now has subscribers in channel ARGV[2].
-- KEYS[1] the channel's node set   KEYS[2] the node's channel set
-- Returns 1 when the channel had no node before (it became occupied), else 0.
local added = redis.call('sadd', KEYS[1], ARGV[1])
redis.call('sadd', KEYS[2], ARGV[2])
if added == 1 and redis.call('scard', KEYS[1]) == 1 then
  return 1
end
return 0

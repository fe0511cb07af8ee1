-- Node ARGV[1] is alive now (Redis clock, Unix ms). KEYS[1] the node heartbeat hash.
local t = redis.call('time')
redis.call('hset', KEYS[1], ARGV[1], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
return 0

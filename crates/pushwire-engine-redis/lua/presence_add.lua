-- Add or refresh presence entries of one channel; they expire ARGV[1] ms from now (Redis
-- clock) unless refreshed.
--
-- KEYS[1] data hash   KEYS[2] expiry sorted set
-- ARGV[1] TTL, ms; then pairs: client id, protobuf ClientInfo
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expire_at = now + tonumber(ARGV[1])
for i = 2, #ARGV, 2 do
  redis.call('zadd', KEYS[2], expire_at, ARGV[i])
  redis.call('hset', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('pexpire', KEYS[1], ARGV[1])
redis.call('pexpire', KEYS[2], ARGV[1])
return 0

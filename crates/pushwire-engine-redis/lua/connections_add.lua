-- Add (or refresh) connection ids of one user, unless that would exceed the limit.
-- Entries expire ARGV[1] ms from now (Redis clock) unless refreshed; expired ones are dropped
-- first, so the connections of a crashed node stop counting after the TTL.
--
-- KEYS[1] the user's sorted set (connection id scored by expiry, Unix ms)
-- ARGV[1] TTL, ms   ARGV[2] limit (0 = no check: a refresh)   ARGV[3..] connection ids
-- Returns 1 when added, 0 when refused (nothing changed).
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('zremrangebyscore', KEYS[1], '-inf', now)
if limit > 0 and redis.call('zscore', KEYS[1], ARGV[3]) == false then
  if redis.call('zcard', KEYS[1]) >= limit then
    return 0
  end
end
for i = 3, #ARGV do
  redis.call('zadd', KEYS[1], now + ttl, ARGV[i])
end
redis.call('pexpire', KEYS[1], ttl)
return 1

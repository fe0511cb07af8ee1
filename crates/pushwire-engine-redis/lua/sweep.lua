-- Removes the nodes whose heartbeat is older than ARGV[1] ms, with their occupancy.
-- KEYS[1] the node heartbeat hash   ARGV[1] TTL, ms   ARGV[2] key prefix
-- Returns, per removed node, {uid, {channels that became vacant}}. A node is removed (and
-- reported) by exactly one caller: scripts run one at a time.
-- Touches keys it derives from the prefix: a single Redis (not Cluster) is assumed.
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
local out = {}
local all = redis.call('hgetall', KEYS[1])
for i = 1, #all, 2 do
  local uid = all[i]
  if now - tonumber(all[i + 1]) > ttl then
    redis.call('hdel', KEYS[1], uid)
    local node_key = ARGV[2] .. '.occn.' .. uid
    local vacated = {}
    for _, channel in ipairs(redis.call('smembers', node_key)) do
      local channel_key = ARGV[2] .. '.occ.' .. channel
      redis.call('srem', channel_key, uid)
      if redis.call('scard', channel_key) == 0 then
        table.insert(vacated, channel)
      end
    end
    redis.call('del', node_key)
    table.insert(out, {uid, vacated})
  end
end
return out

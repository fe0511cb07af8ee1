-- Publish one publication atomically: idempotency check, version check, append with the next
-- offset, trim, TTLs, PUBLISH. Everything happens inside one script, so every node receives a
-- channel's publications in offset order and the stream top equals the last offset delivered.
--
-- KEYS[1] stream   KEYS[2] meta hash   KEYS[3] idempotency record
-- ARGV[1] protobuf publication without offset
-- ARGV[2] history size (0 = not kept)    ARGV[3] history TTL, ms
-- ARGV[4] meta TTL, ms (0 = no expiry)   ARGV[5] epoch to use if the stream is new
-- ARGV[6] PUB/SUB channel ("" = store only) ARGV[7] idempotency window, ms (0 = no key)
-- ARGV[8] version, decimal ("0" = none)  ARGV[9] version epoch
-- ARGV[10] the publish command: "publish", or "spublish" on a Redis Cluster (the shard
--          channel carries the same hash tag as the keys)
-- Returns {suppressed (0|1), offset ("" = no history), epoch}.
local stream, meta, idem = KEYS[1], KEYS[2], KEYS[3]
local payload = ARGV[1]
local size = tonumber(ARGV[2])
local idem_ttl = tonumber(ARGV[7])

if idem_ttl > 0 then
  local seen = redis.call('hmget', idem, 'e', 's')
  if seen[2] then
    return {1, seen[2], seen[1]}
  end
end

if size == 0 then
  if ARGV[6] ~= '' then
    redis.call(ARGV[10], ARGV[6], 'p0 ' .. payload)
  end
  if idem_ttl > 0 then
    redis.call('hset', idem, 'e', '', 's', '')
    redis.call('pexpire', idem, idem_ttl)
  end
  return {0, '', ''}
end

local epoch = redis.call('hget', meta, 'e')
if not epoch then
  epoch = ARGV[5]
  redis.call('del', stream)
  redis.call('hset', meta, 'e', epoch)
end

local version, version_epoch = ARGV[8], ARGV[9]
if version ~= '0' then
  local last = redis.call('hmget', meta, 'v', 've')
  local last_v, last_ve = last[1] or '0', last[2] or ''
  -- Decimal strings without leading zeros: compare by length, then lexically (no float
  -- rounding for versions above 2^53).
  local stale = last_ve == version_epoch and
    (#version < #last_v or (#version == #last_v and version <= last_v))
  if stale then
    return {1, redis.call('hget', meta, 's') or '0', epoch}
  end
  redis.call('hset', meta, 'v', version, 've', version_epoch)
end

local top = redis.call('hincrby', meta, 's', 1)
redis.call('xadd', stream, 'MAXLEN', size, top, 'd', payload)
redis.call('pexpire', stream, ARGV[3])
if tonumber(ARGV[4]) > 0 then
  redis.call('pexpire', meta, ARGV[4])
end
if ARGV[6] ~= '' then
  redis.call(ARGV[10], ARGV[6], 'p' .. top .. ' ' .. payload)
end
if idem_ttl > 0 then
  redis.call('hset', idem, 'e', epoch, 's', top)
  redis.call('pexpire', idem, idem_ttl)
end
return {0, tostring(top), epoch}

-- Read a channel's stream position and (optionally) publications in one atomic step. A read
-- of a channel without a stream creates its position (new epoch, offset 0).
--
-- KEYS[1] stream   KEYS[2] meta hash
-- ARGV[1] epoch to use if the stream is new   ARGV[2] meta TTL, ms (0 = no expiry)
-- ARGV[3] "f" forward, "r" reverse, "" position only
-- ARGV[4], ARGV[5] range bounds as XRANGE (forward) or XREVRANGE (reverse) take them
-- ARGV[6] most entries
-- Returns {epoch, top offset, id1, data1, id2, data2, ...}.
local stream, meta = KEYS[1], KEYS[2]
local epoch = redis.call('hget', meta, 'e')
if not epoch then
  epoch = ARGV[1]
  redis.call('del', stream)
  redis.call('hset', meta, 'e', epoch)
  if tonumber(ARGV[2]) > 0 then
    redis.call('pexpire', meta, ARGV[2])
  end
end
local out = {epoch, redis.call('hget', meta, 's') or '0'}
local entries = {}
if ARGV[3] == 'f' then
  entries = redis.call('xrange', stream, ARGV[4], ARGV[5], 'COUNT', ARGV[6])
elseif ARGV[3] == 'r' then
  entries = redis.call('xrevrange', stream, ARGV[4], ARGV[5], 'COUNT', ARGV[6])
end
for _, e in ipairs(entries) do
  out[#out + 1] = e[1]
  out[#out + 1] = e[2][2]
end
return out

"""The Lua scripts of a room's stream in Redis, each one atomic step: publish a chat
frame with the room's next offset (kept in the history and the replay store, then
published), replay what a joiner or a resuming page needs, and read the history after an
offset. Keys come from ``redis_keys.RoomKeys``; entries are packed by ``offsets``.
"""

from __future__ import annotations

# The timestamp (ms) of a history entry, m: the frame's server-stamped "timestamp" (a
# user's text cannot hold an unescaped quote); nil for a frame without one.
ENTRY_MS = "tonumber(string.match(m, '\"timestamp\":(%d+)'))"

# KEYS: recent hash, recent zset, pubsub channel, owners hash, owners zset, sequence
# hash, history zset. ARGV: key, data, ts, cutoff, ttl_ms, cap, message_id, author,
# a new epoch (used if the room has none), history cap, sequence ttl_ms, the history's
# cutoff and ttl_ms (it keeps frames longer than the fade: offsets.HISTORY_KEEP_MS).
# Returns the number of receivers, or -1 when another author's message with this id was
# updated after the cutoff (it is on screen): then nothing is kept or published.
PUBLISH_RECENT = (
    """
local owner = redis.call('HGET', KEYS[4], ARGV[7])
if owner and owner ~= ARGV[8] then
  local last = redis.call('ZSCORE', KEYS[5], ARGV[7])
  if last and tonumber(last) > tonumber(ARGV[4]) then return -1 end
end
local gone = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', ARGV[4], 'LIMIT', 0, 100)
if #gone > 0 then
  redis.call('ZREM', KEYS[5], unpack(gone))
  redis.call('HDEL', KEYS[4], unpack(gone))
end
redis.call('HSET', KEYS[4], ARGV[7], ARGV[8])
redis.call('ZADD', KEYS[5], ARGV[3], ARGV[7])
redis.call('PEXPIRE', KEYS[4], ARGV[5])
redis.call('PEXPIRE', KEYS[5], ARGV[5])
-- The room's next offset, in its epoch; the frame as clients get it, and as packed.
local epoch = redis.call('HGET', KEYS[6], 'e')
if not epoch then
  epoch = ARGV[9]
  redis.call('HSET', KEYS[6], 'e', epoch)
end
local offset = redis.call('HINCRBY', KEYS[6], 'o', 1)
redis.call('PEXPIRE', KEYS[6], ARGV[11])
local frame = string.sub(ARGV[2], 1, -2) .. ',"offset":' .. offset .. '}'
local packed = string.sub(frame, 1, -2) .. ',"epoch":"' .. epoch .. '"}'
redis.call('ZADD', KEYS[7], offset, packed)
local extra = redis.call('ZCARD', KEYS[7]) - tonumber(ARGV[10])
if extra > 0 then
  local capped = redis.call('ZRANGE', KEYS[7], extra - 1, extra - 1, 'WITHSCORES')
  redis.call('ZREMRANGEBYRANK', KEYS[7], 0, extra - 1)
  redis.call('HSET', KEYS[6], 'c', capped[2])
end
for _ = 1, 100 do
  local m = redis.call('ZRANGE', KEYS[7], 0, 0)[1]
  local ms = m and """
    + ENTRY_MS
    + """
  if not ms or ms >= tonumber(ARGV[12]) then break end
  redis.call('ZREMRANGEBYRANK', KEYS[7], 0, 0)
end
redis.call('PEXPIRE', KEYS[7], ARGV[13])
-- The newest frame of each message, for late joiners.
redis.call('HSET', KEYS[1], ARGV[1], frame)
-- Scores keep publication order within a millisecond (1/1024 ms apart; exact in a double).
local score = tonumber(ARGV[3])
local top = redis.call('ZREVRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if top[2] and tonumber(top[2]) >= score then score = tonumber(top[2]) + 1 / 1024 end
redis.call('ZADD', KEYS[2], score, ARGV[1])
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[4], 'LIMIT', 0, 100)
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[6])
if over > 0 then
  for _, k in ipairs(redis.call('ZRANGE', KEYS[2], 0, over - 1)) do table.insert(old, k) end
end
if #old > 0 then
  redis.call('ZREM', KEYS[2], unpack(old))
  redis.call('HDEL', KEYS[1], unpack(old))
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return redis.call('PUBLISH', KEYS[3], packed)
"""
)

# The room's epoch (made now if it has none), its top offset and the highest offset the
# cap pushed out of its history. KEYS[1]: the sequence hash. ARGV[1]: a new epoch,
# ARGV[2]: the sequence's ttl_ms.
SEQUENCE = """
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], 'e', epoch)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
local top = tonumber(redis.call('HGET', KEYS[1], 'o') or '0')
local capped = tonumber(redis.call('HGET', KEYS[1], 'c') or '0')
"""

# KEYS: sequence hash, history zset, recent hash, recent zset. ARGV: new epoch, sequence
# ttl_ms, the epoch resumed from ('' for a first join), the offset resumed from, the
# lower bound (exclusive) of the timestamps on screen, most entries, most bytes.
# Returns {epoch, top, 1, packed entries after the offset} for a resume the history
# holds whole, else {epoch, top, 0, the newest frame of each message on screen}.
REPLAY = (
    SEQUENCE
    + """
local since = tonumber(ARGV[4])
if ARGV[3] == epoch and capped <= since and since <= top then
  local found = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. since, '+inf', 'LIMIT', 0, ARGV[6] + 1)
  if #found <= tonumber(ARGV[6]) then
    local out, total = {}, 0
    for _, m in ipairs(found) do
      if ("""
    + ENTRY_MS
    + """ or math.huge) > tonumber(ARGV[5]) then
        total = total + #m
        table.insert(out, m)
      end
    end
    if total <= tonumber(ARGV[7]) then return {epoch, top, 1, out} end
  end
end
local out, total = {}, 0
local keys = redis.call('ZREVRANGEBYSCORE', KEYS[4], '+inf', '(' .. ARGV[5], 'LIMIT', 0, ARGV[6])
if #keys > 0 then
  for _, v in ipairs(redis.call('HMGET', KEYS[3], unpack(keys))) do
    if v then
      total = total + #v
      if total > tonumber(ARGV[7]) then break end
      table.insert(out, v)
    end
  end
end
return {epoch, top, 0, out}
"""
)

# KEYS: sequence hash, history zset. ARGV: new epoch, sequence ttl_ms, the epoch and
# offset to read after. Returns {epoch, top, packed entries after the offset (all, in
# another epoch)}, faded or not.
HISTORY = (
    SEQUENCE
    + """
local start = 0
if ARGV[3] == epoch then start = tonumber(ARGV[4]) end
return {epoch, top, redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. start, '+inf')}
"""
)

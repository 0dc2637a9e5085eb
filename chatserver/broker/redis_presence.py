"""Presence in Redis: one expiring record per connection in each room (a hash of
members and a sorted set of expiry times), set, refreshed without ever re-creating a
record, removed, listed and swept. Every command goes through the broker's ``call``,
which turns an outage into ``BrokerUnavailable`` and starts the probe."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis

from chatserver.broker import redis_keys
from chatserver.protocol import Member

Call = Callable[[Any], Awaitable[Any]]
KEYS_TTL_MS = 86_400_000
"""A room's presence keys outlive their last record by this long."""

# KEYS: hash, zset. ARGV: lower bound (exclusive) of the scores to return
_LIVE = """
local keys = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[1], '+inf')
if #keys == 0 then return {} end
return redis.call('HMGET', KEYS[1], unpack(keys))
"""

# KEYS: hash, zset. ARGV: now
_SWEEP = """
local keys = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
if #keys == 0 then return {} end
local values = redis.call('HMGET', KEYS[1], unpack(keys))
redis.call('ZREM', KEYS[2], unpack(keys))
redis.call('HDEL', KEYS[1], unpack(keys))
return values
"""

# KEYS: hash, zset. ARGV: expires, ttl_ms, then the keys of one room's records. Extends
# each record only if it exists; returns the keys that were gone.
_PRESENCE_TOUCH = """
local gone = {}
for i = 3, #ARGV do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 1 then
    redis.call('ZADD', KEYS[2], ARGV[1], ARGV[i])
  else
    table.insert(gone, ARGV[i])
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return gone
"""
TOUCH_BATCH = 1000
"""Most records one touch call extends (a room with more takes several)."""

# KEYS: hash, zset. ARGV: key, member, expires, ttl_ms
_PRESENCE_SET = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 1
"""


def _member_bytes(member: Member) -> bytes:
    return orjson.dumps(member.as_dict())


def _members(values: list[Any]) -> list[Member]:
    out = []
    for raw in values:
        if raw is None:
            continue
        data = orjson.loads(raw)
        out.append(Member(data["user_id"], data.get("username"), data.get("color")))
    return out


class RedisPresence:
    def __init__(self, client: aioredis.Redis, call: Call) -> None:
        self._client = client
        self._call = call
        self._live = client.register_script(_LIVE)
        self._sweep = client.register_script(_SWEEP)
        self._set = client.register_script(_PRESENCE_SET)
        self._touch = client.register_script(_PRESENCE_TOUCH)

    async def set(self, channel: str, *, key: str, member: Member, expires_ms: int) -> None:
        args: list[bytes | str | int] = [key, _member_bytes(member), expires_ms, KEYS_TTL_MS]
        await self._call(self._set(keys=redis_keys.presence(channel), args=args))

    async def refresh(
        self, entries: Sequence[tuple[str, str]], *, expires_ms: int
    ) -> list[tuple[str, str]]:
        """Extend existing records; returns the entries that were gone. One round trip
        per heartbeat, however many connections this process holds, and one script call
        per room (per :data:`TOUCH_BATCH` records), not per connection."""
        by_room: dict[str, list[str]] = {}
        for channel, key in entries:
            by_room.setdefault(channel, []).append(key)
        calls: list[str] = []
        async with self._client.pipeline(transaction=False) as pipe:
            for channel, keys in by_room.items():
                for at in range(0, len(keys), TOUCH_BATCH):
                    args: list[bytes | str | int] = [expires_ms, KEYS_TTL_MS]
                    args.extend(keys[at : at + TOUCH_BATCH])
                    await self._touch(keys=redis_keys.presence(channel), args=args, client=pipe)
                    calls.append(channel)
            answers = await self._call(pipe.execute())
        gone: list[tuple[str, str]] = []
        for channel, missing in zip(calls, answers, strict=True):
            gone.extend((channel, key.decode()) for key in missing)
        return gone

    async def remove(self, channel: str, *, key: str) -> None:
        data_key, exp_key = redis_keys.presence(channel)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hdel(data_key, key)
            pipe.zrem(exp_key, key)
            await self._call(pipe.execute())

    async def live(self, channel: str, *, now_ms: int) -> list[Member]:
        values = await self._call(self._live(keys=redis_keys.presence(channel), args=[now_ms]))
        return _members(values)

    async def sweep(self, channel: str, *, now_ms: int) -> list[Member]:
        values = await self._call(self._sweep(keys=redis_keys.presence(channel), args=[now_ms]))
        return _members(values)

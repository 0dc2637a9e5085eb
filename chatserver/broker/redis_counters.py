"""Counters in Redis for rate limits: one key per counter, living ``window_s`` seconds
from its first increment. Commands go through the broker's ``call`` (outage detection)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

from chatserver.broker import redis_keys

Call = Callable[[Any], Awaitable[Any]]


class RedisCounters:
    def __init__(self, client: aioredis.Redis, call: Call) -> None:
        self._client = client
        self._call = call

    async def count(self, key: str, *, window_s: int) -> int:
        name = redis_keys.counter(key)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.set(name, 0, ex=window_s, nx=True)
            pipe.incr(name)
            _, value = await self._call(pipe.execute())
        return int(value)

"""Both brokers for tests that hold for either: the in-memory one, and the Redis one on
a real ``redis-server`` (the ``redis_server`` fixture), started, connected and subscribed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest

from chatserver.broker.base import Broker
from chatserver.broker.memory_broker import MemoryBroker
from chatserver.broker.redis_broker import RedisBroker
from chatserver.metrics import Metrics
from tests.fixtures.processes import RedisProcess

KINDS = ["memory", "redis"]


@contextlib.asynccontextmanager
async def subscribed(
    request: pytest.FixtureRequest, handler: Callable[[str, bytes], None], *rooms: str
) -> AsyncIterator[Broker]:
    """The broker ``request.param`` names, delivering to ``handler``, subscribed to
    ``rooms``; closed afterwards."""
    if request.param == "memory":
        broker: Broker = MemoryBroker()
    else:
        redis_server: RedisProcess = request.getfixturevalue("redis_server")
        broker = RedisBroker(redis_server.url, password=None, metrics=Metrics())
    broker.set_handler(handler)
    await broker.start()
    try:
        for _ in range(100):
            if (await broker.checks())["pubsub"]:
                break
            await asyncio.sleep(0.05)
        for room in rooms:
            await broker.subscribe(room)
        yield broker
    finally:
        await broker.close()

"""A message is its author's: both brokers refuse another author's frame under a
``message_id`` that is still on screen in that room (PROTOCOL.md, "message identity")."""

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator

import pytest

from chatserver.broker.base import Broker
from chatserver.broker.memory_broker import MemoryBroker
from chatserver.broker.redis_broker import RedisBroker
from chatserver.metrics import Metrics
from tests.fixtures.processes import RedisProcess

KEEP_MS = 5000


@dataclasses.dataclass
class Room:
    """Room ``r`` of one broker, subscribed, with what it delivered."""

    broker: Broker
    got: list[bytes]

    async def publish(self, author: str, message_id: str, data: bytes, at: int) -> bool:
        return await self.broker.publish_recent(
            "r", author=author, message_id=message_id, data=data, timestamp_ms=at, keep_ms=KEEP_MS
        )

    async def delivered(self) -> list[bytes]:
        await asyncio.sleep(0.2)
        return self.got

    async def recent(self, now: int) -> list[bytes]:
        return await self.broker.recent("r", since_ms=now - KEEP_MS, limit=10, max_bytes=1000)


@pytest.fixture(params=["memory", "redis"])
async def room(request: pytest.FixtureRequest) -> AsyncIterator[Room]:
    if request.param == "memory":
        broker: Broker = MemoryBroker()
    else:
        redis_server: RedisProcess = request.getfixturevalue("redis_server")
        broker = RedisBroker(redis_server.url, password=None, metrics=Metrics())
    got: list[bytes] = []
    broker.set_handler(lambda channel, data: got.append(data))
    await broker.start()
    try:
        for _ in range(100):
            if (await broker.checks())["pubsub"]:
                break
            await asyncio.sleep(0.05)
        await broker.subscribe("r")
        yield Room(broker, got)
    finally:
        await broker.close()


async def test_another_authors_frame_under_an_id_on_screen_is_neither_kept_nor_sent(
    room: Room,
) -> None:
    now = int(time.time() * 1000)
    assert await room.publish("victim", "m1", b"hello", now)
    assert not await room.publish("mallory", "m1", b"pwned", now + 1)
    assert await room.publish("victim", "m1", b"hello!", now + 2)  # the author goes on
    assert await room.delivered() == [b"hello", b"hello!"]
    assert await room.recent(now) == [b"hello!"]


async def test_an_id_is_free_again_once_its_message_has_faded(room: Room) -> None:
    now = int(time.time() * 1000)
    assert await room.publish("victim", "m1", b"old", now - KEEP_MS - 1000)
    assert await room.publish("other", "m1", b"new", now)
    assert await room.recent(now) == [b"new"]


async def test_the_last_update_keeps_a_message_on_screen(room: Room) -> None:
    now = int(time.time() * 1000)
    assert await room.publish("victim", "m1", b"h", now - KEEP_MS - 1000)
    assert await room.publish("victim", "m1", b"hi", now - 10)  # typed on: still shown
    assert not await room.publish("mallory", "m1", b"pwned", now)


async def test_ids_are_per_room(room: Room) -> None:
    now = int(time.time() * 1000)
    await room.broker.subscribe("elsewhere")
    assert await room.publish("victim", "m1", b"hello", now)
    assert await room.broker.publish_recent(
        "elsewhere", author="mallory", message_id="m1", data=b"x", timestamp_ms=now, keep_ms=1
    )

"""A message is its author's: both brokers refuse another author's frame under a
``message_id`` that is still on screen in that room (PROTOCOL.md, "message identity")."""

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator

import orjson
import pytest

from chatserver.broker import offsets
from chatserver.broker.base import Broker
from tests.chatserver import brokers

KEEP_MS = 5000


def text(frame: bytes) -> str:
    payload: str = orjson.loads(frame)["payload"]
    return payload


@dataclasses.dataclass
class Room:
    """Room ``r`` of one broker, subscribed, with what it delivered."""

    broker: Broker
    got: list[bytes]

    async def publish(self, author: str, message_id: str, payload: str, at: int) -> bool:
        return await self.broker.publish_recent(
            "r",
            author=author,
            message_id=message_id,
            data=orjson.dumps({"type": "chat", "payload": payload}),
            timestamp_ms=at,
            keep_ms=KEEP_MS,
        )

    async def delivered(self) -> list[str]:
        await asyncio.sleep(0.2)
        entries = [offsets.unpack(data) for data in self.got]
        return [text(e.frame) for e in entries if e is not None]

    async def recent(self, now: int) -> list[str]:
        replay = await self.broker.replay(
            "r", since=None, since_ms=now - KEEP_MS, limit=10, max_bytes=1000
        )
        return [text(frame) for frame in replay.frames]


@pytest.fixture(params=brokers.KINDS)
async def room(request: pytest.FixtureRequest) -> AsyncIterator[Room]:
    got: list[bytes] = []
    async with brokers.subscribed(request, lambda channel, data: got.append(data), "r") as b:
        yield Room(b, got)


async def test_another_authors_frame_under_an_id_on_screen_is_neither_kept_nor_sent(
    room: Room,
) -> None:
    now = int(time.time() * 1000)
    assert await room.publish("victim", "m1", "hello", now)
    assert not await room.publish("mallory", "m1", "pwned", now + 1)
    assert await room.publish("victim", "m1", "hello!", now + 2)  # the author goes on
    assert await room.delivered() == ["hello", "hello!"]
    assert await room.recent(now) == ["hello!"]


async def test_an_id_is_free_again_once_its_message_has_faded(room: Room) -> None:
    now = int(time.time() * 1000)
    assert await room.publish("victim", "m1", "old", now - KEEP_MS - 1000)
    assert await room.publish("other", "m1", "new", now)
    assert await room.recent(now) == ["new"]


async def test_the_last_update_keeps_a_message_on_screen(room: Room) -> None:
    now = int(time.time() * 1000)
    assert await room.publish("victim", "m1", "h", now - KEEP_MS - 1000)
    assert await room.publish("victim", "m1", "hi", now - 10)  # typed on: still shown
    assert not await room.publish("mallory", "m1", "pwned", now)


async def test_ids_are_per_room(room: Room) -> None:
    now = int(time.time() * 1000)
    await room.broker.subscribe("elsewhere")
    assert await room.publish("victim", "m1", "hello", now)
    assert await room.broker.publish_recent(
        "elsewhere",
        author="mallory",
        message_id="m1",
        data=orjson.dumps({"type": "chat", "payload": "x"}),
        timestamp_ms=now,
        keep_ms=1,
    )

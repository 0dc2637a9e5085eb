"""The broker's whole interface, held by both brokers alike: the in-memory one and the
Redis one on a real ``redis-server``. What only Redis can show (a process's frames
reaching another process, an outage, a refused write) is in ``test_redis_broker.py``;
offsets and recovery are in ``test_offsets.py``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import orjson
import pytest

from chatserver.broker import offsets, redis_presence
from chatserver.broker.base import Broker
from chatserver.protocol import Member, StreamPosition
from tests.chatserver import brokers

Got = list[tuple[str, bytes]]


@pytest.fixture
def got() -> Got:
    return []


@pytest.fixture(params=brokers.KINDS)
async def broker(request: pytest.FixtureRequest, got: Got) -> AsyncIterator[Broker]:
    async with brokers.subscribed(request, lambda c, d: got.append((c, d))) as b:
        yield b


async def settled(broker: Broker) -> None:
    """Long enough for a frame published now to have arrived (a round trip to Redis)."""
    await broker.announce(b"")  # travels the same way, after what was published before
    await asyncio.sleep(0.2)


def now_ms() -> int:
    return int(time.time() * 1000)


async def test_a_frame_reaches_the_subscribers_of_its_room_only(broker: Broker, got: Got) -> None:
    await broker.subscribe("a")
    await broker.publish("a", b"1")
    await broker.publish("b", b"2")
    await broker.unsubscribe("a")
    await broker.publish("a", b"3")
    await settled(broker)
    assert got == [("a", b"1")]


async def test_an_announcement_reaches_the_process_that_made_it(broker: Broker) -> None:
    heard: list[bytes] = []
    broker.set_announcement_handler(heard.append)
    await broker.announce(b"hello")
    for _ in range(50):
        if heard:
            break
        await asyncio.sleep(0.02)
    assert heard == [b"hello"]


async def test_chat_frames_are_numbered_in_order_under_one_epoch(broker: Broker, got: Got) -> None:
    await broker.subscribe("r")
    at = now_ms()
    for i in range(3):
        data = orjson.dumps({"payload": str(i), "timestamp": at})
        assert await broker.publish_recent(
            "r", author="a", message_id=f"m{i}", data=data, timestamp_ms=at, keep_ms=5000
        )
    await settled(broker)
    entries = [offsets.unpack(data) for _, data in got]
    assert [e.position.offset for e in entries if e] == [1, 2, 3]
    assert len({e.position.epoch for e in entries if e}) == 1


async def test_the_replay_holds_the_newest_frame_of_each_message_on_screen(
    broker: Broker,
) -> None:
    await broker.subscribe("r")
    at = now_ms()
    for message_id, text, ts in (("m1", "h", at - 9000), ("m2", "x", at), ("m2", "xy", at + 1)):
        data = orjson.dumps({"payload": text})
        await broker.publish_recent(
            "r", author="a", message_id=message_id, data=data, timestamp_ms=ts, keep_ms=5000
        )
    replay = await broker.replay("r", since=None, since_ms=at - 5000, limit=10, max_bytes=1000)
    assert not replay.resumed
    assert [orjson.loads(f)["payload"] for f in replay.frames] == ["xy"]


async def test_another_authors_message_id_is_refused_while_on_screen(broker: Broker) -> None:
    await broker.subscribe("r")
    at = now_ms()
    for author, text, kept in (("victim", "mine", True), ("thief", "theirs", False)):
        data = orjson.dumps({"payload": text})
        published = await broker.publish_recent(
            "r", author=author, message_id="m1", data=data, timestamp_ms=at, keep_ms=5000
        )
        assert published is kept, author
    replay = await broker.replay("r", since=None, since_ms=at - 5000, limit=10, max_bytes=1000)
    assert [orjson.loads(f)["payload"] for f in replay.frames] == ["mine"]


async def test_the_history_after_an_offset_and_in_another_epoch(broker: Broker) -> None:
    await broker.subscribe("r")
    at = now_ms()
    for i in range(4):
        data = orjson.dumps({"payload": str(i), "timestamp": at})
        await broker.publish_recent(
            "r", author="a", message_id=f"m{i}", data=data, timestamp_ms=at, keep_ms=5000
        )
    first = await broker.replay("r", since=None, since_ms=at - 5000, limit=10, max_bytes=10_000)
    epoch = first.top.epoch
    after = await broker.history("r", after=StreamPosition(epoch, 2))
    assert after.complete
    assert after.top == StreamPosition(epoch, 4)
    assert [e.position.offset for e in after.entries] == [3, 4]
    other = await broker.history("r", after=StreamPosition("gone", 2))
    assert not other.complete, "a position of another epoch cannot be resumed"
    assert [e.position.offset for e in other.entries] == [1, 2, 3, 4]


async def test_presence_set_list_remove_and_sweep(broker: Broker) -> None:
    at = now_ms()
    await broker.presence_set("r", key="c1", member=Member("a", "A", "#fff"), expires_ms=at + 1000)
    await broker.presence_set("r", key="c2", member=Member("b"), expires_ms=at - 1)
    assert await broker.presence_list("r", now_ms=at) == [Member("a", "A", "#fff")]
    assert await broker.presence_sweep("r", now_ms=at) == [Member("b")]
    assert await broker.presence_sweep("r", now_ms=at) == []
    await broker.presence_remove("r", key="c1")
    assert await broker.presence_list("r", now_ms=at) == []


async def test_a_refresh_extends_records_and_never_revives_removed_ones(broker: Broker) -> None:
    at = now_ms()
    for channel, key, member in [("r1", "c1", Member("a")), ("r2", "c2", Member("b"))]:
        await broker.presence_set(channel, key=key, member=member, expires_ms=at + 10)
    await broker.presence_remove("r2", key="c2")  # left between snapshot and refresh
    missing = await broker.presence_refresh([("r1", "c1"), ("r2", "c2")], expires_ms=at + 60_000)
    assert missing == [("r2", "c2")]
    assert await broker.presence_list("r1", now_ms=at + 30_000) == [Member("a")]
    assert await broker.presence_list("r2", now_ms=at + 30_000) == []


async def test_a_refresh_of_many_records_in_one_room_finds_each_gone_one(
    broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A room's records are refreshed in batches (Redis: one script call per batch):
    across batch boundaries every record is extended and every removed one reported."""
    monkeypatch.setattr(redis_presence, "TOUCH_BATCH", 2)
    at = now_ms()
    keys = [f"c{n}" for n in range(5)]
    for n, key in enumerate(keys):
        await broker.presence_set("r", key=key, member=Member(f"u{n}"), expires_ms=at + 10)
    for key in ("c1", "c4"):
        await broker.presence_remove("r", key=key)
    missing = await broker.presence_refresh([("r", k) for k in keys], expires_ms=at + 60_000)
    assert sorted(missing) == [("r", "c1"), ("r", "c4")]
    live = await broker.presence_list("r", now_ms=at + 30_000)
    assert sorted(m.user_id for m in live) == ["u0", "u2", "u3"]


async def test_a_counter_counts_within_its_window_per_key(broker: Broker) -> None:
    assert [await broker.count("k", window_s=60) for _ in range(3)] == [1, 2, 3]
    assert await broker.count("other", window_s=60) == 1

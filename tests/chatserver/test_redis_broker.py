"""The Redis broker against a real redis-server."""

import asyncio
import time
from collections.abc import AsyncIterator

import orjson
import pytest
from redis.exceptions import ReadOnlyError, RedisError, ResponseError

from chatserver.broker.base import BrokerUnavailable
from chatserver.broker.redis_broker import RedisBroker
from chatserver.broker.redis_connection import not_a_master
from chatserver.broker.redis_keys import channel as _chan
from chatserver.broker.redis_url import RedisURLError, parse_sentinel, scheme
from chatserver.metrics import Metrics
from chatserver.protocol import Member
from tests.fixtures.processes import RedisProcess

pytestmark = pytest.mark.redis


@pytest.fixture
async def broker(redis_server: RedisProcess) -> AsyncIterator[RedisBroker]:
    b = RedisBroker(redis_server.url, password=None, metrics=Metrics())
    await b.start()
    for _ in range(100):
        if (await b.checks())["pubsub"]:
            break
        await asyncio.sleep(0.05)
    yield b
    await b.close()


async def test_publish_reaches_subscribers_of_that_channel_only(broker: RedisBroker) -> None:
    got: list[tuple[str, bytes]] = []
    broker.set_handler(lambda channel, data: got.append((channel, data)))
    await broker.subscribe("a")
    await broker.publish("a", b"1")
    await broker.publish("b", b"2")
    await broker.unsubscribe("a")
    await broker.publish("a", b"3")
    await asyncio.sleep(0.3)
    assert got == [("a", b"1")]


async def test_frames_redis_sends_before_it_processes_the_unsubscribe_are_dropped(
    broker: RedisBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis may still send a channel's frames after we asked to leave it (the request is
    in flight, or was lost with a connection): the broker must not hand them on."""
    got: list[tuple[str, bytes]] = []
    broker.set_handler(lambda channel, data: got.append((channel, data)))
    await broker.subscribe("a")
    pubsub = broker._pubsub
    assert pubsub is not None

    async def unsubscribe_not_yet_processed(*channels: str) -> None:
        return None

    monkeypatch.setattr(pubsub, "unsubscribe", unsubscribe_not_yet_processed)
    await broker.unsubscribe("a")
    assert pubsub.channels, "Redis should still hold the subscription for this test"
    await broker._client.publish(_chan("a"), b"late")
    await asyncio.sleep(0.3)
    assert got == []


async def test_recent_keeps_the_newest_frame_per_message_within_the_window(
    broker: RedisBroker,
) -> None:
    now = int(time.time() * 1000)
    sent = {"author": "a", "keep_ms": 5000}
    for message_id, text, at in (("m1", "h", now - 9000), ("m2", "x", now), ("m2", "xy", now + 1)):
        data = orjson.dumps({"payload": text})
        await broker.publish_recent("r", message_id=message_id, data=data, timestamp_ms=at, **sent)
    replay = await broker.replay("r", since=None, since_ms=now - 5000, limit=10, max_bytes=1000)
    assert replay.frames == [b'{"payload":"xy","offset":3}']


async def test_presence_set_list_remove_and_sweep(broker: RedisBroker) -> None:
    now = int(time.time() * 1000)
    await broker.presence_set("r", key="c1", member=Member("a", "A", "#fff"), expires_ms=now + 1000)
    await broker.presence_set("r", key="c2", member=Member("b"), expires_ms=now - 1)
    assert await broker.presence_list("r", now_ms=now) == [Member("a", "A", "#fff")]
    assert await broker.presence_sweep("r", now_ms=now) == [Member("b")]
    assert await broker.presence_sweep("r", now_ms=now) == []
    await broker.presence_remove("r", key="c1")
    assert await broker.presence_list("r", now_ms=now) == []


async def test_counter_is_shared_and_expires(
    broker: RedisBroker, redis_server: RedisProcess
) -> None:
    other = RedisBroker(redis_server.url, password=None, metrics=Metrics())
    try:
        assert await broker.count("k", window_s=60) == 1
        assert await other.count("k", window_s=60) == 2
    finally:
        await other.close()


async def test_operations_raise_unavailable_when_redis_is_down(
    broker: RedisBroker, redis_server: RedisProcess
) -> None:
    redis_server.stop()
    with pytest.raises(BrokerUnavailable):
        await broker.publish("a", b"x")
    checks = await broker.checks()
    assert checks["redis"] is False


def test_password_file_and_url_forms() -> None:
    assert scheme("rediss://h:6380/0") == "rediss"
    with pytest.raises(RedisURLError, match="redis\\+sentinel://"):
        scheme("http://h")
    target = parse_sentinel("redis+sentinel://:p%40ss@s1:26379,s2/mymaster/2")
    assert target.sentinels == [("s1", 26379), ("s2", 26379)]
    assert (target.service, target.db, target.password) == ("mymaster", 2, "p@ss")
    with pytest.raises(RedisURLError, match="master name"):
        parse_sentinel("redis+sentinel://s1:26379")


async def test_refresh_extends_existing_records_and_never_revives_removed_ones(
    broker: RedisBroker,
) -> None:
    now = int(time.time() * 1000)
    for channel, key, member in [("r1", "c1", Member("a")), ("r2", "c2", Member("b"))]:
        await broker.presence_set(channel, key=key, member=member, expires_ms=now + 10)
    await broker.presence_remove("r2", key="c2")  # left between snapshot and refresh
    missing = await broker.presence_refresh([("r1", "c1"), ("r2", "c2")], expires_ms=now + 60_000)
    assert missing == [("r2", "c2")]
    assert await broker.presence_list("r1", now_ms=now + 30_000) == [Member("a")]
    assert await broker.presence_list("r2", now_ms=now + 30_000) == []


@pytest.mark.parametrize(
    ("error", "moved"),
    [
        (ReadOnlyError("You can't write against a read only replica."), True),
        (ResponseError("NOREPLICAS Not enough good replicas to write."), True),
        (
            ResponseError(
                "Error running script (call to f_1): @user_script:3: "
                "READONLY You can't write against a read only replica."
            ),
            True,
        ),
        (ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"), False),
    ],
)
def test_a_refused_write_is_told_apart_from_other_errors(error: RedisError, moved: bool) -> None:
    """READONLY arrives as redis-py's ReadOnlyError without its code, or inside a
    script's error: both mean the master may have moved."""
    assert not_a_master(error) is moved

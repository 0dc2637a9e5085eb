"""The Redis broker against a real redis-server."""

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chatserver.broker.base import BrokerUnavailable
from chatserver.broker.redis_broker import LIVENESS_DEAD_S, LIVENESS_PING_S, RedisBroker, _chan
from chatserver.broker.redis_url import RedisURLError, parse_sentinel, scheme
from chatserver.metrics import Metrics
from chatserver.protocol import Member
from tests.fixtures.processes import RedisProcess
from tests.fixtures.tcp_proxy import VanishingProxy

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


async def test_frames_acknowledged_just_before_redis_lost_them_are_published_again(
    broker: RedisBroker, redis_server: RedisProcess
) -> None:
    """A master may acknowledge a frame and die before passing it on (replication is
    asynchronous). Here Redis restarts empty right after acknowledging: once the broker
    is back, the newest frame of each message it just published is in Redis again (for
    late joiners) and reaches subscribers; a faded one is not revived."""
    got: list[tuple[str, bytes]] = []
    broker.set_handler(lambda channel, data: got.append((channel, data)))
    await broker.subscribe("r")
    now = int(time.time() * 1000)
    await broker.publish_recent("r", key="m1", data=b"h", timestamp_ms=now, keep_ms=60_000)
    await broker.publish_recent("r", key="m1", data=b"hi", timestamp_ms=now + 1, keep_ms=60_000)
    await broker.publish_recent(
        "r", key="m2", data=b"faded", timestamp_ms=now - 120_000, keep_ms=60_000
    )
    for _ in range(100):
        if len(got) == 3:
            break
        await asyncio.sleep(0.02)
    assert [data for _, data in got] == [b"h", b"hi", b"faded"]
    got.clear()

    redis_server.stop()
    await asyncio.to_thread(redis_server.start)
    for _ in range(200):
        if got:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # the catch-up may deliver it a second time: nothing else
    assert got, "nothing was published again after the restart"
    assert {data for _, data in got} == {b"hi"}, got
    assert await broker.recent("r", since_ms=now - 1000, limit=10, max_bytes=1000) == [b"hi"]


async def test_recent_keeps_the_newest_frame_per_message_within_the_window(
    broker: RedisBroker,
) -> None:
    now = int(time.time() * 1000)
    await broker.publish_recent("r", key="m1", data=b"h", timestamp_ms=now - 9000, keep_ms=5000)
    await broker.publish_recent("r", key="m2", data=b"x", timestamp_ms=now, keep_ms=5000)
    await broker.publish_recent("r", key="m2", data=b"xy", timestamp_ms=now + 1, keep_ms=5000)
    assert await broker.recent("r", since_ms=now - 5000, limit=10, max_bytes=1000) == [b"xy"]


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


# --- a server that vanishes (a killed pod: no reset, no close) ------------------------


@pytest.fixture
async def vanishing(redis_server: RedisProcess) -> AsyncIterator[VanishingProxy]:
    proxy = VanishingProxy(redis_server.port)
    await proxy.start()
    yield proxy
    await proxy.close()


async def wait_subscribed(broker: RedisBroker) -> None:
    for _ in range(100):
        if (await broker.checks())["pubsub"]:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the broker's subscriber never connected")


async def test_a_subscriber_gives_up_a_server_that_went_silent_within_seconds(
    vanishing: VanishingProxy,
) -> None:
    broker = RedisBroker(vanishing.url, password=None, metrics=Metrics())
    await broker.start()
    try:
        await wait_subscribed(broker)
        await broker.subscribe("r")
        vanishing.vanish()
        started = time.monotonic()
        while broker._pubsub is not None:
            assert time.monotonic() - started < 10, "still listening to a silent server"
            await asyncio.sleep(0.1)
        # Pinged after a second of silence, given up after three more.
        assert time.monotonic() - started < LIVENESS_PING_S + LIVENESS_DEAD_S + 1.5
    finally:
        await broker.close()


async def test_nothing_acknowledged_is_lost_when_the_master_vanishes_and_another_takes_over(
    vanishing: VanishingProxy, tmp_path: Path
) -> None:
    """The Sentinel failover of a killed master pod, in small: the old server goes silent
    (connections neither answer nor close), new connections reach a new, empty server.
    Every frame the writer's broker acknowledged reaches the other process's broker."""
    successor = RedisProcess(tmp_path)
    successor.start()
    writer = RedisBroker(vanishing.url, password=None, metrics=Metrics())
    watcher = RedisBroker(vanishing.url, password=None, metrics=Metrics())
    got: list[bytes] = []
    watcher.set_handler(lambda channel, data: got.append(data))
    acked: list[bytes] = []
    refused = 0
    try:
        for broker in (writer, watcher):
            await broker.start()
            await wait_subscribed(broker)
            await broker.subscribe("r")

        async def write(seconds: float) -> None:
            nonlocal refused
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                data = f"frame-{len(acked) + refused}".encode()
                try:
                    await writer.publish_recent(
                        "r", key=data.decode(), data=data, timestamp_ms=_now(), keep_ms=60_000
                    )
                    acked.append(data)
                except BrokerUnavailable:
                    refused += 1
                await asyncio.sleep(0.05)

        await write(1.0)
        vanishing.retarget(successor.port)
        vanishing.vanish()
        await write(9.0)
        for _ in range(100):
            if set(acked) <= set(got):
                break
            await asyncio.sleep(0.1)
        missing = [frame for frame in acked if frame not in set(got)]
        assert not missing, f"{len(missing)} acknowledged frames never arrived: {missing[:8]}…"
        assert refused > 0, "the outage should have refused some frames"
        assert len(acked) > 40, "the writer should have been back on the new server"
    finally:
        for broker in (writer, watcher):
            await broker.close()
        successor.stop()


def _now() -> int:
    return int(time.time() * 1000)

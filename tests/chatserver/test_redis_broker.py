"""The Redis broker against a real redis-server: what only Redis shows (another
process sharing a counter, frames sent before an unsubscribe took effect, an outage, a
refused write, URL forms). The interface both brokers hold is ``test_broker_contract.py``."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.exceptions import ReadOnlyError, RedisError, ResponseError

from chatserver.broker import redis_connection
from chatserver.broker.base import BrokerUnavailable
from chatserver.broker.redis_broker import RedisBroker
from chatserver.broker.redis_connection import not_a_master
from chatserver.broker.redis_keys import channel as _chan
from chatserver.broker.redis_url import RedisURLError, parse_sentinel, scheme
from chatserver.metrics import Metrics
from chatserver.protocol import Member
from tests.chatserver.traffic import eventually
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


async def test_frames_redis_sends_before_it_processes_the_unsubscribe_are_dropped(
    broker: RedisBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis may still send a channel's frames after we asked to leave it (the request is
    in flight, or was lost with a connection): the broker must not hand them on."""
    got: list[tuple[str, bytes]] = []
    broker.set_handler(lambda channel, data: got.append((channel, data)))
    await broker.subscribe("a")
    pubsub = broker.subscriber._pubsub
    assert pubsub is not None

    async def unsubscribe_not_yet_processed(*channels: str) -> None:
        return None

    monkeypatch.setattr(pubsub, "unsubscribe", unsubscribe_not_yet_processed)
    await broker.unsubscribe("a")
    assert pubsub.channels, "Redis should still hold the subscription for this test"
    await broker._client.publish(_chan("a"), b"late")
    await asyncio.sleep(0.3)
    assert got == []


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


async def test_a_move_heard_while_the_subscriber_is_down_is_said_once_it_is_back(
    broker: RedisBroker, redis_server: RedisProcess
) -> None:
    """The master died first (the subscriber lost it and backs off), then the sentinels
    named a new one: once back, the broker says it moved, so that each room reads back
    far enough to find the frames a lagging replica numbered differently."""
    said: list[bool] = []
    broker.set_resync_handler(said.append)
    redis_server.stop()
    await eventually(lambda: not broker.subscriber.connected, timeout=10, what="the loss")
    broker.subscriber.move()  # what the master follower does when it hears the switch
    redis_server.start()
    await eventually(lambda: bool(said), timeout=10, what="the subscriber back")
    assert said == [True]


async def test_a_burst_beyond_the_pool_queues_and_is_never_taken_for_an_outage(
    broker: RedisBroker,
) -> None:
    """Thousands of users leaving at once each remove a record and read the room: far
    more commands at once than connections in the pool. All are answered, Redis is not
    marked down, and the pool stays within its size."""
    channel, at = "burst", 1_000_000

    async def one(n: int) -> None:
        member = Member(f"u{n}")
        await broker.presence_set(channel, key=f"k{n}", member=member, expires_ms=at + 60_000)
        await broker.presence_remove(channel, key=f"k{n}")
        await broker.presence_list(channel, now_ms=at)

    burst = 1024  # several times any pool
    results = await asyncio.gather(*(one(n) for n in range(burst)), return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    assert failures == [], f"{len(failures)} of {burst} failed, first: {failures[0]!r}"
    assert broker.connected
    assert await broker.presence_list(channel, now_ms=at) == []
    pool = broker._client.connection_pool
    assert len(pool._available_connections) <= redis_connection.COMMANDS_AT_ONCE


async def test_a_subscriber_woken_as_it_is_closed_still_closes(
    broker: RedisBroker, redis_server: RedisProcess
) -> None:
    """Redis answering again wakes a subscriber out of its backoff; a close in the same
    instant (a broker shut down just as Redis came back) must still end it, not be
    swallowed by the wake so that the subscriber reads on and the close waits forever."""
    redis_server.stop()
    await eventually(lambda: not broker.subscriber.connected, timeout=10, what="the loss")
    await asyncio.sleep(0.05)  # into its backoff
    broker.subscriber.wake()  # what the probe does when Redis answers again
    closing = asyncio.create_task(broker.subscriber.close())
    done, _ = await asyncio.wait({closing}, timeout=5)
    assert closing in done, "the close waits on a subscriber that reads on"
    await closing

"""Connections to Redis, for every part of the server that talks to it (the broker, the
account store): one place says how a client connects (plain, TLS or through Sentinel,
following the process's one ``MasterFollower``), how it retries, how it is closed, which
errors mean that Redis is away or that the server is no longer the master, and (``Link``)
how the broker notices an outage and its end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from chatserver.broker import redis_url
from chatserver.broker.base import BrokerUnavailable
from chatserver.broker.sentinel_follower import FollowingPool, MasterFollower
from chatserver.tasks import cancel_and_wait

log = logging.getLogger(__name__)
T = TypeVar("T")

PROBE_INTERVAL_S = 0.2
"""While Redis is marked down, a PING this often says when it answers again."""

OUTAGE = (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)
"""Errors that mean Redis did not answer (down, unreachable, too slow)."""

POOL_SIZE = 256
"""Connections one client keeps to Redis at most. Set, not left to redis-py: its default
went from unbounded to 100 (8.x), past which a command fails at once with a
``ConnectionError`` that would read as an outage."""

COMMANDS_AT_ONCE = 128
"""Commands one ``Link`` has in flight at once; the rest wait their turn (a burst of
joins or publishes queues here instead of opening connections without end, or failing
on a full pool)."""

_NOT_A_MASTER = ("READONLY", "NOREPLICAS", "read only replica")


def not_a_master(exc: RedisError) -> bool:
    """Whether Redis refused a write because the server is (no longer) a master fit to
    take it: behind Sentinel, the master may have moved. redis-py turns ``READONLY`` into
    ``ReadOnlyError`` and drops the code from the message; inside a script the code
    comes wrapped in the script's error."""
    return isinstance(exc, ReadOnlyError) or any(code in str(exc) for code in _NOT_A_MASTER)


def follower_for(url: str, *, password: str | None) -> MasterFollower | None:
    """The master follower a redis+sentinel:// URL needs (None for other URLs)."""
    if redis_url.scheme(url) != "redis+sentinel":
        return None
    return MasterFollower(redis_url.parse_sentinel(url), password=password)


def connect(
    url: str,
    *,
    password: str | None,
    timeout_s: float = 1.0,
    follower: MasterFollower | None = None,
) -> aioredis.Redis:
    """A client for a redis://, rediss:// or redis+sentinel:// URL (raises RedisURLError).
    Behind Sentinel, pass the process's ``follower`` so that this client goes where the
    others go (see ``sentinel_follower``)."""
    options: dict[str, Any] = {
        "socket_connect_timeout": 2.0,
        "socket_timeout": timeout_s,
        "socket_keepalive": True,
        "max_connections": POOL_SIZE,
        "health_check_interval": 10,
        "client_name": "asocial-chat",
        "retry": Retry(NoBackoff(), 1),
        # Named, not left to the default: redis-py before 5.1 retried only the errors
        # listed here, so the first command after a restart failed on a dead pooled socket.
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
    }
    if redis_url.scheme(url) == "redis+sentinel":
        target = redis_url.parse_sentinel(url)
        secret = target.password or password
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            target.sentinels,
            sentinel_kwargs={"password": secret, "socket_connect_timeout": 2.0},
            **options,
        )
        extra: dict[str, Any] = (
            {"connection_pool_class": FollowingPool, "follower": follower} if follower else {}
        )
        master: aioredis.Redis = sentinel.master_for(
            target.service, password=secret, username=target.username, db=target.db, **extra
        )
        return master
    client: aioredis.Redis = aioredis.Redis.from_url(url, **options)
    if password and not client.connection_pool.connection_kwargs.get("password"):
        client.connection_pool.connection_kwargs["password"] = password
    return client


async def close_client(client: aioredis.Redis) -> None:
    """Close a client of :func:`connect`, with the connections to the sentinels its pool
    asked for the master, if any."""
    await client.aclose()
    manager = getattr(client.connection_pool, "sentinel_manager", None)
    for sentinel in getattr(manager, "sentinels", []):
        await sentinel.aclose()


class Link:
    """The broker's way to Redis: a client for commands and one for the subscriber, and
    the outage detection every command goes through.

    The subscriber's client has a pool of its own, so a burst of commands failing during
    an outage can never take the connection the subscriber needs to come back. Both go
    where the one ``follower`` says behind Sentinel. A command is retried once, at once,
    on a fresh connection (see :func:`connect`), and otherwise fails fast: a command
    that times out or loses its connection marks Redis down, and until a probe (a PING
    every :data:`PROBE_INTERVAL_S`) gets an answer, commands fail at once instead of
    each waiting out the timeout. At most :data:`COMMANDS_AT_ONCE` commands are in
    flight; the others wait for a slot. An outage, or a refusal saying the server is not the
    master, has the follower ask the sentinels where the master is. When a probe gets
    an answer, the :meth:`on_answer` callbacks run."""

    def __init__(self, url: str, *, password: str | None, timeout_s: float = 1.0) -> None:
        self.follower = follower_for(url, password=password)
        self.client = connect(url, password=password, timeout_s=timeout_s, follower=self.follower)
        # The subscriber idles in get_message() and PINGs; give it slack.
        self.subscriber = connect(
            url, password=password, timeout_s=max(5.0, timeout_s), follower=self.follower
        )
        self.up = True
        """False from an outage until a probe gets an answer."""
        self._slots = asyncio.Semaphore(COMMANDS_AT_ONCE)
        self._probe: asyncio.Task[None] | None = None
        self._on_answer: list[Callable[[], None]] = []

    def on_answer(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` each time Redis answers again after being marked down."""
        self._on_answer.append(callback)

    def start(self) -> None:
        if self.follower is not None:
            self.follower.start()

    async def close(self) -> None:
        await cancel_and_wait(self._probe)
        if self.follower is not None:
            await self.follower.close()
        await close_client(self.subscriber)
        await close_client(self.client)

    async def call(self, awaitable: Awaitable[T]) -> T:
        """Run one command; raises ``BrokerUnavailable`` (at once while Redis is marked
        down) instead of any Redis error."""
        if not self.up:
            if asyncio.iscoroutine(awaitable):
                awaitable.close()
            raise BrokerUnavailable("redis is not answering")
        try:
            async with self._slots:
                if not self.up:  # marked down while this command waited its turn
                    raise BrokerUnavailable("redis is not answering")
                return await awaitable
        except BrokerUnavailable:
            if asyncio.iscoroutine(awaitable):
                awaitable.close()
            raise
        except OUTAGE as exc:
            self.mark_down()
            self.ask_sentinels()
            raise BrokerUnavailable(f"redis unavailable: {type(exc).__name__}") from exc
        except RedisError as exc:
            if not_a_master(exc):
                self.ask_sentinels()
            raise BrokerUnavailable(f"redis error: {type(exc).__name__}") from exc

    def ask_sentinels(self) -> None:
        """The server may no longer be the master: have the follower ask the sentinels."""
        if self.follower is not None:
            self.follower.recheck()

    def mark_down(self) -> None:
        """Fail commands fast until a probe gets an answer."""
        if self.up:
            log.warning("redis marked down; probing every %.1fs", PROBE_INTERVAL_S)
        self.up = False
        if self._probe is None or self._probe.done():
            self._probe = asyncio.create_task(self._probe_until_up(), name="redis-probe")

    async def _probe_until_up(self) -> None:
        failed = 0
        while True:
            await asyncio.sleep(PROBE_INTERVAL_S)
            try:
                async with asyncio.timeout(max(0.5, 2 * PROBE_INTERVAL_S)):
                    await self.client.ping()
            except Exception:  # any failure means: not yet
                failed += 1
                if failed % 10 == 0:
                    self.ask_sentinels()  # in case the announcement of a switch was missed
                continue
            log.info("redis answers again")
            self.up = True
            for callback in self._on_answer:
                callback()
            return

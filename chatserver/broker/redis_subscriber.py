"""The process's one Redis subscriber: a pub/sub connection subscribed to the control
channel and to exactly the rooms that have local connections.

It is read with a finite timeout and re-created after any failure with exponential
backoff and jitter, re-subscribing every room; the backoff is cut short the moment Redis
answers again (:meth:`Subscriber.wake`) or the master moves (:meth:`Subscriber.move`:
it leaves the old master at once, which may live on for seconds hearing nothing the
others now publish). Each time it is back it calls ``came_back(moved)``, so that the
rooms read what they missed from their history.

Nothing is published into a gap: :meth:`Subscriber.check_subscribed` refuses a room
whose subscription Redis has not confirmed (the subscriber is reconnecting), so the
sender is told instead of the frame vanishing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable

from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from chatserver.broker import redis_keys
from chatserver.broker.base import BrokerUnavailable
from chatserver.broker.redis_connection import Link
from chatserver.broker.redis_keys import CONTROL_CHANNEL
from chatserver.metrics import Metrics
from chatserver.tasks import cancel_and_wait

log = logging.getLogger(__name__)

SUBSCRIBE_WAIT_S = 2.0
BACKOFF_BASE_S = 0.2
BACKOFF_CAP_S = 5.0
RESUBSCRIBE_TIMEOUT_S = 5.0
"""An attempt to (re)subscribe that takes longer than this is abandoned and retried."""
READ_WAIT_S = 0.25
"""The subscriber waits this long for a frame before it looks whether the master moved."""


class _MasterMoved(Exception):
    """The subscriber is on a server the sentinels no longer name as master."""


def _server_of(pubsub: PubSub) -> str:
    """host:port of the server a subscriber is connected to (for logs)."""
    connection = pubsub.connection
    if connection is None:
        return "?"
    return f"{getattr(connection, 'host', '?')}:{getattr(connection, 'port', '?')}"


class Subscriber:
    """Calls ``deliver(room, data)`` for each room frame, ``announced(data)`` for each
    control-channel frame, and ``came_back(moved)`` after each reconnect."""

    def __init__(
        self,
        link: Link,
        metrics: Metrics,
        *,
        deliver: Callable[[str, bytes], None],
        announced: Callable[[bytes], None],
        came_back: Callable[[bool], None],
    ) -> None:
        self._link = link
        self._metrics = metrics
        self._deliver = deliver
        self._announced = announced
        self._came_back = came_back
        self._channels: set[str] = set()
        self._confirmed: dict[str, asyncio.Event] = {}
        self._pubsub: PubSub | None = None
        self._moved = False
        self._switched = False
        """Told the master moved since it last came back: the next time it is back it
        says so (``came_back(True)``), whatever made it leave the old master."""
        self._wake = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        """Subscribed and reading (not reconnecting)."""
        return self._pubsub is not None

    @property
    def moving(self) -> bool:
        """Told the master moved, and not yet on the new one."""
        return self._moved

    def start(self) -> None:
        self._reader = asyncio.create_task(self._read_forever(), name="redis-subscriber")

    async def close(self) -> None:
        await cancel_and_wait(self._reader)

    def move(self) -> None:
        """The sentinels named a new master: leave the old one now."""
        self._moved = True
        self._switched = True
        self._wake.set()  # a subscriber backing off goes to the new master now

    def wake(self) -> None:
        """Redis answers again: a subscriber backing off reconnects now."""
        self._wake.set()

    # --- rooms ---------------------------------------------------------------------

    async def subscribe(self, channel: str) -> None:
        if channel in self._channels:
            return
        self._channels.add(channel)
        event = self._confirmed.setdefault(channel, asyncio.Event())
        pubsub = self._pubsub
        if pubsub is None:
            raise BrokerUnavailable("redis subscriber is not connected")
        try:
            await pubsub.subscribe(redis_keys.channel(channel))
            # Wait for Redis to confirm, so a frame published right after we return is seen.
            async with asyncio.timeout(SUBSCRIBE_WAIT_S):
                await event.wait()
        except (RedisError, OSError, TimeoutError) as exc:
            raise BrokerUnavailable(f"cannot subscribe: {type(exc).__name__}") from exc

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        self._confirmed.pop(channel, None)
        pubsub = self._pubsub
        if pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.unsubscribe(redis_keys.channel(channel))

    def check_subscribed(self, channel: str) -> None:
        """Refuse to publish into a gap: while this process's subscription to the
        channel is not confirmed, the frame would reach nobody here (nor, after a
        Redis restart, anyone whose subscriber is still reconnecting)."""
        if self._pubsub is None:
            raise BrokerUnavailable("redis subscriber is reconnecting")
        event = self._confirmed.get(channel)
        if channel in self._channels and (event is None or not event.is_set()):
            raise BrokerUnavailable("redis subscriber is re-subscribing")

    # --- the loop ------------------------------------------------------------------

    def _lost_subscriptions(self) -> None:
        self._pubsub = None
        for event in self._confirmed.values():
            event.clear()

    async def _read_forever(self) -> None:
        attempt = 0
        first = True
        while True:
            pubsub = self._link.subscriber.pubsub()
            self._moved = False
            try:
                async with asyncio.timeout(RESUBSCRIBE_TIMEOUT_S):
                    await pubsub.subscribe(
                        CONTROL_CHANNEL, *map(redis_keys.channel, self._channels)
                    )
                self._pubsub = pubsub
                # A move heard at any time since it was last back counts, not only one
                # heard while it was reading: the old master may have died first.
                moved, self._switched = self._switched, False
                if first and not attempt:
                    log.info("redis subscriber connected", extra={"server": _server_of(pubsub)})
                else:
                    log.info(
                        "redis subscriber reconnected",
                        extra={"attempts": attempt, "server": _server_of(pubsub), "moved": moved},
                    )
                    self._came_back(moved)
                attempt, first = 0, False
                await self._read(pubsub)
            except _MasterMoved:
                # No backoff: the new master is known and answering.
                log.info("redis subscriber leaving %s for the new master", _server_of(pubsub))
                self._lost_subscriptions()
            except Exception as exc:  # the subscriber must outlive any failure, not only Redis's
                if self._pubsub is not None or attempt == 0:
                    if isinstance(exc, RedisError | OSError):
                        log.warning("redis subscriber lost: %s", type(exc).__name__)
                    else:
                        log.error("redis subscriber failed", exc_info=exc)
                self._metrics.broker_reconnects.inc()
                delay = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt) * random.uniform(0.5, 1.0)
                attempt += 1
                self._lost_subscriptions()
                self._link.mark_down()
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    # The probe cuts the backoff short as soon as Redis answers again.
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
            finally:
                self._pubsub = None
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(1.0):
                        await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _read(self, pubsub: PubSub) -> None:
        prefix_len = len(redis_keys.channel(""))
        while True:
            if self._moved:
                raise _MasterMoved
            message = await pubsub.get_message(timeout=READ_WAIT_S)
            if message is None:
                continue
            kind = message["type"]
            name = message["channel"].decode()
            if kind == "message" and name != CONTROL_CHANNEL:
                channel = name[prefix_len:]
                # A frame Redis sent before it processed our UNSUBSCRIBE is not ours any more.
                if channel in self._channels:
                    self._deliver(channel, message["data"])
            elif kind == "message":
                self._announced(message["data"])
            elif kind == "subscribe" and name != CONTROL_CHANNEL:
                self._confirmed.setdefault(name[prefix_len:], asyncio.Event()).set()

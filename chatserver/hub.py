"""Local fan-out: the connections of this process, grouped by channel.

A frame arrives from the broker once per process; it is decoded once to read who sent
it, and one :class:`wire.Outgoing` value (its text, and the WebSocket frame built at most
once) is offered to every receiver (sent at once when its socket has room, else queued).
Queues are bounded: a receiver whose queue is full is dropped (close 1013), never allowed
to stall its room.

Chat frames pass each room's :class:`ordering.RoomOrder` first: in order, none twice. On
a gap, and for every room when the broker says this process may have missed frames
(``resync``), the hub reads the room's history from the last offset it delivered and
delivers exactly what it missed; when the history no longer holds it, the room's
connections get a ``frames_missed`` frame, and a log line and a metric say so.
May use: ``broker``, ``protocol``, ``metrics``, ``wire``, ``ordering``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Protocol

import orjson

from chatserver import protocol
from chatserver.broker import offsets
from chatserver.broker.base import BrokerUnavailable, PubSub
from chatserver.metrics import Metrics
from chatserver.ordering import RoomOrder
from chatserver.protocol import FrameType, MissedReason, StreamPosition
from chatserver.tasks import cancel_and_wait
from chatserver.wire import Outgoing

log = logging.getLogger(__name__)

DROPPED_MALFORMED = "malformed"
DROPPED_SLOW_CONSUMER = "slow_consumer"
DROP_REASONS = (DROPPED_MALFORMED, DROPPED_SLOW_CONSUMER)
"""The ``reason`` of ``messages_dropped_total``."""


class Receiver(Protocol):
    """What the hub needs of a connection."""

    @property
    def conn_id(self) -> str: ...

    @property
    def user_id(self) -> str: ...

    def offer(self, message: Outgoing) -> bool:
        """Send or queue ``message`` without waiting; False when the queue is full."""

    def overflow(self) -> None:
        """Called once the receiver fell too far behind: close it."""


RETRY_S = 0.2
"""A history read that failed (Redis away) is tried again after this long."""
PRUNE_S = 5.0
"""How often every room forgets the digests of frames it no longer needs."""
READS_AT_ONCE = 16
"""History reads in flight at once: after a resubscribe every room recovers, and a
process with thousands of rooms must not open thousands of connections for it."""


class Hub:
    def __init__(self, broker: PubSub, metrics: Metrics) -> None:
        self._broker = broker
        self._metrics = metrics
        self._rooms: dict[str, dict[str, Receiver]] = {}
        self._orders: dict[str, RoomOrder] = {}
        self._recoveries: dict[str, asyncio.Task[None]] = {}
        self._reads = asyncio.Semaphore(READS_AT_ONCE)
        self._pruner: asyncio.Task[None] | None = None
        broker.set_handler(self._on_message)
        broker.set_resync_handler(self.resync)

    async def join(self, channel: str, receiver: Receiver) -> None:
        """Start delivering the channel's frames to ``receiver``.

        Raises BrokerUnavailable (leaving nothing registered) when the broker cannot
        subscribe; the caller tells the client to come back later.
        """
        room = self._rooms.setdefault(channel, {})
        room[receiver.conn_id] = receiver
        try:
            await self._broker.subscribe(channel)
        except BaseException:
            await self.leave(channel, receiver)
            raise

    async def leave(self, channel: str, receiver: Receiver) -> None:
        room = self._rooms.get(channel)
        if room is None or room.pop(receiver.conn_id, None) is None:
            return
        if not room:
            del self._rooms[channel]
            self._orders.pop(channel, None)
            task = self._recoveries.pop(channel, None)
            if task is not None:
                task.cancel()
            await self._broker.unsubscribe(channel)

    def seed(self, channel: str, top: StreamPosition) -> None:
        """A client joined with the room at ``top``: where a recovery starts should the
        subscriber drop before this process delivers the room's first frame."""
        if channel in self._rooms:
            order = self._orders.setdefault(channel, RoomOrder())
            if order.position is None and order.seed is None:
                order.seed = top

    def resync(self, moved: bool = False) -> None:
        """The broker may have missed frames: read every room's history (a few rooms
        at a time, see ``READS_AT_ONCE``)."""
        for channel, order in list(self._orders.items()):
            if order.resync(moved=moved):
                self._recover(channel)

    def start(self) -> None:
        """Begin forgetting what quiet rooms no longer need (``RoomOrder.prune``)."""
        self._pruner = asyncio.create_task(self._prune_forever(), name="hub-prune")

    async def _prune_forever(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_S)
            now = time.monotonic()
            for order in list(self._orders.values()):
                order.prune(now)

    async def close(self) -> None:
        await cancel_and_wait(self._pruner)
        for task in list(self._recoveries.values()):
            await cancel_and_wait(task)

    def channels(self) -> list[str]:
        return list(self._rooms)

    def receivers(self) -> Iterator[Receiver]:
        for room in list(self._rooms.values()):
            yield from list(room.values())

    def _on_message(self, channel: str, data: bytes) -> None:
        if channel not in self._rooms:
            return
        try:
            entry = offsets.unpack(data)
        except ValueError:
            log.error("dropped a malformed broker message on channel %s", channel)
            self._metrics.messages_dropped.labels(DROPPED_MALFORMED).inc()
            return
        if entry is None:
            self._fan_out(channel, data, None)
            return
        order = self._orders.setdefault(channel, RoomOrder())
        ready = order.accept(entry)
        if ready is None:
            self._recover(channel)
            return
        for item in ready:
            self._fan_out(channel, item.frame, item.position.offset)

    def _recover(self, channel: str) -> None:
        if channel not in self._recoveries:
            task = asyncio.create_task(self._recovering(channel), name=f"recover-{channel}")
            self._recoveries[channel] = task
            task.add_done_callback(lambda _: self._recoveries.pop(channel, None))

    async def _recovering(self, channel: str) -> None:
        """Read the room's history until it answers, deliver what this process missed,
        and say so when some of it is gone."""
        while (order := self._orders.get(channel)) is not None:
            try:
                async with self._reads:
                    after = order.reference()
                    history = await self._broker.history(channel, after=after)
            except BrokerUnavailable:
                await asyncio.sleep(RETRY_S)
                continue
            if self._orders.get(channel) is not order:
                return  # the room was left meanwhile
            result = order.recovered(history)
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "recovery read",
                    extra={
                        "channel": channel,
                        "after": f"{after.epoch}:{after.offset}",
                        "top": f"{history.top.epoch}:{history.top.offset}",
                        "read": [e.position.offset for e in history.entries],
                        "delivered": [e.position.offset for e in result.frames],
                        "lost": result.lost,
                    },
                )
            if result.read:
                self._metrics.frames_recovered.inc(result.read)
                log.info(
                    "recovered frames from the room's history",
                    extra={"channel": channel, "frames": result.read},
                )
            if result.lost:
                self._missed(channel, history.top.epoch)
            for item in result.frames:
                self._fan_out(channel, item.frame, item.position.offset)
            if not result.again:
                return

    def _missed(self, channel: str, epoch: str) -> None:
        self._metrics.history_lost.inc()
        log.warning(
            "frames missed that the room's history no longer holds; its clients are told",
            extra={"channel": channel, "epoch": epoch},
        )
        frame = protocol.frames_missed_frame(
            channel_id=channel,
            epoch=epoch,
            reason=MissedReason.HISTORY_LOST,
            timestamp_ms=int(time.time() * 1000),
        )
        message = Outgoing(protocol.encode(frame))
        for receiver in list(self._rooms.get(channel, {}).values()):
            if not receiver.offer(message):
                receiver.overflow()

    def _fan_out(self, channel: str, data: bytes, offset: int | None) -> None:
        room = self._rooms.get(channel)
        if not room:
            return
        try:
            head = orjson.loads(data)
            kind, sender, stamped = head["type"], head["user_id"], head["timestamp"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.error("dropped a malformed broker message on channel %s", channel)
            self._metrics.messages_dropped.labels(DROPPED_MALFORMED).inc()
            return
        self._metrics.broadcast_latency.observe(max(0.0, time.time() - stamped / 1000))
        # Chat goes to everyone except the author's user (all of their tabs); presence
        # events go to everyone.
        skip = sender if kind == FrameType.CHAT else None
        message = Outgoing(data.decode("utf-8"), data, offset=offset)
        delivered = 0
        slow: list[Receiver] = []
        for receiver in list(room.values()):
            if receiver.user_id == skip:
                continue
            if receiver.offer(message):
                delivered += 1
            else:
                slow.append(receiver)
        self._metrics.messages_delivered.inc(delivered)
        for receiver in slow:
            self._metrics.messages_dropped.labels(DROPPED_SLOW_CONSUMER).inc()
            receiver.overflow()

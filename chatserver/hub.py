"""Local fan-out: the connections of this process, grouped by channel.

A frame arrives from the broker once per process; it is decoded once to read who sent
it, and one :class:`wire.Outgoing` value (its text, and the WebSocket frame built at most
once) is offered to every receiver (sent at once when its socket has room, else queued). Queues are
bounded: a receiver whose queue is full is dropped (close 1013), never allowed to stall
its room.
May use: ``broker``, ``protocol``, ``metrics``, ``wire``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Protocol

import orjson

from chatserver.broker.base import PubSub
from chatserver.metrics import Metrics
from chatserver.protocol import FrameType
from chatserver.wire import Outgoing

log = logging.getLogger(__name__)


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


class Hub:
    def __init__(self, broker: PubSub, metrics: Metrics) -> None:
        self._broker = broker
        self._metrics = metrics
        self._rooms: dict[str, dict[str, Receiver]] = {}
        broker.set_handler(self._on_message)

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
            await self._broker.unsubscribe(channel)

    def channels(self) -> list[str]:
        return list(self._rooms)

    def receivers(self) -> Iterator[Receiver]:
        for room in list(self._rooms.values()):
            yield from list(room.values())

    def _on_message(self, channel: str, data: bytes) -> None:
        room = self._rooms.get(channel)
        if not room:
            return
        try:
            head = orjson.loads(data)
            kind, sender, stamped = head["type"], head["user_id"], head["timestamp"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.error("dropped a malformed broker message on channel %s", channel)
            self._metrics.messages_dropped.labels("malformed").inc()
            return
        self._metrics.broadcast_latency.observe(max(0.0, time.time() - stamped / 1000))
        # Chat goes to everyone except the author's user (all of their tabs); presence
        # events go to everyone.
        skip = sender if kind == FrameType.CHAT else None
        message = Outgoing(data.decode("utf-8"), data)
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
            self._metrics.messages_dropped.labels("slow_consumer").inc()
            receiver.overflow()

"""The broker: three small interfaces, and the class that implements all three.

Each user of the broker depends only on the part it needs: the hub on :class:`PubSub`
(fan-out, the room's history by offset, the replay for a joining or resuming client),
presence on :class:`PresenceStore`, the rate limiter on :class:`Counter`.
:class:`Broker` is what both implementations (``memory_broker``, ``redis_broker``)
provide: all of them, with one lifecycle and one readiness report.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from chatserver.broker.offsets import History
from chatserver.protocol import Member, StreamPosition

MessageHandler = Callable[[str, bytes], None]
"""Called with (channel, message) for every message published to a subscribed channel:
a presence frame as is, a chat frame packed with its position (``offsets.unpack``)."""

RECENT_CAP = 500
"""Most messages kept per channel for late joiners."""


def recent_key(author: str, message_id: str) -> str:
    """The key of one message among a room's recent frames: its author and its id (a
    message is identified by both; the length prefix keeps any two pairs apart)."""
    return f"{len(author)}:{author}:{message_id}"


@dataclass(frozen=True, slots=True)
class Replay:
    """What a joining client gets besides live frames: the room's position now (its
    ``user_sync`` carries the epoch; live frames up to ``top`` are in ``frames`` or
    superseded there), and the frames, oldest first. ``resumed``: the client asked to
    resume from a position and ``frames`` are exactly the chat frames after it that are
    still on screen; otherwise they are what is on screen (the newest frame of each
    message), and a client that asked to resume is told its range is gone."""

    top: StreamPosition
    frames: list[bytes]
    resumed: bool


class BrokerUnavailable(Exception):
    """The broker cannot be reached now; the operation may succeed later."""


class PubSub(Protocol):
    """Cross-process publish/subscribe, and the recent frames kept for late joiners."""

    def set_handler(self, handler: MessageHandler) -> None: ...

    async def subscribe(self, channel: str) -> None: ...

    async def unsubscribe(self, channel: str) -> None: ...

    async def publish(self, channel: str, data: bytes) -> None: ...

    async def publish_recent(
        self,
        channel: str,
        *,
        author: str,
        message_id: str,
        data: bytes,
        timestamp_ms: int,
        keep_ms: int,
    ) -> bool: ...

    async def replay(
        self,
        channel: str,
        *,
        since: StreamPosition | None,
        since_ms: int,
        limit: int,
        max_bytes: int,
    ) -> Replay: ...

    async def history(self, channel: str, *, after: StreamPosition) -> History: ...

    def set_resync_handler(self, handler: Callable[[bool], None]) -> None: ...


class PresenceStore(Protocol):
    """Who is in which room, one expiring record per connection; and a way to announce
    changes to the room."""

    async def presence_set(
        self, channel: str, *, key: str, member: Member, expires_ms: int
    ) -> None: ...

    async def presence_refresh(
        self, entries: Sequence[tuple[str, str]], *, expires_ms: int
    ) -> list[tuple[str, str]]: ...

    async def presence_remove(self, channel: str, *, key: str) -> None: ...

    async def presence_list(self, channel: str, *, now_ms: int) -> list[Member]: ...

    async def presence_sweep(self, channel: str, *, now_ms: int) -> list[Member]: ...

    async def publish(self, channel: str, data: bytes) -> None: ...


class Counter(Protocol):
    """Counters shared by every process, for rate limits."""

    async def count(self, key: str, *, window_s: int) -> int: ...


class Announcements(Protocol):
    """Process-wide notices (not a room's): every process hears each one once it is
    announced, best effort (a process reconnecting to the backend at that moment misses
    it)."""

    def set_announcement_handler(self, handler: Callable[[bytes], None]) -> None: ...

    async def announce(self, data: bytes) -> None: ...


class Broker(abc.ABC):
    """:class:`PubSub`, :class:`PresenceStore`, :class:`Counter` and
    :class:`Announcements` in one backend, with its lifecycle (``start``, ``close``),
    readiness (``checks``) and a recovery hook."""

    def __init__(self) -> None:
        self._handler: MessageHandler | None = None
        self._on_recovered: Callable[[], None] | None = None
        self._on_announcement: Callable[[bytes], None] | None = None
        self._on_resync: Callable[[bool], None] | None = None

    def set_handler(self, handler: MessageHandler) -> None:
        self._handler = handler

    def set_recovery_handler(self, handler: Callable[[], None]) -> None:
        """Called when the backend answers again after an outage (state may be lost)."""
        self._on_recovered = handler

    def _recovered(self) -> None:
        if self._on_recovered is not None:
            self._on_recovered()

    def set_resync_handler(self, handler: Callable[[bool], None]) -> None:
        """Called when this process may have missed published frames: its subscriber
        came back (``moved`` False), or followed the master to another server (``moved``
        True: the new one may have numbered frames differently). The hub then reads each
        room's history from the last offset it delivered."""
        self._on_resync = handler

    def _resync(self, *, moved: bool) -> None:
        if self._on_resync is not None:
            self._on_resync(moved)

    def _deliver(self, channel: str, data: bytes) -> None:
        if self._handler is not None:
            self._handler(channel, data)

    def set_announcement_handler(self, handler: Callable[[bytes], None]) -> None:
        """Called with the data of every announcement, this process's own included."""
        self._on_announcement = handler

    def _announced(self, data: bytes) -> None:
        if self._on_announcement is not None:
            self._on_announcement(data)

    @property
    def connected(self) -> bool:
        """Receiving what others publish now (for the ``broker_connected`` metric)."""
        return True

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Begin connecting; never fails because the backend is down (see ``checks``)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release every connection."""

    @abc.abstractmethod
    async def checks(self) -> Mapping[str, bool]:
        """Readiness checks by name, e.g. ``{"redis": True, "pubsub": True}``."""

    @abc.abstractmethod
    async def announce(self, data: bytes) -> None:
        """Tell every process (see :class:`Announcements`)."""

    @abc.abstractmethod
    async def subscribe(self, channel: str) -> None:
        """Receive the channel's messages from now on (idempotent)."""

    @abc.abstractmethod
    async def unsubscribe(self, channel: str) -> None: ...

    @abc.abstractmethod
    async def publish(self, channel: str, data: bytes) -> None:
        """Send to every subscriber of the channel, this process included."""

    @abc.abstractmethod
    async def publish_recent(
        self,
        channel: str,
        *,
        author: str,
        message_id: str,
        data: bytes,
        timestamp_ms: int,
        keep_ms: int,
    ) -> bool:
        """Give the chat frame ``data`` (a JSON object) the room's next offset, keep it
        in the room's history, keep the newest frame of each message (``author`` and
        ``message_id``) for ``keep_ms`` for late joiners, and publish it. One step,
        atomic across processes: while another author's message with this
        ``message_id`` was updated within ``keep_ms`` (it is on screen), nothing is
        published or kept and the answer is False (original clients key text by
        ``message_id`` alone)."""

    @abc.abstractmethod
    async def replay(
        self,
        channel: str,
        *,
        since: StreamPosition | None,
        since_ms: int,
        limit: int,
        max_bytes: int,
    ) -> Replay:
        """For a client joining (``since`` None) or resuming after ``since``: see
        :class:`Replay`. Frames older than ``since_ms`` are off screen and left out; at
        most ``limit`` frames, together at most ``max_bytes`` (a resume that does not fit
        falls back to what is on screen). Creates the room's epoch if it has none."""

    @abc.abstractmethod
    async def history(self, channel: str, *, after: StreamPosition) -> History:
        """The room's frames after ``after`` (all its history when the epoch is another
        one), faded or not: a process that missed them delivers them late rather than
        never (see ``offsets.HISTORY_KEEP_MS``)."""

    @abc.abstractmethod
    async def presence_set(
        self, channel: str, *, key: str, member: Member, expires_ms: int
    ) -> None:
        """Record (or refresh) one connection's presence until ``expires_ms``."""

    @abc.abstractmethod
    async def presence_refresh(
        self, entries: Sequence[tuple[str, str]], *, expires_ms: int
    ) -> list[tuple[str, str]]:
        """Extend existing (channel, key) records to ``expires_ms``; never re-create one
        (a connection that left meanwhile must stay gone). Returns the entries missing."""

    @abc.abstractmethod
    async def presence_remove(self, channel: str, *, key: str) -> None: ...

    @abc.abstractmethod
    async def presence_list(self, channel: str, *, now_ms: int) -> list[Member]:
        """Live presence records, one per connection (a user may appear more than once)."""

    @abc.abstractmethod
    async def presence_sweep(self, channel: str, *, now_ms: int) -> list[Member]:
        """Remove records expired by ``now_ms`` and return them."""

    @abc.abstractmethod
    async def count(self, key: str, *, window_s: int) -> int:
        """Increment a counter that lives ``window_s`` seconds from its first increment."""

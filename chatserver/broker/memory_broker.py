"""In-memory broker for a single process (the default without ``ASOCIAL_REDIS_URL``).

It numbers and keeps chat frames as the Redis broker does (``offsets``), so a client
resumes alike on both; in one process nothing is ever missed, so nothing resyncs.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from chatserver.broker import offsets
from chatserver.broker.base import RECENT_CAP, Broker, Replay, recent_key
from chatserver.broker.offsets import Entry, History
from chatserver.protocol import Member, StreamPosition


@dataclass
class _Stream:
    """A room's epoch, its last offset, the highest offset the cap pushed out of the
    history, and the history itself (offset -> entry, oldest first)."""

    epoch: str
    top: int = 0
    capped: int = 0
    used: float = 0.0
    entries: OrderedDict[int, tuple[int, Entry]] | None = None  # offset -> (ms, entry)

    def history(self) -> OrderedDict[int, tuple[int, Entry]]:
        if self.entries is None:
            self.entries = OrderedDict()
        return self.entries


class MemoryBroker(Broker):
    def __init__(self) -> None:
        super().__init__()
        self._subscribed: set[str] = set()
        self._recent: dict[str, OrderedDict[str, tuple[int, bytes]]] = {}
        self._streams: dict[str, _Stream] = {}
        # Per room, message_id -> (author, last update), least recently updated first.
        self._owners: dict[str, OrderedDict[str, tuple[str, int]]] = {}
        self._presence: dict[str, dict[str, tuple[int, Member]]] = {}
        self._counters: dict[str, tuple[float, int]] = {}

    async def checks(self) -> Mapping[str, bool]:
        return {"memory": True, "pubsub": True}

    async def announce(self, data: bytes) -> None:
        asyncio.get_running_loop().call_soon(self._announced, data)

    async def subscribe(self, channel: str) -> None:
        self._subscribed.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._subscribed.discard(channel)

    async def publish(self, channel: str, data: bytes) -> None:
        if channel in self._subscribed:
            # Deliver on the next loop turn, as a network broker would, never re-entrantly.
            asyncio.get_running_loop().call_soon(self._deliver, channel, data)

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
        cutoff = timestamp_ms - keep_ms
        owners = self._owners.setdefault(channel, OrderedDict())
        while owners and next(iter(owners.values()))[1] <= cutoff:
            owners.popitem(last=False)
        owner = owners.get(message_id)
        if owner is not None and owner[0] != author:
            return False
        owners.pop(message_id, None)
        owners[message_id] = (author, timestamp_ms)
        stream = self._stream(channel)
        stream.top += 1
        position = StreamPosition(stream.epoch, stream.top)
        wire = offsets.pack(data, position)
        entry = offsets.unpack(wire)
        assert entry is not None
        history = stream.history()
        history[stream.top] = (timestamp_ms, entry)
        aged = timestamp_ms - offsets.history_keep_ms(keep_ms)
        while history:
            oldest, (ts, _) = next(iter(history.items()))
            if len(history) > offsets.HISTORY_CAP:
                stream.capped = oldest
            elif ts >= aged:
                break
            history.popitem(last=False)
        key = recent_key(author, message_id)
        buffer = self._recent.setdefault(channel, OrderedDict())
        buffer.pop(key, None)
        buffer[key] = (timestamp_ms, entry.frame)
        while buffer and (len(buffer) > RECENT_CAP or next(iter(buffer.values()))[0] < cutoff):
            buffer.popitem(last=False)
        await self.publish(channel, wire)
        return True

    def _stream(self, channel: str) -> _Stream:
        stream = self._streams.get(channel)
        now = time.monotonic()
        if stream is None:
            if len(self._streams) > 10_000:  # forget rooms idle for the sequence's lifetime
                ttl = offsets.SEQUENCE_TTL_MS / 1000
                self._streams = {c: s for c, s in self._streams.items() if now - s.used < ttl}
            stream = self._streams[channel] = _Stream(offsets.new_epoch())
        stream.used = now
        return stream

    async def replay(
        self,
        channel: str,
        *,
        since: StreamPosition | None,
        since_ms: int,
        limit: int,
        max_bytes: int,
    ) -> Replay:
        stream = self._stream(channel)
        top = StreamPosition(stream.epoch, stream.top)
        if since is not None and _resumable(stream, since):
            frames = [
                e.frame
                for offset, (ts, e) in stream.history().items()
                if offset > since.offset and ts > since_ms
            ]
            if len(frames) <= limit and sum(map(len, frames)) <= max_bytes:
                return Replay(top, frames, resumed=True)
        buffer = self._recent.get(channel, OrderedDict())
        out: list[bytes] = []
        total = 0
        for ts, data in reversed(buffer.values()):
            total += len(data)
            if ts <= since_ms or len(out) >= limit or total > max_bytes:
                break
            out.append(data)
        out.reverse()
        return Replay(top, out, resumed=False)

    async def history(self, channel: str, *, after: StreamPosition) -> History:
        stream = self._stream(channel)
        top = StreamPosition(stream.epoch, stream.top)
        start = after.offset if after.epoch == stream.epoch else 0
        entries = [e for offset, (_, e) in stream.history().items() if offset > start]
        return offsets.read(top, entries, after)

    async def presence_set(
        self, channel: str, *, key: str, member: Member, expires_ms: int
    ) -> None:
        self._presence.setdefault(channel, {})[key] = (expires_ms, member)

    async def presence_refresh(
        self, entries: Sequence[tuple[str, str]], *, expires_ms: int
    ) -> list[tuple[str, str]]:
        missing = []
        for channel, key in entries:
            room = self._presence.get(channel, {})
            if key in room:
                room[key] = (expires_ms, room[key][1])
            else:
                missing.append((channel, key))
        return missing

    async def presence_remove(self, channel: str, *, key: str) -> None:
        room = self._presence.get(channel)
        if room is not None:
            room.pop(key, None)
            if not room:
                del self._presence[channel]

    async def presence_list(self, channel: str, *, now_ms: int) -> list[Member]:
        room = self._presence.get(channel, {})
        return [member for expires, member in room.values() if expires > now_ms]

    async def presence_sweep(self, channel: str, *, now_ms: int) -> list[Member]:
        room = self._presence.get(channel, {})
        expired = [key for key, (expires, _) in room.items() if expires <= now_ms]
        return [room.pop(key)[1] for key in expired]

    async def count(self, key: str, *, window_s: int) -> int:
        now = time.monotonic()
        started, value = self._counters.get(key, (now, 0))
        if now - started >= window_s:
            started, value = now, 0
        self._counters[key] = (started, value + 1)
        if len(self._counters) > 100_000:
            self._counters = {k: v for k, v in self._counters.items() if now - v[0] < window_s}
        return value + 1


def _resumable(stream: _Stream, since: StreamPosition) -> bool:
    """Whether the history holds every frame after ``since`` still on screen: the same
    epoch, nothing after it pushed out by the cap, and not past the top (a position
    ahead of the room's is from a history that was lost)."""
    return since.epoch == stream.epoch and stream.capped <= since.offset <= stream.top

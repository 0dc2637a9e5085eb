"""In-memory broker for a single process (the default without ``ASOCIAL_REDIS_URL``)."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence

from chatserver.broker.base import RECENT_CAP, Broker, recent_key
from chatserver.protocol import Member


class MemoryBroker(Broker):
    def __init__(self) -> None:
        super().__init__()
        self._subscribed: set[str] = set()
        self._recent: dict[str, OrderedDict[str, tuple[int, bytes]]] = {}
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
        key = recent_key(author, message_id)
        buffer = self._recent.setdefault(channel, OrderedDict())
        buffer.pop(key, None)
        buffer[key] = (timestamp_ms, data)
        while buffer and (len(buffer) > RECENT_CAP or next(iter(buffer.values()))[0] < cutoff):
            buffer.popitem(last=False)
        await self.publish(channel, data)
        return True

    async def recent(
        self, channel: str, *, since_ms: int, limit: int, max_bytes: int
    ) -> list[bytes]:
        buffer = self._recent.get(channel, OrderedDict())
        out: list[bytes] = []
        total = 0
        for ts, data in reversed(buffer.values()):
            total += len(data)
            if ts <= since_ms or len(out) >= limit or total > max_bytes:
                break
            out.append(data)
        out.reverse()
        return out

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

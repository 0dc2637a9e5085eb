"""Presence: who is in each channel, across every pod.

Each connection has a record in the broker that expires unless refreshed. One heartbeat
task per process refreshes the records of its own connections and sweeps expired ones,
announcing ``user_left`` for users whose pod died without saying goodbye.
May use: ``broker``, ``protocol``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from chatserver.broker.base import BrokerUnavailable, PresenceStore
from chatserver.protocol import FrameType, Member, encode_bytes, presence_frame

log = logging.getLogger(__name__)


def now_ms() -> int:
    return int(time.time() * 1000)


def unique(members: list[Member]) -> list[Member]:
    """One entry per user (a user may have several tabs open), newest record wins."""
    seen: dict[str, Member] = {}
    for member in members:
        seen[member.user_id] = member
    return list(seen.values())


class Presence:
    def __init__(self, broker: PresenceStore, *, ttl_s: float) -> None:
        self._broker = broker
        self._ttl_ms = int(ttl_s * 1000)
        self._local: dict[str, tuple[str, Member]] = {}  # connection key -> (channel, member)
        self._wake = asyncio.Event()

    @property
    def heartbeat_s(self) -> float:
        return self._ttl_ms / 3000

    async def enter(self, channel: str, *, key: str, member: Member) -> list[Member]:
        """Record the connection; return the channel's members (it included)."""
        self._local[key] = (channel, member)
        now = now_ms()
        await self._broker.presence_set(
            channel, key=key, member=member, expires_ms=now + self._ttl_ms
        )
        return unique(await self._broker.presence_list(channel, now_ms=now))

    async def update(self, channel: str, *, key: str, member: Member) -> None:
        self._local[key] = (channel, member)
        await self._broker.presence_set(
            channel, key=key, member=member, expires_ms=now_ms() + self._ttl_ms
        )

    async def leave(self, channel: str, *, key: str, user_id: str) -> bool:
        """Drop the connection's record; True when the user has no other connection left."""
        self._local.pop(key, None)
        await self._broker.presence_remove(channel, key=key)
        members = await self._broker.presence_list(channel, now_ms=now_ms())
        return all(m.user_id != user_id for m in members)

    async def beat(self) -> None:
        """Refresh this process's records, then sweep and announce the expired."""
        now = now_ms()
        entries = [(channel, key) for key, (channel, _) in self._local.items()]
        missing = await self._broker.presence_refresh(entries, expires_ms=now + self._ttl_ms)
        for channel, key in missing:
            local = self._local.get(key)
            if local is not None:  # still connected: its record was swept while we stalled
                await self._broker.presence_set(
                    channel, key=key, member=local[1], expires_ms=now + self._ttl_ms
                )
        channels = {channel for channel, _ in entries}
        for channel in channels:
            expired = await self._broker.presence_sweep(channel, now_ms=now)
            if not expired:
                continue
            live = {m.user_id for m in await self._broker.presence_list(channel, now_ms=now)}
            for member in unique(expired):
                if member.user_id in live:
                    continue
                log.info("presence expired", extra={"channel": channel, "user": member.user_id})
                frame = presence_frame(
                    FrameType.USER_LEFT, member=member, channel_id=channel, timestamp_ms=now
                )
                await self._broker.publish(channel, encode_bytes(frame))

    def wake(self) -> None:
        """Beat now: the broker is back after an outage and may have lost every record
        (a restarted Redis), so joiners would see an empty room until the next beat."""
        self._wake.set()

    async def run(self) -> None:
        """Heartbeat forever; broker outages are logged and retried on the next beat."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.heartbeat_s):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.beat()
            except BrokerUnavailable as exc:
                log.warning("presence heartbeat skipped: %s", exc)

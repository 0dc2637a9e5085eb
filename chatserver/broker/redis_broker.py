"""Redis broker: pub/sub per room with offsets, the history and the replay store.

Its parts each have a module: the clients and the outage detection every command goes
through (``redis_connection.Link``), the subscriber and its reconnect loop
(``redis_subscriber``), the Lua scripts (``redis_scripts``), presence
(``redis_presence``), rate counters (``redis_counters``) and every key
(``redis_keys``).

Chat frames are numbered per room (``offsets``): the publish script gives each the
room's next offset, keeps it in the room's history and publishes it, in one step. When
the subscriber comes back, or follows the master to another server, the broker calls the
resync handler, and the hub reads each room's history from the last offset it delivered:
what it missed, exactly, or word that the range is gone. When Redis answers again after
an outage, the recovery handler runs too (presence re-announces itself).

Behind Sentinel, both clients (and the account store) go where one ``MasterFollower``
says (``sentinel_follower``). When the master moves, the subscriber leaves the old one at
once, and the newest frame of each message published in the last ``REPUBLISH_S`` that
the new master's history lacks is published again to it (``sent_log``): the old one may
have acknowledged it
after the others had left it, and never passed it to the replica that took over, so no
history holds it. Offsets cannot recover a frame the new master never had; its sender can
send it again, which is what the republish does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any

from redis.exceptions import RedisError

from chatserver.broker import offsets, redis_keys
from chatserver.broker import redis_scripts as scripts
from chatserver.broker.base import RECENT_CAP, Broker, BrokerUnavailable, Replay
from chatserver.broker.offsets import Entry, History
from chatserver.broker.redis_connection import PROBE_INTERVAL_S, Link
from chatserver.broker.redis_counters import RedisCounters
from chatserver.broker.redis_keys import CONTROL_CHANNEL, RoomKeys
from chatserver.broker.redis_presence import RedisPresence
from chatserver.broker.redis_subscriber import Subscriber
from chatserver.broker.sent_log import Sent, SentLog
from chatserver.broker.sentinel_follower import Address
from chatserver.metrics import Metrics
from chatserver.protocol import Member, StreamPosition

log = logging.getLogger(__name__)

# After the master moved, the newest frame of each message published this long before is
# looked for in the new master's history and published again if it is not there, once
# publishes in flight had REPUBLISH_DELAY_S to end (and Redis, REPUBLISH_WAIT_S to
# answer). How far back: longer than a move can take to be heard (sentinels disagreed
# for 12 s in one e2e run; a CI run lost a frame the old master took 1.05 s before the
# move was heard, with 1 s here), and shorter than receivers remember what they
# delivered (ordering.KEEP_S), so a copy of a frame they had is still dropped.
REPUBLISH_S = 20.0
REPUBLISH_DELAY_S = 0.3
REPUBLISH_WAIT_S = 3.0


def _entries(packed: list[bytes]) -> list[Entry]:
    out = []
    for data in packed:
        entry = offsets.unpack(data)
        if entry is not None:
            out.append(entry)
    return out


class RedisBroker(Broker):
    def __init__(
        self, url: str, *, password: str | None, metrics: Metrics, timeout_s: float = 1.0
    ) -> None:
        super().__init__()
        self._link = Link(url, password=password, timeout_s=timeout_s)
        self.follower = self._link.follower
        self._client = self._link.client
        self._call = self._link.call
        self._metrics = metrics
        self.subscriber = Subscriber(
            self._link,
            metrics,
            deliver=self._deliver,
            announced=self._announced,
            came_back=self._came_back,
        )
        self._link.on_answer(self._answered)
        self._sent = SentLog(keep_s=REPUBLISH_S)
        self._republishing: asyncio.Task[None] | None = None
        if self.follower is not None:
            self.follower.on_switch(self._master_moved)
        self._publish_recent = self._client.register_script(scripts.PUBLISH_RECENT)
        self._replay = self._client.register_script(scripts.REPLAY)
        self._history = self._client.register_script(scripts.HISTORY)
        self._presence = RedisPresence(self._client, self._call)
        self._counters = RedisCounters(self._client, self._call)

    # --- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        self._link.start()
        self.subscriber.start()

    async def close(self) -> None:
        if self._republishing is not None:
            self._republishing.cancel()
        await self.subscriber.close()
        await self._link.close()

    @property
    def connected(self) -> bool:
        return self.subscriber.connected

    async def checks(self) -> Mapping[str, bool]:
        try:
            async with asyncio.timeout(1.0):
                pong = await self._client.ping()
        except (RedisError, OSError, TimeoutError):
            pong = False
        return {"redis": bool(pong), "pubsub": self.subscriber.connected}

    def _came_back(self, moved: bool) -> None:
        """The subscriber is back (on a new master if ``moved``): the hub reads what each
        room missed, by offset, and the recovery handler runs."""
        self._resync(moved=moved)
        self._recovered()

    def _answered(self) -> None:
        """Redis answers again after an outage."""
        self.subscriber.wake()  # it reconnects now, not after its backoff
        if self.subscriber.connected:
            self._recovered()

    def _master_moved(self, address: Address) -> None:
        """The sentinels named a new master: the subscriber leaves the old one at once;
        once on the new one, the hub reads what reached it meanwhile; this process's
        last frames that the new master lacks are published again (``_republish``)."""
        self._metrics.broker_master_moves.inc()
        self.subscriber.move()
        if self._republishing is not None:
            self._republishing.cancel()
        self._republishing = asyncio.create_task(
            self._republish(time.monotonic()), name="redis-republish"
        )

    # --- pub/sub -------------------------------------------------------------------

    async def announce(self, data: bytes) -> None:
        await self._call(self._client.publish(CONTROL_CHANNEL, data))

    async def subscribe(self, channel: str) -> None:
        await self.subscriber.subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        await self.subscriber.unsubscribe(channel)

    async def publish(self, channel: str, data: bytes) -> None:
        self.subscriber.check_subscribed(channel)
        await self._call(self._client.publish(redis_keys.channel(channel), data))

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
        self.subscriber.check_subscribed(channel)
        sent = Sent(time.monotonic(), channel, author, message_id, data, timestamp_ms, keep_ms)
        published = bool(await self._call(self._publish_recent_script(sent)) != -1)
        if published and self.follower is not None:
            self._sent.add(sent)
        return published

    def _publish_recent_script(self, sent: Sent) -> Awaitable[Any]:
        room = RoomKeys(sent.channel)
        keys = [
            room.recent,
            room.recent_ts,
            room.channel,
            room.owners,
            room.owners_ts,
            room.sequence,
            room.history,
        ]
        args: list[bytes | str | int] = [
            sent.key,
            sent.data,
            sent.timestamp_ms,
            sent.timestamp_ms - sent.keep_ms,
            sent.keep_ms,
            RECENT_CAP,
            sent.message_id,
            sent.author,
            offsets.new_epoch(),
            offsets.HISTORY_CAP,
            offsets.SEQUENCE_TTL_MS,
            sent.timestamp_ms - offsets.history_keep_ms(sent.keep_ms),
            offsets.history_keep_ms(sent.keep_ms),
        ]
        return self._publish_recent(keys=keys, args=args)

    async def _republish(self, moved_at: float) -> None:
        """Publish again, to the new master, the newest frame of each message this
        process published in the last ``REPUBLISH_S`` before the move that the new
        master's history does not hold (see ``sent_log``): the old master may have
        acknowledged it after the processes that moved first had left it, and never
        passed it on. What the new master has is left alone."""
        await asyncio.sleep(REPUBLISH_DELAY_S)  # publishes in flight at the move finish
        for _ in range(int(REPUBLISH_WAIT_S / PROBE_INTERVAL_S)):
            if self._link.up:
                break
            await asyncio.sleep(PROBE_INTERVAL_S)
        # A newer frame of a message may have gone out meanwhile: only the newest counts.
        candidates = [
            s for s in self._sent.since(moved_at - REPUBLISH_S) if self._sent.is_newest(s)
        ]
        held: dict[str, set[bytes]] = {}
        again = 0
        try:
            for sent in candidates:
                if sent.channel not in held:
                    held[sent.channel] = await self._published_in(sent.channel)
                if sent.data in held[sent.channel]:
                    continue
                await self._call(self._publish_recent_script(sent))
                again += 1
        except BrokerUnavailable as exc:
            log.warning("publishing again after the master moved stopped: %s", exc)
        log.info(
            "published again after the master moved what the new master lacked",
            extra={"frames": again, "checked": len(candidates)},
        )

    async def _published_in(self, channel: str) -> set[bytes]:
        """Every frame the room's history holds now, as it was given to the publish
        script (without the offset the script put in)."""
        everything = await self.history(channel, after=StreamPosition("", 0))  # no epoch
        return {offsets.published(entry.frame) for entry in everything.entries}

    async def replay(
        self,
        channel: str,
        *,
        since: StreamPosition | None,
        since_ms: int,
        limit: int,
        max_bytes: int,
    ) -> Replay:
        room = RoomKeys(channel)
        keys = [room.sequence, room.history, room.recent, room.recent_ts]
        args: list[bytes | str | int] = [
            offsets.new_epoch(),
            offsets.SEQUENCE_TTL_MS,
            since.epoch if since else "",
            since.offset if since else 0,
            since_ms,
            limit,
            max_bytes,
        ]
        epoch, top, resumed, values = await self._call(self._replay(keys=keys, args=args))
        position = StreamPosition(epoch.decode(), int(top))
        if resumed:
            return Replay(position, [e.frame for e in _entries(values)], resumed=True)
        return Replay(position, list(reversed(values)), resumed=False)

    async def history(self, channel: str, *, after: StreamPosition) -> History:
        room = RoomKeys(channel)
        args: list[str | int] = [
            offsets.new_epoch(),
            offsets.SEQUENCE_TTL_MS,
            after.epoch,
            after.offset,
        ]
        keys = [room.sequence, room.history]
        epoch, top, values = await self._call(self._history(keys=keys, args=args))
        return offsets.read(StreamPosition(epoch.decode(), int(top)), _entries(values), after)

    # --- presence and counters (redis_presence, redis_counters) --------------------

    async def presence_set(
        self, channel: str, *, key: str, member: Member, expires_ms: int
    ) -> None:
        await self._presence.set(channel, key=key, member=member, expires_ms=expires_ms)

    async def presence_refresh(
        self, entries: Sequence[tuple[str, str]], *, expires_ms: int
    ) -> list[tuple[str, str]]:
        return await self._presence.refresh(entries, expires_ms=expires_ms)

    async def presence_remove(self, channel: str, *, key: str) -> None:
        await self._presence.remove(channel, key=key)

    async def presence_list(self, channel: str, *, now_ms: int) -> list[Member]:
        return await self._presence.live(channel, now_ms=now_ms)

    async def presence_sweep(self, channel: str, *, now_ms: int) -> list[Member]:
        return await self._presence.sweep(channel, now_ms=now_ms)

    async def count(self, key: str, *, window_s: int) -> int:
        return await self._counters.count(key, window_s=window_s)

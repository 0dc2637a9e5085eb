"""Redis broker: pub/sub per room with offsets, the history and the replay store, and
the outage detection every command goes through; presence (``redis_presence``) and rate
counters (``redis_counters``) are its parts, keys come from ``redis_keys`` and clients
from ``redis_connection``.

One PubSub connection per process subscribes to exactly the channels that have local
connections. It is read with a finite timeout, pinged when idle, and re-created with
exponential backoff and jitter after any failure, re-subscribing every channel.

The subscriber has a client (and connection pool) of its own, so a burst of commands
failing during an outage can never take the connection it needs to come back. Both
clients retry a command once, at once, on a fresh connection (a pooled socket may have
died with the old server) and otherwise fail fast: the reconnect loop owns the backoff,
and a user whose message cannot be published hears so within milliseconds.

Nothing is published into a gap: a channel whose subscription is not confirmed (the
subscriber is reconnecting) refuses publishes with ``BrokerUnavailable``, so the sender
is told instead of the frame vanishing. A command that times out or loses its
connection marks Redis down: until a probe (a PING every ``PROBE_INTERVAL_S``) gets an
answer, commands fail at once instead of each waiting out the timeout, and the moment
Redis answers again the subscriber stops backing off and the broker's recovery handler
runs (presence re-announces itself).

Chat frames are numbered per room (``offsets``): the publish script gives each the
room's next offset, keeps it in the room's history and publishes it, in one step. When
the subscriber comes back, or follows the master to another server, the broker calls the
resync handler, and the hub reads each room's history from the last offset it delivered:
what it missed, exactly, or word that the range is gone.

Behind Sentinel, both clients (and the account store) go where one ``MasterFollower``
says (``sentinel_follower``). When the master moves, the subscriber leaves the old one at
once, and the newest frame of each message published in the last ``REPUBLISH_S`` is
published again to the new master (``sent_log``): the old one may have acknowledged it
after the others had left it, and never passed it to the replica that took over, so no
history holds it. Offsets cannot recover a frame the new master never had; its sender can
send it again, which is what the republish does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any

from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from chatserver.broker import offsets, redis_keys
from chatserver.broker.base import RECENT_CAP, Broker, BrokerUnavailable, Replay
from chatserver.broker.offsets import Entry, History
from chatserver.broker.redis_connection import (
    OUTAGE,
    close_client,
    connect,
    follower_for,
    not_a_master,
)
from chatserver.broker.redis_counters import RedisCounters
from chatserver.broker.redis_keys import CONTROL_CHANNEL, RoomKeys
from chatserver.broker.redis_presence import RedisPresence
from chatserver.broker.sent_log import Sent, SentLog
from chatserver.broker.sentinel_follower import Address
from chatserver.metrics import Metrics
from chatserver.protocol import Member, StreamPosition

log = logging.getLogger(__name__)

SUBSCRIBE_WAIT_S = 2.0
BACKOFF_BASE_S = 0.2
BACKOFF_CAP_S = 5.0
# An attempt to (re)subscribe that takes longer than this is abandoned and retried.
RESUBSCRIBE_TIMEOUT_S = 5.0
PROBE_INTERVAL_S = 0.2
# After the master moved, the newest frame of each message published this long before is
# published again to the new one, once publishes in flight had REPUBLISH_DELAY_S to end
# (and Redis, REPUBLISH_WAIT_S to answer).
REPUBLISH_S = 1.0
REPUBLISH_DELAY_S = 0.3
REPUBLISH_WAIT_S = 3.0
# The subscriber waits this long for a frame before it looks whether the master moved.
READ_WAIT_S = 0.25

# The timestamp (ms) of a history entry, m: the frame's server-stamped "timestamp" (a
# user's text cannot hold an unescaped quote); nil for a frame without one.
_ENTRY_MS = "tonumber(string.match(m, '\"timestamp\":(%d+)'))"

# KEYS: recent hash, recent zset, pubsub channel, owners hash, owners zset, sequence
# hash, history zset. ARGV: key, data, ts, cutoff, ttl_ms, cap, message_id, author,
# a new epoch (used if the room has none), history cap, sequence ttl_ms.
# Returns the number of receivers, or -1 when another author's message with this id was
# updated after the cutoff (it is on screen): then nothing is kept or published.
_PUBLISH_RECENT = (
    """
local owner = redis.call('HGET', KEYS[4], ARGV[7])
if owner and owner ~= ARGV[8] then
  local last = redis.call('ZSCORE', KEYS[5], ARGV[7])
  if last and tonumber(last) > tonumber(ARGV[4]) then return -1 end
end
local gone = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', ARGV[4], 'LIMIT', 0, 100)
if #gone > 0 then
  redis.call('ZREM', KEYS[5], unpack(gone))
  redis.call('HDEL', KEYS[4], unpack(gone))
end
redis.call('HSET', KEYS[4], ARGV[7], ARGV[8])
redis.call('ZADD', KEYS[5], ARGV[3], ARGV[7])
redis.call('PEXPIRE', KEYS[4], ARGV[5])
redis.call('PEXPIRE', KEYS[5], ARGV[5])
-- The room's next offset, in its epoch; the frame as clients get it, and as packed.
local epoch = redis.call('HGET', KEYS[6], 'e')
if not epoch then
  epoch = ARGV[9]
  redis.call('HSET', KEYS[6], 'e', epoch)
end
local offset = redis.call('HINCRBY', KEYS[6], 'o', 1)
redis.call('PEXPIRE', KEYS[6], ARGV[11])
local frame = string.sub(ARGV[2], 1, -2) .. ',"offset":' .. offset .. '}'
local packed = string.sub(frame, 1, -2) .. ',"epoch":"' .. epoch .. '"}'
redis.call('ZADD', KEYS[7], offset, packed)
local extra = redis.call('ZCARD', KEYS[7]) - tonumber(ARGV[10])
if extra > 0 then
  local capped = redis.call('ZRANGE', KEYS[7], extra - 1, extra - 1, 'WITHSCORES')
  redis.call('ZREMRANGEBYRANK', KEYS[7], 0, extra - 1)
  redis.call('HSET', KEYS[6], 'c', capped[2])
end
for _ = 1, 100 do
  local m = redis.call('ZRANGE', KEYS[7], 0, 0)[1]
  local ms = m and """
    + _ENTRY_MS
    + """
  if not ms or ms >= tonumber(ARGV[4]) then break end
  redis.call('ZREMRANGEBYRANK', KEYS[7], 0, 0)
end
redis.call('PEXPIRE', KEYS[7], ARGV[5])
-- The newest frame of each message, for late joiners.
redis.call('HSET', KEYS[1], ARGV[1], frame)
-- Scores keep publication order within a millisecond (1/1024 ms apart; exact in a double).
local score = tonumber(ARGV[3])
local top = redis.call('ZREVRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if top[2] and tonumber(top[2]) >= score then score = tonumber(top[2]) + 1 / 1024 end
redis.call('ZADD', KEYS[2], score, ARGV[1])
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[4], 'LIMIT', 0, 100)
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[6])
if over > 0 then
  for _, k in ipairs(redis.call('ZRANGE', KEYS[2], 0, over - 1)) do table.insert(old, k) end
end
if #old > 0 then
  redis.call('ZREM', KEYS[2], unpack(old))
  redis.call('HDEL', KEYS[1], unpack(old))
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return redis.call('PUBLISH', KEYS[3], packed)
"""
)

# The room's epoch (made now if it has none), its top offset and the highest offset the
# cap pushed out of its history. KEYS[1]: the sequence hash. ARGV[1]: a new epoch,
# ARGV[2]: the sequence's ttl_ms.
_SEQUENCE = """
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], 'e', epoch)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
local top = tonumber(redis.call('HGET', KEYS[1], 'o') or '0')
local capped = tonumber(redis.call('HGET', KEYS[1], 'c') or '0')
"""

# KEYS: sequence hash, history zset, recent hash, recent zset. ARGV: new epoch, sequence
# ttl_ms, the epoch resumed from ('' for a first join), the offset resumed from, the
# lower bound (exclusive) of the timestamps on screen, most entries, most bytes.
# Returns {epoch, top, 1, packed entries after the offset} for a resume the history
# holds whole, else {epoch, top, 0, the newest frame of each message on screen}.
_REPLAY = (
    _SEQUENCE
    + """
local since = tonumber(ARGV[4])
if ARGV[3] == epoch and capped <= since and since <= top then
  local found = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. since, '+inf', 'LIMIT', 0, ARGV[6] + 1)
  if #found <= tonumber(ARGV[6]) then
    local out, total = {}, 0
    for _, m in ipairs(found) do
      if ("""
    + _ENTRY_MS
    + """ or math.huge) > tonumber(ARGV[5]) then
        total = total + #m
        table.insert(out, m)
      end
    end
    if total <= tonumber(ARGV[7]) then return {epoch, top, 1, out} end
  end
end
local out, total = {}, 0
local keys = redis.call('ZREVRANGEBYSCORE', KEYS[4], '+inf', '(' .. ARGV[5], 'LIMIT', 0, ARGV[6])
if #keys > 0 then
  for _, v in ipairs(redis.call('HMGET', KEYS[3], unpack(keys))) do
    if v then
      total = total + #v
      if total > tonumber(ARGV[7]) then break end
      table.insert(out, v)
    end
  end
end
return {epoch, top, 0, out}
"""
)

# KEYS: sequence hash, history zset. ARGV: new epoch, sequence ttl_ms, the epoch and
# offset to read after, the lower bound (exclusive) of the timestamps on screen.
# Returns {epoch, top, capped, packed entries after the offset (all, in another epoch)}.
_HISTORY = (
    _SEQUENCE
    + """
local start = 0
if ARGV[3] == epoch then start = tonumber(ARGV[4]) end
local out = {}
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. start, '+inf')) do
  if ("""
    + _ENTRY_MS
    + """ or math.huge) > tonumber(ARGV[5]) then table.insert(out, m) end
end
return {epoch, top, capped, out}
"""
)


class _MasterMoved(Exception):
    """The subscriber is on a server the sentinels no longer name as master."""


def _entries(packed: list[bytes]) -> list[Entry]:
    out = []
    for data in packed:
        entry = offsets.unpack(data)
        if entry is not None:
            out.append(entry)
    return out


def _server_of(pubsub: PubSub) -> str:
    """host:port of the server a subscriber is connected to (for logs)."""
    connection = pubsub.connection
    if connection is None:
        return "?"
    return f"{getattr(connection, 'host', '?')}:{getattr(connection, 'port', '?')}"


class RedisBroker(Broker):
    def __init__(
        self, url: str, *, password: str | None, metrics: Metrics, timeout_s: float = 1.0
    ) -> None:
        super().__init__()
        self.follower = follower_for(url, password=password)
        self._client = connect(url, password=password, timeout_s=timeout_s, follower=self.follower)
        # The subscriber idles in get_message() and PINGs; give it slack.
        self._subscriber = connect(
            url, password=password, timeout_s=max(5.0, timeout_s), follower=self.follower
        )
        self._moved = False
        self._sent = SentLog(keep_s=REPUBLISH_S)
        self._republishing: asyncio.Task[None] | None = None
        if self.follower is not None:
            self.follower.on_switch(self._master_moved)
        self._metrics = metrics
        self._up = True
        self._probe: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._channels: set[str] = set()
        self._confirmed: dict[str, asyncio.Event] = {}
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._publish_recent = self._client.register_script(_PUBLISH_RECENT)
        self._replay = self._client.register_script(_REPLAY)
        self._history = self._client.register_script(_HISTORY)
        self._presence = RedisPresence(self._client, self._call)
        self._counters = RedisCounters(self._client, self._call)

    # --- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        if self.follower is not None:
            self.follower.start()
        self._reader = asyncio.create_task(self._read_forever(), name="redis-subscriber")

    async def close(self) -> None:
        if self._republishing is not None:
            self._republishing.cancel()
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self.follower is not None:
            await self.follower.close()
        await close_client(self._subscriber)
        await close_client(self._client)

    async def checks(self) -> Mapping[str, bool]:
        try:
            pong = await asyncio.wait_for(self._client.ping(), timeout=1.0)
        except (RedisError, OSError, TimeoutError):
            pong = False
        return {"redis": bool(pong), "pubsub": self._pubsub is not None}

    async def _read_forever(self) -> None:
        attempt = 0
        moving = False
        while True:
            pubsub = self._subscriber.pubsub()
            self._moved = False
            try:
                async with asyncio.timeout(RESUBSCRIBE_TIMEOUT_S):
                    await pubsub.subscribe(
                        CONTROL_CHANNEL, *map(redis_keys.channel, self._channels)
                    )
                self._pubsub = pubsub
                if attempt or moving:
                    log.info(
                        "redis subscriber reconnected",
                        extra={"attempts": attempt, "server": _server_of(pubsub)},
                    )
                    self._resync(moved=moving)  # the hub reads what it missed, by offset
                    self._recovered()
                else:
                    log.info("redis subscriber connected", extra={"server": _server_of(pubsub)})
                attempt, moving = 0, False
                await self._read(pubsub)
            except _MasterMoved:
                # No backoff: the new master is known and answering.
                log.info("redis subscriber leaving %s for the new master", _server_of(pubsub))
                moving = True
                self._pubsub = None
                for event in self._confirmed.values():
                    event.clear()
            except Exception as exc:  # the subscriber must outlive any failure, not only Redis's
                if self._pubsub is not None or attempt == 0:
                    if isinstance(exc, RedisError | OSError):
                        log.warning("redis subscriber lost: %s", type(exc).__name__)
                    else:
                        log.error("redis subscriber failed", exc_info=exc)
                self._metrics.broker_reconnects.inc()
                delay = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt) * random.uniform(0.5, 1.0)
                attempt += 1
                self._pubsub = None
                for event in self._confirmed.values():
                    event.clear()
                self._mark_down()
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    # The probe cuts the backoff short as soon as Redis answers again.
                    await asyncio.wait_for(self._wake.wait(), timeout=delay)
            finally:
                self._pubsub = None
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(1.0):
                        await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _master_moved(self, address: Address) -> None:
        """The sentinels named a new master: the subscriber leaves the old one at once
        (it may live on for seconds, hearing nothing the others now publish); once on
        the new one, the hub reads what reached it meanwhile (``_resync``)."""
        self._moved = True
        self._wake.set()  # a subscriber backing off goes to the new master now
        if self._republishing is not None:
            self._republishing.cancel()
        self._republishing = asyncio.create_task(
            self._republish(time.monotonic()), name="redis-republish"
        )

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

    # --- pub/sub -------------------------------------------------------------------

    async def announce(self, data: bytes) -> None:
        await self._call(self._client.publish(CONTROL_CHANNEL, data))

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
            await asyncio.wait_for(event.wait(), timeout=SUBSCRIBE_WAIT_S)
        except (RedisError, OSError, TimeoutError) as exc:
            raise BrokerUnavailable(f"cannot subscribe: {type(exc).__name__}") from exc

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        self._confirmed.pop(channel, None)
        pubsub = self._pubsub
        if pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.unsubscribe(redis_keys.channel(channel))

    def _check_subscribed(self, channel: str) -> None:
        """Refuse to publish into a gap: while this process's subscription to the
        channel is not confirmed, the frame would reach nobody here (nor, after a
        Redis restart, anyone whose subscriber is still reconnecting)."""
        if self._pubsub is None:
            raise BrokerUnavailable("redis subscriber is reconnecting")
        event = self._confirmed.get(channel)
        if channel in self._channels and (event is None or not event.is_set()):
            raise BrokerUnavailable("redis subscriber is re-subscribing")

    async def publish(self, channel: str, data: bytes) -> None:
        self._check_subscribed(channel)
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
        self._check_subscribed(channel)
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
        ]
        return self._publish_recent(keys=keys, args=args)

    async def _republish(self, moved_at: float) -> None:
        """Publish again, to the new master, the newest frame of each message the old
        one acknowledged in the last ``REPUBLISH_S`` before the move (see ``sent_log``):
        it may have taken them after the processes that moved first had left it, and
        never passed them on."""
        await asyncio.sleep(REPUBLISH_DELAY_S)  # publishes in flight at the move finish
        for _ in range(int(REPUBLISH_WAIT_S / PROBE_INTERVAL_S)):
            if self._up:
                break
            await asyncio.sleep(PROBE_INTERVAL_S)
        again = 0
        for sent in self._sent.since(moved_at - REPUBLISH_S):
            if not self._sent.is_newest(sent):
                continue  # a newer frame of that message went out meanwhile
            try:
                await self._call(self._publish_recent_script(sent))
            except BrokerUnavailable as exc:
                log.warning("publishing again after the master moved stopped: %s", exc)
                break
            again += 1
        if again:
            log.info("published again after the master moved", extra={"frames": again})

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

    async def history(self, channel: str, *, after: StreamPosition, since_ms: int) -> History:
        room = RoomKeys(channel)
        args: list[bytes | str | int] = [
            offsets.new_epoch(),
            offsets.SEQUENCE_TTL_MS,
            after.epoch,
            after.offset,
            since_ms,
        ]
        keys = [room.sequence, room.history]
        epoch, top, capped, values = await self._call(self._history(keys=keys, args=args))
        position = StreamPosition(epoch.decode(), int(top))
        complete = position.epoch == after.epoch and int(capped) <= after.offset <= position.offset
        return History(position, _entries(values), complete=complete)

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

    # --- outage detection ----------------------------------------------------------

    async def _call(self, awaitable: Any) -> Any:
        if not self._up:
            if asyncio.iscoroutine(awaitable):
                awaitable.close()
            raise BrokerUnavailable("redis is not answering")
        try:
            return await awaitable
        except OUTAGE as exc:
            self._mark_down()
            self._ask_sentinels()
            raise BrokerUnavailable(f"redis unavailable: {type(exc).__name__}") from exc
        except RedisError as exc:
            if not_a_master(exc):
                self._ask_sentinels()
            raise BrokerUnavailable(f"redis error: {type(exc).__name__}") from exc

    def _ask_sentinels(self) -> None:
        """The server may no longer be the master: have the follower ask the sentinels."""
        if self.follower is not None:
            self.follower.recheck()

    def _mark_down(self) -> None:
        """Fail commands fast until a probe gets an answer."""
        if self._up:
            log.warning("redis marked down; probing every %.1fs", PROBE_INTERVAL_S)
        self._up = False
        if self._probe is None or self._probe.done():
            self._probe = asyncio.create_task(self._probe_until_up(), name="redis-probe")

    async def _probe_until_up(self) -> None:
        failed = 0
        while True:
            await asyncio.sleep(PROBE_INTERVAL_S)
            try:
                async with asyncio.timeout(max(0.5, 2 * PROBE_INTERVAL_S)):
                    await self._client.ping()
            except Exception:  # any failure means: not yet
                failed += 1
                if failed % 10 == 0:
                    self._ask_sentinels()  # in case the announcement of a switch was missed
                continue
            log.info("redis answers again")
            self._up = True
            self._wake.set()  # the subscriber reconnects now, not after its backoff
            if self._pubsub is not None:
                self._recovered()
            return

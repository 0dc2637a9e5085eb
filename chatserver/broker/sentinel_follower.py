"""One master for the whole process, as the sentinels name it.

Left to itself, each redis-py connection asks the sentinels for the master when it
opens, so after a fail-over a process can publish to the new master on a fresh
connection while its subscriber (and the other pods') still listens on the old one, which
is alive until it stops: frames reach nobody, and no error says so. Here every client of
the process (commands, the subscriber, the account store) uses the one address a
:class:`MasterFollower` holds, and that address moves for all of them at once:

- a watcher per sentinel (those in the URL and the peers they name) listens for
  ``+switch-master``; the first sentinel to announce the switch moves the process, so
  every pod moves on the same announcement rather than on whichever sentinel it happens
  to ask, which may learn of the switch seconds later;
- when a watcher (re)connects, and when a command meets a server that refuses writes
  (``READONLY``, ``NOREPLICAS``), the sentinels are asked and the answer with the newest
  configuration epoch wins;
- pooled connections to the old address are closed before their next use.

Whoever needs to act on a move (the broker's subscriber) registers with
:meth:`MasterFollower.on_switch`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import weakref
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.sentinel import SentinelConnectionPool

from chatserver.broker.redis_url import SentinelTarget

log = logging.getLogger(__name__)

Address = tuple[str, int]
SWITCH_CHANNEL = "+switch-master"
BACKOFF_BASE_S = 0.2
BACKOFF_CAP_S = 5.0
# A watcher pings an idle sentinel this often and gives the connection up after
# SILENCE_S without an answer (a sentinel whose pod vanished neither answers nor closes).
PING_EVERY_S = 2.0
SILENCE_S = 6.0
ASK_TIMEOUT_S = 2.0


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _pairs(reply: Any) -> dict[str, str]:
    """A sentinel's ``[k1, v1, k2, v2, ...]`` reply (a dict in RESP3 and in newer
    redis-py) as a dict of strings."""
    if isinstance(reply, dict):
        return {_text(k): _text(v) for k, v in reply.items()}
    items = [_text(v) for v in reply]
    return dict(zip(items[::2], items[1::2], strict=False))


class MasterFollower:
    """The master address every Redis client of this process uses (see module doc)."""

    def __init__(self, target: SentinelTarget, *, password: str | None) -> None:
        self.service = target.service
        self.address: Address | None = None
        self.epoch = -1
        self._seeds = list(target.sentinels)
        self._password = target.password or password
        self._pools: weakref.WeakSet[FollowingPool] = weakref.WeakSet()
        self._listeners: list[Callable[[Address], None]] = []
        self._watchers: dict[Address, asyncio.Task[None]] = {}
        self._asking: asyncio.Task[None] | None = None
        self._started = False

    # --- who follows -----------------------------------------------------------------

    def adopt(self, pool: FollowingPool) -> None:
        self._pools.add(pool)

    def on_switch(self, listener: Callable[[Address], None]) -> None:
        """Call ``listener(new_address)`` each time the master moves."""
        self._listeners.append(listener)

    def learned(self, address: Address) -> None:
        """A pool found the master before any watcher did (at start)."""
        if self.address is None:
            self.address = address

    def move(self, address: Address, epoch: int | None, why: str) -> None:
        """Follow ``address`` from now on (if it is news)."""
        if epoch is not None:
            if epoch < self.epoch:
                return  # a sentinel that has not yet heard of the last switch
            self.epoch = epoch
        if address == self.address:
            return
        if epoch is None:
            # An announced switch comes with a newer configuration than any we had.
            self.epoch += 1
        old, self.address = self.address, address
        if old is None:
            return
        log.warning(
            "redis master moved; following it",
            extra={"from": f"{old[0]}:{old[1]}", "to": f"{address[0]}:{address[1]}", "why": why},
        )
        for pool in list(self._pools):
            pool.master_address = address
        for listener in self._listeners:
            listener(address)

    # --- watching the sentinels --------------------------------------------------------

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        for seed in self._seeds:
            self._watch(seed)

    async def close(self) -> None:
        tasks = [*self._watchers.values(), *([self._asking] if self._asking else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._watchers.clear()

    def watched(self) -> list[Address]:
        """The sentinels watched (those in the URL and the peers they named)."""
        return list(self._watchers)

    def recheck(self) -> None:
        """Ask every known sentinel now (a command met a server that is no master)."""
        if self._started and (self._asking is None or self._asking.done()):
            self._asking = asyncio.create_task(self._ask_all(), name="sentinel-recheck")

    def _watch(self, address: Address) -> None:
        if address not in self._watchers:
            self._watchers[address] = asyncio.create_task(
                self._watch_forever(address), name=f"sentinel-watch-{address[0]}:{address[1]}"
            )

    def _client(self, address: Address) -> aioredis.Redis:
        return aioredis.Redis(
            host=address[0],
            port=address[1],
            password=self._password,
            socket_connect_timeout=ASK_TIMEOUT_S,
            socket_timeout=ASK_TIMEOUT_S,
            socket_keepalive=True,
            client_name="asocial-chat-sentinel-watch",
        )

    async def _ask(self, client: aioredis.Redis, source: str) -> None:
        """Adopt what this sentinel says the master is, if its configuration is newer;
        watch the peers it names too."""
        master = _pairs(
            await client.execute_command(  # type: ignore[no-untyped-call]
                "SENTINEL", "MASTER", self.service
            )
        )
        found = (master["ip"], int(master["port"]))
        self.move(found, int(master.get("config-epoch", "0")), f"sentinel {source}")
        peers = await client.execute_command(  # type: ignore[no-untyped-call]
            "SENTINEL", "SENTINELS", self.service
        )
        for peer in peers:
            fields = _pairs(peer)
            with contextlib.suppress(KeyError, ValueError):
                self._watch((fields["ip"], int(fields["port"])))

    async def _ask_all(self) -> None:
        async def one(address: Address) -> None:
            client = self._client(address)
            try:
                async with asyncio.timeout(ASK_TIMEOUT_S):
                    await self._ask(client, f"{address[0]}:{address[1]}")
            finally:
                await client.aclose()

        await asyncio.gather(*(one(a) for a in list(self._watchers)), return_exceptions=True)

    async def _watch_forever(self, address: Address) -> None:
        source = f"{address[0]}:{address[1]}"
        attempt = 0
        while True:
            client = self._client(address)
            pubsub = client.pubsub()
            try:
                async with asyncio.timeout(ASK_TIMEOUT_S * 2):
                    await pubsub.subscribe(SWITCH_CHANNEL)
                    # Asked after subscribing, so a switch in between is not missed.
                    await self._ask(client, source)
                attempt = 0
                await self._listen(pubsub, source)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a watcher must outlive any failure
                if attempt == 0:  # said once per streak of failures, not every retry
                    log.warning("sentinel %s not heard: %s", source, type(exc).__name__)
            finally:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(1.0):
                        await pubsub.aclose()  # type: ignore[no-untyped-call]
                        await client.aclose()
            attempt += 1
            await asyncio.sleep(
                min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt) * random.uniform(0.5, 1.0)
            )

    async def _listen(self, pubsub: Any, source: str) -> None:
        loop = asyncio.get_running_loop()
        heard = pinged = loop.time()
        while True:
            message = await pubsub.get_message(timeout=PING_EVERY_S / 2)
            now = loop.time()
            if message is not None:
                heard = now
                if message.get("type") == "message":
                    self._switch_announced(message["data"], source)
            elif now - heard > SILENCE_S:
                raise TimeoutError("sentinel silent")
            if now - pinged > PING_EVERY_S:
                pinged = now
                await pubsub.ping()

    def _switch_announced(self, data: bytes | str, source: str) -> None:
        # "<master name> <old ip> <old port> <new ip> <new port>"
        text = data.decode() if isinstance(data, bytes) else data
        parts = text.split()
        if len(parts) == 5 and parts[0] == self.service:
            with contextlib.suppress(ValueError):
                self.move((parts[3], int(parts[4])), None, f"+switch-master from {source}")


class FollowingPool(SentinelConnectionPool):
    """A Sentinel pool whose connections go where its :class:`MasterFollower` says."""

    def __init__(self, service_name: str, sentinel_manager: Any, **kwargs: Any) -> None:
        self.follower: MasterFollower = kwargs.pop("follower")
        super().__init__(service_name, sentinel_manager, **kwargs)  # type: ignore[no-untyped-call]
        self.follower.adopt(self)

    async def get_master_address(self) -> Address:
        known = self.follower.address
        if known is None:
            found: Address = await super().get_master_address()  # type: ignore[no-untyped-call]
            self.follower.learned(found)
            return self.follower.address or found
        self.master_address = known
        return known

    async def ensure_connection(self, connection: AbstractConnection) -> None:
        # A pooled connection still open to a master the process has left goes first.
        known = self.follower.address
        at = (getattr(connection, "host", None), getattr(connection, "port", None))
        if known is not None and connection.is_connected and at != known:
            await connection.disconnect()
        await super().ensure_connection(connection)

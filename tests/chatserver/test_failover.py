"""Sentinel fail-overs under traffic, on real processes: every frame a writer on one chat
server sends is delivered to a watcher on another, or refused to the writer; none is
lost in between. The hand-over is the one the operator's Redis pods make before they
stop (ask a sentinel to fail over, then SIGTERM), and the kill the one a node makes."""

from __future__ import annotations

import asyncio
import contextlib
import json

import orjson
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidHandshake

from chatserver.accounts.model import Unavailable
from chatserver.accounts.redis_store import RedisAccountStore
from chatserver.broker import offsets
from chatserver.broker.redis_broker import RedisBroker
from chatserver.broker.redis_connection import close_client, connect
from chatserver.broker.redis_url import SentinelTarget
from chatserver.broker.sentinel_follower import Address, MasterFollower
from chatserver.metrics import Metrics
from tests.chatserver.traffic import metric
from tests.fixtures.processes import ChatFactory, wait_for
from tests.fixtures.redis_setups import SET, Replicated, command
from tests.fixtures.users import Numbered, account_for, in_the_room

pytestmark = pytest.mark.redis


async def _burst(url: str, sockets: int) -> None:
    """Many users joining at once: the server's command pool opens new connections, and
    a new connection used to ask the sentinels for the master on its own."""

    async def one(i: int) -> None:
        # Each reads all it is sent (max_queue=None), as a page does: one that stops
        # reading never sees the server's answer to its close and waits 10 s for it.
        with contextlib.suppress(OSError, InvalidHandshake, TimeoutError):
            url_i = url + f"&uid=burst-{i}"
            async with ws_connect(url_i, open_timeout=5, max_queue=None) as conn:
                await conn.send(json.dumps({"type": "chat", "message_id": "b", "payload": "x"}))
                await asyncio.sleep(0.5)

    await asyncio.gather(*(one(i) for i in range(sockets)))


async def test_a_graceful_hand_over_under_traffic_loses_no_frame(
    chat_server: ChatFactory, replicated: Replicated
) -> None:
    """The master hands over and stays up for 3 s before it stops, while users join the
    writer's server (its pool grows): the writer's server and the watcher's never
    straddle the two masters, so every frame is delivered or refused."""
    env = {"ASOCIAL_REDIS_URL": replicated.url(), "ASOCIAL_RATE_LIMIT_PER_MINUTE": "100000"}
    a, b = chat_server(name="a", **env), chat_server(name="b", **env)
    watcher = await in_the_room(b.ws, "failover")
    writer = Numbered(a.ws, "failover", "writer", rate=20)
    try:
        await asyncio.to_thread(
            wait_for, lambda: len(writer.delivered(watcher)) > 10, "traffic", 20
        )
        for _ in range(2):
            old = replicated.master()
            # What the pod's preStop does: ask for a fail-over, wait for it, then stop.
            replicated.fail_over()
            new = await asyncio.to_thread(
                wait_for, lambda o=old: (m := replicated.master()) != o and m, "promotion", 30
            )
            await _burst(a.ws("channel=failover"), 30)
            await asyncio.sleep(2.5)
            replicated.stop(old)
            await asyncio.sleep(1)
            replicated.start(old, new)
            n0 = len(writer.sent)
            await asyncio.to_thread(
                wait_for, lambda n0=n0: any(n > n0 for n in writer.delivered(watcher)), "chat", 30
            )
            await asyncio.to_thread(replicated.wait_replicas_known)
        await writer.pause()  # it keeps reading: a refusal may still be on its way
        try:
            await account_for([writer], watcher, timeout=10)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{a.logs()[-3000:]}\n{b.logs()[-3000:]}") from None
        assert len(writer.delivered(watcher)) > len(writer.sent) / 2, "mostly refused?"
        for server in (a, b):  # each followed both hand-overs, counted once each
            assert await metric(server, "broker_master_moves_total") == 2
    finally:
        await writer.stop()
        await watcher.stop()


def _target(port: int) -> SentinelTarget:
    return SentinelTarget([("127.0.0.1", port)], SET, 0, None, None)


def test_a_sentinel_that_has_not_heard_of_a_switch_does_not_move_the_follower_back() -> None:
    follower = MasterFollower(_target(1), password=None)
    moves: list[Address] = []
    follower.on_switch(moves.append)
    follower.move(("old", 6379), 3, "asked at start")
    follower.move(("new", 6379), None, "+switch-master")
    follower.move(("old", 6379), 3, "a lagging sentinel")
    assert follower.address == ("new", 6379)
    follower.move(("newer", 6379), 5, "a later fail-over")
    assert follower.address == ("newer", 6379)
    assert moves == [("new", 6379), ("newer", 6379)]


async def test_the_follower_moves_every_client_on_the_switch_and_finds_the_peers(
    replicated: Replicated,
) -> None:
    follower = MasterFollower(_target(replicated.sentinels[0]), password=None)
    client = connect(replicated.url(), password=None, follower=follower)
    heard: list[Address] = []
    follower.on_switch(heard.append)
    follower.start()
    try:
        old = replicated.master()
        await client.set("k", "before")
        assert follower.address == ("127.0.0.1", old)

        def watching_all() -> bool:
            return {p for _, p in follower.watched()} == set(replicated.sentinels)

        await asyncio.to_thread(wait_for, watching_all, "watchers on every sentinel", 10)
        replicated.fail_over()
        new = await asyncio.to_thread(
            wait_for, lambda: (m := replicated.master()) != old and m, "promotion", 30
        )
        await asyncio.to_thread(
            wait_for, lambda: follower.address == ("127.0.0.1", new), "the follower", 10
        )
        assert heard == [("127.0.0.1", new)]
        # The pooled connection to the old master (still up, and a master in its own
        # eyes until the sentinels reconfigure it) is not used again.
        assert (await client.info("server"))["tcp_port"] == new
    finally:
        await follower.close()
        await close_client(client)


async def _started(url: str) -> RedisBroker:
    broker = RedisBroker(url, password=None, metrics=Metrics())
    await broker.start()
    await asyncio.to_thread(wait_for, lambda: broker.subscriber.connected, "subscriber", 10)
    return broker


async def test_a_frame_the_old_master_took_after_the_others_left_is_published_again(
    replicated: Replicated,
) -> None:
    """The watcher's process follows the new master first; the writer's process, still on
    the old one (up, and a master in its own eyes), publishes a frame there that the new
    master never gets, and hears of the move seconds later. Then it publishes again the
    newest frame of each message that the new master's history lacks, and only that: the
    watcher gets it, and not the frame the new master had all along."""
    writer, watcher = await _started(replicated.url()), await _started(replicated.url())
    got: list[bytes] = []
    watcher.set_handler(lambda channel, data: got.append(data))
    try:
        for broker in (writer, watcher):
            await broker.subscribe("room")
        old = replicated.master()
        new = next(p for p in replicated.ports if p != old)
        kept = orjson.dumps({"payload": "kept"})
        await writer.publish_recent(
            "room", author="a", message_id="m0", data=kept, timestamp_ms=1, keep_ms=5000
        )
        assert command(old, "WAIT", "1", "2000") == 1  # the new master has it
        await asyncio.to_thread(wait_for, lambda: got, "the frame both masters have", 10)
        got.clear()
        command(new, "REPLICAOF", "NO", "ONE")  # a master of its own, as a promotion makes it
        assert watcher.follower is not None
        assert writer.follower is not None
        watcher.follower.move(("127.0.0.1", new), None, "heard first")
        await asyncio.to_thread(
            wait_for,
            lambda: watcher.subscriber.connected and not watcher.subscriber.moving,
            "move",
            10,
        )
        for text in ("h", "hi"):  # two frames of one message; only the newest counts
            data = orjson.dumps({"payload": text})
            await writer.publish_recent(
                "room", author="a", message_id="m1", data=data, timestamp_ms=1, keep_ms=5000
            )
        # The move is heard seconds later (sentinels can disagree for that long).
        await asyncio.sleep(3.5)
        assert got == [], "the new master should not have had the frames yet"
        writer.follower.move(("127.0.0.1", new), None, "heard later")
        await asyncio.to_thread(wait_for, lambda: got, "the frame published again", 10)
        await asyncio.sleep(1.0)  # anything else published again would be here by now
        entries = [offsets.unpack(data) for data in got]
        assert [orjson.loads(e.frame)["payload"] for e in entries if e] == ["hi"]
    finally:
        await writer.close()
        await watcher.close()


class Rechecks:
    """Stands in for the process's master follower: counts the calls to look again."""

    def __init__(self) -> None:
        self.count = 0

    def recheck(self) -> None:
        self.count += 1


async def test_an_account_write_refused_as_readonly_makes_the_process_look_for_the_master(
    replicated: Replicated,
) -> None:
    """A replica answers an account write with READONLY (the master moved while this
    process still wrote to the old one): the write fails as Unavailable, and the process
    asks the sentinels at once, as for the broker's own commands."""
    replica = next(p for p in replicated.ports if p != replicated.master())
    client = connect(f"redis://127.0.0.1:{replica}/0", password=None)
    rechecks = Rechecks()
    store = RedisAccountStore(client, replicated=False, follower=rechecks)  # type: ignore[arg-type]
    try:
        assert await store.revoked_before("someone") == 0  # reads are fine on a replica
        assert rechecks.count == 0
        with pytest.raises(Unavailable):
            await store.revoke("someone", 1)
        assert rechecks.count == 1
    finally:
        await store.close()

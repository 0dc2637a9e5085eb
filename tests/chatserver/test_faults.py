"""Fault tests against real processes over real sockets: a Redis outage under live
traffic, SIGTERM drain, slow consumers, the transport limit and abusive clients.

Every wait polls with a deadline; sleeps only pace traffic, never decide an outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import time
from typing import Any

import pytest
import redis
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.chatserver.client import Client, client, joined
from tests.chatserver.traffic import (
    Collector,
    chat,
    eventually,
    http_get,
    metric,
    read_until_closed,
    ready,
    stalled,
)
from tests.fixtures import redis_setups
from tests.fixtures.processes import ChatFactory, ChatProcess, RedisProcess
from tests.fixtures.users import Numbered, Watcher, account_for, in_the_room

# --- 1. Redis outage ---------------------------------------------------------------


@pytest.mark.redis
async def test_redis_outage_under_live_traffic(
    redis_server: RedisProcess, chat_server: ChatFactory
) -> None:
    env = {
        "ASOCIAL_REDIS_URL": redis_server.url,
        "ASOCIAL_RATE_LIMIT_PER_MINUTE": "1000000",
        "ASOCIAL_FRAMES_PER_SECOND": "1000",
    }
    pods = [chat_server(name="a", **env), chat_server(name="b", **env)]
    room = "outage"
    # Each pod has a user who sees the room and one who types into it (50 frames/s).
    eyes: list[Watcher] = []
    senders: dict[str, Numbered] = {}
    try:
        for i, pod in enumerate(pods):
            eyes.append(await in_the_room(pod.ws, room, f"eyes-{i}"))
        senders = {
            name: Numbered(pod.ws, room, name, rate=50, reconnect=False)
            for name, pod in (("alice", pods[0]), ("bob", pods[1]))
        }
        alice, bob = senders["alice"], senders["bob"]
        await eventually(
            lambda: len(alice.delivered(eyes[1])) >= 5 and len(bob.delivered(eyes[0])) >= 5,
            timeout=10,
            what="chat crossing pods both ways before the outage",
        )
        reconnects_before = [await metric(p, "broker_reconnects_total") for p in pods]
        for pod in pods:
            assert await metric(pod, "broker_connected") == 1

        redis_server.stop()
        at_kill = {name: len(s.sent) for name, s in senders.items()}

        for pod in pods:

            async def down(pod: ChatProcess = pod) -> bool:
                status, body = await ready(pod)
                checks = body.get("checks", {})
                return (
                    status == 503
                    and checks.get("redis") == "down"
                    and checks.get("pubsub") == "down"
                )

            await eventually(down, timeout=5, what=f"/ready 503 (redis, pubsub down) on {pod.port}")
            assert await metric(pod, "broker_connected") == 0, "the alerts' 'Redis down' signal"
            assert (await http_get(pod.http("/health")))[0] == 200, "/health must stay 200"

        # Frames sent during the outage are answered, never silently dropped.
        await eventually(
            lambda: len(alice.refused) >= 3 and len(bob.refused) >= 3,
            timeout=5,
            what="'unavailable' errors for chat sent during the outage",
        )
        in_outage = {name: await s.pause() - at_kill[name] for name, s in senders.items()}
        await eventually(
            lambda: (
                len(alice.refused) >= in_outage["alice"] and len(bob.refused) >= in_outage["bob"]
            ),
            timeout=5,
            what=f"one 'unavailable' error per frame sent during the outage ({in_outage})",
        )
        for pod in pods:
            assert pod.proc.poll() is None, f"server crashed in the outage:\n{pod.logs()}"
        users: list[Numbered | Watcher] = [*senders.values(), *eyes]
        for user in users:
            closes = user.connection.close_codes
            assert closes == [], f"the outage must not close client sockets: {closes}"

        redis_server.start()
        for pod in pods:
            try:
                await eventually(
                    lambda pod=pod: _status_is(pod, "/ready", 200),
                    timeout=15,
                    what=f"/ready 200 after redis came back on {pod.port}",
                )
            except AssertionError as exc:
                last = await http_get(pod.http("/ready"))
                tail = "\n".join(pod.logs().splitlines()[-40:])
                raise AssertionError(f"{exc}; last /ready: {last}\n{tail}") from None
        resumed = {name: len(s.sent) for name, s in senders.items()}
        for s in senders.values():
            s.resume()
        await eventually(
            lambda: (
                max(alice.delivered(eyes[1])) > resumed["alice"]
                and max(bob.delivered(eyes[0])) > resumed["bob"]
            ),
            timeout=10,
            what="chat crossing pods again on the existing connections",
        )
        # No frame answered with 'unavailable' was delivered late.
        late = {n for n in alice.delivered(eyes[1]) if at_kill["alice"] < n <= resumed["alice"]}
        assert not late, f"frames refused during the outage were delivered anyway: {late}"

        async with (
            joined(pods[0].ws(f"uid=carol&channel={room}")) as carol,
            joined(pods[1].ws(f"uid=dave&channel={room}")) as dave,
        ):
            await carol.send(chat("carol-1", "from carol"))
            got = await _recv_chat(dave, "carol")
            assert got["payload"] == "from carol"
            await dave.send(chat("dave-1", "from dave"))
            got = await _recv_chat(carol, "dave")
            assert got["payload"] == "from dave"

        for pod, before in zip(pods, reconnects_before, strict=True):
            after = await metric(pod, "broker_reconnects_total")
            assert after > before, f"broker_reconnects_total did not grow on {pod.port}"
            assert await metric(pod, "broker_connected") == 1
            assert await metric(pod, "broker_master_moves_total") == 0, "no master moved"
    finally:
        for sender in senders.values():
            await sender.stop()
        for watcher in eyes:
            await watcher.stop()


async def _status_is(server: ChatProcess, path: str, status: int) -> bool:
    return (await http_get(server.http(path)))[0] == status


async def _recv_chat(c: Client, user_id: str, timeout: float = 10) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            frame = await c.recv(timeout)
            if frame["type"] == "chat" and frame["user_id"] == user_id:
                return frame


# --- 2. SIGTERM ----------------------------------------------------------------------


async def test_sigterm_closes_every_client_with_1001_and_exits(chat_server: ChatFactory) -> None:
    server = chat_server(
        name="drain", ASOCIAL_FRAMES_PER_SECOND="1000", ASOCIAL_RATE_LIMIT_PER_MINUTE="1000000"
    )
    url = server.ws
    async with contextlib.AsyncExitStack() as stack:
        readers = [
            Collector(await stack.enter_async_context(joined(url(f"uid=reader{i}&channel=r"))))
            for i in range(4)
        ]
        talker = Numbered(url, "r", "talker", rate=200, reconnect=False)
        stack.push_async_callback(talker.stop)
        await eventually(
            lambda: all(len(r.numbers_from(talker.uid)) >= 10 for r in readers),
            timeout=10,
            what="traffic in flight before SIGTERM",
        )
        signalled = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        await eventually(
            lambda: all(c.done.is_set() for c in readers) and bool(talker.connection.closes),
            timeout=10,
            what="every client closed after SIGTERM",
        )
        closes = [(c.close_code, c.close_reason) for c in readers] + talker.connection.closes
        for close in closes:
            assert close == (1001, "Server shutting down"), (
                f"expected close 1001 'Server shutting down', got {close}"
            )
        rc = await asyncio.to_thread(server.proc.wait, 10)
        elapsed = time.monotonic() - signalled
        assert elapsed < 10, f"exit took {elapsed:.1f}s"
        assert rc in (0, -signal.SIGTERM), f"exit code {rc}:\n{server.logs()}"


async def test_sigterm_drain_is_bounded_by_the_grace_and_refuses_new_clients(
    chat_server: ChatFactory,
) -> None:
    """A client that stops reading cannot hold the shutdown past the grace; while the
    drain waits for it, /ready is 503 and new sockets are refused.

    The grace is what the deployment budgets (terminationGracePeriodSeconds = preStop +
    ASOCIAL_SHUTDOWN_GRACE_SECONDS), so running past it means SIGKILL in production."""
    grace = 5.0  # ASOCIAL_SHUTDOWN_GRACE_SECONDS, set by the fixture
    server = chat_server(
        name="stuck",
        ASOCIAL_SEND_QUEUE_SIZE="8",
        ASOCIAL_FRAMES_PER_SECOND="10000",
        ASOCIAL_RATE_LIMIT_PER_MINUTE="1000000",
        ASOCIAL_MAX_MESSAGE_SIZE="65536",
    )
    async with (
        stalled(server.ws("uid=stuck&channel=s")),
        joined(server.ws("uid=flooder&channel=s")) as flooder,
    ):
        # Back the stuck client's socket up until its queue overflows: from then on its
        # writer is blocked on a full socket and the drain has to wait for it.
        big = "x" * 60_000
        for i in range(1, 1001):
            await flooder.send(chat(f"f-{i}", big))
            if i % 10 == 0 and await metric(server, "slow_consumers_disconnected_total") > 0:
                break
        assert await metric(server, "slow_consumers_disconnected_total") > 0, "no backlog"

        signalled = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        await eventually(
            lambda: _status_is(server, "/ready", 503),
            timeout=3,
            what="/ready 503 while draining",
        )
        status, body = await ready(server)
        if status == 503:  # still draining (it lasts the grace)
            assert body["checks"]["accepting"] == "draining", body
        with pytest.raises((InvalidStatus, ConnectionClosed, OSError)):
            async with client(server.ws("uid=late&channel=s")) as late:
                await late.recv_type("user_sync", timeout=3)
        rc = await asyncio.to_thread(server.proc.wait, 30)
        elapsed = time.monotonic() - signalled
    assert rc in (0, -signal.SIGTERM), f"exit code {rc}:\n{server.logs()}"
    assert elapsed < grace + 2, (
        f"shutdown took {elapsed:.1f}s with one client that stopped reading; "
        f"ASOCIAL_SHUTDOWN_GRACE_SECONDS={grace:g} must bound it (after the drain grace "
        "uvicorn waits another timeout_graceful_shutdown=5s for the stuck socket)"
    )


# --- 3. slow consumer ----------------------------------------------------------------


async def test_slow_consumer_is_closed_with_1013_and_the_room_keeps_flowing(
    chat_server: ChatFactory,
) -> None:
    server = chat_server(
        name="slow",
        ASOCIAL_SEND_QUEUE_SIZE="8",
        ASOCIAL_FRAMES_PER_SECOND="10000",
        ASOCIAL_RATE_LIMIT_PER_MINUTE="1000000",
        ASOCIAL_MAX_MESSAGE_SIZE="65536",
    )
    async with (
        stalled(server.ws("uid=sloth&channel=busy")) as sloth,
        joined(server.ws("uid=reader&channel=busy")) as reader_c,
        joined(server.ws("uid=flooder&channel=busy")) as flooder,
    ):
        reader = Collector(reader_c)
        big = "y" * 60_000
        sent = 0
        overflowed_at: int | None = None
        while sent < 1000 and (overflowed_at is None or sent < overflowed_at + 30):
            sent += 1
            await flooder.send(chat(f"m-{sent}", f"{sent:06d}{big}"))
            # At most 4 frames ahead of the normal reader: it must never fall behind.
            await eventually(
                lambda n=sent: len(reader.chats_from("flooder")) >= n - 4,
                timeout=10,
                what=f"the normal reader to keep up (frame {sent})",
            )
            if (
                overflowed_at is None
                and sent % 10 == 0
                and await metric(server, "slow_consumers_disconnected_total") > 0
            ):
                overflowed_at = sent
        assert overflowed_at is not None, f"no slow consumer detected after {sent} large frames"
        await eventually(
            lambda: len(reader.chats_from("flooder")) == sent,
            timeout=10,
            what="the normal reader to receive every frame",
        )
        numbers = [int(f["payload"][:6]) for f in reader.chats_from("flooder")]
        assert numbers == list(range(1, sent + 1)), "the normal reader lost or reordered frames"
        assert reader.close_code is None, f"the normal reader was closed ({reader.close_code})"

        # The slow client, once it reads, finds the 1013 after what was already sent.
        code, reason = await read_until_closed(sloth, timeout=15)
        assert code == 1013, f"slow consumer closed with {code} {reason!r}, expected 1013"
        await eventually(
            lambda: _gauge_at_most(server, "websocket_connections_active", 2),
            timeout=5,
            what="the slow consumer's session to be released",
        )
        await reader.stop()


async def _gauge_at_most(server: ChatProcess, name: str, limit: float) -> bool:
    return await metric(server, name) <= limit


# --- 4. transport limit --------------------------------------------------------------


async def test_oversized_payload_gets_an_error_and_oversized_frame_is_closed_1009(
    chat_server: ChatFactory,
) -> None:
    server = chat_server(name="sizes", ASOCIAL_MAX_MESSAGE_SIZE="4096")
    transport_limit = 4096 * 6 + 1024
    async with joined(server.ws("uid=big&channel=sizes")) as c:
        await c.send(chat("too-big", "z" * 5000))
        error = await c.recv_type("error")
        assert error["code"] == "payload_too_large", error
        assert error.get("message_id") == "too-big", error
        # Still open and working.
        await c.send({"type": "username_changed", "username": "still here"})
        echo = await c.recv_type("username_changed")
        assert echo["username"] == "still here"

        await c.send(chat("huge", "z" * (transport_limit + 100)))
        code, _ = await c.closed(timeout=5)
        assert code == 1009, f"a frame over the transport limit closed with {code}, expected 1009"


# --- 5. abuse ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad_frame", "error_code", "close_code"),
    [
        pytest.param("{not json", "invalid_json", 1008, id="invalid-json"),
        pytest.param('{"type": "user_joined"}', "forbidden_type", 1008, id="forbidden-type"),
        pytest.param(b"\x00\x01binary", "binary_not_supported", 1003, id="binary"),
    ],
)
async def test_repeated_bad_frames_close_the_socket(
    chat_server: ChatFactory, bad_frame: str | bytes, error_code: str, close_code: int
) -> None:
    threshold = 5
    server = chat_server(name="abuse", ASOCIAL_ABUSE_THRESHOLD=str(threshold))
    async with joined(server.ws("uid=troll&channel=abuse")) as c:
        for _ in range(threshold - 1):
            await c.send(bad_frame)
            error = await c.recv_type("error")
            assert error["code"] == error_code, error
        # Below the threshold the socket stays usable.
        await c.send({"type": "color_changed", "color": "#123456"})
        assert (await c.recv_type("color_changed"))["color"] == "#123456"

        # The threshold-th bad frame closes the socket (extra ones may race the close).
        await c.send(bad_frame)
        with contextlib.suppress(ConnectionClosed):
            for _ in range(2):
                await c.send(bad_frame)
        code, reason = await c.closed(timeout=5)
        assert code == close_code, f"closed with {code} {reason!r}, expected {close_code}"
        assert error_code in (reason or ""), reason


def _pubsub_connections_of(redis: RedisProcess, pid: int) -> list[str]:
    """The client addresses of process ``pid``'s subscriber connections to ``redis``."""
    with redis_setups.client(redis.port) as c:
        listing = c.client_list(_type="pubsub")
    sockets = subprocess.run(
        ["ss", "-tnpH", "state", "established", "dst", f"127.0.0.1:{redis.port}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    mine = {line.split()[2] for line in sockets.splitlines() if f"pid={pid}," in line}
    return [entry["addr"] for entry in listing if entry["addr"] in mine]


@pytest.mark.redis
async def test_a_subscriber_that_drops_catches_up_on_what_others_published_meanwhile(
    redis_server: RedisProcess, chat_server: ChatFactory
) -> None:
    """Only pod b's subscriber connection is cut (as in a Sentinel failover, where each
    pod notices at its own moment): pod a keeps publishing, and b's user still gets every
    frame, because b reads what it missed from the replay store once it is back."""
    env = {"ASOCIAL_REDIS_URL": redis_server.url, "ASOCIAL_RATE_LIMIT_PER_MINUTE": "100000"}
    a, b = chat_server(name="a", **env), chat_server(name="b", **env)
    room = "catch-up"
    reader = await in_the_room(b.ws, room, "reader")
    writer = Numbered(a.ws, room, "writer", rate=25, reconnect=False)  # under 30 frames/s
    try:
        await eventually(lambda: len(writer.delivered(reader)) > 20, timeout=10, what="traffic")
        admin = redis.Redis(port=redis_server.port)  # its connection stays open
        for _ in range(3):
            cut = _pubsub_connections_of(redis_server, b.proc.pid)
            assert cut, "pod b has no subscriber connection"
            # No new connection for a second, so b's subscriber stays away that
            # long, as one does while a Sentinel failover completes.
            clients = admin.info("clients")["connected_clients"]
            admin.config_set("maxclients", clients - len(cut))
            for addr in cut:
                admin.client_kill(addr)
            await asyncio.sleep(1.0)  # pacing: the length of b's absence
            admin.config_set("maxclients", 10000)
            await eventually(
                lambda cut=cut: _pubsub_connections_of(redis_server, b.proc.pid) not in ([], cut),
                timeout=10,
                what="pod b's subscriber back",
            )
            await asyncio.sleep(0.5)  # pacing: traffic between the cuts
        admin.close()
        await writer.pause()  # it keeps reading: a refusal may still be on its way
        await account_for([writer], reader, timeout=5)
        assert writer.connection.close_codes == [], "the writer was closed"
    finally:
        await writer.stop()
        await reader.stop()

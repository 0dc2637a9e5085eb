"""Attacks on a live server, each a case that once took it down or lost what users
typed: stuck readers, ping floods, huge or stalled request heads, hijacked message ids,
Redis restarts and hangs under traffic, tokens in logs, SIGTERM while clients type.

Real processes, real sockets, a real ``redis-server``. Waits poll with deadlines; sleeps
only pace traffic.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import os
import signal
import socket
import struct
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest
from websockets.exceptions import ConnectionClosed

from chatserver.tasks import cancel_and_wait
from tests.chatserver.client import Client, client, joined
from tests.chatserver.traffic import (
    Collector,
    chat,
    eventually,
    metric,
    ready,
    stalled,
)
from tests.fixtures.processes import ChatFactory, ChatProcess, RedisProcess
from tests.fixtures.users import Numbered, account_for, in_the_room

# --- raw-socket helpers --------------------------------------------------------------


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def raw_upgrade(
    port: int, *, extra_headers: str = "", query: str = "uid=raw", rcvbuf: int | None = None
) -> socket.socket:
    """A plain TCP socket that has sent a WebSocket upgrade and read its 101.

    ``rcvbuf`` is set before connecting: shrunk afterwards, the buffer would be smaller
    than the window already advertised, so the kernel would prune what the server sends
    into it, and the retransmissions' backoff could stall this client's own sends."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(5)
    try:
        sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            (
                f"GET /api/chat?{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra_headers}\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            assert chunk, f"closed during the handshake: {head!r}"
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head
    except BaseException:
        sock.close()
        raise
    return sock


def masked_frame(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    else:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    return head + mask + body


def http_head_response(sock: socket.socket, timeout: float) -> bytes:
    """Whatever the server writes before closing, within ``timeout``."""
    sock.settimeout(timeout)
    data = b""
    with contextlib.suppress(ConnectionResetError, BrokenPipeError):
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


def closed_by_server(sock: socket.socket, timeout: float) -> bool:
    """True once the server has closed or reset the socket (reading what is buffered)."""
    sock.settimeout(0.5)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not sock.recv(1 << 20):
                return True
        except TimeoutError:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return True
    return False


async def users_in(server: ChatProcess, channel: str) -> set[str]:
    async with joined(server.ws(f"uid=probe-{uuid.uuid4().hex[:6]}&channel={channel}")) as c:
        pass
    async with client(server.ws(f"uid=probe2-{uuid.uuid4().hex[:6]}&channel={channel}")) as c:
        sync = await c.recv_type("user_sync")
    return {u["user_id"] for u in sync["users"]}


async def collect_for(c: Client, seconds: float) -> list[dict[str, Any]]:
    """Every frame that arrives within ``seconds`` (however busy the room is)."""
    frames: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    # A deadline loop, not asyncio.timeout around recv's wait_for: on 3.11 a frame that
    # arrives just as the outer timeout fires can swallow its cancellation.
    while (left := deadline - time.monotonic()) > 0:
        try:
            frames.append(await c.recv(left))
        except TimeoutError:
            break
    return frames


# --- 1. a stuck reader is gone within seconds ------------------------------------------


async def test_a_client_that_stops_reading_is_gone_within_seconds(
    chat_server: ChatFactory,
) -> None:
    server = chat_server(
        ASOCIAL_SEND_QUEUE_SIZE="8",
        ASOCIAL_FRAMES_PER_SECOND="10000",
        ASOCIAL_RATE_LIMIT_PER_MINUTE="100000",
        ASOCIAL_MAX_MESSAGE_SIZE="65536",
    )
    room = "stuck"
    async with (
        stalled(server.ws(f"uid=stuck&channel={room}")) as stuck,
        joined(server.ws(f"uid=writer&channel={room}")) as writer,
    ):
        assert await metric(server, "websocket_connections_active") == 2
        big = "x" * 60_000
        started = time.monotonic()
        for i in range(1000):
            await writer.send(chat(f"m{i}", big))
            if await metric(server, "slow_consumers_disconnected_total") >= 1:
                break
        assert await metric(server, "slow_consumers_disconnected_total") >= 1
        await eventually(
            lambda: _active_is(server, 1),
            timeout=5,
            what="the stuck client out of websocket_connections_active",
        )
        assert "stuck" not in await users_in(server, room), "stuck client still in presence"
        # Its socket is closed (or reset) by the server, not left established.
        transport = stuck.transport
        sock = transport.get_extra_info("socket")
        assert sock is not None
        raw = socket.socket(fileno=os.dup(sock.fileno()))
        try:
            assert await asyncio.to_thread(closed_by_server, raw, 15), "stuck socket kept open"
        finally:
            raw.close()
        print(f"stuck client gone {time.monotonic() - started:.1f}s after the flood began")


async def _active_is(server: ChatProcess, value: float) -> bool:
    return await metric(server, "websocket_connections_active") == value


# --- 2. a ping flood cannot grow memory ------------------------------------------------


def test_ping_flood_with_unread_pongs_keeps_memory_bounded(chat_server: ChatFactory) -> None:
    server = chat_server()
    before = rss_kib(server.proc.pid)
    with raw_upgrade(server.port, rcvbuf=4096) as sock:  # reads no pong
        ping = masked_frame(0x9, b"p" * 125)
        batch = ping * 400  # ~52 KiB per send
        sent = 0
        sock.settimeout(5)
        with contextlib.suppress(TimeoutError):
            while sent < 160 * 1024 * 1024:  # what once took RSS from 122 to 263 MiB
                sock.sendall(batch)
                sent += len(batch)
        after = rss_kib(server.proc.pid)
    print(f"ping flood: {sent / 2**20:.0f} MiB of pings, RSS {before} -> {after} KiB")
    assert sent > 32 * 1024 * 1024, f"the flood stalled early ({sent} bytes)"
    assert after - before < 24 * 1024, f"RSS grew by {after - before} KiB"
    assert server.proc.poll() is None


# --- 3. bounded request heads ----------------------------------------------------------


def test_an_upgrade_with_a_header_line_over_8_kib_gets_431(chat_server: ChatFactory) -> None:
    server = chat_server()
    token = "a" * 9000
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(
            (
                "GET /api/chat?uid=big HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
            ).encode()
        )
        answer = http_head_response(sock, timeout=5)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]


def test_a_head_over_the_limit_gets_431_and_memory_stays_bounded(
    chat_server: ChatFactory,
) -> None:
    server = chat_server(ASOCIAL_MAX_HEADER_BYTES="16384")
    before = rss_kib(server.proc.pid)
    answers = []
    for _ in range(4):
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            sock.settimeout(2)
            with contextlib.suppress(TimeoutError, ConnectionResetError, BrokenPipeError):
                for _ in range(64 * 16):  # up to 64 MiB of header, never finished
                    sock.sendall(b"X-Filler: " + b"f" * 65_000 + b"\r\n")
            answers.append(http_head_response(sock, timeout=5))
    after = rss_kib(server.proc.pid)
    print(f"4 huge heads: RSS {before} -> {after} KiB")
    assert all(a.startswith(b"HTTP/1.1 431") for a in answers), [a[:80] for a in answers]
    assert after - before < 32 * 1024, f"RSS grew by {after - before} KiB"


async def test_half_open_handshakes_time_out(chat_server: ChatFactory) -> None:
    server = chat_server(ASOCIAL_HANDSHAKE_TIMEOUT_SECONDS="1")
    with contextlib.ExitStack() as stack:
        socks = []
        for i in range(60):
            sock = stack.enter_context(
                socket.create_connection(("127.0.0.1", server.port), timeout=5)
            )
            if i % 2:
                sock.sendall(b"GET /api/chat?uid=slow HTTP/1.1\r\nHost: x\r\n")  # unfinished
            socks.append(sock)
        started = time.monotonic()
        closed = [closed_by_server(s, timeout=5) for s in socks]
        elapsed = time.monotonic() - started
    assert all(closed), f"{closed.count(False)} half-open sockets still open"
    assert elapsed < 5
    assert (
        await metric(server, "websocket_connections_rejected_total", 'reason="handshake_timeout"')
        == 60
    )
    # Real clients still get in.
    async with joined(server.ws("uid=real")):
        pass


# --- 4. message ids are per author -----------------------------------------------------


@pytest.mark.parametrize("broker", ["memory", "redis"])
async def test_reusing_a_victims_message_id_never_replaces_the_victims_text(
    chat_server: ChatFactory, redis_server: RedisProcess, broker: str
) -> None:
    """Original clients key a message's text by ``message_id`` alone: a frame of
    mallory's under the victim's id must reach no one under that id, live or in the
    replay, while the victim's message is on screen. On Redis mallory is on another
    process than the victim, so the check holds across pods."""
    if broker == "redis":
        env = {"ASOCIAL_REDIS_URL": redis_server.url}
        victims, mallorys = chat_server(name="a", **env), chat_server(name="b", **env)
    else:
        victims = mallorys = chat_server()
    room = f"hijack-{broker}"
    async with (
        joined(victims.ws(f"uid=victim&channel={room}")) as victim,
        joined(mallorys.ws(f"uid=mallory&channel={room}")) as mallory,
        joined(victims.ws(f"uid=viewer&channel={room}")) as viewer,
    ):
        await victim.send(chat("m1", "hello"))
        seen = await viewer.recv_type("chat", message_id="m1")
        assert (seen["user_id"], seen["payload"]) == ("victim", "hello")
        await mallory.recv_type("chat", message_id="m1")
        await mallory.send(chat("m1", "pwned"))
        refused = await mallory.recv_type("error")
        assert (refused["code"], refused["message_id"]) == ("message_id_taken", "m1")
        assert "another user's message" in refused["message"]
        # Mallory's own messages still go out, and the victim types on.
        await mallory.send(chat("m2", "mine"))
        await victim.send(chat("m1", "hello!"))
        live = [await viewer.recv_type("chat") for _ in range(2)]
        live += [f for f in await viewer.drain(0.5) if f["type"] == "chat"]
        assert sorted((f["user_id"], f["message_id"], f["payload"]) for f in live) == [
            ("mallory", "m2", "mine"),
            ("victim", "m1", "hello!"),
        ]
        async with client(mallorys.ws(f"uid=late&channel={room}")) as late:
            await late.recv_type("user_sync")
            replay = [f for f in await late.drain(0.5) if f["type"] == "chat"]
        by_id = {f["message_id"]: (f["user_id"], f["payload"]) for f in replay}
        assert by_id == {"m1": ("victim", "hello!"), "m2": ("mallory", "mine")}


# --- 5 and 6. Redis restarted or hung under traffic --------------------------------------


@pytest.mark.redis
@pytest.mark.parametrize("appendonly", [False, True], ids=["in-memory", "appendonly"])
async def test_every_frame_around_a_redis_restart_is_delivered_or_refused(
    chat_server: ChatFactory, tmp_path: Path, appendonly: bool
) -> None:
    """Redis killed and started again under traffic: without persistence it comes back
    empty (a new epoch for every room), with an append-only file it comes back with what
    it had written to disk (up to a second behind what it had answered): either way
    every frame is delivered or refused."""
    redis_server = RedisProcess(tmp_path, appendonly=appendonly)
    redis_server.start()
    env = {"ASOCIAL_REDIS_URL": redis_server.url, "ASOCIAL_RATE_LIMIT_PER_MINUTE": "100000"}
    a, b = chat_server(name="a", **env), chat_server(name="b", **env)
    room = "restart"
    reader = await in_the_room(b.ws, room, "reader")
    writers = [Numbered(a.ws, room, f"w{i}", rate=20, reconnect=False) for i in (1, 2)]
    try:
        await eventually(lambda: len(writers[0].delivered(reader)) > 10, timeout=10, what="traffic")
        redis_server.stop()
        await asyncio.sleep(1.0)  # pacing: the outage lasts a second
        redis_server.start()
        for pod in (a, b):
            await eventually(
                lambda pod=pod: _ready(pod), timeout=15, what=f"{pod.port} ready again"
            )
        await asyncio.sleep(3.0)  # pacing: keep typing through the recovery
        for w in writers:
            await w.pause()
        await account_for(writers, reader, timeout=5)
        for w in writers:
            assert not w.other_errors, w.other_errors[:3]
            assert w.connection.close_codes == [], f"{w.uid} was closed: {w.other_errors[:3]}"
    finally:
        for w in writers:
            await w.stop()
        await reader.stop()
        redis_server.stop()


@pytest.mark.redis
async def test_a_hung_redis_refuses_frames_promptly_and_kicks_nobody(
    redis_server: RedisProcess, chat_server: ChatFactory
) -> None:
    env = {"ASOCIAL_REDIS_URL": redis_server.url, "ASOCIAL_RATE_LIMIT_PER_MINUTE": "100000"}
    a, b = chat_server(name="a", **env), chat_server(name="b", **env)
    room = "hang"
    reader = await in_the_room(b.ws, room, "reader")
    writers = [
        Numbered(pod.ws, room, f"w{i}", rate=10, reconnect=False) for i, pod in ((1, a), (2, b))
    ]
    assert redis_server.proc is not None
    try:
        await eventually(lambda: len(writers[0].delivered(reader)) > 5, timeout=10, what="traffic")
        redis_server.proc.send_signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(4.0)  # pacing: well into the hang
            during = {w.uid: len(w.refused) for w in writers}
            await asyncio.sleep(8.0)
        finally:
            redis_server.proc.send_signal(signal.SIGCONT)
        for pod in (a, b):
            await eventually(
                lambda pod=pod: _ready(pod), timeout=15, what=f"{pod.port} ready again"
            )
        await asyncio.sleep(2.0)
        for w in writers:
            await w.pause()
        # Refusals came while Redis hung, not all at once when it resumed.
        assert all(n > 10 for n in during.values()), during
        await account_for(writers, reader, timeout=5)
        for w in writers:
            assert w.connection.close_codes == [], f"{w.uid} was closed: {w.other_errors[:3]}"
            assert not w.other_errors, w.other_errors[:3]
    finally:
        with contextlib.suppress(Exception):
            redis_server.proc.send_signal(signal.SIGCONT)
        for w in writers:
            await w.stop()
        await reader.stop()


async def _ready(server: ChatProcess) -> bool:
    return (await ready(server))[0] == 200


@pytest.mark.redis
async def test_presence_is_back_as_soon_as_redis_is(
    redis_server: RedisProcess, chat_server: ChatFactory
) -> None:
    env = {"ASOCIAL_REDIS_URL": redis_server.url, "ASOCIAL_PRESENCE_TTL_SECONDS": "30"}
    a, b = chat_server(name="a", **env), chat_server(name="b", **env)
    async with joined(a.ws("uid=stayer&channel=pres")):
        redis_server.stop()
        redis_server.start()  # empty: every presence record is gone
        await eventually(lambda: _ready(b), timeout=15, what="b ready again")
        started = time.monotonic()
        await eventually(
            lambda: _users_include(b, "pres", "stayer"),
            timeout=4,
            what="the stayer re-announced (heartbeat is every 10 s)",
        )
        print(f"presence back {time.monotonic() - started:.2f}s after /ready")


async def _users_include(server: ChatProcess, channel: str, user: str) -> bool:
    try:
        return user in await users_in(server, channel)
    except (OSError, ConnectionClosed, TimeoutError):
        return False


# --- 7. no token in any log line ------------------------------------------------------

SECRET = "s3cret-for-tests-only-0123456789abcdef"


async def test_tokens_never_reach_the_logs_at_any_level(chat_server: ChatFactory) -> None:
    token = jwt.encode({"sub": "alice", "exp": int(time.time()) + 600}, SECRET, "HS256")
    bad = jwt.encode(
        {"sub": "eve", "exp": int(time.time()) + 600},
        "another-key-that-is-not-the-servers-0123456789",
        "HS256",
    )
    signatures = [t.rsplit(".", 1)[1] for t in (token, bad)]
    for level in ("DEBUG", "INFO"):
        server = chat_server(
            name=level,
            ASOCIAL_LOG_LEVEL=level,
            ASOCIAL_AUTH_MODE="jwt",
            ASOCIAL_JWT_SECRET=SECRET,
        )
        for t in (token, bad):
            ways: list[tuple[str, dict[str, Any]]] = [
                (f"token={t}", {}),
                (f"tok%65n={t}", {}),
                ("", {"additional_headers": {"Authorization": f"Bearer {t}"}}),
                ("", {"subprotocols": ["bearer", t]}),
            ]
            for query, kwargs in ways:
                async with client(server.ws(f"uid=u&{query}"), **kwargs) as c:
                    with contextlib.suppress(ConnectionClosed):  # the bad token is refused
                        await c.drain(0.2)
        await asyncio.to_thread(server.terminate)
        logs = server.logs()
        assert "joined" in logs, logs[-2000:]
        assert "authentication refused" in logs, logs[-2000:]
        for sig in signatures:
            assert sig not in logs, f"a token leaked into the {level} logs"
            assert sig[:16] not in logs


# --- 8. typing clients get 1001 on SIGTERM ---------------------------------------------


@dataclasses.dataclass(frozen=True)
class TypingLoad:
    typists: int
    per_room: int
    payload_bytes: int
    interval_s: float
    idle: int
    grace_s: int
    reads_after_s: float = 0.0
    """How long after the SIGTERM the typists begin to read what they are sent."""


@pytest.mark.parametrize(
    "load",
    [
        TypingLoad(typists=8, per_room=8, payload_bytes=20, interval_s=0.02, idle=0, grace_s=5),
        # 3 KB frames ten times a second, two typists per room, beside idle clients; the
        # typists read only 6 s after the signal (busy typing), within the 8 s drain.
        TypingLoad(
            typists=10,
            per_room=2,
            payload_bytes=3000,
            interval_s=0.1,
            idle=40,
            grace_s=10,
            reads_after_s=6.0,
        ),
    ],
    ids=["light", "heavy"],
)
async def test_every_typing_client_gets_1001_on_sigterm(
    chat_server: ChatFactory, load: TypingLoad
) -> None:
    """However fast and however far behind its reading a client types, it is told 1001,
    and the process uses its grace for that (but no more)."""
    server = chat_server(
        ASOCIAL_FRAMES_PER_SECOND="100",
        ASOCIAL_RATE_LIMIT_PER_MINUTE="100000",
        ASOCIAL_SHUTDOWN_GRACE_SECONDS=str(load.grace_s),
    )
    stack = contextlib.AsyncExitStack()
    async with stack:
        typists = [
            await stack.enter_async_context(
                joined(server.ws(f"uid=t{i}&channel=room{i // load.per_room}"))
            )
            for i in range(load.typists)
        ]
        idle = [
            await stack.enter_async_context(joined(server.ws(f"uid=i{i}&channel=room{i % 5}")))
            for i in range(load.idle)
        ]
        collectors = [Collector(c) for c in idle]
        if not load.reads_after_s:
            collectors += [Collector(c) for c in typists]

        async def type_forever(c: Client, i: int) -> None:
            n = 0
            with contextlib.suppress(ConnectionClosed):
                while True:
                    n += 1
                    size = load.payload_bytes
                    await c.send(chat(f"t{i}-{n // 20}", "x" * size))
                    await asyncio.sleep(load.interval_s)

        typing = [asyncio.create_task(type_forever(c, i)) for i, c in enumerate(typists)]
        try:
            await asyncio.sleep(1.0)  # pacing: everyone is typing
            started = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            if load.reads_after_s:
                await asyncio.sleep(load.reads_after_s)  # pacing: the typists read late
                collectors += [Collector(c) for c in typists]
            await asyncio.gather(*(c.done.wait() for c in collectors))
            codes = [c.close_code for c in collectors]
            rc = await asyncio.to_thread(server.proc.wait, 30)
            elapsed = time.monotonic() - started
        finally:
            for t in typing:
                t.cancel()
        assert codes == [1001] * len(collectors), codes
        assert rc in (0, -signal.SIGTERM), f"exit code {rc}:\n{server.logs()}"
        assert elapsed < load.grace_s + 1, f"exit took {elapsed:.1f}s (grace {load.grace_s} s)"


# --- also fixed ------------------------------------------------------------------------


async def test_a_joiner_never_receives_a_frame_twice(chat_server: ChatFactory) -> None:
    server = chat_server(ASOCIAL_FRAMES_PER_SECOND="200", ASOCIAL_RATE_LIMIT_PER_MINUTE="100000")
    room = "dups"
    async with joined(server.ws(f"uid=typist&channel={room}")) as typist:
        own = Collector(typist)  # a real client reads what it is sent (presence)
        stop = asyncio.Event()

        async def type_fast() -> None:
            n = 0
            while not stop.is_set():
                n += 1
                await typist.send(chat(f"m{n // 10}", "y" * (n % 10 + 1)))
                await asyncio.sleep(0.005)

        task = asyncio.create_task(type_fast())
        try:
            for j in range(30):
                async with client(server.ws(f"uid=j{j}&channel={room}")) as joiner:
                    await joiner.recv_type("user_sync")
                    frames = [f for f in await collect_for(joiner, 0.3) if f["type"] == "chat"]
                keys = [(f["message_id"], f["payload"], f["timestamp"]) for f in frames]
                assert len(keys) == len(set(keys)), f"join {j} got a frame twice"
        finally:
            stop.set()
            await cancel_and_wait(task)
            await own.stop()


@pytest.mark.parametrize("broker", ["memory", "redis"])
async def test_replay_sends_the_newest_within_count_and_byte_budgets(
    chat_server: ChatFactory, redis_server: RedisProcess, broker: str
) -> None:
    env = {"ASOCIAL_REDIS_URL": redis_server.url} if broker == "redis" else {}
    server = chat_server(
        ASOCIAL_FRAMES_PER_SECOND="1000",
        ASOCIAL_RATE_LIMIT_PER_MINUTE="100000",
        ASOCIAL_MESSAGE_FADE_SECONDS="60",
        **env,
    )
    room = f"replay-{broker}"
    async with joined(server.ws(f"uid=w&channel={room}")) as w:
        for i in range(200):
            await w.send(chat(f"n{i}", str(i)))
        async with joined(server.ws(f"uid=watch&channel={room}")) as watch:
            await w.send(chat("last", "done"))
            await watch.recv_type("chat", message_id="last")
        async with client(server.ws(f"uid=late&channel={room}")) as late:
            await late.recv_type("user_sync")
            got = [f["message_id"] for f in await late.drain(0.5) if f["type"] == "chat"]
        assert got == [f"n{i}" for i in range(73, 200)] + ["last"], got[:3]

    server2 = chat_server(
        name="bytes",
        ASOCIAL_REPLAY_MAX_BYTES="65536",
        ASOCIAL_FRAMES_PER_SECOND="1000",
        ASOCIAL_RATE_LIMIT_PER_MINUTE="100000",
        **env,
    )
    room = f"bytes-{broker}"
    async with joined(server2.ws(f"uid=w&channel={room}")) as w:
        for i in range(40):
            await w.send(chat(f"b{i}", "z" * 4000))
        async with joined(server2.ws(f"uid=watch&channel={room}")) as watch:
            await w.send(chat("b-last", "z" * 4000))
            await watch.recv_type("chat", message_id="b-last")
        async with client(server2.ws(f"uid=late&channel={room}")) as late:
            await late.recv_type("user_sync")
            frames = [f for f in await late.drain(0.5) if f["type"] == "chat"]
        size = sum(len(json.dumps(f)) for f in frames)
        assert frames[-1]["message_id"] == "b-last"
        assert 0 < size <= 65536 + 4096, size
        assert len(frames) < 41


async def test_room_names_stay_out_of_metrics_by_default(chat_server: ChatFactory) -> None:
    server = chat_server()
    async with joined(server.ws("uid=a&channel=secret-project-x")) as c:
        await c.send(chat("m", "hi"))
        await eventually(
            lambda: _published(server), timeout=5, what="messages_published_total counted"
        )
    status, body = await _metrics_text(server)
    assert status == 200
    assert "secret-project-x" not in body


async def _published(server: ChatProcess) -> bool:
    return await metric(server, "messages_published_total", 'channel="all"') >= 1


async def _metrics_text(server: ChatProcess) -> tuple[int, str]:
    from tests.chatserver.traffic import http_get

    return await http_get(server.http("/metrics"))


async def test_invisible_characters_are_stripped_from_usernames(chat_server: ChatFactory) -> None:
    server = chat_server()
    name = "ad\u202emin\u200b\u2066x\u0007"
    async with (
        joined(server.ws("uid=a&channel=names")) as a,
        client(server.ws("uid=b&channel=names&username=" + name)) as b,
    ):
        sync = await b.recv_type("user_sync")
        assert {"user_id": "b", "username": "adminx"} in [
            {"user_id": u["user_id"], "username": u.get("username")} for u in sync["users"]
        ]
        await b.send({"type": "username_changed", "username": "\u200bbob\u202e"})
        changed = await a.recv_type("username_changed", user_id="b")
        assert changed["username"] == "bob"

"""Helpers shared by the chat server's fault and attack tests: a collector of every
frame one joined client gets, metrics and health read over HTTP, polling with a deadline,
and a socket that stops reading. Numbered traffic, accounted for (delivered or refused),
is ``tests/fixtures/users.py``'s, shared with the e2e tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from chatserver.tasks import cancel_and_wait
from tests.chatserver.client import Client
from tests.fixtures.processes import ChatProcess


async def http_get(url: str) -> tuple[int, str]:
    """(status, body) of a plain HTTP/1.0 GET; status 0 when nothing answers."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    try:
        async with asyncio.timeout(3):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(f"GET {parts.path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
                data = await reader.read()
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except (OSError, TimeoutError):
        return 0, ""
    head, _, body = data.partition(b"\r\n\r\n")
    fields = head.split()
    return (int(fields[1]) if len(fields) > 1 else 0), body.decode("utf-8", "replace")


async def eventually(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool], *, timeout: float, what: str
) -> None:
    """Poll ``check`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


async def metric(server: ChatProcess, name: str, labels: str = "") -> float:
    """The value of one sample in the server's /metrics (0 when absent)."""
    status, body = await http_get(server.http("/metrics"))
    assert status == 200, f"/metrics answered {status}"
    sample = re.escape(name + (f"{{{labels}}}" if labels else ""))
    match = re.search(rf"^{sample} ([0-9.e+-]+)$", body, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def chat(message_id: str, payload: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "chat",
        "message_id": message_id,
        "payload": payload,
        "position": {"x": 10.5, "y": -3.0},
        **extra,
    }


class Collector:
    """Reads every frame of a client in the background; remembers how it was closed."""

    def __init__(self, c: Client) -> None:
        self.client = c
        self.frames: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.done = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        conn = self.client.conn
        try:
            async for raw in conn:
                frame = json.loads(raw)
                assert isinstance(frame, dict), raw
                self.frames.append(frame)
        except ConnectionClosed:
            pass
        finally:
            if conn.protocol.close_rcvd is not None:
                rcvd = conn.protocol.close_rcvd
                self.close_code, self.close_reason = rcvd.code, rcvd.reason
            self.done.set()

    def chats_from(self, user_id: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] == "chat" and f["user_id"] == user_id]

    def numbers_from(self, user_id: str) -> set[int]:
        return {int(f["payload"]) for f in self.chats_from(user_id)}

    def errors(self, code: str) -> int:
        return sum(1 for f in self.frames if f["type"] == "error" and f["code"] == code)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)


async def ready(server: ChatProcess) -> tuple[int, dict[str, Any]]:
    status, body = await http_get(server.http("/ready"))
    return status, (json.loads(body) if body else {})


@contextlib.asynccontextmanager
async def stalled(url: str) -> AsyncIterator[ClientConnection]:
    """A client that reads nothing until told: a tiny kernel receive buffer and a
    one-frame library queue, so the server's writes back up into its own buffers."""
    host, port = url.split("/")[2].split(":")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # The connection owns the socket once open; closing it again here is harmless,
        # and closes it when the handshake fails.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((host, int(port)))
        sock.setblocking(False)
        async with connect(
            url, sock=sock, max_queue=1, max_size=None, ping_interval=None, open_timeout=10
        ) as conn:
            yield conn


async def read_until_closed(conn: ClientConnection, timeout: float) -> tuple[int | None, str]:
    """Read (and drop) frames until the server closes; return (code, reason)."""
    async with asyncio.timeout(timeout):
        try:
            while True:
                await conn.recv()
        except ConnectionClosed as exc:
            return (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (None, "")

"""A small WebSocket test client over real sockets (the ``websockets`` library)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from chatserver.tasks import within


class Client:
    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn

    async def send(self, frame: dict[str, Any] | str | bytes) -> None:
        await self.conn.send(frame if isinstance(frame, str | bytes) else json.dumps(frame))

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        raw = await within(timeout, self.conn.recv())
        frame = json.loads(raw)
        assert isinstance(frame, dict)
        return frame

    async def recv_type(self, kind: str, timeout: float = 5.0, **match: Any) -> dict[str, Any]:
        """The next frame of ``kind`` (whose fields equal ``match``), skipping others."""
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.recv(timeout)
                if frame["type"] == kind and all(frame.get(k) == v for k, v in match.items()):
                    return frame

    async def drain(self, quiet: float = 0.3) -> list[dict[str, Any]]:
        """Every frame until none arrives for ``quiet`` seconds."""
        frames = []
        while True:
            try:
                frames.append(await self.recv(quiet))
            except TimeoutError:
                return frames

    async def closed(self, timeout: float = 5.0) -> tuple[int | None, str | None]:
        """Wait for the server to close; return (code, reason)."""
        async with asyncio.timeout(timeout):
            try:
                while True:
                    await self.conn.recv()
            except ConnectionClosed as exc:
                rcvd = exc.rcvd
                return (rcvd.code, rcvd.reason) if rcvd else (None, None)


@asynccontextmanager
async def client(url: str, **kwargs: Any) -> AsyncIterator[Client]:
    async with connect(url, open_timeout=10, **kwargs) as conn:
        yield Client(conn)


@asynccontextmanager
async def joined(url: str, **kwargs: Any) -> AsyncIterator[Client]:
    """Connected and past its ``user_sync``."""
    async with client(url, **kwargs) as c:
        await c.recv_type("user_sync")
        yield c

"""Admission under concurrency: limits hold for handshakes that are in flight together.

ASGI-level: real ``Session``s on a real runtime (in-memory broker), driven through
Starlette's ``WebSocket`` with a server side whose ``accept`` is held open, so every
handshake is past its limit check and inside its accept at the same time."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.websockets import WebSocket

from chatserver import session
from chatserver.app import build_runtime
from chatserver.settings import Settings


class HeldServer:
    """The server half of one ASGI WebSocket whose accept waits for ``release``."""

    def __init__(self, release: asyncio.Event) -> None:
        self.release = release
        self.sent: list[dict[str, Any]] = []
        self.closed = asyncio.Event()
        self._incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._incoming.put_nowait({"type": "websocket.connect"})

    async def receive(self) -> dict[str, Any]:
        return await self._incoming.get()

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "websocket.accept":
            await self.release.wait()
        self.sent.append(message)
        if message["type"] == "websocket.close":
            self.closed.set()
            self._incoming.put_nowait({"type": "websocket.disconnect", "code": 1000})

    def hang_up(self) -> None:
        self._incoming.put_nowait({"type": "websocket.disconnect", "code": 1000})

    def refused(self) -> bool:
        return any(
            m["type"] == "websocket.send" and '"too_many_connections"' in m.get("text", "")
            for m in self.sent
        )


def scope(query: str) -> dict[str, Any]:
    return {
        "type": "websocket",
        "path": "/api/chat",
        "query_string": query.encode(),
        "headers": [],
        "subprotocols": [],
        "extensions": {},
    }


async def test_simultaneous_handshakes_of_one_user_never_exceed_the_per_user_limit() -> None:
    runtime = build_runtime(Settings(max_connections_per_user=16))
    release = asyncio.Event()
    servers = [HeldServer(release) for _ in range(40)]
    tasks = [
        asyncio.create_task(
            session.serve(runtime, WebSocket(scope("uid=same&channel=c"), s.receive, s.send))
        )
        for s in servers
    ]
    # Let every handshake reach its (held) accept.
    for _ in range(20):
        await asyncio.sleep(0)
    assert runtime.per_user.get("same") == 16, runtime.per_user
    release.set()
    await asyncio.sleep(0.2)
    refused = [s for s in servers if s.refused()]
    admitted = [s for s in servers if not s.refused()]
    assert len(refused) == 24
    assert len(admitted) == 16
    for s in admitted:
        s.hang_up()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
    assert runtime.per_user == {}
    assert not runtime.sessions


async def test_a_handshake_that_fails_in_accept_frees_its_slot() -> None:
    runtime = build_runtime(Settings(max_connections_per_user=1))

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def broken_send(message: dict[str, Any]) -> None:
        raise OSError("peer went away during the handshake")

    ws = WebSocket(scope("uid=solo&channel=c"), receive, broken_send)
    with pytest.raises(OSError, match="during the handshake"):
        await session.serve(runtime, ws)
    assert runtime.per_user == {}
    assert not runtime.sessions

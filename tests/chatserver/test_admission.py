"""Admission under concurrency: limits hold for handshakes that are in flight together.

ASGI-level: real ``Session``s on a real runtime (in-memory broker), driven through
Starlette's ``WebSocket`` with a server side whose ``accept`` is held open, so every
handshake is past its limit check and inside its accept at the same time."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.websockets import WebSocket

from chatserver import admission, session
from chatserver.app import build_runtime
from chatserver.settings import Settings
from chatserver.tasks import within


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
    await within(10, asyncio.gather(*tasks))
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


def _ws(query: str = "", headers: list[tuple[bytes, bytes]] | None = None) -> WebSocket:
    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        return None

    s = scope(query)
    s["headers"] = headers or []
    return WebSocket(s, receive, send)


@pytest.mark.parametrize(
    ("query", "headers", "expected"),
    [
        ("token=q", [(b"authorization", b"Bearer h")], ("q", None)),
        ("", [(b"authorization", b"Bearer h")], ("h", None)),
        ("", [(b"sec-websocket-protocol", b"bearer, p")], ("p", "bearer")),
        ("token=q", [(b"sec-websocket-protocol", b"bearer, p")], ("q", "bearer")),
        ("", [(b"authorization", b"Basic x")], (None, None)),
        ("", [(b"sec-websocket-protocol", b"bearer")], (None, "bearer")),
    ],
)
def test_the_token_is_taken_from_query_header_then_subprotocol(
    query: str, headers: list[tuple[bytes, bytes]], expected: tuple[str | None, str | None]
) -> None:
    assert admission.presented_token(_ws(query, headers)) == expected


async def test_admit_names_who_joins_where() -> None:
    runtime = build_runtime(Settings())
    admitted = await admission.admit(
        runtime, _ws("uid=u-1&username=Ann&color=%23112233&channel=room")
    )
    assert admitted is not None
    assert (admitted.identity.user_id, admitted.identity.channel_id) == ("u-1", "room")
    assert (admitted.member.username, admitted.member.color) == ("Ann", "#112233")
    assert admitted.subprotocol is None


async def test_a_draining_runtime_admits_nobody() -> None:
    runtime = build_runtime(Settings())
    runtime.draining = True
    assert await admission.admit(runtime, _ws("uid=u-1&channel=room")) is None

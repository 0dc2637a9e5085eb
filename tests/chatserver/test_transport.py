"""The transport's prepared-frame writer, and chat over both of the server's send paths.

In-process uvicorn servers on real sockets, real ``websockets`` clients."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from chatserver import wire
from chatserver.app import create_app
from chatserver.settings import Settings
from chatserver.tasks import within
from chatserver.transport import Flag, Inbox, PreparedFrameProtocol
from tests.chatserver.client import client
from tests.fixtures.processes import free_port


@contextlib.asynccontextmanager
async def serving(app: Any, ws: Any) -> AsyncIterator[int]:
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, ws=ws, ws_per_message_deflate=False, log_config=None
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.02)
        assert server.started, f"uvicorn did not start on port {port}"
        yield port
    finally:
        server.should_exit = True
        await within(15, task)


class Probe:
    """A bare ASGI app: accept, write one prepared frame, then obey the client."""

    def __init__(self) -> None:
        self.writer: Callable[[bytes], bool] | None = None
        self.after_close: bool | None = None
        self.done = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return
        await receive()  # websocket.connect
        self.writer = wire.writer_for(scope)
        await send({"type": "websocket.accept"})
        if self.writer is not None:
            assert self.writer(wire.text_frame("héllo, prepared".encode()))
        await send({"type": "websocket.send", "text": "and ordinary"})
        message = await receive()
        assert message["type"] == "websocket.disconnect"
        if self.writer is not None:
            self.after_close = self.writer(wire.text_frame(b"too late"))
        self.done.set()


async def test_prepared_frames_reach_the_client_in_order_with_asgi_sends() -> None:
    probe = Probe()
    async with serving(probe, PreparedFrameProtocol) as port:
        async with client(f"ws://127.0.0.1:{port}/") as c:
            assert await within(5, c.conn.recv()) == "héllo, prepared"
            assert await within(5, c.conn.recv()) == "and ordinary"
        await within(5, probe.done.wait())
    assert probe.writer is not None, "asocial-chat's transport must offer the writer"
    assert probe.after_close is False, "a closed connection must refuse prepared frames"


async def test_other_servers_offer_no_writer() -> None:
    probe = Probe()
    async with serving(probe, "websockets-sansio") as port:
        async with client(f"ws://127.0.0.1:{port}/") as c:
            assert await within(5, c.conn.recv()) == "and ordinary"
        await within(5, probe.done.wait())
    assert probe.writer is None


@pytest.mark.parametrize("ws", [PreparedFrameProtocol, "websockets-sansio", "auto"])
async def test_chat_fans_out_over_every_send_path(ws: Any) -> None:
    app = create_app(Settings())
    async with serving(app, ws) as port:
        url = f"ws://127.0.0.1:{port}/api/chat?channel=room&uid="
        async with client(url + "alice") as alice, client(url + "bob") as bob:
            await alice.recv_type("user_sync")
            await bob.recv_type("user_sync")
            for i in range(20):
                await alice.send(
                    {
                        "type": "chat",
                        "payload": f"k{i}",
                        "position": {"x": i, "y": 2},
                        "message_id": "m1",
                    }
                )
            got = [(await bob.recv_type("chat"))["payload"] for _ in range(20)]
            assert got == [f"k{i}" for i in range(20)], "frames lost or out of order"


async def test_inbox_hands_items_over_in_order_and_wakes_its_reader() -> None:
    inbox = Inbox()
    assert inbox.empty()
    reader = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    assert not reader.done()
    inbox.put_nowait("a")
    inbox.put_nowait("b")
    assert await within(1, reader) == "a"
    assert not inbox.empty()
    assert await inbox.get() == "b"
    assert inbox.empty()
    cancelled = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    cancelled.cancel()
    inbox.put_nowait("c")  # a cancelled reader must not swallow it
    assert await within(1, inbox.get()) == "c"


async def test_flag_wakes_every_waiter_when_set() -> None:
    flag = Flag(True)
    await within(1, flag.wait())
    flag.clear()
    waiters = [asyncio.create_task(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    flag.set()
    await within(1, asyncio.gather(*waiters))
    assert flag.is_set()

"""The WebSocket transport of ``asocial-chat``: uvicorn's websockets-sansio protocol,
made lighter per socket, plus the prepared-frame writer of ``wire`` in every scope.

Fan-out writes the same frame to many sockets; through ASGI each write would encode
the text again, build and serialize a frame object, and pass two coroutines. The
writer puts the prepared bytes on the transport directly, and only when the ASGI path
would have done exactly that without waiting: the connection is open, nothing is
fragmented or compressed, and the transport is not paused for back-pressure.

An idle socket costs what it keeps. The base protocol keeps an ``asyncio.Queue`` (three
deques and an Event) and an ``asyncio.Event`` per socket, and the handshake's request
and response for the socket's whole life: about 8 KiB. Here the queue and the event are
replaced by the little they are used as, and the handshake objects are let go once the
connection is accepted.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request
from websockets.protocol import State

from chatserver import wire


class Inbox:
    """What the protocol uses of ``asyncio.Queue`` (``put_nowait``, ``get``, ``empty``),
    for its single reader: the ASGI app's ``receive``."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Any:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self._items.pop(0)

    def empty(self) -> bool:
        return not self._items


class Flag:
    """``asyncio.Event`` (``set``, ``clear``, ``is_set``, ``wait``) whose waiter list
    exists only while someone waits."""

    __slots__ = ("_set", "_waiters")

    def __init__(self, value: bool = False) -> None:
        self._set = value
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> None:
        while not self._set:
            waiter = asyncio.get_running_loop().create_future()
            if self._waiters is None:
                self._waiters = []
            self._waiters.append(waiter)
            await waiter


class PreparedFrameProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = Inbox()  # type: ignore[assignment]
        self.writable = Flag(True)  # type: ignore[assignment]

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        self.scope["extensions"][wire.EXTENSION] = self.write_prepared  # type: ignore[assignment]

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            # Only the handshake reads these; the scope keeps the request's headers.
            self.request = self.response = None  # type: ignore[assignment]

    def write_prepared(self, frame: bytes) -> bool:
        if (
            self.disconnected
            or self.close_sent
            or not self.handshake_complete
            or self.initial_response is not None
            or not self.writable.is_set()
            or self.conn.state is not State.OPEN
            or self.conn.extensions
            or self.conn.expect_continuation_frame
            or self.transport.is_closing()
        ):
            return False
        self.transport.write(frame)
        return True

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

A peer that stops reading must not hold the server's memory or its slots: while the
socket's write buffer is over its high-water mark its pings get no pong (so a ping
flood cannot queue pongs without bound), and a connection that is closed for
falling behind, or whose keepalive timed out, is aborted unless the peer answers the
close within ``ABORT_AFTER_CLOSE_S``. Before the upgrade, the HTTP side bounds the
request head in bytes and in time (``GuardedHttpToolsProtocol``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.http11 import Request
from websockets.protocol import State

from chatserver import coalescing, wire
from chatserver.coalescing import CoalescingTransport

log = logging.getLogger(__name__)

ABORT_AFTER_CLOSE_S = 5.0
"""How long a peer has to answer our close frame before its connection is aborted."""

Refused = Callable[[str], None]
"""Told the reason (``headers_too_large``, ``handshake_timeout``) of each refused request."""


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


def _http_refusal(status: int, phrase: str) -> bytes:
    """A complete ``Connection: close`` plain-text HTTP response refusing a request."""
    body = f"{phrase}\n".encode()
    return (
        f"HTTP/1.1 {status} {phrase}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body


def _refusal(exc: BaseException) -> bytes:
    """The answer to an upgrade request websockets could not parse: 431 when a line
    was too long or there were too many headers, else 400."""
    causes = []
    while exc is not None:
        causes.append(str(exc).lower())
        exc = exc.__cause__  # type: ignore[assignment]
    too_large = any("too long" in c or "too many" in c or "no more than" in c for c in causes)
    if too_large:
        return _http_refusal(431, "Request Header Fields Too Large")
    return _http_refusal(400, "Bad Request")


class PreparedFrameProtocol(WebSocketsSansIOProtocol):
    """Implements ``wire.ConnectionControl`` for the connection's session."""

    on_refused: Refused | None = None
    coalesce = True
    """Write what one loop turn sends to this socket in one go (``coalescing``)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.coalesce:
            loop = asyncio.get_running_loop()
            real = cast(asyncio.Transport, transport)
            transport = cast(
                asyncio.Transport, CoalescingTransport(real, coalescing.flusher_for(loop))
            )
        super().connection_made(transport)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = Inbox()  # type: ignore[assignment]
        self.writable = Flag(True)  # type: ignore[assignment]
        self._backpressure = False
        self._abort_timer: asyncio.TimerHandle | None = None
        self._closed: asyncio.Future[None] | None = None

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        extensions = self.scope["extensions"]
        extensions[wire.EXTENSION] = self.write_prepared  # type: ignore[assignment]
        extensions[wire.CONTROL_EXTENSION] = self  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self.handshake_initiated and self.conn.handshake_exc is not None:
            # websockets answered an unusable request itself (431 for a header line over
            # 8 KiB, 414 for a long request line); the base protocol never writes it.
            exc = self.conn.handshake_exc
            log.info("handshake refused: %s", exc)
            if self.on_refused is not None:
                self.on_refused("headers_too_large")
            output = b"".join(self.conn.data_to_send())
            if not output.startswith(b"HTTP/"):  # websockets < 17 sends no answer at all
                output = _refusal(exc)
            self.transport.write(output)
            self.handshake_complete = self.close_sent = True
            self.transport.close()
            self._abort_later(ABORT_AFTER_CLOSE_S)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self._abort_timer is not None:
            self._abort_timer.cancel()
            self._abort_timer = None
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    # --- back-pressure -----------------------------------------------------------------

    def pause_writing(self) -> None:
        super().pause_writing()
        self._backpressure = True

    def resume_writing(self) -> None:
        super().resume_writing()
        self._backpressure = False

    def handle_ping(self) -> None:
        # A peer that pings without reading our pongs would grow the write buffer
        # without bound. While the buffer is over its high-water mark, pongs are
        # dropped (RFC 6455 lets an endpoint answer only the latest ping).
        output = self.conn.data_to_send()
        if not self._backpressure:
            self.transport.write(b"".join(output))

    # --- ending connections whose peer does not read ---------------------------------

    def close_now(self, code: int, reason: str) -> None:
        if self.disconnected:
            return
        if self.handshake_complete and not self.close_sent and self.initial_response is None:
            with contextlib.suppress(InvalidState):
                self.conn.send_close(code, reason)
                self.transport.write(b"".join(self.conn.data_to_send()))
            self.close_sent = True
            self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
            self.writable.set()  # a send waiting for room gives up: the socket is closing
        self._abort_later(ABORT_AFTER_CLOSE_S)

    def abort(self) -> None:
        if not self.disconnected and self.transport is not None:
            self.transport.abort()

    async def wait_closed(self, timeout: float) -> bool:
        if self.disconnected:
            return True
        if self.close_timer is not None:
            # uvicorn's own wait for the answer (a fixed 10 s) gives way to the caller's:
            # a drain waits until the end of its grace, however long that is.
            self.close_timer.cancel()
            self.close_timer = self.loop.call_later(timeout, self.transport.close)
        if self._closed is None:
            self._closed = self.loop.create_future()
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._closed)
        except TimeoutError:
            return False
        return True

    def _abort_later(self, delay: float) -> None:
        if self._abort_timer is None and not self.disconnected:
            self._abort_timer = self.loop.call_later(delay, self.abort)

    def keepalive_timeout(self) -> None:
        super().keepalive_timeout()
        # The base protocol closes gracefully, which waits behind unread bytes forever.
        self._abort_later(ABORT_AFTER_CLOSE_S)

    async def run_asgi(self) -> None:
        await super().run_asgi()
        # The app is done with the socket; what it still has buffered gets a deadline.
        self._abort_later(ABORT_AFTER_CLOSE_S)

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


@dataclasses.dataclass(frozen=True)
class HeadLimits:
    """Bounds on an HTTP request head (request line and headers), upgrades included."""

    max_bytes: int
    timeout_s: float


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bounded request head: at most
    ``limits.max_bytes`` (else ``431``) within ``limits.timeout_s`` of the connection or
    of the request's first byte (else ``408`` and the socket is closed)."""

    limits = HeadLimits(max_bytes=16_384, timeout_s=10.0)
    on_refused: Refused | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_bytes = 0
        self._in_head = True
        self._head_timer: asyncio.TimerHandle | None = self.loop.call_later(
            self.limits.timeout_s, self._head_expired
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_bytes:
                self._refuse(431, "headers_too_large", "Request Header Fields Too Large")
                return
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_head:  # the next request on a kept-alive connection
            self._in_head = True
            self._head_bytes = 0
            self._stop_head_timer()
            self._head_timer = self.loop.call_later(self.limits.timeout_s, self._head_expired)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._stop_head_timer()
        super().on_headers_complete()

    def _stop_head_timer(self) -> None:
        timer = getattr(self, "_head_timer", None)
        if timer is not None:
            timer.cancel()
            self._head_timer = None

    def _head_expired(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            self._refuse(408, "handshake_timeout", "Request Timeout")

    def _refuse(self, status: int, reason: str, phrase: str) -> None:
        self._in_head = False
        self._stop_head_timer()
        log.info(
            "request refused: %s",
            reason,
            extra={"client": f"{self.client[0]}:{self.client[1]}" if self.client else None},
        )
        if self.on_refused is not None:
            self.on_refused(reason)
        self.transport.write(_http_refusal(status, phrase))
        self.transport.close()


def protocols(
    limits: HeadLimits, on_refused: Refused, *, coalesce: bool = True
) -> tuple[type[GuardedHttpToolsProtocol], type[PreparedFrameProtocol]]:
    """The HTTP and WebSocket protocol classes for one server, bound to its limits, its
    refusal counter and whether a socket's writes of one loop turn go out together
    (uvicorn instantiates them itself, so they carry them)."""
    http = type(
        "AsocialHttpProtocol",
        (GuardedHttpToolsProtocol,),
        {"limits": limits, "on_refused": staticmethod(on_refused)},
    )
    ws = type(
        "AsocialWebSocketProtocol",
        (PreparedFrameProtocol,),
        {"on_refused": staticmethod(on_refused), "coalesce": coalesce},
    )
    return http, ws

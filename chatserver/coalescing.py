"""Writes to one socket within one event-loop turn, sent as one.

Fan-out writes a frame to every socket of a room for each frame that arrives; when
several frames arrive in one turn of the loop (under load, the subscriber reads all that
Redis has sent), each socket would get one ``send()`` system call per frame. A
:class:`CoalescingTransport` keeps a socket's writes of the turn and hands them to the
real transport together at the start of the next turn (one ``call_soon`` for all
sockets), so a socket gets one system call per turn, however many frames it got.

Every write of the connection goes through it (prepared frames, ASGI sends, pongs, the
close frame), so their order on the wire is the order they were made. ``close`` sends
what is kept first; ``abort`` drops it, as the transport's own buffer is dropped.
Back-pressure is unchanged: the real transport pauses the protocol when the bytes it
holds pass its high-water mark, and the bytes kept here are at most one turn's.
"""

from __future__ import annotations

import asyncio
from typing import Any


class Flusher:
    """The loop's sockets with writes kept this turn, flushed together on the next."""

    __slots__ = ("_due", "_loop", "_scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._due: list[CoalescingTransport] = []
        self._scheduled = False

    def due(self, transport: CoalescingTransport) -> None:
        self._due.append(transport)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        due, self._due = self._due, []
        self._scheduled = False
        for transport in due:
            transport.flush()


_flushers: dict[asyncio.AbstractEventLoop, Flusher] = {}


def flusher_for(loop: asyncio.AbstractEventLoop) -> Flusher:
    """The loop's one flusher (made on first use; those of closed loops are let go)."""
    flusher = _flushers.get(loop)
    if flusher is None:
        for closed in [other for other in _flushers if other.is_closed()]:
            del _flushers[closed]
        flusher = _flushers[loop] = Flusher(loop)
    return flusher


class CoalescingTransport:
    """``asyncio.Transport`` whose writes of one loop turn go out as one write."""

    __slots__ = ("_flusher", "_kept", "_transport")

    def __init__(self, transport: asyncio.Transport, flusher: Flusher) -> None:
        self._transport = transport
        self._flusher = flusher
        self._kept: list[bytes] = []

    @property
    def wrapped(self) -> asyncio.Transport:
        return self._transport

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._kept:
            self._flusher.due(self)
        self._kept.append(bytes(data) if not isinstance(data, bytes) else data)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Hand what was kept to the real transport (nothing once it is closing)."""
        kept, self._kept = self._kept, []
        if kept and not self._transport.is_closing():
            self._transport.write(kept[0] if len(kept) == 1 else b"".join(kept))

    def kept_bytes(self) -> int:
        return sum(map(len, self._kept))

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._kept.clear()
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + self.kept_bytes()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

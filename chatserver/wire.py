"""Prepared WebSocket frames: a text frame serialized once, written to many sockets.

Server-to-client frames are never masked (RFC 6455 §5.1), and per-message deflate is
off, so the bytes of a text frame are the same for every receiver. A server that can
write such bytes straight to a connection offers a ``FrameWriter`` in the ASGI scope
under ``scope["extensions"][EXTENSION]``; ``asocial-chat`` does (``transport``). Under
any other ASGI server the extension is absent and sessions use ordinary ASGI sends.
Pure: no I/O here.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import Any, Protocol

EXTENSION = "asocial.prepared_frames"
CONTROL_EXTENSION = "asocial.connection"

_FIN_TEXT = 0x81  # FIN bit + opcode 0x1 (text)

# Write a whole prepared frame now and return True, or return False (writing nothing)
# when the connection cannot take it at once: the caller then sends the ordinary way.
FrameWriter = Callable[[bytes], bool]


def text_frame(payload: bytes) -> bytes:
    """One unmasked, final text frame carrying ``payload`` (UTF-8 text)."""
    size = len(payload)
    if size < 126:
        header = bytes((_FIN_TEXT, size))
    elif size < 1 << 16:
        header = struct.pack("!BBH", _FIN_TEXT, 126, size)
    else:
        header = struct.pack("!BBQ", _FIN_TEXT, 127, size)
    return header + payload


class Outgoing:
    """One message for many sockets: its text, and the same text as a prepared frame,
    built on first use and then shared by every receiver that can write it."""

    __slots__ = ("_data", "_frame", "offset", "text")

    def __init__(self, text: str, data: bytes | None = None, *, offset: int | None = None) -> None:
        self.text = text
        self._data = data  # ``text`` as UTF-8, when the caller has it already
        self._frame: bytes | None = None
        self.offset = offset  # a chat frame's offset in its room

    @property
    def frame(self) -> bytes:
        frame = self._frame
        if frame is None:
            data = self._data if self._data is not None else self.text.encode()
            frame = self._frame = text_frame(data)
        return frame


class ConnectionControl(Protocol):
    """What a server that owns the socket offers beyond ASGI (``CONTROL_EXTENSION``):
    ending a connection whose peer stopped reading, which an ASGI close cannot do
    (the close frame waits behind the unread bytes)."""

    def close_now(self, code: int, reason: str) -> None:
        """Put a close frame on the wire past any back-pressure, stop taking frames,
        and abort the connection unless the peer answers the close within seconds."""

    def abort(self) -> None:
        """Drop the connection at once (TCP reset), freeing its buffers."""

    async def wait_closed(self, timeout: float) -> bool:
        """Wait until the socket is gone (the peer answered the close, or it was
        aborted); False when ``timeout`` passed first."""


def control_for(scope: Mapping[str, Any]) -> ConnectionControl | None:
    """The connection's control, when the server offers one."""
    extensions = scope.get("extensions") or {}
    control = extensions.get(CONTROL_EXTENSION)
    return control if control is not None and hasattr(control, "close_now") else None


def writer_for(scope: Mapping[str, Any]) -> FrameWriter | None:
    """The connection's prepared-frame writer, when the server offers one."""
    extensions = scope.get("extensions") or {}
    writer = extensions.get(EXTENSION)
    return writer if callable(writer) else None

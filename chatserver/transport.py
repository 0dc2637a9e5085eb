"""The WebSocket transport of ``asocial-chat``: uvicorn's websockets-sansio protocol,
plus the prepared-frame writer of ``wire`` in every WebSocket scope.

Fan-out writes the same frame to many sockets; through ASGI each write would encode
the text again, build and serialize a frame object, and pass two coroutines. The
writer puts the prepared bytes on the transport directly, and only when the ASGI path
would have done exactly that without waiting: the connection is open, nothing is
fragmented or compressed, and the transport is not paused for back-pressure.
"""

from __future__ import annotations

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request
from websockets.protocol import State

from chatserver import wire


class PreparedFrameProtocol(WebSocketsSansIOProtocol):
    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        self.scope["extensions"][wire.EXTENSION] = self.write_prepared  # type: ignore[assignment]

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

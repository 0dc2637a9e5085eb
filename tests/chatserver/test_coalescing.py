"""A socket's writes of one loop turn reach the peer whole, in order, in one write to the
real transport; a close sends what was kept first, an abort drops it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from chatserver import coalescing
from chatserver.coalescing import CoalescingTransport


@dataclass
class Counted:
    """The real transport, with its writes counted."""

    transport: asyncio.Transport
    writes: list[bytes] = field(default_factory=list)

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        self.transport.write(data)

    def __getattr__(self, name: str) -> object:
        return getattr(self.transport, name)


@dataclass
class Pair:
    sender: CoalescingTransport
    counted: Counted
    received: asyncio.Queue[bytes | None]

    async def read_all(self) -> bytes:
        out = b""
        while (chunk := await self.received.get()) is not None:
            out += chunk
        return out


class _Reader(asyncio.Protocol):
    def __init__(self, received: asyncio.Queue[bytes | None]) -> None:
        self.received = received

    def data_received(self, data: bytes) -> None:
        self.received.put_nowait(data)

    def eof_received(self) -> None:
        self.received.put_nowait(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.received.put_nowait(None)


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    """A real TCP connection on loopback: the client side coalesces, the server reads."""
    loop = asyncio.get_running_loop()
    received: asyncio.Queue[bytes | None] = asyncio.Queue()
    server = await loop.create_server(lambda: _Reader(received), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
    counted = Counted(transport)  # type: ignore[arg-type]
    sender = CoalescingTransport(counted, coalescing.flusher_for(loop))  # type: ignore[arg-type]
    try:
        yield Pair(sender, counted, received)
    finally:
        transport.abort()
        server.close()
        await server.wait_closed()


async def test_writes_of_one_turn_go_out_as_one_in_order(pair: Pair) -> None:
    for n in range(50):
        pair.sender.write(b"frame-%d;" % n)
    assert pair.counted.writes == []  # kept until the turn ends
    await asyncio.sleep(0)
    assert len(pair.counted.writes) == 1
    pair.sender.write(b"next-turn;")
    await asyncio.sleep(0)
    assert len(pair.counted.writes) == 2
    pair.sender.close()
    expected = b"".join(b"frame-%d;" % n for n in range(50)) + b"next-turn;"
    assert await pair.read_all() == expected


async def test_a_close_sends_what_was_kept_first(pair: Pair) -> None:
    pair.sender.write(b"last words")
    pair.sender.close()
    assert await pair.read_all() == b"last words"


async def test_an_abort_drops_what_was_kept(pair: Pair) -> None:
    pair.sender.write(b"never sent")
    pair.sender.abort()
    await asyncio.sleep(0.05)
    assert pair.counted.writes == []
    assert await pair.read_all() == b""


async def test_every_socket_written_in_a_turn_is_flushed_with_the_others() -> None:
    """Every socket written in a turn gets its writes of that turn in one piece."""
    loop = asyncio.get_running_loop()
    flusher = coalescing.Flusher(loop)
    written: list[tuple[int, bytes]] = []

    class Sink:
        def __init__(self, n: int) -> None:
            self.n = n

        def write(self, data: bytes) -> None:
            written.append((self.n, data))

        def is_closing(self) -> bool:
            return False

    sockets = [CoalescingTransport(Sink(n), flusher) for n in range(3)]  # type: ignore[arg-type]
    for round_ in range(2):
        for s in sockets:
            s.write(b"%d" % round_)
    await asyncio.sleep(0)
    assert written == [(0, b"01"), (1, b"01"), (2, b"01")]

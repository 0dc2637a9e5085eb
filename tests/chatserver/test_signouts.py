"""Sign-out notices, one process (the in-memory broker): which sockets they end. Across
processes over a real Redis: test_rest_api."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import pytest

from chatserver.broker.memory_broker import MemoryBroker
from chatserver.signouts import SignOuts


@dataclasses.dataclass(eq=False)
class Socket:
    account_id: str | None
    token_issued_at: int | None
    channel_id: str = "default"
    ended: list[str] = dataclasses.field(default_factory=list)

    def end_sign_in(self, reason: str) -> None:
        self.ended.append(reason)


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def test_a_notice_ends_the_accounts_sockets_with_tokens_issued_up_to_it() -> None:
    broker = MemoryBroker()
    signouts = SignOuts(broker)
    old, no_iat, newer = Socket("ann", 100), Socket("ann", None), Socket("ann", 201)
    other, anonymous, gone = Socket("bob", 100), Socket(None, None), Socket("ann", 50)
    for socket in (old, no_iat, newer, other, anonymous, gone):
        signouts.track(socket)
    signouts.untrack(gone)
    assert signouts.open_count("ann") == 3
    await signouts.announce("ann", issued_up_to=200, reason="signed out")
    await settle()
    assert (old.ended, no_iat.ended) == (["signed out"], ["signed out"])
    assert newer.ended == other.ended == anonymous.ended == gone.ended == []
    for socket in (old, no_iat, newer):
        signouts.untrack(socket)
    assert signouts.open_count("ann") == 0


async def test_a_notice_for_a_room_ends_the_accounts_sockets_there_whatever_their_token() -> None:
    broker = MemoryBroker()
    signouts = SignOuts(broker)
    there, fresh_there = Socket("ann", 100, "secret"), Socket("ann", 10**10, "secret")
    elsewhere, other = Socket("ann", 100, "default"), Socket("bob", 100, "secret")
    for socket in (there, fresh_there, elsewhere, other):
        signouts.track(socket)
    await signouts.announce("ann", room="secret", reason="removed")
    await settle()
    assert (there.ended, fresh_there.ended) == (["removed"], ["removed"])
    assert elsewhere.ended == other.ended == []


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[1]",
        b'{"kind": "sign_in_ended", "account": "ann"}',
        b'{"kind": "sign_in_ended", "account": "ann", "up_to": "soon", "reason": "x"}',
        b'{"kind": "sign_in_ended", "account": "ann", "room": 7, "reason": "x"}',
    ],
)
async def test_a_malformed_notice_is_logged_and_ends_nothing(
    data: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    broker = MemoryBroker()
    signouts = SignOuts(broker)
    socket = Socket("ann", 1)
    signouts.track(socket)
    with caplog.at_level(logging.WARNING, logger="chatserver.signouts"):
        await broker.announce(data)
        await settle()
    assert socket.ended == []
    assert "malformed announcement" in caplog.text


async def test_other_announcements_are_not_sign_outs() -> None:
    broker = MemoryBroker()
    signouts = SignOuts(broker)
    socket = Socket("ann", 1)
    signouts.track(socket)
    await broker.announce(b'{"kind": "something_else", "account": "ann", "up_to": 9}')
    await settle()
    assert socket.ended == []

"""The send queue and the resumption of a half-done send."""

from __future__ import annotations

import asyncio

from chatserver import outbox


def test_fifo_and_empty_again() -> None:
    box = outbox.Outbox()
    assert len(box) == 0
    assert box.pop() is None
    close = outbox.Close(1001, "bye")
    box.put("a")
    box.put(close)
    box.put("b")
    assert len(box) == 3
    assert [box.pop(), box.pop(), box.pop(), box.pop()] == ["a", close, "b", None]
    assert len(box) == 0


async def test_finish_drives_a_suspended_send_to_its_end() -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    done: list[str] = []

    async def send() -> None:
        await gate  # the socket's buffer is full
        done.append("rest of the frame")

    coro = send()
    waiting_on = coro.send(None)  # what the fan-out loop saw: the send suspended
    assert waiting_on is gate
    finishing = asyncio.ensure_future(outbox.finish(outbox.Resume(coro, waiting_on)))
    await asyncio.sleep(0.01)
    assert done == []  # still waiting for the buffer
    gate.set_result(None)
    await finishing
    assert done == ["rest of the frame"]


def test_clear_closes_pending_sends() -> None:
    async def never() -> None:
        await asyncio.Event().wait()

    coro = never()
    box = outbox.Outbox()
    box.put(outbox.Resume(coro, None))
    box.clear()
    assert len(box) == 0
    assert coro.cr_frame is None  # closed: it will never run

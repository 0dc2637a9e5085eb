"""Stopping background tasks: no cancellation is lost, on either side."""

from __future__ import annotations

import asyncio

import pytest

from chatserver.tasks import cancel_and_wait, within


async def test_a_wait_cancelled_as_its_event_fires_is_still_cancelled() -> None:
    """The loss ``asyncio.wait_for`` has on 3.11: the event is set and the waiter
    cancelled in the same instant. ``within`` raises the cancellation."""
    event = asyncio.Event()
    ended: list[str] = []

    async def waiter() -> None:
        while True:  # a reader's loop: it ends only by being cancelled
            await within(5, event.wait())
            event.clear()
            ended.append("woke")

    task = asyncio.create_task(waiter())
    await asyncio.sleep(0)
    event.set()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=2)
    assert task in done, "the cancellation was lost to the wake"
    assert task.cancelled()


async def test_within_gives_the_result_or_times_out() -> None:
    assert await within(1, asyncio.sleep(0, result="r")) == "r"
    with pytest.raises(TimeoutError):
        await within(0.05, asyncio.Event().wait())


async def test_cancel_and_wait_ends_the_task_and_keeps_the_callers_cancellation() -> None:
    slow_cleanup = asyncio.Event()

    async def worker() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.shield(slow_cleanup.wait())

    task = asyncio.create_task(worker())
    await asyncio.sleep(0)
    # The caller itself is cancelled (here by a timeout) while the task cleans up:
    # that is the caller's cancellation and must not be swallowed as the task's.
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.1):
            await cancel_and_wait(task)
    slow_cleanup.set()
    await cancel_and_wait(task)
    assert task.done()
    await cancel_and_wait(None)  # nothing to stop

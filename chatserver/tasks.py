"""Stopping a background task without losing a cancellation on either side.

Two spellings that look right lose a cancellation on Python 3.11: ``asyncio.wait_for``
returns the result instead of raising when the task waiting is cancelled in the same
instant as what it waits for completes (a reader woken as it is shut down then reads on,
and whoever waits for it waits forever), and ``with suppress(CancelledError): await task``
also swallows a cancellation of the caller itself (a ``timeout()`` around the close never
fires). Use :func:`within` or ``asyncio.timeout`` for the first (ruff bans
``asyncio.wait_for``) and :func:`cancel_and_wait` for the second.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")


async def cancel_and_wait(task: asyncio.Future[Any] | None) -> None:
    """Cancel ``task`` and wait until it has ended. Its own cancellation is the expected
    end and is not raised; a cancellation of the caller is (it is not the task's)."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise


async def within(seconds: float, awaitable: Awaitable[T]) -> T:
    """``awaitable``'s result, or ``TimeoutError`` after ``seconds``: ``asyncio.wait_for``
    without its loss of a cancellation (see the module's docstring)."""
    async with asyncio.timeout(seconds):
        return await awaitable

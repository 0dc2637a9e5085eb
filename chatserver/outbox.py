"""A connection's outgoing queue, and the one place that resumes a half-done send.

When the fan-out loop starts a send whose socket buffer is full, the send coroutine has
already written part of a frame; :class:`Resume` holds it, and :func:`finish` drives it
to its end before anything queued after it. That means stepping a coroutine by hand,
which needs asyncio's private ``_asyncio_future_blocking`` flag (what ``Task.__step``
sets on a yielded future): confined to this module, tested on the Python versions
``requires-python`` allows (3.11+).
No I/O of its own; no other module of ours.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
from collections.abc import Coroutine
from typing import Any


@dataclasses.dataclass(frozen=True)
class Close:
    code: int
    reason: str


@dataclasses.dataclass(frozen=True)
class Resume:
    """A send begun in the fan-out loop that found the socket's buffer full: the writer
    finishes it, first, before anything queued after it."""

    coro: Coroutine[Any, Any, None]
    waiting_on: Any


async def finish(resume: Resume) -> None:
    """Drive a send coroutine that suspended on ``waiting_on`` to its end."""
    coro, waiting_on = resume.coro, resume.waiting_on
    task = asyncio.current_task()
    while True:
        if waiting_on is not None:
            # What Task.__step does with a yielded future before waiting on it.
            waiting_on._asyncio_future_blocking = False
        try:
            await (waiting_on if waiting_on is not None else asyncio.sleep(0))
        except asyncio.CancelledError:
            if task is not None and task.cancelling():
                coro.close()
                raise
        except Exception:  # the coroutine reads the future's outcome itself, just below
            pass
        try:
            waiting_on = coro.send(None)
        except StopIteration:
            return


class Outbox:
    """A connection's send queue, drained by a writer task that exists only while there
    is something in it.

    Most sockets of a quiet room never queue anything: the deque is made on first use
    and dropped when empty, which matters at tens of thousands of idle connections."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: collections.deque[str | Close | Resume] | None = None

    def __len__(self) -> int:
        return 0 if self._items is None else len(self._items)

    def put(self, item: str | Close | Resume) -> None:
        if self._items is None:
            self._items = collections.deque()
        self._items.append(item)

    def pop(self) -> str | Close | Resume | None:
        """The oldest item, or None when there is none."""
        items = self._items
        if not items:
            return None
        item = items.popleft()
        if not items:
            self._items = None
        return item

    def clear(self) -> None:
        for item in self._items or ():
            if isinstance(item, Resume):
                item.coro.close()
        self._items = None

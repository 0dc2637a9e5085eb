"""A de-duplicating work queue of instance keys with per-key backoff.

The controller-runtime pattern in asyncio: a key waits in the queue at most
once; a key is never processed by two workers at the same time; a key added
while it is being processed runs once more afterwards (bursts of watch
events coalesce into one pass). Failures come back after an exponential
backoff. The blocking ``process`` callable runs in worker threads.
No Kubernetes I/O here.

Why not kopf's own handler loop: kopf runs one handler per event per object, retrying a
failing handler for that object; here every event of an instance *and of any of its
children* must coalesce into one level-triggered pass over the whole instance, with a
bounded number of passes in flight (``--workers``). kopf has no cross-object queue, so
its watch handlers only enqueue keys (``handlers.py``) and this queue does the rest.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(
        self,
        process: Callable[[K], bool],
        *,
        workers: int = 8,
        base_backoff: float = 0.5,
        max_backoff: float = 60.0,
    ) -> None:
        """``process(key)`` returns True to have the key retried after a backoff."""
        self._process = process
        self._workers = workers
        self._base = base_backoff
        self._max = max_backoff
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._queued: set[K] = set()
        self._active: set[K] = set()
        self._dirty: set[K] = set()
        self._failures: dict[K, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._timers: set[asyncio.TimerHandle] = set()

    def add(self, key: K) -> None:
        """Schedule ``key`` now (call from the event loop's thread)."""
        if key in self._active:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def add_after(self, key: K, delay: float) -> None:
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle

        def fire() -> None:
            self._timers.discard(handle)
            self.add(key)

        handle = loop.call_later(delay, fire)
        self._timers.add(handle)

    def __len__(self) -> int:
        return len(self._queued) + len(self._active)

    def start(self) -> None:
        for i in range(self._workers):
            self._tasks.append(asyncio.create_task(self._work(), name=f"asocial-worker-{i}"))

    async def stop(self) -> None:
        for handle in self._timers:
            handle.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _work(self) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            self._active.add(key)
            try:
                retry = await asyncio.to_thread(self._process, key)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("processing %s crashed; retrying with backoff", key)
                retry = True
            finally:
                self._active.discard(key)
            if retry:
                failures = self._failures.get(key, 0) + 1
                self._failures[key] = failures
                self.add_after(key, min(self._max, self._base * 2 ** (failures - 1)))
            else:
                self._failures.pop(key, None)
            if key in self._dirty:
                self._dirty.discard(key)
                self.add(key)

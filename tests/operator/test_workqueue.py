"""The work queue coalesces bursts, never runs a key twice at once, and retries with backoff."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable

from asocial_operator import workqueue


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll a condition the queue's worker threads change (no event to await)."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_burst_coalesces() -> None:
    seen: list[str] = []
    gate = threading.Event()

    def process(key: str) -> bool:
        gate.wait(5)
        seen.append(key)
        return False

    queue: workqueue.WorkQueue[str] = workqueue.WorkQueue(process, workers=4)
    queue.start()
    try:
        for _ in range(50):
            queue.add("a")
        queue.add("b")
        await asyncio.sleep(0.05)
        for _ in range(50):
            queue.add("a")  # while "a" is active: one more pass afterwards
        gate.set()
        await wait_for(lambda: len(queue) == 0 and len(seen) >= 3)
        await asyncio.sleep(0.05)
        assert sorted(seen) == ["a", "a", "b"]
    finally:
        await queue.stop()


async def test_no_concurrent_runs_of_one_key() -> None:
    running = 0
    peak = 0
    lock = threading.Lock()
    done = 0

    def process(key: str) -> bool:
        nonlocal running, peak, done
        with lock:
            running += 1
            peak = max(peak, running)
        threading.Event().wait(0.01)
        with lock:
            running -= 1
            done += 1
        return False

    queue: workqueue.WorkQueue[str] = workqueue.WorkQueue(process, workers=8)
    queue.start()
    try:
        for _ in range(20):
            queue.add("k")
            await asyncio.sleep(0.002)
        await wait_for(lambda: len(queue) == 0)
        assert peak == 1
    finally:
        await queue.stop()


async def test_retry_with_backoff_then_success() -> None:
    attempts: list[float] = []

    def process(key: str) -> bool:
        attempts.append(time.monotonic())
        return len(attempts) < 4

    queue: workqueue.WorkQueue[str] = workqueue.WorkQueue(process, workers=1, base_backoff=0.05)
    queue.start()
    try:
        queue.add("x")
        await wait_for(lambda: len(attempts) == 4 and len(queue) == 0)
    finally:
        await queue.stop()
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    # Exponential: base, 2 x base, 4 x base (timers never fire early).
    assert gaps[0] >= 0.05
    assert gaps[1] >= 0.10
    assert gaps[2] >= 0.20


async def test_crash_is_retried() -> None:
    attempts: list[str] = []

    def process(key: str) -> bool:
        attempts.append(key)
        if len(attempts) == 1:
            raise RuntimeError("boom")
        return False

    queue: workqueue.WorkQueue[str] = workqueue.WorkQueue(process, workers=1, base_backoff=0.01)
    queue.start()
    try:
        queue.add("x")
        await wait_for(lambda: len(attempts) == 2)
    finally:
        await queue.stop()

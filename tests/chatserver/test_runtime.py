"""The process-wide registry of sessions and the drain."""

from __future__ import annotations

from chatserver.app import build_runtime
from chatserver.settings import Settings


class FakeSession:
    """A connection that records what the runtime asks of it."""

    def __init__(self, user_id: str, *, leaves_on_close: bool, runtime: object) -> None:
        self.user_id = user_id
        self.calls: list[tuple[object, ...]] = []
        self.leaves_on_close = leaves_on_close
        self.runtime = runtime

    def close(self, code: int, reason: str, *, after_queue: bool = False) -> None:
        self.calls.append(("close", code, after_queue))
        if self.leaves_on_close:
            self.runtime.remove(self)  # type: ignore[attr-defined]

    def kill(self) -> None:
        self.calls.append(("kill",))
        self.runtime.remove(self)  # type: ignore[attr-defined]


def test_per_user_counts_follow_add_and_remove() -> None:
    rt = build_runtime(Settings())
    a1 = FakeSession("a", leaves_on_close=True, runtime=rt)
    a2 = FakeSession("a", leaves_on_close=True, runtime=rt)
    b = FakeSession("b", leaves_on_close=True, runtime=rt)
    for s in (a1, a2, b):
        rt.add(s)
    assert rt.per_user == {"a": 2, "b": 1}
    assert not rt.idle.is_set()
    rt.remove(a1)
    rt.remove(b)
    assert rt.per_user == {"a": 1}
    rt.remove(a2)
    assert rt.per_user == {}
    assert rt.idle.is_set()


async def test_drain_says_1001_after_the_queue_and_cuts_off_stragglers() -> None:
    rt = build_runtime(Settings())
    polite = FakeSession("p", leaves_on_close=True, runtime=rt)
    stubborn = FakeSession("s", leaves_on_close=False, runtime=rt)
    rt.add(polite)
    rt.add(stubborn)
    await rt.drain(grace_s=0.2)
    assert rt.draining
    assert polite.calls == [("close", 1001, True)]
    assert stubborn.calls == [("close", 1001, True), ("kill",)]
    assert not rt.sessions

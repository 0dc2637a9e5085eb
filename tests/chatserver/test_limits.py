import time

import pytest

from chatserver.broker.memory_broker import MemoryBroker
from chatserver.limits import FrameBucket, MessageLimiter


async def test_message_limiter_allows_up_to_the_limit_per_user() -> None:
    limiter = MessageLimiter(MemoryBroker(), per_minute=3)
    assert [await limiter.allow("alice") for _ in range(5)] == [True, True, True, False, False]
    assert await limiter.allow("bob")


def test_frame_bucket_allows_a_burst_then_refills(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    bucket = FrameBucket(rate=10)
    assert sum(bucket.take() for _ in range(50)) == 20  # burst = 2 x rate
    now[0] += 0.5
    assert sum(bucket.take() for _ in range(50)) == 5


def test_frame_bucket_credit_admits_what_arrived_while_the_server_was_blocked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    bucket = FrameBucket(rate=10)
    assert sum(bucket.take() for _ in range(20)) == 20  # the burst is used up
    now[0] += 8.0  # the server waited 8 s on a stalled broker; 80 frames queued meanwhile
    bucket.credit(8.0)
    assert sum(bucket.take() for _ in range(200)) == 20 + 80
    assert not bucket.take()

"""Rate limits: requests per client address per minute and messages per user per
minute (both shared through the broker), and a local per-connection frame rate (a token
bucket, so keystroke bursts pass and floods do not).
May use: ``broker``.
"""

from __future__ import annotations

import math
import time

from chatserver.broker.base import Counter

WINDOW_S = 60


class MessageLimiter:
    """Counts new messages (a new ``message_id``, or a presence change) per user per minute.

    Keystrokes of one message share its id and are not counted here, so typing is never
    throttled mid-word; the frame bucket bounds them instead. The counter lives in the
    broker, so the limit holds across every pod.
    """

    def __init__(self, broker: Counter, *, per_minute: int) -> None:
        self._broker = broker
        self.per_minute = per_minute

    async def allow(self, user_id: str) -> bool:
        window = int(time.time() // WINDOW_S)
        used = await self._broker.count(f"rl:{user_id}:{window}", window_s=WINDOW_S + 5)
        return used <= self.per_minute


class ClientLimiter:
    """Counts requests per client address per minute: every chat upgrade and every
    ``/api`` call (the page and its static files are not counted).

    The address is the one the server derived (``X-Forwarded-For`` only from trusted
    proxies), so the limit holds behind any Gateway or Ingress, and the counter lives in
    the broker, so it holds across pods. A minute is a fixed window."""

    def __init__(self, broker: Counter, *, per_minute: int) -> None:
        self._broker = broker
        self.per_minute = per_minute

    async def retry_after(self, address: str) -> int | None:
        """None when this request may go on; else the whole seconds until the client's
        next window opens. The count is charged either way: refused requests count."""
        now = time.time()
        window = int(now // WINDOW_S)
        used = await self._broker.count(f"client:{address}:{window}", window_s=WINDOW_S + 5)
        if used <= self.per_minute:
            return None
        return max(1, math.ceil((window + 1) * WINDOW_S - now))


class FrameBucket:
    """Token bucket: ``rate`` frames per second, bursts up to ``2 * rate``.

    ``credit`` covers time the server itself spent not reading (waiting on a stalled
    broker): the frames a client sent meanwhile arrive together afterwards, and are not
    the client's burst."""

    __slots__ = ("_capacity", "_last", "_rate", "_tokens")

    def __init__(self, rate: float) -> None:
        self._rate = rate
        self._capacity = 2 * rate
        self._tokens = self._capacity
        self._last = time.monotonic()

    def credit(self, seconds: float) -> None:
        """Admit, beyond the burst, what ``rate`` allows in ``seconds``."""
        self._refill()
        self._tokens += seconds * self._rate

    def _refill(self) -> None:
        now = time.monotonic()
        if self._tokens < self._capacity:
            self._tokens = min(self._capacity, self._tokens + (now - self._last) * self._rate)
        self._last = now

    def take(self) -> bool:
        self._refill()
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

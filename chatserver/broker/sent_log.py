"""The chat frames this process published in the last moments (pure; no I/O).

Replication is asynchronous: when the sentinels move the master, the frames the old one
acknowledged in its last moments may never reach the new one, nor the processes that
moved to it first. The broker keeps the newest frame of each message it published in
the last seconds here and publishes again to the new master those its history lacks (see
``redis_broker``).
A frame carries the whole text of its message, so the newest one is all that is needed,
and publishing an older one again could only take text back.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from chatserver.broker import base


@dataclass(frozen=True)
class Sent:
    """One chat frame as it was published (``at``: monotonic seconds of the answer)."""

    at: float
    channel: str
    author: str
    message_id: str
    data: bytes
    timestamp_ms: int
    keep_ms: int

    @property
    def key(self) -> str:
        """The message's key among the room's recent frames."""
        return base.recent_key(self.author, self.message_id)


class SentLog:
    """The newest frame of each message published in the last ``keep_s`` seconds, at
    most ``cap`` of them."""

    def __init__(self, *, keep_s: float = 1.0, cap: int = 10_000) -> None:
        self.keep_s = keep_s
        self.cap = cap
        self._newest: OrderedDict[tuple[str, str], Sent] = OrderedDict()

    def __len__(self) -> int:
        return len(self._newest)

    def add(self, sent: Sent) -> None:
        slot = (sent.channel, sent.key)
        self._newest.pop(slot, None)
        self._newest[slot] = sent  # oldest first, so the stale ones are at the front
        while self._newest:
            first = next(iter(self._newest.values()))
            if first.at >= sent.at - self.keep_s and len(self._newest) <= self.cap:
                break
            self._newest.popitem(last=False)

    def since(self, at: float) -> list[Sent]:
        """The newest frame of each message published at or after ``at``, oldest first."""
        return [s for s in self._newest.values() if s.at >= at]

    def is_newest(self, sent: Sent) -> bool:
        """Whether nothing newer of the same message was published since ``sent``."""
        return self._newest.get((sent.channel, sent.key)) is sent

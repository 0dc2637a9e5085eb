"""Every Redis key and channel name the server uses, under one prefix.

Chat (per room): the pub/sub channel, the sequence (epoch and last offset), the history
by offset, the newest frame of each message and its owners; presence (per room); the
rate counters; the control channel every process listens on. The account store's keys
start with the same prefix (``accounts.redis_store`` spells the rest).
"""

from __future__ import annotations

PREFIX = "asocial:"
CONTROL_CHANNEL = f"{PREFIX}control"
_CHANNEL = f"{PREFIX}chan:"


def channel(room: str) -> str:
    """The pub/sub channel of a room."""
    return f"{_CHANNEL}{room}"


class RoomKeys:
    """Every key of one room's chat frames."""

    __slots__ = ("channel", "history", "owners", "owners_ts", "recent", "recent_ts", "sequence")

    def __init__(self, room: str) -> None:
        self.channel = channel(room)
        self.recent = f"{PREFIX}recent:{room}"
        self.recent_ts = f"{PREFIX}recent-ts:{room}"
        self.owners = f"{PREFIX}owners:{room}"
        self.owners_ts = f"{PREFIX}owners-ts:{room}"
        self.sequence = f"{PREFIX}seq:{room}"
        self.history = f"{PREFIX}history:{room}"


def presence(room: str) -> list[str]:
    """A room's presence records and their expiry times."""
    return [f"{PREFIX}presence:{room}", f"{PREFIX}presence-exp:{room}"]


def counter(key: str) -> str:
    return f"{PREFIX}count:{key}"

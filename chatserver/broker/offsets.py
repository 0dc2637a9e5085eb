"""Offsets: every chat frame published in a room gets the room's next offset, under the
room's epoch, in the same step that keeps it in the room's history and publishes it.

A room's epoch is a string that changes only when its history is lost (Redis restarted
without persistence, its keys gone); within one epoch offsets grow by one per frame, so
a receiver that sees ``offset > last + 1`` knows exactly what it missed and reads that
range from the history.

On the broker's channel a chat frame travels as ``<epoch> <offset> <ms>\\n<frame>``: the
header lets a process order and check frames without decoding them, and the frame itself
already carries ``"offset"`` (spliced in before its closing brace), as clients receive it.
Presence frames carry no header and no offset.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from chatserver.protocol import StreamPosition

HISTORY_CAP = 2000
"""Most frames a room's history keeps (besides the fade window): bounds memory in a
room typed into faster than the history can age."""

SEQUENCE_TTL_MS = 86_400_000
"""How long a room's epoch and counter outlive its last frame: an idle room keeps its
epoch, so a client back after a pause is told "nothing missed", not "history lost"."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One frame from the history, or off the wire: where it stands and the frame a
    client receives (with ``offset`` in it)."""

    position: StreamPosition
    timestamp_ms: int
    frame: bytes


@dataclass(frozen=True, slots=True)
class History:
    """A range read from a room's history: the room's position now (``top``), and the
    frames after the offset asked for, oldest first. ``complete`` is False when the
    history no longer holds the start of that range (aged out, capped, or another
    epoch); ``entries`` then holds what it still has."""

    top: StreamPosition
    entries: list[Entry]
    complete: bool


def new_epoch() -> str:
    return secrets.token_hex(4)


def splice(frame: bytes, offset: int) -> bytes:
    """``frame`` (a JSON object) with ``"offset": offset`` added as its last field."""
    return b'%s,"offset":%d}' % (frame[:-1], offset)


def pack(position: StreamPosition, timestamp_ms: int, frame: bytes) -> bytes:
    """The broker's form of a chat frame that already carries its offset."""
    return b"%s %d %d\n%s" % (position.epoch.encode(), position.offset, timestamp_ms, frame)


def unpack(data: bytes) -> Entry | None:
    """The entry a packed message holds; None for a frame without a header (presence)."""
    if data[:1] == b"{":
        return None
    head, _, frame = data.partition(b"\n")
    epoch, offset, timestamp = head.split(b" ")
    return Entry(StreamPosition(epoch.decode(), int(offset)), int(timestamp), frame)

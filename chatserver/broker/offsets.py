"""Offsets: every chat frame published in a room gets the room's next offset, under the
room's epoch, in the same step that keeps it in the room's history and publishes it.

A room's epoch is a string that changes only when its history is lost (Redis restarted
without persistence, its keys gone); within one epoch offsets grow by one per frame, so
a receiver that sees ``offset > last + 1`` knows exactly what it missed and reads that
range from the history.

On the broker's channel (and in the history) a chat frame is the frame clients receive
with ``"offset":N,"epoch":"E"`` spliced in before its closing brace, always last: a
process finds both at the end without decoding the frame (a user's text cannot hold an
unescaped quote), strips the epoch, and delivers the rest. It stays plain JSON, so a
server of the previous release, during a rolling upgrade, still delivers it (its clients
ignore the two fields), and frames such a server publishes, without offsets, are
delivered as they come. Presence frames carry neither field.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from chatserver.protocol import StreamPosition

HISTORY_CAP = 2000
"""Most frames a room's history keeps (besides the fade window): bounds memory in a
room typed into faster than the history can age."""

HISTORY_KEEP_MS = 60_000
"""How long a room's history keeps a frame at least (longer if the fade window is):
beyond what is on screen, so a process whose subscriber was away through a whole
Sentinel failover (seconds, up to a dozen measured while sentinels disagreed) still
finds every frame it missed and delivers it late rather than never. Bounded by
:data:`HISTORY_CAP` too."""


def history_keep_ms(fade_ms: int) -> int:
    """How long the history keeps a frame when the fade window is ``fade_ms``."""
    return max(fade_ms, HISTORY_KEEP_MS)


SEQUENCE_TTL_MS = 86_400_000
"""How long a room's epoch and counter outlive its last frame: an idle room keeps its
epoch, so a client back after a pause is told "nothing missed", not "history lost"."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One frame from the history, or off the wire: where it stands and the frame a
    client receives (with ``offset`` in it)."""

    position: StreamPosition
    frame: bytes


@dataclass(frozen=True, slots=True)
class History:
    """A range read from a room's history: the room's position now (``top``), and the
    frames after the offset asked for, oldest first. ``complete`` is False when the
    history no longer holds all of that range (aged out, capped, expired, or another
    epoch); ``entries`` then holds what it still has."""

    top: StreamPosition
    entries: list[Entry]
    complete: bool

    def covers(self, offset: int) -> bool:
        """Whether the entries hold every frame after ``offset`` up to the top, none
        missing (what a cap, the age limit or an expired key took would be)."""
        wanted = offset + 1
        for entry in self.entries:
            if entry.position.offset < wanted:
                continue
            if entry.position.offset != wanted:
                return False
            wanted += 1
        return wanted > self.top.offset


def read(top: StreamPosition, entries: list[Entry], after: StreamPosition) -> History:
    """A history read after ``after``: complete when the epoch is the same, ``after`` is
    not past the top (a position ahead of the room's is from a history that was lost),
    and the entries hold every frame in between."""
    history = History(top, entries, complete=False)
    if top.epoch == after.epoch and after.offset <= top.offset and history.covers(after.offset):
        return History(top, entries, complete=True)
    return history


def new_epoch() -> str:
    return secrets.token_hex(4)


_OFFSET = b',"offset":'
_EPOCH = b',"epoch":"'


def pack(frame: bytes, position: StreamPosition) -> bytes:
    """``frame`` (a JSON object) as the broker carries it: with its offset and epoch."""
    return b'%s,"offset":%d,"epoch":"%s"}' % (frame[:-1], position.offset, position.epoch.encode())


def unpack(data: bytes) -> Entry | None:
    """The entry a chat frame with an offset holds (the frame without its epoch); None
    for a frame without one (presence, or a chat frame of a server without offsets)."""
    at = data.rfind(_OFFSET)
    if at < 0:
        return None
    epoch_at = data.find(_EPOCH, at)
    if epoch_at < 0 or data[-2:] != b'"}':
        return None
    offset = int(data[at + len(_OFFSET) : epoch_at])
    epoch = data[epoch_at + len(_EPOCH) : -2].decode()
    return Entry(StreamPosition(epoch, offset), data[:epoch_at] + b"}")


def published(frame: bytes) -> bytes:
    """The frame as it was given to the publish script: ``frame`` (an entry's) without
    the offset the script put in."""
    at = frame.rfind(_OFFSET)
    return frame[:at] + b"}" if at >= 0 else frame

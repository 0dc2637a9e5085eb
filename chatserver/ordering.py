"""One room's chat frames in order, in this process, by their offsets (``broker.offsets``).

Frames arrive from the broker in publication order unless this process missed some: its
subscriber was away, or followed the master to another server. :class:`RoomOrder` passes
each frame that follows the last one delivered, drops one it already delivered, and on a
gap (or a frame of another epoch) holds everything back until the hub has read the range
from the room's history (:meth:`RoomOrder.recovered`).

It remembers a digest of each frame it delivered in the last :data:`KEEP_S` seconds (at
most :data:`MOST`), by offset and by content: the frame's content without the offset
(the server stamps each publish with its own timestamp, so a frame typed again
differs). Two things need them, both only around a master move:

- a failover to a replica that lacked the newest frames makes the new master number other
  frames with offsets this process delivered; a recovery read that starts
  :data:`REMEMBERED` frames back finds those whose content differs, and delivers them;
- the sender's process publishes its last seconds again (the old master may have taken a
  frame no history holds): a frame delivered already comes back under a new offset (or,
  shifted by a renumbering, under the very offset it first had), and is dropped, so no
  socket gets a frame twice. Only for :data:`KEEP_S` after a move: otherwise a frame is
  never dropped for its content.

Kept by time, the digests cost a quiet room nothing once :meth:`RoomOrder.prune` ran.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from chatserver.broker.offsets import Entry, History
from chatserver.protocol import StreamPosition

log = logging.getLogger(__name__)

REMEMBERED = 128
KEEP_S = 30.0
"""Long enough for a whole move, not only its first switch: sentinels that had not heard
of a switch can name the old master again before the last one wins, and one e2e run saw
12 s between a renumbered offset's first delivery and the read that found its new frame."""
MOST = 1024
_OFFSET = b',"offset":'


def _content(frame: bytes) -> int:
    """A digest of the frame without its offset."""
    at = frame.rfind(_OFFSET)
    return hash(frame[:at] if at >= 0 else frame)


@dataclass(frozen=True, slots=True)
class Recovered:
    """What a history read gave: frames to deliver now (in order: the ``read`` first
    ones from the history, then those held back meanwhile), whether some frames are gone
    for good (``lost``: the history no longer held them, or the room's epoch changed),
    and whether a frame held back opened a new gap (read again)."""

    frames: list[Entry]
    read: int
    lost: bool
    again: bool


@dataclass
class RoomOrder:
    position: StreamPosition | None = None
    """The last frame delivered."""
    seed: StreamPosition | None = None
    """The room's top when a client joined here before any frame arrived: where a
    recovery starts if the subscriber drops before the first frame."""
    recovering: bool = False
    look_back: bool = False
    """The next recovery reads :data:`REMEMBERED` frames before the last delivered too
    (the master moved: frames under offsets it had may differ)."""
    reading_back: bool = False
    held: list[Entry] = field(default_factory=list)
    recent: OrderedDict[int, tuple[int, float]] = field(default_factory=OrderedDict)
    """Offset -> (content digest, when delivered), oldest first."""
    dedupe_until: float = 0.0
    """Until when a frame whose content was delivered already is taken for a copy
    published again (:data:`KEEP_S` after the master moved). Outside that, two
    byte-identical frames (the same text sent twice within a millisecond) are two
    frames, and both are delivered."""
    contents: OrderedDict[int, tuple[int, float]] = field(default_factory=OrderedDict)
    """Content digest -> (offset it was delivered under, when), oldest first: kept on
    its own, since an offset may be taken over by another frame (a renumbering
    failover) while the frame it had may yet come back under a third one."""

    def accept(self, entry: Entry) -> list[Entry] | None:
        """The frames to deliver now; None when ``entry`` opens a gap (it is held back:
        read the history after :meth:`reference`, then call :meth:`recovered`)."""
        if self.recovering:
            self.held.append(entry)
            return []
        at = entry.position
        if self.position is None:
            seed = self.seed
            if seed is None or (at.epoch == seed.epoch and at.offset <= seed.offset + 1):
                return self._delivered(entry)
        last = self.position or self.seed
        assert last is not None
        if at.epoch == last.epoch:
            if at.offset <= last.offset:
                log.debug("frame dropped: at or before the last delivered",
                          extra={"offset": at.offset, "last": last.offset})  # fmt: skip
                return []  # delivered already (a recovery read it first)
            if at.offset == last.offset + 1:
                return self._delivered(entry)
        self.recovering = True
        self.held.append(entry)
        return None

    def resync(self, *, moved: bool) -> bool:
        """Start a recovery (the subscriber came back, to another master if ``moved``):
        False when there is nothing to recover from (no frame delivered, no seed)."""
        if self.position is None and self.seed is None:
            return False
        self.look_back = self.look_back or moved
        if moved:
            self.dedupe_until = time.monotonic() + KEEP_S
        if self.recovering:
            return False  # under way; it reads again if this one asks to look back
        self.recovering = True
        return True

    def reference(self) -> StreamPosition:
        """Where the recovery read starts: after the last frame delivered, or
        :data:`REMEMBERED` frames before it after a move, to find frames renumbered under
        offsets it had."""
        last = self.position or self.seed
        assert last is not None
        self.reading_back = self.look_back
        back = REMEMBERED if self.look_back else 0
        return StreamPosition(last.epoch, max(0, last.offset - back))

    def recovered(self, history: History) -> Recovered:
        last = self.position or self.seed
        assert last is not None
        top = history.top
        if top.epoch != last.epoch:
            frames = list(history.entries)  # the room's new history: all of it is news
        else:
            frames = [
                e for e in history.entries if e.position.offset > last.offset or self._differs(e)
            ]
        # Lost: another epoch; or a frame after the last delivered that the history no
        # longer holds; or, without a look back, a top below the last delivered (the
        # frames numbered again under those offsets cannot be told apart).
        lost = (
            top.epoch != last.epoch
            or not history.covers(min(last.offset, top.offset))
            or (not self.reading_back and top.offset < last.offset)
        )
        if self.reading_back:
            self.look_back = False
        self.position = top  # the history's numbering holds from here on
        frames = [entry for entry in frames if self._take(entry)]
        read = len(frames)
        held, self.held = self.held, []
        self.recovering = False
        again = False
        for entry in held:
            if again:
                self.held.append(entry)
                continue
            ready = self.accept(entry)
            if ready is None:
                again = True
            else:
                frames.extend(ready)
        if self.look_back and not again:  # the master moved during this read: again
            self.recovering = again = True
        return Recovered(frames, read, lost, again)

    def _delivered(self, entry: Entry) -> list[Entry]:
        self.position = entry.position
        return [entry] if self._take(entry) else []

    def _differs(self, entry: Entry) -> bool:
        """Whether the frame this process delivered under ``entry``'s offset (if it still
        remembers one) had other content."""
        known = self.recent.get(entry.position.offset)
        return known is not None and known[0] != _content(entry.frame)

    def _take(self, entry: Entry) -> bool:
        """Remember ``entry`` as delivered; False if its content was delivered before
        under another offset (published again)."""
        key, offset = _content(entry.frame), entry.position.offset
        now = time.monotonic()
        known = self.contents.get(key)
        # Delivered before, under whatever offset: a republished copy may land on the
        # very offset its original had, when a renumbering failover shifted them so.
        again = known is not None and now < self.dedupe_until
        if again:
            log.debug(
                "frame dropped: delivered before under another offset",
                extra={"offset": offset, "before": known[0] if known else None},
            )
        self.recent.pop(offset, None)
        self.recent[offset] = (key, now)
        if not again:
            self.contents.pop(key, None)
            self.contents[key] = (offset, now)
        self.prune(now)
        return not again

    def prune(self, now: float) -> None:
        """Forget digests older than :data:`KEEP_S` (and beyond :data:`MOST`)."""
        for memory in (self.recent, self.contents):
            while memory:
                _, (_, when) = next(iter(memory.items()))
                if len(memory) <= MOST and now - when < KEEP_S:
                    break
                memory.popitem(last=False)

"""Offsets: every chat frame numbered per room under the room's epoch, on both brokers;
a resume gets exactly the frames after its position; the hub fills gaps from the room's
history, in order, none twice, and says so when the history no longer holds them."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator

import orjson
import pytest

from chatserver import ordering
from chatserver.broker import offsets
from chatserver.broker.base import Broker
from chatserver.broker.memory_broker import MemoryBroker
from chatserver.broker.offsets import Entry, History
from chatserver.broker.redis_broker import RedisBroker
from chatserver.hub import Hub
from chatserver.metrics import Metrics
from chatserver.ordering import RoomOrder
from chatserver.protocol import StreamPosition
from chatserver.wire import Outgoing
from tests.chatserver import brokers
from tests.fixtures.processes import RedisProcess

KEEP_MS = 5000


def payloads(frames: list[bytes]) -> list[str]:
    return [orjson.loads(f)["payload"] for f in frames]


@dataclasses.dataclass
class Stream:
    """One broker, subscribed to rooms ``r`` and ``s``, with what it delivered."""

    broker: Broker
    got: list[tuple[str, bytes]]

    async def publish(self, text: str, *, room: str = "r", at: int | None = None) -> None:
        now = int(time.time() * 1000) if at is None else at
        assert await self.broker.publish_recent(
            room,
            author="a",
            message_id=f"m-{text}",
            data=orjson.dumps({"type": "chat", "user_id": "a", "timestamp": now, "payload": text}),
            timestamp_ms=now,
            keep_ms=KEEP_MS,
        )

    async def entries(self, room: str = "r") -> list[Entry]:
        await asyncio.sleep(0.2)
        out = [offsets.unpack(data) for channel, data in self.got if channel == room]
        return [e for e in out if e is not None]

    async def replay(
        self, since: StreamPosition | None, limit: int = 100
    ) -> tuple[bool, list[str]]:
        since_ms = int(time.time() * 1000) - KEEP_MS
        replay = await self.broker.replay(
            "r", since=since, since_ms=since_ms, limit=limit, max_bytes=100_000
        )
        return replay.resumed, payloads(replay.frames)


@pytest.fixture(params=brokers.KINDS)
async def stream(request: pytest.FixtureRequest) -> AsyncIterator[Stream]:
    got: list[tuple[str, bytes]] = []
    async with brokers.subscribed(request, lambda c, d: got.append((c, d)), "r", "s") as b:
        yield Stream(b, got)


async def test_offsets_grow_by_one_per_room_under_one_epoch(stream: Stream) -> None:
    for text in ("a", "b", "c"):
        await stream.publish(text)
    await stream.publish("x", room="s")
    r, s = await stream.entries("r"), await stream.entries("s")
    assert [e.position.offset for e in r] == [1, 2, 3]
    assert [e.position.offset for e in s] == [1]
    assert len({e.position.epoch for e in r}) == 1
    assert r[0].position.epoch != s[0].position.epoch  # each room its own stream
    for entry in r:  # clients get the offset in the frame itself, not the epoch
        assert orjson.loads(entry.frame)["offset"] == entry.position.offset
        assert "epoch" not in orjson.loads(entry.frame)
    # On the wire the frame is plain JSON (a server without offsets delivers it as is).
    wire = [orjson.loads(d) for c, d in stream.got if c == "r"]
    assert [(w["offset"], w["epoch"]) for w in wire] == [
        (e.position.offset, e.position.epoch) for e in r
    ]


async def test_a_resume_gets_exactly_the_frames_after_it_that_are_on_screen(
    stream: Stream,
) -> None:
    now = int(time.time() * 1000)
    await stream.publish("faded", at=now - KEEP_MS - 1000)
    for text in ("a", "b", "c", "d"):
        await stream.publish(text)
    epoch = (await stream.entries())[0].position.epoch
    assert await stream.replay(StreamPosition(epoch, 2)) == (True, ["b", "c", "d"])
    assert await stream.replay(StreamPosition(epoch, 0)) == (True, ["a", "b", "c", "d"])
    assert await stream.replay(StreamPosition(epoch, 5)) == (True, [])
    # What is on screen instead: another epoch, a position ahead of the room's, too much.
    on_screen = (False, ["a", "b", "c", "d"])
    assert await stream.replay(StreamPosition("another", 2)) == on_screen
    assert await stream.replay(StreamPosition(epoch, 9)) == on_screen
    assert await stream.replay(StreamPosition(epoch, 1), limit=2) == (False, ["c", "d"])
    assert await stream.replay(None) == on_screen


async def test_a_range_the_cap_pushed_out_is_not_resumed(
    stream: Stream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(offsets, "HISTORY_CAP", 3)
    for text in ("a", "b", "c", "d", "e", "f"):
        await stream.publish(text)
    epoch = (await stream.entries())[0].position.epoch
    assert await stream.replay(StreamPosition(epoch, 3)) == (True, ["d", "e", "f"])
    resumed, _ = await stream.replay(StreamPosition(epoch, 2))
    assert not resumed
    whole = await stream.broker.history("r", after=StreamPosition(epoch, 3))
    cut = await stream.broker.history("r", after=StreamPosition(epoch, 1))
    assert [e.position.offset for e in whole.entries] == [4, 5, 6]
    assert whole.complete
    assert whole.top == StreamPosition(epoch, 6)
    assert [e.position.offset for e in cut.entries] == [4, 5, 6]
    assert not cut.complete
    other = await stream.broker.history("r", after=StreamPosition("old", 5))
    assert [e.position.offset for e in other.entries] == [4, 5, 6]  # all of the new epoch
    assert not other.complete


async def test_a_redis_restart_without_persistence_starts_a_new_epoch(
    redis_server: RedisProcess,
) -> None:
    broker = RedisBroker(redis_server.url, password=None, metrics=Metrics())
    await broker.start()
    try:
        since_ms = int(time.time() * 1000) - KEEP_MS
        before = await broker.replay("r", since=None, since_ms=since_ms, limit=9, max_bytes=999)
        redis_server.stop()
        redis_server.start()
        for _ in range(50):
            try:
                after = await broker.history("r", after=before.top)
                break
            except Exception:
                await asyncio.sleep(0.1)
        assert after.top.epoch != before.top.epoch
        assert not after.complete
    finally:
        await broker.close()


# --- the hub: gaps, resyncs, lost history ------------------------------------------------


@dataclasses.dataclass
class Receiver:
    conn_id: str
    user_id: str
    frames: list[dict[str, object]] = dataclasses.field(default_factory=list)

    def offer(self, message: Outgoing) -> bool:
        self.frames.append(orjson.loads(message.text))
        return True

    def overflow(self) -> None:
        raise AssertionError("not expected")

    def chats(self) -> list[tuple[object, object]]:
        return [(f["offset"], f["payload"]) for f in self.frames if f["type"] == "chat"]


@dataclasses.dataclass
class Lossy:
    """A memory broker whose deliveries to the hub can be cut, as a subscriber's are
    while it is away."""

    broker: MemoryBroker
    hub: Hub
    metrics: Metrics
    dropping: bool = False

    @classmethod
    async def start(cls) -> tuple[Lossy, Receiver]:
        broker, metrics = MemoryBroker(), Metrics()
        hub = Hub(broker, metrics)
        lossy = cls(broker, hub, metrics)
        deliver = broker._handler
        assert deliver is not None
        broker.set_handler(lambda c, d: None if lossy.dropping else deliver(c, d))
        bob = Receiver("1", "bob")
        await hub.join("r", bob)
        return lossy, bob

    async def publish(self, *texts: str, ago_ms: int = 0) -> None:
        for text in texts:
            now = int(time.time() * 1000) - ago_ms
            frame = {"type": "chat", "user_id": "a", "timestamp": now, "payload": text}
            await self.broker.publish_recent(
                "r",
                author="a",
                message_id=f"m-{text}",
                data=orjson.dumps(frame),
                timestamp_ms=now,
                keep_ms=KEEP_MS,
            )
            await asyncio.sleep(0)  # the memory broker delivers on the next loop turn

    async def settle(self) -> None:
        await asyncio.sleep(0.05)


async def test_a_gap_is_filled_from_the_history_in_order_none_twice() -> None:
    lossy, bob = await Lossy.start()
    await lossy.publish("a")
    lossy.dropping = True
    await lossy.publish("b", "c")
    lossy.dropping = False
    await lossy.publish("d")
    await lossy.settle()
    assert bob.chats() == [(1, "a"), (2, "b"), (3, "c"), (4, "d")]
    # b, c and d came from the history: d, which revealed the gap, was held back while
    # the history was read (it holds d already), and its live copy dropped.
    assert lossy.metrics.frames_recovered._value.get() == 3
    # A frame delivered again (a recovery read it first) is not shown twice.
    _, entry = next(iter(lossy.broker._streams["r"].history().values()))
    again = entry.frame[:-1] + b',"epoch":"%s"}' % entry.position.epoch.encode()
    lossy.broker._deliver("r", again)
    await lossy.publish("e")
    await lossy.settle()
    assert bob.chats()[-2:] == [(4, "d"), (5, "e")]
    assert not [f for f in bob.frames if f["type"] == "frames_missed"]
    await lossy.hub.close()


async def test_after_a_resync_the_frames_missed_meanwhile_arrive() -> None:
    """The subscriber was away (nothing more is published after it is back): the resync
    alone brings what was missed."""
    lossy, bob = await Lossy.start()
    await lossy.publish("a")
    lossy.dropping = True
    await lossy.publish("b", "c")
    lossy.dropping = False
    lossy.broker._resync(moved=False)
    await lossy.settle()
    assert bob.chats() == [(1, "a"), (2, "b"), (3, "c")]
    await lossy.hub.close()


async def test_frames_the_history_no_longer_holds_are_announced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(offsets, "HISTORY_CAP", 2)
    lossy, bob = await Lossy.start()
    await lossy.publish("a")
    lossy.dropping = True
    await lossy.publish("b", "c", "d", "e")
    lossy.dropping = False
    await lossy.publish("f")
    await lossy.settle()
    missed = [f for f in bob.frames if f["type"] == "frames_missed"]
    assert [(f["reason"], f["channel_id"]) for f in missed] == [("history_lost", "r")]
    assert bob.chats() == [(1, "a"), (5, "e"), (6, "f")]
    assert lossy.metrics.history_lost._value.get() == 1
    await lossy.hub.close()


async def test_frames_missed_for_longer_than_the_fade_are_delivered_late_not_never() -> None:
    """A subscriber away through a long failover (12 s, sentinels disagreeing): what was
    published meanwhile has faded on other screens, yet this process's clients get it,
    in order, and are not told of a loss that did not happen."""
    lossy, bob = await Lossy.start()
    await lossy.publish("a", ago_ms=13_000)
    lossy.dropping = True
    await lossy.publish("b", "c", ago_ms=12_000)
    await lossy.publish("d", ago_ms=KEEP_MS + 1000)
    lossy.dropping = False
    lossy.broker._resync(moved=True)
    await lossy.settle()
    assert bob.chats() == [(1, "a"), (2, "b"), (3, "c"), (4, "d")]
    assert not [f for f in bob.frames if f["type"] == "frames_missed"]
    await lossy.hub.close()


async def test_frames_aged_out_of_the_history_are_announced_not_skipped() -> None:
    """The history keeps a frame ``HISTORY_KEEP_MS`` at least; a process away for longer
    cannot deliver what aged out, and says so instead of going on as if nothing was
    missed."""
    lossy, bob = await Lossy.start()
    old = offsets.HISTORY_KEEP_MS + 10_000
    await lossy.publish("a", ago_ms=old)
    lossy.dropping = True
    await lossy.publish("b", ago_ms=old - 1)
    await lossy.publish("c")  # ages a and b out of the history
    lossy.dropping = False
    lossy.broker._resync(moved=False)
    await lossy.settle()
    missed = [f for f in bob.frames if f["type"] == "frames_missed"]
    assert [(f["reason"], f["channel_id"]) for f in missed] == [("history_lost", "r")]
    assert bob.chats() == [(1, "a"), (3, "c")]
    await lossy.hub.close()


def test_a_history_covers_a_range_only_with_every_offset_in_it() -> None:
    top = StreamPosition("e1", 5)
    whole = History(top, [entry("e1", n, str(n)) for n in (2, 3, 4, 5)], True)
    assert whole.covers(1)
    assert whole.covers(3)
    assert whole.covers(5)  # nothing after the top to hold
    assert not whole.covers(0)  # offset 1 is gone
    holed = History(top, [entry("e1", n, str(n)) for n in (2, 3, 5)], True)
    assert not holed.covers(1)  # 4 is missing
    expired = History(top, [], True)  # the key expired while the room was idle
    assert not expired.covers(2)
    assert offsets.read(top, whole.entries, StreamPosition("e1", 1)).complete
    assert not offsets.read(top, holed.entries, StreamPosition("e1", 1)).complete
    assert not offsets.read(top, whole.entries, StreamPosition("e0", 1)).complete
    assert not offsets.read(top, [], StreamPosition("e1", 6)).complete  # ahead of the top


def test_the_wire_form_is_found_at_the_end_whatever_the_text_says() -> None:
    text = 'x,"offset":99,"epoch":"fake"}'
    frame = orjson.dumps({"type": "chat", "payload": text})
    wire = offsets.pack(frame, StreamPosition("e1", 7))
    unpacked = offsets.unpack(wire)
    assert unpacked is not None
    assert unpacked.position == StreamPosition("e1", 7)
    assert orjson.loads(unpacked.frame) == {"type": "chat", "payload": text, "offset": 7}
    assert offsets.unpack(frame) is None  # presence, or a server without offsets
    assert offsets.unpack(orjson.dumps({"type": "user_joined", "user_id": "u"})) is None


def entry(epoch: str, offset: int, text: str) -> Entry:
    return Entry(StreamPosition(epoch, offset), orjson.dumps({"payload": text}))


def test_a_new_epoch_is_a_loss_and_all_of_its_history_is_news() -> None:
    order = RoomOrder()
    for n in (1, 2):
        assert order.accept(entry("e1", n, str(n))) == [entry("e1", n, str(n))]
    assert order.accept(entry("e2", 2, "new 2")) is None  # held back
    history = History(
        StreamPosition("e2", 2), [entry("e2", 1, "new 1"), entry("e2", 2, "new 2")], False
    )
    result = order.recovered(history)
    assert [payloads([e.frame]) for e in result.frames] == [["new 1"], ["new 2"]]
    assert result.lost
    assert not result.again
    assert order.accept(entry("e2", 3, "new 3")) == [entry("e2", 3, "new 3")]


def test_frames_a_lagging_replica_renumbered_are_delivered_after_a_failover() -> None:
    """The old master numbered 3 and 4; the replica that took over had only 1 and 2, and
    numbered another frame 3. This process delivered the old 3 and 4: the new 3 has an
    offset it had, but not its frame."""
    order = RoomOrder()
    for n, text in ((1, "a"), (2, "b"), (3, "old c"), (4, "old d")):
        order.accept(entry("e1", n, text))
    assert order.resync(moved=True)
    assert order.reference() == StreamPosition("e1", 0)  # looks back over what it had
    history = History(
        StreamPosition("e1", 3),
        [entry("e1", 1, "a"), entry("e1", 2, "b"), entry("e1", 3, "new c")],
        True,
    )
    result = order.recovered(history)
    assert [e.frame for e in result.frames] == [entry("e1", 3, "new c").frame]
    assert not result.lost
    assert order.accept(entry("e1", 4, "new d")) == [entry("e1", 4, "new d")]


def test_a_frame_published_again_after_a_move_reaches_no_socket_twice() -> None:
    """The sender's process publishes its last second again to the new master: the same
    frame (same server timestamp) under a new offset. Delivered once."""
    order = RoomOrder()
    frame = orjson.dumps({"payload": "hi", "timestamp": 5})
    first = Entry(StreamPosition("e1", 1), frame[:-1] + b',"offset":1}')
    again = Entry(StreamPosition("e1", 2), frame[:-1] + b',"offset":2}')
    typed_on = Entry(StreamPosition("e1", 3), orjson.dumps({"payload": "hi!", "offset": 3}))
    assert order.accept(first) == [first]
    assert order.resync(moved=True)  # this process followed the master too
    order.reference()
    assert order.recovered(History(StreamPosition("e1", 1), [first], True)).frames == []
    assert order.accept(again) == []
    assert order.accept(typed_on) == [typed_on]
    assert order.position == StreamPosition("e1", 3)


def test_frames_published_again_after_a_renumbering_failover_reach_no_socket_twice() -> None:
    """The old master numbered a..f 1-6; the replica that took over had 1-4 and numbered
    two new frames 5 and 6; then the sender's process published its last frames again
    (c..f, under 7-10). The new 5 and 6 are delivered, each old frame only once."""
    order = RoomOrder()
    old = [entry("e1", n, text) for n, text in enumerate("abcdef", start=1)]
    for e in old:
        assert order.accept(e) == [e]
    assert order.resync(moved=True)
    order.reference()
    kept = old[:4]
    new = [entry("e1", 5, "x"), entry("e1", 6, "y")]
    result = order.recovered(History(StreamPosition("e1", 6), kept + new, True))
    assert [e.frame for e in result.frames] == [e.frame for e in new]
    again = [entry("e1", n, text) for n, text in enumerate("cdef", start=7)]
    delivered = [e for a in again for e in (order.accept(a) or [])]
    assert delivered == [], [e.frame for e in delivered]
    assert order.position == StreamPosition("e1", 10)


def test_frames_renumbered_long_after_their_offsets_were_delivered_are_still_found(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Sentinels can hand the master back and forth for seconds (one named the old
    master again before the last switch won): the read that finds new frames under
    offsets delivered 12 s earlier still tells them apart and delivers them."""
    clock = [1000.0]
    monkeypatch.setattr("chatserver.ordering.time.monotonic", lambda: clock[0])
    order = RoomOrder()
    old = [entry("e1", n, text) for n, text in enumerate("abcdef", start=1)]
    for e in old:
        assert order.accept(e) == [e]
    for _ in range(3):  # the hub prunes every room's digests meanwhile
        clock[0] += 4.0
        order.prune(clock[0])
    assert order.resync(moved=True)
    order.reference()
    new = [entry("e1", 5, "x"), entry("e1", 6, "y")]
    result = order.recovered(History(StreamPosition("e1", 6), old[:4] + new, True))
    assert [e.frame for e in result.frames] == [e.frame for e in new]


def test_two_identical_frames_outside_a_move_are_both_delivered() -> None:
    """The same text sent twice within a millisecond is two frames (each gets its
    outcome); only after a master moved is a repeated content a copy published again."""
    order = RoomOrder()
    first, second = entry("e1", 1, "same"), entry("e1", 2, "same")
    assert order.accept(first) == [first]
    assert order.accept(second) == [second]


def test_a_copy_published_again_under_its_original_offset_reaches_no_socket_twice() -> None:
    """The replica that took over had a and b (1-2); the sender's process published c..f
    again, and the new master numbered them 3-6: the offsets the old master gave them.
    They were delivered already; only what follows is news."""
    order = RoomOrder()
    for e in [entry("e1", n, text) for n, text in enumerate("abcdef", start=1)]:
        order.accept(e)
    assert order.resync(moved=True)
    order.reference()
    result = order.recovered(
        History(StreamPosition("e1", 2), [entry("e1", 1, "a"), entry("e1", 2, "b")], True)
    )
    assert result.frames == []
    again = [entry("e1", n, text) for n, text in enumerate("cdef", start=3)]
    assert [e for a in again for e in (order.accept(a) or [])] == []
    assert order.accept(entry("e1", 7, "g")) == [entry("e1", 7, "g")]


def test_a_resubscribe_to_the_same_master_reads_only_what_follows() -> None:
    order = RoomOrder()
    for n in range(1, 201):
        order.accept(entry("e1", n, str(n)))
    assert order.resync(moved=False)
    assert order.reference() == StreamPosition("e1", 200)
    result = order.recovered(History(StreamPosition("e1", 201), [entry("e1", 201, "x")], True))
    assert [e.position.offset for e in result.frames] == [201]
    assert not result.again
    # A move while that read was under way: read again, looking back.
    assert order.resync(moved=False)
    order.reference()
    assert not order.resync(moved=True)  # under way
    again = order.recovered(History(StreamPosition("e1", 201), [], True))
    assert again.again
    assert order.reference() == StreamPosition("e1", 201 - 128)


def test_a_quiet_room_forgets_its_digests() -> None:
    """Memory per room stays bounded by the frames of the last few seconds."""
    order = RoomOrder()
    for n in range(1, 2001):
        order.accept(entry("e1", n, str(n)))
    assert len(order.recent) == len(order.contents) == ordering.MOST
    order.prune(time.monotonic() + ordering.KEEP_S + 1)
    assert (order.recent, order.contents) == ({}, {})
    assert order.accept(entry("e1", 2001, "later")) == [entry("e1", 2001, "later")]

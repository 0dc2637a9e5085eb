import asyncio
import dataclasses

import orjson

from chatserver.broker.memory_broker import MemoryBroker
from chatserver.hub import Hub
from chatserver.metrics import Metrics
from chatserver.wire import Outgoing, text_frame


@dataclasses.dataclass(eq=False)
class Receiver:
    conn_id: str
    user_id: str
    capacity: int = 100
    frames: list[str] = dataclasses.field(default_factory=list)
    prepared: list[bytes | None] = dataclasses.field(default_factory=list)
    overflowed: bool = False

    def offer(self, message: Outgoing) -> bool:
        if len(self.frames) >= self.capacity:
            return False
        self.frames.append(message.text)
        self.prepared.append(message.frame)
        return True

    def overflow(self) -> None:
        self.overflowed = True


def frame(kind: str, user: str, **extra: object) -> bytes:
    return orjson.dumps({"type": kind, "user_id": user, "channel_id": "r", "timestamp": 1, **extra})


async def settle() -> None:
    await asyncio.sleep(0)
    await asyncio.sleep(0)


async def test_chat_skips_every_connection_of_the_author_and_reaches_the_rest() -> None:
    broker, metrics = MemoryBroker(), Metrics()
    hub = Hub(broker, metrics)
    alice_tab1, alice_tab2, bob = (
        Receiver("1", "alice"),
        Receiver("2", "alice"),
        Receiver("3", "bob"),
    )
    for r in (alice_tab1, alice_tab2, bob):
        await hub.join("r", r)
    await broker.publish("r", frame("chat", "alice", payload="hi"))
    await settle()
    assert alice_tab1.frames == alice_tab2.frames == []
    assert [orjson.loads(f)["payload"] for f in bob.frames] == ["hi"]


async def test_presence_events_reach_everyone_including_the_author() -> None:
    broker = MemoryBroker()
    hub = Hub(broker, Metrics())
    alice, bob = Receiver("1", "alice"), Receiver("2", "bob")
    await hub.join("r", alice)
    await hub.join("r", bob)
    await broker.publish("r", frame("user_joined", "alice"))
    await settle()
    assert len(alice.frames) == len(bob.frames) == 1


async def test_frames_stay_in_their_channel() -> None:
    broker = MemoryBroker()
    hub = Hub(broker, Metrics())
    here, there = Receiver("1", "a"), Receiver("2", "b")
    await hub.join("here", here)
    await hub.join("there", there)
    await broker.publish("here", frame("chat", "z"))
    await settle()
    assert len(here.frames) == 1
    assert there.frames == []


async def test_one_encoded_text_is_shared_by_all_receivers() -> None:
    broker = MemoryBroker()
    hub = Hub(broker, Metrics())
    receivers = [Receiver(str(i), f"u{i}") for i in range(50)]
    for r in receivers:
        await hub.join("r", r)
    await broker.publish("r", frame("chat", "sender", payload="x"))
    await settle()
    texts = {id(r.frames[0]) for r in receivers}
    assert len(texts) == 1, "the frame was encoded once per receiver"
    prepared = {id(r.prepared[0]) for r in receivers}
    assert len(prepared) == 1, "the WebSocket frame was serialized once per receiver"
    wire_frame = receivers[0].prepared[0]
    assert wire_frame is not None
    assert wire_frame == text_frame(receivers[0].frames[0].encode())


async def test_slow_receiver_is_dropped_without_stalling_the_room() -> None:
    broker, metrics = MemoryBroker(), Metrics()
    hub = Hub(broker, metrics)
    slow, fast = Receiver("1", "slow", capacity=2), Receiver("2", "fast")
    await hub.join("r", slow)
    await hub.join("r", fast)
    for i in range(5):
        await broker.publish("r", frame("chat", "sender", payload=str(i)))
    await settle()
    assert slow.overflowed
    assert len(fast.frames) == 5
    dropped = metrics.registry.get_sample_value(
        "messages_dropped_total", {"reason": "slow_consumer"}
    )
    assert dropped == 3


async def test_unsubscribes_when_the_last_local_connection_leaves() -> None:
    broker = MemoryBroker()
    hub = Hub(broker, Metrics())
    a, b = Receiver("1", "a"), Receiver("2", "b")
    await hub.join("r", a)
    await hub.join("r", b)
    await hub.leave("r", a)
    assert hub.channels() == ["r"]
    await hub.leave("r", b)
    assert hub.channels() == []
    await broker.publish("r", frame("chat", "z"))
    await settle()
    assert a.frames == b.frames == []


async def test_malformed_broker_message_is_dropped_and_counted() -> None:
    broker, metrics = MemoryBroker(), Metrics()
    hub = Hub(broker, metrics)
    r = Receiver("1", "a")
    await hub.join("r", r)
    await broker.publish("r", b"garbage")
    await broker.publish("r", b'{"type": "chat"}')
    await settle()
    assert r.frames == []
    assert metrics.registry.get_sample_value("messages_dropped_total", {"reason": "malformed"}) == 2

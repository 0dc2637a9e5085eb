import asyncio

import orjson

from chatserver.broker.memory_broker import MemoryBroker
from chatserver.presence import Presence, now_ms
from chatserver.protocol import Member


async def test_enter_lists_each_user_once() -> None:
    presence = Presence(MemoryBroker(), ttl_s=30)
    await presence.enter("r", key="tab1", member=Member("ann", "Ann"))
    members = await presence.enter("r", key="tab2", member=Member("ann", "Ann"))
    assert members == [Member("ann", "Ann")]


async def test_leave_says_whether_the_user_is_gone() -> None:
    presence = Presence(MemoryBroker(), ttl_s=30)
    await presence.enter("r", key="tab1", member=Member("ann"))
    await presence.enter("r", key="tab2", member=Member("ann"))
    assert await presence.leave("r", key="tab1", user_id="ann") is False
    assert await presence.leave("r", key="tab2", user_id="ann") is True


async def test_beat_announces_users_whose_records_expired() -> None:
    broker = MemoryBroker()
    published: list[bytes] = []
    broker.set_handler(lambda channel, data: published.append(data))
    await broker.subscribe("r")
    ghost_expired = now_ms() - 1  # a record left behind by a crashed pod
    await broker.presence_set("r", key="dead", member=Member("ghost"), expires_ms=ghost_expired)
    presence = Presence(broker, ttl_s=30)
    await presence.enter("r", key="me", member=Member("ann"))
    await presence.beat()
    await asyncio.sleep(0)
    frames = [orjson.loads(d) for d in published]
    assert [(f["type"], f["user_id"]) for f in frames] == [("user_left", "ghost")]


async def test_beat_never_revives_a_connection_that_left_and_restores_a_live_one() -> None:
    broker = MemoryBroker()
    presence = Presence(broker, ttl_s=30)
    await presence.enter("r", key="live", member=Member("ann"))
    await broker.presence_remove("r", key="live")  # swept while this process stalled
    await presence.enter("r", key="gone", member=Member("bob"))
    await presence.leave("r", key="gone", user_id="bob")
    await presence.beat()
    assert await broker.presence_list("r", now_ms=now_ms()) == [Member("ann")]

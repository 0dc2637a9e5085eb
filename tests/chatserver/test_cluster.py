"""Two chat server processes sharing one real redis-server: what a cluster of pods does."""

import asyncio
import uuid

import pytest

from tests.chatserver.client import client, joined
from tests.fixtures.processes import ChatFactory, ChatProcess, RedisProcess

pytestmark = pytest.mark.redis


@pytest.fixture
def pods(chat_server: ChatFactory, redis_server: RedisProcess) -> tuple[ChatProcess, ChatProcess]:
    env = {
        "ASOCIAL_REDIS_URL": redis_server.url,
        "ASOCIAL_RATE_LIMIT_PER_MINUTE": "4",
        "ASOCIAL_PRESENCE_TTL_SECONDS": "3",
    }
    return chat_server(name="a", **env), chat_server(name="b", **env)


def room() -> str:
    return "r-" + uuid.uuid4().hex[:8]


def chat(mid: str, text: str) -> dict[str, object]:
    return {"type": "chat", "message_id": mid, "payload": text, "position": {"x": 1, "y": 2}}


async def test_fan_out_and_presence_cross_pods(pods: tuple[ChatProcess, ChatProcess]) -> None:
    a, b = pods
    r = room()
    async with joined(a.ws(f"uid=ann&username=Ann&channel={r}")) as ann:
        async with client(b.ws(f"uid=bob&channel={r}")) as bob:
            sync = await bob.recv_type("user_sync")
            assert {u["user_id"] for u in sync["users"]} == {"ann", "bob"}
            assert {"user_id": "ann", "username": "Ann"} in sync["users"]
            await ann.recv_type("user_joined", user_id="bob")
            await ann.send(chat("m1", "hello from a"))
            got = await bob.recv_type("chat")
            assert (got["user_id"], got["payload"]) == ("ann", "hello from a")
            await bob.send(chat("m2", "hello from b"))
            assert (await ann.recv_type("chat"))["payload"] == "hello from b"
            await bob.send({"type": "username_changed", "username": "Bobby"})
            assert (await ann.recv_type("username_changed"))["username"] == "Bobby"
        await ann.recv_type("user_left", user_id="bob")


async def test_rate_limit_holds_across_pods(pods: tuple[ChatProcess, ChatProcess]) -> None:
    a, b = pods
    r = room()
    async with (
        joined(a.ws(f"uid=spam&channel={r}")) as on_a,
        joined(b.ws(f"uid=spam&channel={r}")) as on_b,
        joined(a.ws(f"uid=watch&channel={r}")) as watcher,
    ):
        # Strictly one pod after the other, so which frame is the fifth is certain.
        for sender, prefix in ((on_a, "a"), (on_b, "b")):
            for i in range(2):
                await sender.send(chat(f"{prefix}{i}", "x"))
                await watcher.recv_type("chat", message_id=f"{prefix}{i}")
        await on_b.send(chat("b-over", "x"))
        error = await on_b.recv_type("error")
        assert (error["code"], error["message_id"]) == ("rate_limited", "b-over")
        await on_a.send(chat("a-over", "x"))
        error = await on_a.recv_type("error")
        assert (error["code"], error["message_id"]) == ("rate_limited", "a-over")
        got = [f["message_id"] for f in await watcher.drain(0.5) if f["type"] == "chat"]
        assert got == [], "rate-limited frames were delivered"


async def test_late_joiner_on_another_pod_sees_what_is_still_on_screen(
    pods: tuple[ChatProcess, ChatProcess],
) -> None:
    a, b = pods
    r = room()
    async with joined(a.ws(f"uid=writer&channel={r}")) as writer:
        for text in ("h", "he", "hey"):
            await writer.send(chat("m1", text))
        await writer.send(chat("m2", "second"))
        await asyncio.sleep(0.2)
        async with client(b.ws(f"uid=late&channel={r}")) as late:
            await late.recv_type("user_sync")
            frames = [f for f in await late.drain(0.5) if f["type"] == "chat"]
            assert [(f["message_id"], f["payload"]) for f in frames] == [
                ("m1", "hey"),
                ("m2", "second"),
            ]
        async with client(b.ws(f"uid=writer&channel={r}")) as writer_tab:
            await writer_tab.recv_type("user_sync")
            frames = await writer_tab.drain(0.5)
            assert all(f["type"] != "chat" for f in frames), "own messages are not replayed"


async def test_a_crashed_pods_users_expire_and_are_announced(
    pods: tuple[ChatProcess, ChatProcess],
) -> None:
    a, b = pods
    r = room()
    async with joined(b.ws(f"uid=survivor&channel={r}")) as survivor:
        async with client(a.ws(f"uid=doomed&channel={r}")) as doomed:
            await doomed.recv_type("user_sync")
            await survivor.recv_type("user_joined", user_id="doomed")
            a.proc.kill()  # no goodbye: only the TTL can tell
            left = await survivor.recv_type("user_left", timeout=15)
            assert left["user_id"] == "doomed"
        async with client(b.ws(f"uid=newcomer&channel={r}")) as newcomer:
            sync = await newcomer.recv_type("user_sync")
            assert {u["user_id"] for u in sync["users"]} == {"survivor", "newcomer"}

"""A page that drops off and comes back with ``since=<offset>&epoch=<epoch>`` gets exactly
the chat frames it missed, in order, none twice; a range that is gone is said so. On
Redis the reader and the writer are on two server processes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.chatserver.client import Client, client, joined
from tests.fixtures.processes import ChatFactory, ChatProcess, RedisProcess


def chat(mid: str, text: str) -> dict[str, Any]:
    return {"type": "chat", "message_id": mid, "payload": text, "position": {"x": 1, "y": 2}}


@pytest.fixture(params=["memory", "redis"])
def servers(
    request: pytest.FixtureRequest, chat_server: ChatFactory
) -> tuple[ChatProcess, ChatProcess]:
    """(the writer's server, the reader's server): one process, or two on one Redis."""
    env = {"ASOCIAL_RATE_LIMIT_PER_MINUTE": "1000", "ASOCIAL_FRAMES_PER_SECOND": "100"}
    if request.param == "memory":
        one = chat_server(**env)
        return one, one
    redis_server: RedisProcess = request.getfixturevalue("redis_server")
    env["ASOCIAL_REDIS_URL"] = redis_server.url
    return chat_server(name="a", **env), chat_server(name="b", **env)


async def chats(reader: Client, count: int) -> list[tuple[int, str, str]]:
    out = []
    while len(out) < count:
        frame = await reader.recv_type("chat")
        out.append((frame["offset"], frame["message_id"], frame["payload"]))
    return out


async def test_a_page_back_after_3_s_gets_exactly_what_it_missed(
    servers: tuple[ChatProcess, ChatProcess],
) -> None:
    writers, readers = servers
    room = "channel=resume"
    async with joined(writers.ws(f"uid=ann&{room}")) as ann:
        async with client(readers.ws(f"uid=bob&{room}")) as bob:
            epoch = (await bob.recv_type("user_sync"))["epoch"]
            await ann.send(chat("m1", "h"))
            await ann.send(chat("m1", "he"))
            seen = await chats(bob, 2)
        last = seen[-1][0]
        typed = []
        for i in range(30):  # 3 s of typing while bob is away, two messages
            message = "m1" if i < 15 else "m2"
            text = "he" + "y" * (i + 1) if message == "m1" else "x" * (i - 14)
            await ann.send(chat(message, text))
            typed.append((message, text))
            await asyncio.sleep(0.1)
        async with client(readers.ws(f"uid=bob&{room}&since={last}&epoch={epoch}")) as back:
            sync = await back.recv_type("user_sync")
            assert sync["epoch"] == epoch
            missed = await chats(back, len(typed))
            assert [m[0] for m in missed] == list(range(last + 1, last + 1 + len(typed)))
            assert [(m[1], m[2]) for m in missed] == typed
            await ann.send(chat("m3", "live"))
            assert await chats(back, 1) == [(last + len(typed) + 1, "m3", "live")]
            rest = await back.drain(0.5)
            assert [f for f in rest if f["type"] in ("chat", "frames_missed")] == []


async def test_a_range_that_is_gone_is_said_so_and_what_is_on_screen_follows(
    servers: tuple[ChatProcess, ChatProcess],
) -> None:
    writers, readers = servers
    room = "channel=gone"
    async with joined(writers.ws(f"uid=ann&{room}")) as ann:
        await ann.send(chat("m1", "still here"))
        await asyncio.sleep(0.3)
        async with client(readers.ws(f"uid=bob&{room}&since=1&epoch=not-this-one")) as bob:
            sync = await bob.recv_type("user_sync")
            missed = await bob.recv_type("frames_missed")
            assert (missed["reason"], missed["epoch"]) == ("resume_gone", sync["epoch"])
            shown = await bob.recv_type("chat")
            assert (shown["message_id"], shown["payload"]) == ("m1", "still here")


@pytest.mark.parametrize(
    "query", ["since=1", "epoch=abc", "since=-1&epoch=abc", "since=x&epoch=abc"]
)
async def test_a_malformed_resume_is_answered_and_the_page_joins_anyway(
    servers: tuple[ChatProcess, ChatProcess], query: str
) -> None:
    _, readers = servers
    async with client(readers.ws(f"uid=bob&channel=bad-resume&{query}")) as bob:
        await bob.recv_type("user_sync")
        error = await bob.recv_type("error")
        assert error["code"] == "invalid_resume"
        assert "since=" in error["message"] or "epoch" in error["message"]

"""One real server process (in-memory broker) and real WebSocket clients."""

import datetime
import re
import time
import uuid
from collections.abc import Iterator

import httpx
import jwt
import pytest
from websockets.exceptions import InvalidStatus

from tests.chatserver.client import client, joined
from tests.fixtures.processes import ChatFactory, ChatProcess

SECRET = "a-test-secret-of-enough-length-for-hs256"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatProcess]:
    """One server for the tests that do not change settings; each test uses its own room
    and user ids unique to it where counters matter."""
    process = ChatProcess(
        tmp_path_factory.mktemp("chat"),
        {"ASOCIAL_RATE_LIMIT_PER_MINUTE": "1000", "ASOCIAL_ABUSE_THRESHOLD": "1000"},
        "shared",
    )
    yield process
    process.stop()


def room() -> str:
    return "r-" + uuid.uuid4().hex[:8]


def chat(mid: str, text: str, **extra: object) -> dict[str, object]:
    return {
        "type": "chat",
        "message_id": mid,
        "payload": text,
        "position": {"x": 3, "y": 4},
        **extra,
    }


async def test_chat_reaches_others_but_not_the_authors_own_tabs(server: ChatProcess) -> None:
    r = room()
    async with (
        joined(server.ws(f"uid=alice&channel={r}")) as alice,
        joined(server.ws(f"uid=alice&channel={r}")) as alice2,
        joined(server.ws(f"uid=bob&channel={r}")) as bob,
    ):
        await alice.drain()
        await alice2.drain()
        await bob.drain()
        before = int(time.time() * 1000)
        await alice.send(chat("m1", "h", user_id="alice", channel_id=r))
        await alice.send(chat("m1", "hi"))
        first, second = await bob.recv_type("chat"), await bob.recv_type("chat")
        assert first["payload"] == "h"
        assert second == {
            "type": "chat",
            "message_id": "m1",
            "channel_id": r,
            "user_id": "alice",
            "payload": "hi",
            "position": {"x": 3.0, "y": 4.0},
            "timestamp": second["timestamp"],
            "offset": first["offset"] + 1,  # the room's next chat frame
        }
        assert before <= second["timestamp"] <= int(time.time() * 1000)
        assert await alice.drain() == []
        assert await alice2.drain() == []


async def test_server_assigns_a_message_id_when_missing(server: ChatProcess) -> None:
    r = room()
    async with (
        joined(server.ws(f"uid=a&channel={r}")) as a,
        joined(server.ws(f"uid=b&channel={r}")) as b,
    ):
        await a.send({"type": "chat", "payload": "x"})
        frame = await b.recv_type("chat")
        assert isinstance(frame["message_id"], str)
        assert len(frame["message_id"]) >= 16


async def test_presence_sync_join_rename_and_leave(server: ChatProcess) -> None:
    r = room()
    async with client(server.ws(f"uid=ann&username=Ann&color=%23ff0000&channel={r}")) as ann:
        sync = await ann.recv_type("user_sync")
        assert sync["users"] == [{"user_id": "ann", "username": "Ann", "color": "#ff0000"}]
        assert (await ann.recv_type("user_joined"))["user_id"] == "ann"
        async with client(server.ws(f"uid=ben&channel={r}")) as ben:
            sync = await ben.recv_type("user_sync")
            assert {u["user_id"] for u in sync["users"]} == {"ann", "ben"}
            joined_frame = await ann.recv_type("user_joined")
            assert joined_frame["user_id"] == "ben"
            await ben.send({"type": "username_changed", "username": "Benjamin"})
            await ben.send({"type": "color_changed", "color": "#00ff00"})
            renamed = await ann.recv_type("username_changed")
            assert (renamed["user_id"], renamed["username"]) == ("ben", "Benjamin")
            recolored = await ben.recv_type("color_changed")  # the sender gets it too
            assert (recolored["user_id"], recolored["color"]) == ("ben", "#00ff00")
            async with client(server.ws(f"uid=cat&channel={r}")) as cat:
                users = {u["user_id"]: u for u in (await cat.recv_type("user_sync"))["users"]}
                assert users["ben"] == {
                    "user_id": "ben",
                    "username": "Benjamin",
                    "color": "#00ff00",
                }
        left = await ann.recv_type("user_left")
        assert left["user_id"] in {"ben", "cat"}


async def test_user_left_only_when_the_last_tab_closes(server: ChatProcess) -> None:
    r = room()
    async with joined(server.ws(f"uid=obs&channel={r}")) as observer:
        async with joined(server.ws(f"uid=tabs&channel={r}")):
            async with joined(server.ws(f"uid=tabs&channel={r}")):
                pass
            frames = await observer.drain(0.5)
            assert all(f["type"] != "user_left" for f in frames)
        # Promptly: the server must not wait on a writer that has nothing left to send.
        assert (await observer.recv_type("user_left", timeout=2.5))["user_id"] == "tabs"


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (chat("m1", "x", user_id="mallory"), "spoofed_identity"),
        (chat("m1", "x", channel_id="elsewhere"), "wrong_channel"),
        ('{"type": "chat", "position": {"x": NaN, "y": 0}}', "invalid_json"),
        ({"type": "chat", "position": {"x": 1e12, "y": 0}}, "invalid_position"),
        ({"type": "user_left"}, "forbidden_type"),
        ({"type": "dance"}, "unknown_type"),
        (chat("m1", "x" * 5000), "payload_too_large"),
        (b"\x00\x01", "binary_not_supported"),
    ],
)
async def test_bad_frames_get_an_error_and_reach_nobody(
    server: ChatProcess, frame: object, code: str
) -> None:
    r = room()
    async with (
        joined(server.ws(f"uid=a&channel={r}")) as a,
        joined(server.ws(f"uid=b&channel={r}")) as b,
    ):
        await a.drain()
        await b.drain()
        await a.send(frame)  # type: ignore[arg-type]
        error = await a.recv_type("error")
        assert error["code"] == code
        assert error["message"]
        await a.send(chat("ok", "still alive"))
        assert (await b.recv_type("chat"))["payload"] == "still alive"
        assert await b.drain() == []


async def test_rate_limit_counts_messages_not_keystrokes(chat_server: ChatFactory) -> None:
    server = chat_server(ASOCIAL_RATE_LIMIT_PER_MINUTE="5")
    r = room()
    async with (
        joined(server.ws(f"uid=a&channel={r}")) as a,
        joined(server.ws(f"uid=b&channel={r}")) as b,
    ):
        for i in range(5):
            for n in range(1, 4):  # three keystrokes per message, one message counted
                await a.send(chat(f"m{i}", "x" * n))
        await a.send(chat("m5", "over"))
        error = await a.recv_type("error")
        assert (error["code"], error["message_id"]) == ("rate_limited", "m5")
        got = [f for f in await b.drain(0.5) if f["type"] == "chat"]
        assert len(got) == 15
        assert all(f["message_id"] != "m5" for f in got)


async def test_invalid_channel_and_uid_are_refused_with_a_reason(server: ChatProcess) -> None:
    async with client(server.ws("uid=a&channel=no%20spaces")) as c:
        error = await c.recv()
        assert error["code"] == "invalid_channel"
        assert await c.closed() == (1008, "channel must be 1-64 letters, digits or _.:-")
    async with client(server.ws("uid=")) as c:
        assert (await c.recv())["code"] == "invalid_user"
        code, _ = await c.closed()
        assert code == 1008


async def test_operational_endpoints(server: ChatProcess) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(server.http("/health"))
        assert response.json()["status"] == "ok"
        stamp = response.json()["timestamp"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp), stamp
        parsed = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")
        now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
        assert abs((now - parsed).total_seconds()) < 5
        assert response.headers["X-Request-ID"]
        response = await http.get(server.http("/ready"))
        assert response.json() == {
            "status": "ready",
            "checks": {"memory": "ok", "pubsub": "ok", "accepting": "ok"},
        }
        page = (await http.get(server.http("/"))).text
        assert '<meta name="asocial-fade-ms" content="5000">' in page
        async with joined(server.ws("uid=m")):
            text = (await http.get(server.http("/metrics"))).text
    active = re.search(r"^websocket_connections_active (\S+)$", text, re.MULTILINE)
    assert active is not None
    assert float(active.group(1)) >= 1
    for family in (
        "messages_published_total",
        "message_broadcast_latency_seconds_bucket",
        'http_request_duration_seconds_count{handler="/health",status="200"}',
        "messages_dropped_total",
        "rate_limited_total",
        "auth_failures_total",
        "broker_reconnects_total",
        "websocket_connections_closed_total",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        # Labelled series exist at 0 before their first event: dashboards and rate()
        # see them from the start.
        'messages_dropped_total{reason="slow_consumer"} 0.0',
        'frames_rejected_total{code="unavailable"} 0.0',
        'auth_failures_total{reason="expired"} 0.0',
        'client_requests_limited_total{kind="chat"} 0.0',
        'messages_published_total{channel="all"}',
        "broker_connected 1.0",
        "broker_master_moves_total 0.0",
        "websocket_connections_limit 20000.0",
    ):
        assert family in text


async def test_the_page_is_told_the_fade_time(chat_server: ChatFactory) -> None:
    server = chat_server(ASOCIAL_MESSAGE_FADE_SECONDS="2.5")
    async with httpx.AsyncClient() as http:
        page = (await http.get(server.http("/"))).text
    assert '<meta name="asocial-fade-ms" content="2500">' in page


async def test_connections_per_user_are_limited(chat_server: ChatFactory) -> None:
    server = chat_server(ASOCIAL_MAX_CONNECTIONS_PER_USER="2")
    async with (
        joined(server.ws("uid=u")),
        joined(server.ws("uid=u")),
        client(server.ws("uid=u")) as third,
    ):
        assert (await third.recv())["code"] == "too_many_connections"
        assert (await third.closed())[0] == 1008


async def test_origins_outside_the_allow_list_are_refused(chat_server: ChatFactory) -> None:
    server = chat_server(ASOCIAL_ALLOWED_ORIGINS="https://chat.example.com")
    async with joined(server.ws("uid=u"), origin="https://chat.example.com"):  # type: ignore[arg-type]
        pass
    with pytest.raises(InvalidStatus):
        async with client(server.ws("uid=u"), origin="https://evil.example.com"):  # type: ignore[arg-type]
            pass


class TestJWT:
    @pytest.fixture
    def server(self, chat_server: ChatFactory) -> ChatProcess:
        return chat_server(
            ASOCIAL_AUTH_MODE="jwt", ASOCIAL_JWT_SECRET=SECRET, ASOCIAL_AUTH_REQUIRED="true"
        )

    @staticmethod
    def token(sub: str, **extra: object) -> str:
        return jwt.encode({"sub": sub, "exp": int(time.time()) + 60, **extra}, SECRET)

    async def test_identity_comes_from_the_token_in_any_of_three_places(
        self, server: ChatProcess
    ) -> None:
        r = room()
        async with (
            joined(server.ws(f"uid=q-browser&channel={r}&token={self.token('q')}")) as q,
            joined(
                server.ws(f"channel={r}&uid=q-browser"),
                additional_headers={"Authorization": f"Bearer {self.token('h')}"},
            ) as h,
            joined(server.ws(f"channel={r}"), subprotocols=["bearer", self.token("p")]) as p,  # type: ignore[list-item]
        ):
            assert p.conn.subprotocol == "bearer"
            await q.drain()
            # q's uid, free, is now bound to q's account and names q's sockets.
            await q.send(chat("m", "x", user_id="q-browser"))
            for other in (h, p):
                frame = await other.recv_type("chat")
                assert frame["user_id"] == "q-browser"
            # h presents q's uid too, but it is bound to q: h is named by h's account.
            await h.send(chat("m2", "y", user_id="q-browser"))
            frame = await p.recv_type("chat")
            assert (frame["user_id"], frame["payload"]) == ("h", "y")

    @pytest.mark.parametrize("case", ["missing", "expired", "forged"])
    async def test_bad_tokens_are_refused_before_any_message(
        self, server: ChatProcess, case: str
    ) -> None:
        token = {
            "missing": "",
            "expired": self.token("x", exp=int(time.time()) - 3600),
            "forged": jwt.encode({"sub": "x", "exp": int(time.time()) + 60}, "x" * 40),
        }[case]
        async with client(server.ws(f"uid=u&token={token}")) as c:
            error = await c.recv()
            assert error["code"] == "unauthorized"
            code, reason = await c.closed()
            assert code == 1008
            assert reason
        async with httpx.AsyncClient() as http:
            assert "auth_failures_total{reason=" in (await http.get(server.http("/metrics"))).text
        if token:
            assert token.split(".")[-1] not in server.logs()

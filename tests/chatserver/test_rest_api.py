"""The REST API over HTTP: a real chat server process, a real redis-server, tokens minted
with the server's JWT secret (the Firebase path is in test_firebase)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.chatserver.client import Client, client, joined
from tests.fixtures.processes import ChatFactory, ChatProcess, RedisProcess

pytestmark = pytest.mark.redis

SECRET = "rest-api-test-secret-of-at-least-32-bytes"
ORIGIN = "https://canvas.example.com"


def token(sub: str, *, email: str | None = None, iat: int | None = None) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {"sub": sub, "exp": now + 600, "iat": now if iat is None else iat}
    if email:
        claims["email"] = email
    return jwt.encode(claims, SECRET, algorithm="HS256")


def bearer(sub: str, **kwargs: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(sub, **kwargs)}"}


def start(
    chat_server: ChatFactory, redis: RedisProcess, name: str = "api", **env: str
) -> ChatProcess:
    return chat_server(
        name=name,
        ASOCIAL_AUTH_MODE="jwt",
        ASOCIAL_JWT_SECRET=SECRET,
        ASOCIAL_REDIS_URL=redis.url,
        ASOCIAL_ALLOWED_ORIGINS=ORIGIN,
        **env,
    )


@pytest.fixture
def server(chat_server: ChatFactory, redis_server: RedisProcess) -> ChatProcess:
    return start(chat_server, redis_server)


def http(server: ChatProcess) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.http(""), timeout=10)


@contextlib.asynccontextmanager
async def joined_socket(
    server: ChatProcess, who: str, signed: str, channel: str
) -> AsyncIterator[Client]:
    url = server.ws(f"uid={who}&token={signed}&channel={channel}")
    async with joined(url, origin=ORIGIN) as socket:  # type: ignore[arg-type]
        yield socket


def uid() -> str:
    return uuid.uuid4().hex[:10]


async def test_the_signed_in_path_of_the_original_client(server: ChatProcess) -> None:
    ann, bob = f"ann-{uid()}", f"bob-{uid()}"
    async with http(server) as api:
        me = await api.get("/api/auth/me", headers=bearer(ann, email="ann.lee@example.com"))
        assert me.status_code == 200, me.text
        account = me.json()
        assert set(account) == {"id", "email", "username", "created_at"}
        assert (account["id"], account["email"], account["username"]) == (
            ann,
            "ann.lee@example.com",
            "ann.lee",
        )
        assert account["created_at"].endswith("Z")
        again = await api.get("/api/auth/me", headers=bearer(ann, email="ann.lee@example.com"))
        assert again.json() == account
        bob_me = (await api.get("/api/auth/me", headers=bearer(bob, email="ann.lee@x.org"))).json()
        assert bob_me["username"] not in ("ann.lee",)

        free = await api.post("/api/auth/check-username", json={"username": "nobody_yet"})
        assert (free.status_code, free.json()) == (200, {"available": True})
        taken = await api.post("/api/auth/check-username", json={"username": "ANN.LEE"})
        assert taken.status_code == 409
        body = taken.json()
        assert set(body) >= {"error", "message", "suggestions"}
        assert len(body["suggestions"]) == 3
        bad = await api.post("/api/auth/check-username", json={"username": "ab"})
        assert bad.status_code == 400
        assert "3-20 characters" in bad.json()["error"]

        renamed = await api.patch(
            "/api/auth/username", json={"username": "annie"}, headers=bearer(ann)
        )
        assert (renamed.status_code, renamed.json()["username"]) == (200, "annie")
        assert set(renamed.json()) == {"id", "email", "username", "created_at"}
        for name, status in (("x" * 21, 400), ("no", 400), ("Annie", 409)):
            answer = await api.patch(
                "/api/auth/username", json={"username": name}, headers=bearer(bob)
            )
            assert answer.status_code == status, (name, answer.text)
        assert "suggestions" in answer.json()

        rooms = await api.get("/api/rooms/public")
        assert rooms.status_code == 200
        listed = rooms.json()
        assert listed["count"] == len(listed["rooms"]) >= 1
        default = next(r for r in listed["rooms"] if r["slug"] == "default")
        assert set(default) == {"id", "name", "slug", "description", "is_public", "created_at"}
        assert default["is_public"] is True
        assert (await api.get("/api/rooms/default")).json() == default
        missing = await api.get("/api/rooms/no-such-room")
        assert missing.status_code == 404
        assert "public" in missing.json()["error"]

        join = await api.post(
            "/api/rooms/default/join",
            json={"display_name": "Annie L", "color": "#e11d48"},
            headers=bearer(ann),
        )
        assert join.status_code == 200, join.text
        assert join.json()["room"] == default
        settings = join.json()["settings"]
        assert (settings["display_name"], settings["color"]) == ("Annie L", "#e11d48")
        assert settings["joined_at"].endswith("Z")
        clash = await api.post(
            "/api/rooms/default/join", json={"display_name": "annie l"}, headers=bearer(bob)
        )
        assert clash.status_code == 409
        assert "taken in this room" in clash.json()["error"]
        bad_color = await api.post(
            "/api/rooms/default/join", json={"color": "red"}, headers=bearer(bob)
        )
        assert (bad_color.status_code, "hex colour" in bad_color.json()["error"]) == (400, True)

        created = await api.post(
            "/api/rooms",
            json={"name": f"Private {ann}", "is_public": False},
            headers=bearer(ann),
        )
        assert created.status_code == 201, created.text
        slug = created.json()["slug"]
        assert (await api.get(f"/api/rooms/{slug}", headers=bearer(ann))).status_code == 200
        assert (await api.get(f"/api/rooms/{slug}")).status_code == 401
        assert (await api.get(f"/api/rooms/{slug}", headers=bearer(bob))).status_code == 403
        refused = await api.post(f"/api/rooms/{slug}/join", json={}, headers=bearer(bob))
        assert refused.status_code == 403
        assert slug not in [r["slug"] for r in (await api.get("/api/rooms/public")).json()["rooms"]]

        gone = await api.delete("/api/auth/account", headers=bearer(ann))
        assert (gone.status_code, set(gone.json())) == (200, {"message"})
        again_gone = await api.delete("/api/auth/account", headers=bearer(ann))
        assert again_gone.status_code == 404
        # the name and the room display name are free again
        assert (
            await api.post("/api/auth/check-username", json={"username": "annie"})
        ).status_code == 200
        rejoin = await api.post(
            "/api/rooms/default/join", json={"display_name": "Annie L"}, headers=bearer(bob)
        )
        assert rejoin.status_code == 200


@pytest.mark.parametrize(
    ("headers", "needle"),
    [
        ({}, "sign in first"),
        ({"Authorization": "Bearer not-a-token"}, "token is invalid"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "'Bearer <ID token>'"),
        ({"Authorization": f"Bearer {jwt.encode({'sub': 'x', 'exp': 1}, SECRET)}"}, "expired"),
    ],
)
async def test_calls_without_a_good_token_get_401_with_a_reason(
    server: ChatProcess, headers: dict[str, str], needle: str
) -> None:
    async with http(server) as api:
        for method, path in (
            ("GET", "/api/auth/me"),
            ("PATCH", "/api/auth/username"),
            ("DELETE", "/api/auth/account"),
            ("POST", "/api/auth/logout"),
            ("POST", "/api/rooms/default/join"),
        ):
            answer = await api.request(method, path, headers=headers, json={"username": "abc"})
            assert answer.status_code == 401, (method, path, answer.text)
            assert needle in answer.json()["error"], answer.json()
            assert answer.headers["www-authenticate"] == "Bearer"


async def test_bad_bodies_are_refused_with_400(server: ChatProcess) -> None:
    async with http(server) as api:
        for content in (b"{not json", b"[1, 2]", b'"text"', b"x" * 20_000):
            answer = await api.patch(
                "/api/auth/username",
                content=content,
                headers={**bearer("body-test"), "Content-Type": "application/json"},
            )
            assert answer.status_code == 400, (content[:10], answer.text)
            assert answer.json()["code"] == "invalid"
        unknown = await api.get("/api/nothing-here")
        assert unknown.status_code == 404
        assert "no such API path" in unknown.json()["error"]
        wrong = await api.put("/api/auth/me")
        assert (wrong.status_code, wrong.json()["code"]) == (405, "http_405")


async def test_logout_ends_the_token_on_the_api_and_the_socket(server: ChatProcess) -> None:
    who = f"leaver-{uid()}"
    old = token(who, iat=int(time.time()) - 5)
    async with http(server) as api:
        assert (
            await api.get("/api/auth/me", headers={"Authorization": f"Bearer {old}"})
        ).is_success
        out = await api.post("/api/auth/logout", headers={"Authorization": f"Bearer {old}"})
        assert (out.status_code, set(out.json())) == (200, {"message"})
        after = await api.get("/api/auth/me", headers={"Authorization": f"Bearer {old}"})
        assert after.status_code == 401
        assert "sign-out" in after.json()["error"]
        async with client(server.ws(f"uid=b-{who}&token={old}"), origin=ORIGIN) as c:  # type: ignore[arg-type]
            error = await c.recv()
            assert (error["code"], "sign-out" in error["message"]) == ("unauthorized", True)
        fresh = token(who, iat=int(time.time()) + 1)  # signed in again
        assert (
            await api.get("/api/auth/me", headers={"Authorization": f"Bearer {fresh}"})
        ).is_success


async def test_a_sign_out_closes_the_accounts_open_sockets_on_every_server(
    chat_server: ChatFactory, redis_server: RedisProcess
) -> None:
    a, b = (start(chat_server, redis_server, name=n) for n in ("a", "b"))
    ann, bob = f"ann-{uid()}", f"bob-{uid()}"
    signed_in = token(ann, iat=int(time.time()) - 5)
    async with (
        joined(a.ws(f"uid={ann}&token={signed_in}"), origin=ORIGIN) as ann_on_a,  # type: ignore[arg-type]
        joined(b.ws(f"uid={ann}&token={signed_in}"), origin=ORIGIN) as ann_on_b,  # type: ignore[arg-type]
        joined(b.ws(f"uid={bob}&token={token(bob)}"), origin=ORIGIN) as bob_on_b,  # type: ignore[arg-type]
    ):
        async with http(a) as api:
            out = await api.post(
                "/api/auth/logout", headers={"Authorization": f"Bearer {signed_in}"}
            )
            assert out.status_code == 200, out.text
        for socket in (ann_on_a, ann_on_b):
            error = await socket.recv_type("error")
            assert (error["code"], error["message"]) == (
                "unauthorized",
                "signed out: sign in again to chat",
            )
            assert await socket.closed() == (1008, "signed out: sign in again to chat")
        await bob_on_b.recv_type("user_left", user_id=ann)
        dave = f"dave-{uid()}"
        async with joined(a.ws(f"uid={dave}&token={token(dave)}"), origin=ORIGIN) as watcher:  # type: ignore[arg-type]
            await bob_on_b.send({"type": "color_changed", "color": "#112233"})
            await watcher.recv_type("color_changed", user_id=bob, color="#112233")


async def test_a_private_rooms_members_are_added_listed_and_removed(server: ChatProcess) -> None:
    """The owner lets a member in by username; the member joins and chats there; removed,
    the member's socket in that room closes and the one in another room stays."""
    ann, bob = f"ann-{uid()}", f"bob-{uid()}"
    async with http(server) as api:
        ann_name = (await api.get("/api/auth/me", headers=bearer(ann))).json()["username"]
        assert (await api.get("/api/auth/me", headers=bearer(bob))).is_success
        bob_name = (
            await api.patch(
                "/api/auth/username", json={"username": f"b{uid()}"}, headers=bearer(bob)
            )
        ).json()["username"]
        slug = (
            await api.post(
                "/api/rooms", json={"name": f"Den {uid()}", "is_public": False}, headers=bearer(ann)
            )
        ).json()["slug"]
        members_url = f"/api/rooms/{slug}/members"
        by_bob = await api.post(members_url, json={"username": bob_name}, headers=bearer(bob))
        assert (by_bob.status_code, by_bob.json()["code"]) == (403, "forbidden")
        nobody = await api.post(members_url, json={"username": "no_such_name"}, headers=bearer(ann))
        assert nobody.status_code == 404
        assert "no account is named" in nobody.json()["error"]
        added = await api.post(
            members_url, json={"username": bob_name.upper()}, headers=bearer(ann)
        )
        assert added.status_code == 201, added.text
        assert set(added.json()["member"]) == {
            "id",
            "username",
            "display_name",
            "color",
            "joined_at",
            "is_owner",
        }
        again = await api.post(members_url, json={"username": bob_name}, headers=bearer(ann))
        assert again.status_code == 200
        mine = (await api.get("/api/rooms/mine", headers=bearer(bob))).json()
        assert [(r["slug"], r["is_public"]) for r in mine["rooms"]] == [(slug, False)]
        assert (await api.get("/api/rooms/mine")).status_code == 401
        reserved = await api.post("/api/rooms", json={"name": "Mine"}, headers=bearer(bob))
        assert (reserved.status_code, "the API keeps" in reserved.json()["error"]) == (400, True)
        joined = await api.post(
            f"/api/rooms/{slug}/join", json={"display_name": "Bee"}, headers=bearer(bob)
        )
        assert joined.status_code == 200, joined.text
        listed = (await api.get(members_url, headers=bearer(bob))).json()
        assert listed["count"] == 2
        assert [(m["id"], m["is_owner"], m["display_name"]) for m in listed["members"]] == [
            (ann, True, None),
            (bob, False, "Bee"),
        ]
        assert (await api.get(members_url)).status_code == 401

        bob_token = token(bob)
        async with (
            joined_socket(server, bob, bob_token, slug) as in_den,
            joined_socket(server, bob, bob_token, "default") as in_default,
        ):
            removed = await api.delete(f"{members_url}/{bob_name}", headers=bearer(ann))
            assert removed.status_code == 200, removed.text
            error = await in_den.recv_type("error")
            reason = f"you are no longer a member of the private room {slug!r}"
            assert (error["code"], error["message"]) == ("unauthorized", reason)
            assert await in_den.closed() == (1008, reason)
            await in_default.send({"type": "color_changed", "color": "#445566"})
            await in_default.recv_type("color_changed", user_id=bob, color="#445566")
        gone = await api.delete(f"{members_url}/{bob_name}", headers=bearer(ann))
        assert gone.status_code == 404
        owner = await api.delete(f"{members_url}/{ann_name}", headers=bearer(ann))
        assert owner.status_code == 400
        assert "cannot be removed" in owner.json()["error"]
        metrics = (await api.get("/metrics")).text
    # Requests are labelled by route, never by the slug or username in their path.
    for route in ("/api/rooms/{slug}/members", "/api/rooms/{slug}/members/{username}"):
        assert f'handler="{route}",status="200"' in metrics
    assert slug not in metrics


async def test_cors_lets_only_the_allowed_origins_in(server: ChatProcess) -> None:
    async with http(server) as api:
        preflight = await api.options(
            "/api/auth/username",
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "PATCH",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert preflight.status_code == 204
        assert preflight.content == b""
        assert preflight.headers["access-control-allow-origin"] == ORIGIN
        assert preflight.headers["access-control-allow-credentials"] == "true"
        methods = preflight.headers["access-control-allow-methods"]
        assert {"GET", "POST", "PATCH", "DELETE"} <= {m.strip() for m in methods.split(",")}
        allowed_headers = preflight.headers["access-control-allow-headers"].lower()
        assert "authorization" in allowed_headers
        assert "content-type" in allowed_headers

        stranger = await api.options(
            "/api/auth/me",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        )
        assert stranger.status_code == 400
        assert "access-control-allow-origin" not in stranger.headers

        simple = await api.get("/api/rooms/public", headers={"Origin": ORIGIN})
        assert simple.headers["access-control-allow-origin"] == ORIGIN
        other = await api.get("/api/rooms/public", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
    # The socket checks the same list (test_chat's origin test).


async def test_without_sign_in_accounts_say_why_and_rooms_still_list(
    chat_server: ChatFactory, redis_server: RedisProcess
) -> None:
    server = chat_server(name="anon", ASOCIAL_REDIS_URL=redis_server.url)
    async with http(server) as api:
        for method, path in (
            ("GET", "/api/auth/me"),
            ("POST", "/api/auth/check-username"),
            ("PATCH", "/api/auth/username"),
            ("POST", "/api/auth/logout"),
        ):
            answer = await api.request(
                method, path, headers=bearer("someone"), json={"username": "abcd"}
            )
            assert answer.status_code == 401, (path, answer.text)
            assert "ASOCIAL_AUTH_MODE" in answer.json()["error"]
        assert "default" in [
            r["slug"] for r in (await api.get("/api/rooms/public")).json()["rooms"]
        ]
        made = await api.post("/api/rooms", json={"name": f"Open {uid()}"})
        assert made.status_code == 201, made.text
        private = await api.post("/api/rooms", json={"name": "Closed", "is_public": False})
        assert private.status_code == 401
        assert "sign-in" in private.json()["error"]


@pytest.mark.parametrize(("trusted", "honoured"), [("127.0.0.1", True), ("10.0.0.0/8", False)])
async def test_the_room_limit_counts_the_client_a_trusted_proxy_names(
    chat_server: ChatFactory, redis_server: RedisProcess, trusted: str, honoured: bool
) -> None:
    """Behind an ingress every request comes from the ingress: its X-Forwarded-For names
    the client, and is believed only from ASOCIAL_TRUSTED_PROXIES (here the test itself,
    127.0.0.1, is a trusted proxy or not)."""
    server = chat_server(
        name="proxied", ASOCIAL_REDIS_URL=redis_server.url, ASOCIAL_TRUSTED_PROXIES=trusted
    )
    async with http(server) as api:

        async def create(client_ip: str) -> int:
            answer = await api.post(
                "/api/rooms",
                json={"name": f"Room {uid()}"},
                headers={"X-Forwarded-For": client_ip},
            )
            return answer.status_code

        while True:
            hour = int(time.time() // 3600)  # the limit's window is the clock hour
            # Addresses no other test uses (2001:db8::/32 is for documentation).
            first, second = (f"2001:db8::{uuid.uuid4().hex[:4]}:{n}" for n in (1, 2))
            codes = [await create(first) for _ in range(21)]
            other = await create(second)
            if int(time.time() // 3600) == hour:
                break
    assert codes == [201] * 20 + [429]
    assert other == (201 if honoured else 429)


async def test_one_username_registered_at_once_on_two_servers_has_one_winner(
    chat_server: ChatFactory, redis_server: RedisProcess
) -> None:
    servers = [start(chat_server, redis_server, name=n) for n in ("a", "b")]
    people = [f"racer-{i}-{uid()}" for i in range(16)]
    async with http(servers[0]) as a, http(servers[1]) as b:
        for person in people:
            assert (await a.get("/api/auth/me", headers=bearer(person))).is_success
        wanted = f"first_{uid()}"
        answers = await asyncio.gather(
            *(
                (a if i % 2 else b).patch(
                    "/api/auth/username", json={"username": wanted}, headers=bearer(person)
                )
                for i, person in enumerate(people)
            )
        )
    codes = sorted(answer.status_code for answer in answers)
    assert codes == [200] + [409] * (len(people) - 1)


async def test_accounts_survive_a_redis_restart(chat_server: ChatFactory, tmp_path: Path) -> None:
    redis = RedisProcess(tmp_path, appendonly=True)
    redis.start()
    try:
        server = start(chat_server, redis)
        who = f"keeper-{uid()}"
        async with http(server) as api:
            account = (await api.get("/api/auth/me", headers=bearer(who))).json()
            renamed = await api.patch(
                "/api/auth/username", json={"username": f"k_{uid()}"}, headers=bearer(who)
            )
            room = await api.post("/api/rooms", json={"name": f"Kept {uid()}"}, headers=bearer(who))
            assert renamed.is_success
            assert room.status_code == 201
            redis.terminate()
            redis.start()
            deadline = time.monotonic() + 20
            while True:
                after = await api.get("/api/auth/me", headers=bearer(who))
                if after.status_code != 503 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            assert after.status_code == 200, after.text
            assert after.json() == {**account, "username": renamed.json()["username"]}
            kept = await api.get(f"/api/rooms/{room.json()['slug']}")
            assert kept.json() == room.json()
    finally:
        redis.stop()

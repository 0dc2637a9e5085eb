"""Firebase mode end to end: ID tokens minted by the real Auth emulator, verified by the
chat server through firebase-admin (``FIREBASE_AUTH_EMULATOR_HOST``), no network beyond
loopback.

The emulator issues unsigned tokens and firebase-admin skips the signature check for
them, so what can be refused here is everything but the signature: the project
(``aud``/``iss``), expiry, and tokens that do not decode.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.chatserver.client import client, joined
from tests.fixtures.firebase import PROJECT_ID, sign_up
from tests.fixtures.processes import ChatFactory, ChatProcess, RedisProcess

OTHER_PROJECT_ID = "demo-asocial-other"  # a project the emulator never issued for


def start_server(chat_server: ChatFactory, emulator: str, project: str, **env: str) -> ChatProcess:
    return chat_server(
        name="firebase",
        ASOCIAL_AUTH_MODE="firebase",
        ASOCIAL_FIREBASE_PROJECT_ID=project,
        ASOCIAL_AUTH_REQUIRED="true",
        FIREBASE_AUTH_EMULATOR_HOST=emulator,
        **env,
    )


@pytest.fixture
def server(chat_server: ChatFactory, firebase_emulator: str) -> ChatProcess:
    return start_server(chat_server, firebase_emulator, PROJECT_ID)


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * -len(payload)))
    return decoded


def with_claims(token: str, **changes: object) -> str:
    """``token`` with its payload rewritten (header and signature part kept)."""
    header, _, signature = token.split(".")
    payload = json.dumps({**claims(token), **changes}).encode()
    return ".".join([header, base64.urlsafe_b64encode(payload).rstrip(b"=").decode(), signature])


def room() -> str:
    return "r-" + uuid.uuid4().hex[:8]


async def test_emulator_tokens_carry_the_identity(
    chat_server: ChatFactory, firebase_emulator: str, redis_server: RedisProcess
) -> None:
    server = start_server(
        chat_server, firebase_emulator, PROJECT_ID, ASOCIAL_REDIS_URL=redis_server.url
    )
    (token_a, _uid_a), (token_b, uid_b) = [await sign_up(firebase_emulator) for _ in range(2)]
    assert claims(token_a)["aud"] == PROJECT_ID
    r = room()
    browser = f"browser-{uuid.uuid4().hex[:8]}"  # the uid A's browser keeps
    # A's first signed-in socket binds A's uid to A's account: A is that uid, once.
    async with client(server.ws(f"token={token_a}&uid={browser}&channel={r}")) as a:
        sync = await a.recv_type("user_sync")
        assert sync["user_id"] == browser
        assert [u["user_id"] for u in sync["users"]] == [browser]
        # B presents A's uid: it is A's, so B is named by B's own account id.
        async with joined(server.ws(f"token={token_b}&uid={browser}&channel={r}")) as b:
            await a.recv_type("user_joined", user_id=uid_b)
            await b.drain()
            await a.send(
                {
                    "type": "chat",
                    "message_id": "m1",
                    "user_id": browser,
                    "payload": "hello",
                    "position": {"x": 1, "y": 2},
                }
            )
            frame = await b.recv_type("chat")
            assert (frame["user_id"], frame["payload"]) == (browser, "hello")
            await b.send({"type": "chat", "message_id": "m2", "user_id": browser, "payload": "hi"})
            frame = await a.recv_type("chat")
            assert (frame["user_id"], frame["payload"]) == (uid_b, "hi")
            await a.send({"type": "username_changed", "username": "Ann"})
            renamed = await b.recv_type("username_changed")
            assert (renamed["user_id"], renamed["username"]) == (browser, "Ann")
        # Without a token, A's uid is refused: it belongs to a signed-in account.
    anonymous = chat_server(
        name="firebase-optional",
        ASOCIAL_AUTH_MODE="firebase",
        ASOCIAL_FIREBASE_PROJECT_ID=PROJECT_ID,
        FIREBASE_AUTH_EMULATOR_HOST=firebase_emulator,
        ASOCIAL_REDIS_URL=redis_server.url,
    )
    async with client(anonymous.ws(f"uid={browser}&channel={r}")) as c:
        error = await c.recv()
        assert error["code"] == "unauthorized", error
        assert "belongs to a signed-in account" in error["message"]
        assert (await c.closed())[0] == 1008
    logs = server.logs()
    for token in (token_a, token_b):
        assert token not in logs
        assert token.split(".")[1] not in logs


@pytest.mark.parametrize("case", ["missing", "other_project", "expired", "garbled"])
async def test_bad_tokens_are_refused(
    chat_server: ChatFactory, firebase_emulator: str, case: str
) -> None:
    # "other_project": a server of another Firebase project gets this project's token.
    project = OTHER_PROJECT_ID if case == "other_project" else PROJECT_ID
    server = start_server(chat_server, firebase_emulator, project)
    token, _ = await sign_up(firebase_emulator)
    assert claims(token)["aud"] == PROJECT_ID
    if case == "missing":
        bad = ""
    elif case == "other_project":
        bad = token
    elif case == "expired":
        bad = with_claims(token, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)
    else:  # garbled: the payload's first byte is no longer '{', so it is not JSON
        header, payload, signature = token.split(".")
        bad = ".".join([header, "A" + payload[1:], signature])
    async with client(server.ws(f"token={bad}&uid=u-{uuid.uuid4().hex[:8]}")) as c:
        error = await c.recv()
        assert (error["type"], error["code"]) == ("error", "unauthorized")
        code, reason = await c.closed()
        assert code == 1008
        assert reason
    if bad:
        logs = server.logs()
        assert bad not in logs
        assert bad.split(".")[1] not in logs


async def test_project_id_alone_refuses_bad_tokens_cleanly_and_never_500s(
    chat_server: ChatFactory,
) -> None:
    """Production mode without a service account: verification needs only Google's keys,
    so a bad token is refused with ``unauthorized``, never a 500 on the upgrade."""
    server = chat_server(
        name="no-credentials",
        ASOCIAL_AUTH_MODE="firebase",
        ASOCIAL_FIREBASE_PROJECT_ID="asocial-prod-like",
        FIREBASE_AUTH_EMULATOR_HOST="",
        GOOGLE_APPLICATION_CREDENTIALS="",
    )
    header = base64.urlsafe_b64encode(b'{"alg":"RS256","kid":"nope"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(b'{"sub":"x"}').rstrip(b"=").decode()
    for token in ("garbage", f"{header}.{body}.c2ln"):
        async with client(server.ws(f"uid=u&token={token}")) as c:
            error = await c.recv_type("error")
            assert error["code"] == "unauthorized", error
    assert "Traceback" not in server.logs()


async def sign_in(emulator: str, email: str, password: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(
            f"http://{emulator}/identitytoolkit.googleapis.com/v1/accounts:signInWithPassword",
            params={"key": "fake-api-key"},
            json={"email": email, "password": password, "returnSecureToken": True},
        )
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def valid_since(emulator: str, uid: str) -> int:
    """The user's ``validSince`` (tokens issued before it are revoked), read as an admin."""
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(
            f"http://{emulator}/identitytoolkit.googleapis.com/v1/projects/{PROJECT_ID}/accounts:lookup",
            headers={"Authorization": "Bearer owner"},
            json={"localId": [uid]},
        )
    assert response.status_code == 200, response.text
    return int(response.json()["users"][0].get("validSince", 0))


async def test_the_account_api_with_real_id_tokens(
    chat_server: ChatFactory, firebase_emulator: str, redis_server: RedisProcess
) -> None:
    """Sign in, the account, a rename, sign-out (the token and its refresh tokens end),
    a fresh sign-in, then deletion, as the original client does them."""
    server = start_server(
        chat_server, firebase_emulator, PROJECT_ID, ASOCIAL_REDIS_URL=redis_server.url
    )
    email, password = f"fb-{uuid.uuid4().hex[:8]}@example.com", "correct horse battery staple"
    async with httpx.AsyncClient(timeout=30) as http:
        await http.post(
            f"http://{firebase_emulator}/identitytoolkit.googleapis.com/v1/accounts:signUp",
            params={"key": "fake-api-key"},
            json={"email": email, "password": password, "returnSecureToken": True},
        )
    session = await sign_in(firebase_emulator, email, password)
    auth = {"Authorization": f"Bearer {session['idToken']}"}
    async with httpx.AsyncClient(base_url=server.http(""), timeout=30) as api:
        me = await api.get("/api/auth/me", headers=auth)
        assert me.status_code == 200, me.text
        assert (me.json()["id"], me.json()["email"]) == (session["localId"], email)
        assert me.json()["username"] == email.split("@")[0]
        renamed = await api.patch(
            "/api/auth/username", json={"username": "fb_renamed"}, headers=auth
        )
        assert (renamed.status_code, renamed.json()["username"]) == (200, "fb_renamed")

        await asyncio.sleep(1.1)  # the sign-out is at a later second than the token's issue
        signed_out = int(time.time())
        out = await api.post("/api/auth/logout", headers=auth)
        assert out.status_code == 200, out.text
        after = await api.get("/api/auth/me", headers=auth)
        assert after.status_code == 401
        assert "sign-out" in after.json()["error"]
        # Firebase now dates valid tokens from the sign-out (refresh tokens revoked).
        assert await valid_since(firebase_emulator, session["localId"]) >= signed_out

        await asyncio.sleep(1.1)
        again = await sign_in(firebase_emulator, email, password)
        auth = {"Authorization": f"Bearer {again['idToken']}"}
        back = await api.get("/api/auth/me", headers=auth)
        assert (back.status_code, back.json()["username"]) == (200, "fb_renamed")
        gone = await api.delete("/api/auth/account", headers=auth)
        assert gone.status_code == 200
        fresh = await api.get("/api/auth/me", headers=auth)  # the next sign-in starts anew
        assert fresh.json()["username"] == email.split("@")[0]
        assert fresh.json()["created_at"] >= back.json()["created_at"]
    logs = server.logs()
    assert session["idToken"] not in logs
    assert again["idToken"] not in logs

"""Firebase mode end to end: ID tokens minted by the real Auth emulator, verified by the
chat server through firebase-admin (``FIREBASE_AUTH_EMULATOR_HOST``), no network beyond
loopback.

The emulator issues unsigned tokens and firebase-admin skips the signature check for
them, so what can be refused here is everything but the signature: the project
(``aud``/``iss``), expiry, and tokens that do not decode.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.chatserver.client import client, joined
from tests.fixtures.firebase import PROJECT_ID
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


async def sign_up(emulator: str) -> tuple[str, str]:
    """A new user signed up through the emulator's REST API: (ID token, its uid)."""
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(
            f"http://{emulator}/identitytoolkit.googleapis.com/v1/accounts:signUp",
            params={"key": "fake-api-key"},
            json={
                "email": f"u-{uuid.uuid4().hex[:12]}@example.com",
                "password": "correct horse battery staple",
                "returnSecureToken": True,
            },
        )
    assert response.status_code == 200, response.text
    data = response.json()
    return data["idToken"], data["localId"]


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

"""Redis as production runs it: with a password, and behind Sentinel."""

import asyncio
import time
from pathlib import Path

import httpx
import jwt
import pytest
from websockets.exceptions import ConnectionClosed

from tests.chatserver.client import joined
from tests.chatserver.traffic import eventually
from tests.fixtures.processes import ChatFactory
from tests.fixtures.redis_setups import PASSWORD, Replicated

pytestmark = pytest.mark.redis
JWT_SECRET = "redis-setups-test-secret-of-32-bytes-or-more"


async def _exchange(a_url: str, b_url: str) -> None:
    async with joined(a_url) as a, joined(b_url) as b:
        await a.send({"type": "chat", "message_id": "m", "payload": "through redis"})
        assert (await b.recv_type("chat"))["payload"] == "through redis"


async def test_password_from_a_mounted_file(
    chat_server: ChatFactory, protected_redis: int, tmp_path: Path
) -> None:
    secret = tmp_path / "redis-password"
    secret.write_text(PASSWORD + "\n")
    env = {
        "ASOCIAL_REDIS_URL": f"redis://127.0.0.1:{protected_redis}/0",
        "ASOCIAL_REDIS_PASSWORD_FILE": str(secret),
    }
    a, b = chat_server(name="a", **env), chat_server(name="b", **env)
    await _exchange(a.ws("uid=x&channel=p"), b.ws("uid=y&channel=p"))
    assert PASSWORD not in a.logs()


async def test_wrong_password_keeps_the_server_unready_and_says_so(
    chat_server: ChatFactory, protected_redis: int
) -> None:
    import httpx

    server = chat_server(
        wait_ready=False,
        ASOCIAL_REDIS_URL=f"redis://:wrong@127.0.0.1:{protected_redis}/0",
    )
    # The log says why (once the first attempt was refused), and the password is not in it.
    await eventually(
        lambda: "AuthenticationError" in server.logs(), timeout=10, what="the refusal logged"
    )
    async with httpx.AsyncClient() as http:
        response = await http.get(server.http("/ready"))
    assert response.status_code == 503
    assert response.json()["checks"]["redis"] == "down"
    assert "wrong" not in server.logs()


async def test_through_sentinel_and_across_a_failover(
    chat_server: ChatFactory, replicated: Replicated
) -> None:
    env = {"ASOCIAL_REDIS_URL": replicated.url()}
    a, b = chat_server(name="a", **env), chat_server(name="b", **env)
    await _exchange(a.ws("uid=x&channel=s"), b.ws("uid=y&channel=s"))
    replicated.stop(replicated.master(), graceful=False)
    # Sentinel promotes the replica; both servers find it and re-subscribe by themselves.
    deadline = time.monotonic() + 45
    while True:
        try:
            await _exchange(a.ws("uid=x&channel=s"), b.ws("uid=y&channel=s"))
            break
        except (AssertionError, TimeoutError, OSError, ConnectionClosed):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no fan-out 45 s after the master died\n{a.logs()[-3000:]}"
                ) from None
            await asyncio.sleep(0.5)


async def test_accounts_answered_before_a_failover_are_kept(
    chat_server: ChatFactory, replicated: Replicated
) -> None:
    """Each account write waits for a replica's acknowledgement: killing the master right
    after the answers loses none of them."""
    server = chat_server(
        ASOCIAL_REDIS_URL=replicated.url(),
        ASOCIAL_AUTH_MODE="jwt",
        ASOCIAL_JWT_SECRET=JWT_SECRET,
    )

    def auth(sub: str) -> dict[str, str]:
        claims = {"sub": sub, "exp": int(time.time()) + 600, "iat": int(time.time())}
        return {"Authorization": f"Bearer {jwt.encode(claims, JWT_SECRET)}"}

    async with httpx.AsyncClient(base_url=server.http(""), timeout=10) as api:
        made = []
        for i in range(10):
            answer = await api.patch(
                "/api/auth/username", json={"username": f"kept_{i}"}, headers=auth(f"user-{i}")
            )
            assert answer.status_code == 200, answer.text
            made.append(answer.json())
        replicated.stop(replicated.master(), graceful=False)
        deadline = time.monotonic() + 45
        while (await api.get("/api/auth/me", headers=auth("user-0"))).status_code == 503:
            assert time.monotonic() < deadline, (
                f"no account answer 45 s after the master died\n{server.logs()[-3000:]}"
            )
            await asyncio.sleep(0.5)
        for i, account in enumerate(made):
            answer = await api.get("/api/auth/me", headers=auth(f"user-{i}"))
            assert answer.json() == account

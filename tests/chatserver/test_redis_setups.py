"""Redis as production runs it: with a password, and behind Sentinel."""

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from websockets.exceptions import ConnectionClosed

from tests.chatserver.client import joined
from tests.fixtures.processes import ChatFactory, free_port, redis_ping, start_redis, wait_until

pytestmark = pytest.mark.redis
PASSWORD = "correct horse battery staple"
JWT_SECRET = "redis-setups-test-secret-of-32-bytes-or-more"


@pytest.fixture
def protected_redis(tmp_path: Path) -> Iterator[int]:
    port = free_port()
    proc = start_redis(
        ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--requirepass", PASSWORD],
        tmp_path / "redis.log",
    )
    wait_until(lambda: redis_ping(port, PASSWORD), timeout=10, what="redis with a password")
    yield port
    proc.kill()
    proc.wait()


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
        ASOCIAL_REDIS_URL=f"redis://:wrong@127.0.0.1:{protected_redis}/0",
    )
    async with httpx.AsyncClient() as http:
        response = await http.get(server.http("/ready"))
    assert response.status_code == 503
    assert response.json()["checks"]["redis"] == "down"
    assert "wrong" not in server.logs()


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A master, a replica and one Sentinel watching them: (Sentinel port, master)."""
    master, replica, sentinel_port = free_port(), free_port(), free_port()
    procs = [
        start_redis(
            ["--port", str(master), "--bind", "127.0.0.1", "--save", ""], tmp_path / "m.log"
        ),
        start_redis(
            [
                "--port",
                str(replica),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--replicaof",
                "127.0.0.1",
                str(master),
            ],
            tmp_path / "r.log",
        ),
    ]
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port {sentinel_port}\nbind 127.0.0.1\n"
        f"sentinel monitor asocial 127.0.0.1 {master} 1\n"
        "sentinel down-after-milliseconds asocial 1000\n"
        "sentinel failover-timeout asocial 5000\n"
    )
    procs.append(start_redis([str(conf), "--sentinel"], tmp_path / "s.log"))
    try:
        wait_until(lambda: redis_ping(sentinel_port), timeout=10, what="sentinel")
        wait_until(
            lambda: (
                "master_link_status:up"
                in subprocess.run(
                    ["redis-cli", "-p", str(replica), "info", "replication"],
                    capture_output=True,
                    text=True,
                    check=False,
                ).stdout
            ),
            timeout=15,
            what="the replica to sync",
        )
        # Sentinel learns of replicas from the master's INFO, every 10 s; a failover
        # before that finds "no good slave".
        wait_until(
            lambda: (
                f"\n{replica}\n"
                in subprocess.run(
                    ["redis-cli", "-p", str(sentinel_port), "sentinel", "replicas", "asocial"],
                    capture_output=True,
                    text=True,
                    check=False,
                ).stdout
            ),
            timeout=20,
            what="Sentinel to discover the replica",
        )
        yield sentinel_port, procs[0]
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


async def test_through_sentinel_and_across_a_failover(
    chat_server: ChatFactory, sentinel: tuple[int, subprocess.Popen[bytes]]
) -> None:
    port, master = sentinel
    env = {"ASOCIAL_REDIS_URL": f"redis+sentinel://127.0.0.1:{port}/asocial/0"}
    a, b = chat_server(name="a", **env), chat_server(name="b", **env)
    await _exchange(a.ws("uid=x&channel=s"), b.ws("uid=y&channel=s"))
    master.kill()
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
    chat_server: ChatFactory, sentinel: tuple[int, subprocess.Popen[bytes]]
) -> None:
    """Each account write waits for a replica's acknowledgement: killing the master right
    after the answers loses none of them."""
    port, master = sentinel
    server = chat_server(
        ASOCIAL_REDIS_URL=f"redis+sentinel://127.0.0.1:{port}/asocial/0",
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
        master.kill()
        deadline = time.monotonic() + 45
        while (await api.get("/api/auth/me", headers=auth("user-0"))).status_code == 503:
            assert time.monotonic() < deadline, (
                f"no account answer 45 s after the master died\n{server.logs()[-3000:]}"
            )
            await asyncio.sleep(0.5)
        for i, account in enumerate(made):
            answer = await api.get("/api/auth/me", headers=auth(f"user-{i}"))
            assert answer.json() == account

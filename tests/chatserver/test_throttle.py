"""The per-client request limit: chat upgrades and /api calls per client address per
minute, counted in Redis across processes, answered 429 with Retry-After."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from chatserver.broker.base import BrokerUnavailable
from chatserver.broker.memory_broker import MemoryBroker
from chatserver.limits import ClientLimiter
from chatserver.metrics import Metrics
from chatserver.throttle import Throttle
from tests.chatserver.traffic import metric
from tests.fixtures.processes import ChatFactory, ChatProcess, RedisProcess

LIMIT = 10


def address() -> str:
    """A client address no other test uses (2001:db8::/32 is for documentation)."""
    return f"2001:db8::{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}"


async def upgrade(server: ChatProcess, forwarded_for: str) -> int:
    """The status a chat upgrade gets: 101, or the refusal's."""
    try:
        async with connect(
            server.ws(f"uid=u{uuid.uuid4().hex[:6]}"),
            additional_headers={"X-Forwarded-For": forwarded_for},
            open_timeout=10,
        ):
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


@pytest.fixture
def pods(chat_server: ChatFactory, redis_server: RedisProcess) -> list[ChatProcess]:
    env = {
        "ASOCIAL_REDIS_URL": redis_server.url,
        "ASOCIAL_CLIENT_RATE_LIMIT_PER_MINUTE": str(LIMIT),
        "ASOCIAL_TRUSTED_PROXIES": "127.0.0.1",  # the test plays the proxy in front
    }
    return [chat_server(name="a", **env), chat_server(name="b", **env)]


async def test_the_request_over_the_limit_gets_429_on_either_pod(pods: list[ChatProcess]) -> None:
    async with httpx.AsyncClient(timeout=10) as http:

        async def requests() -> tuple[list[int], httpx.Response, int, int]:
            client, other = address(), address()
            codes = []
            for n in range(LIMIT):  # API calls and upgrades, alternating pods
                pod = pods[n % 2]
                if n % 2:
                    codes.append(await upgrade(pod, client))
                else:
                    answer = await http.get(
                        pod.http("/api/rooms/public"), headers={"X-Forwarded-For": client}
                    )
                    codes.append(answer.status_code)
            over = await http.get(
                pods[1].http("/api/rooms/public"), headers={"X-Forwarded-For": client}
            )
            over_upgrade = await upgrade(pods[0], client)
            other_code = await upgrade(pods[1], other)
            return codes, over, over_upgrade, other_code

        codes, over, over_upgrade, other_code = await _minute(requests)
        assert codes == [200, 101] * (LIMIT // 2)
        assert over.status_code == 429
        assert 1 <= int(over.headers["retry-after"]) <= 60
        body = over.json()
        assert body["code"] == "rate_limited"
        assert f"try again in {over.headers['retry-after']} s" in body["message"]
        assert over_upgrade == 429
        assert other_code == 101, "another address has a count of its own"
        # The page, its files and the probes are never counted.
        for path in ("/", "/health", "/ready"):
            page = await http.get(pods[0].http(path), headers={"X-Forwarded-For": "2001:db8::1"})
            assert page.status_code == 200, path
    limited = sum([await metric(p, "client_requests_limited_total", 'kind="api"') for p in pods])
    assert limited >= 1


async def test_a_forwarded_for_the_client_writes_itself_does_not_move_the_count(
    pods: list[ChatProcess],
) -> None:
    """Through a proxy the client's own X-Forwarded-For comes first and the proxy appends
    the address it saw: the count follows that address, not the one the client wrote."""
    async with httpx.AsyncClient(timeout=10) as http:

        async def requests() -> tuple[list[int], int]:
            attacker, victim = address(), address()
            codes = []
            for _ in range(LIMIT + 1):
                answer = await http.get(
                    pods[0].http("/api/rooms/public"),
                    headers={"X-Forwarded-For": f"{victim}, {attacker}"},
                )
                codes.append(answer.status_code)
            victims = await http.get(
                pods[1].http("/api/rooms/public"), headers={"X-Forwarded-For": victim}
            )
            return codes, victims.status_code

        codes, victim_code = await _minute(requests)
    assert codes == [200] * LIMIT + [429]
    assert victim_code == 200


async def test_limiter_counts_per_address_and_says_when_to_retry() -> None:
    limiter = ClientLimiter(MemoryBroker(), per_minute=2)
    waits = [await limiter.retry_after("a") for _ in range(3)]
    assert waits[:2] == [None, None]
    assert waits[2] is not None
    assert 1 <= waits[2] <= 60
    assert await limiter.retry_after("b") is None


async def test_the_limit_steps_aside_while_redis_is_away() -> None:
    class Away(MemoryBroker):
        async def count(self, key: str, *, window_s: int) -> int:
            raise BrokerUnavailable("redis is not answering")

    throttle = Throttle(ClientLimiter(Away(), per_minute=1), Metrics())
    scope = {"type": "http", "path": "/api/rooms/public", "client": ("2001:db8::2", 1)}

    async def send(message: Any) -> None:
        raise AssertionError(f"nothing should be sent: {message}")

    assert not await throttle.refused(scope, send)


async def _minute(run: Callable[[], Any]) -> Any:
    """``await run()`` again until it starts and ends in the same clock minute (the
    limit's window), so a window that turned midway cannot decide the outcome."""
    while True:
        minute = int(time.time() // 60)
        result = await run()
        if int(time.time() // 60) == minute:
            return result

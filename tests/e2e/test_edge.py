"""Through the devcluster's real edge: Traefik serving the Gateway
devcluster-system/devcluster on 127.0.0.1:8080 (HTTP) and 127.0.0.1:8443 (HTTPS, signed by
the devcluster's CA), and Ingresses of class traefik."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.e2e.conftest import Report, Stack, get_json, wait_for
from tests.e2e.gateway import ADDRESS, GATEWAY, HTTP_PORT, HTTPS_PORT, Site, pod_metric, trust
from tests.fixtures.devcluster import Kubectl
from tests.fixtures.users import Route

pytestmark = [pytest.mark.devcluster, pytest.mark.e2e]


def on_the_gateway(stack_factory: Callable[[str], Stack], **backend: object) -> tuple[Stack, Site]:
    """An instance Ready with its own host on the Gateway, and the Gateway serving it."""
    stack = stack_factory("chat")
    site = Site.of(stack)
    stack.apply(site.spec(**backend))
    stack.wait_ready()
    site.wait_served()
    return stack, site


def chat(mid: str, text: str) -> str:
    frame = {"type": "chat", "message_id": mid, "payload": text, "position": {"x": 1, "y": 2}}
    return json.dumps(frame)


async def chat_through(route: Route, room: str, text: str = "hello through the edge") -> None:
    """Two users in ``room`` by ``route``; one's frame reaches the other."""
    async with (
        connect(route.url(f"channel={room}&uid=ann"), **route.options) as ann,
        connect(route.url(f"channel={room}&uid=bob"), **route.options) as bob,
    ):
        await ann.send(chat("a1", text))
        async with asyncio.timeout(10):
            while True:
                frame = json.loads(await bob.recv())
                if frame["type"] == "chat":
                    break
        assert (frame["user_id"], frame["payload"]) == ("ann", text)


def gateway_condition(stack: Stack) -> dict[str, str] | None:
    conditions = stack.status().get("conditions") or []
    return next((c for c in conditions if c["type"] == "GatewayReady"), None)


async def test_a_user_chats_over_wss_through_the_gateway_with_the_certificate_verified(
    stack_factory: Callable[[str], Stack], report: Report
) -> None:
    stack, site = on_the_gateway(stack_factory)
    status = stack.status()
    # The listener's port is the proxy's own (a load balancer usually maps 443 to it):
    # the URL names the host only.
    assert status["endpoint"] == f"https://{site.host}", status["endpoint"]
    accepted = gateway_condition(stack)
    assert accepted is not None
    assert accepted["status"] == "True", accepted
    assert "Accepted, ResolvedRefs" in accepted["message"]
    route = site.route()
    started = time.monotonic()
    async with connect(route.url("uid=first"), **route.options):
        report.record("wss_connect_through_gateway_seconds", round(time.monotonic() - started, 3))
    await chat_through(site.route(), f"edge-{uuid.uuid4().hex[:6]}")
    # The certificate is checked: a client that trusts only the public CAs is refused.
    with pytest.raises(OSError, match="CERTIFICATE_VERIFY_FAILED"):
        async with connect(route.url("uid=x"), host=ADDRESS, port=HTTPS_PORT):
            pass


async def test_private_paths_are_not_reachable_through_the_edge(
    stack_factory: Callable[[str], Stack],
) -> None:
    _, site = on_the_gateway(stack_factory)
    async with httpx.AsyncClient(verify=trust(), timeout=10) as http:
        assert (await site.get(http, "/")).status_code == 200
        assert (await site.get(http, "/api/rooms/public")).status_code == 200
        for path in ("/metrics", "/ready", "/health"):
            answer = await site.get(http, path)
            assert answer.status_code == 404, (path, answer.status_code)
            assert "websocket_connections" not in answer.text


async def test_the_101st_request_of_a_minute_gets_429_on_every_pod_however_it_is_forwarded(
    stack_factory: Callable[[str], Stack],
) -> None:
    """The seed's 100 requests a minute per client address, counted across pods.

    Each request through Traefik carries a client-written X-Forwarded-For (a stranger's
    address); it must not move the count. Then the 101st goes to each of the three pods
    as Traefik would send it (from the node, naming the client 127.0.0.1): each refuses
    it, whichever pods served the first 100. Another client address (127.0.0.2, through
    the same proxy) keeps its own count."""
    stack, site = on_the_gateway(stack_factory, clientRateLimitPerMinute=100)
    pods = stack.backend_urls()
    assert len(pods) == 3
    other = httpx.AsyncHTTPTransport(local_address="127.0.0.2", verify=trust())
    async with (
        httpx.AsyncClient(verify=trust(), timeout=10) as http,
        httpx.AsyncClient(transport=other, timeout=10) as neighbour,
    ):
        while True:
            minute = int(time.time() // 60)
            codes = []
            for n in range(100):
                spoof = {"X-Forwarded-For": f"203.0.113.{n}"}
                codes.append((await site.get(http, "/api/rooms/public", spoof)).status_code)
            forwarded = {"X-Forwarded-For": "127.0.0.1"}
            on_each_pod = [
                (await http.get(f"{pod}/api/rooms/public", headers=forwarded)).status_code
                for pod in pods
            ]
            route = site.route()
            try:
                async with connect(route.url("uid=late"), **route.options):
                    upgrade = 101
            except InvalidStatus as exc:
                upgrade = exc.response.status_code
            neighbours = (await site.get(neighbour, "/api/rooms/public")).status_code
            if int(time.time() // 60) == minute:
                break
            await asyncio.sleep(61 - time.time() % 60)  # it straddled two windows: again
    assert codes == [200] * 100
    assert on_each_pod == [429] * 3
    assert upgrade == 429
    assert neighbours == 200
    limited = pod_metric(stack, "client_requests_limited_total")
    assert sum(limited.values()) == 4, limited


async def test_a_refused_route_says_why(stack_factory: Callable[[str], Stack]) -> None:
    stack = stack_factory("chat")
    nowhere = {**GATEWAY, "sectionName": "nope"}
    stack.apply({"ingress": {"enabled": False}, "gateway": {"parentRefs": [nowhere]}})

    def refused() -> str | None:
        gateway = gateway_condition(stack)
        if gateway and gateway["status"] == "False" and gateway["reason"] == "NotAccepted":
            return str(gateway["message"])
        return None

    message = wait_for(refused, "GatewayReady False with Traefik's refusal", timeout=120)
    assert "Gateway devcluster-system/devcluster (listener nope)" in message
    assert stack.status()["phase"] != "Ready"


async def test_a_deleted_route_is_restored_and_carries_chats_again(
    stack_factory: Callable[[str], Stack], kubectl: Kubectl
) -> None:
    stack, site = on_the_gateway(stack_factory)
    before = get_json(kubectl, "httproute", "chat", "-n", stack.namespace)["metadata"]["uid"]
    kubectl("delete", "httproute", "chat", "-n", stack.namespace)

    def restored() -> bool:
        route = get_json(kubectl, "httproute", "chat", "-n", stack.namespace)
        parents = route.get("status", {}).get("parents") or []
        accepted = any(
            c["type"] == "Accepted" and c["status"] == "True"
            for p in parents
            for c in p.get("conditions", [])
        )
        return route["metadata"]["uid"] != before and accepted

    wait_for(restored, "the HTTPRoute back and accepted", timeout=120)
    await asyncio.to_thread(site.wait_served)
    await chat_through(site.route(), f"back-{uuid.uuid4().hex[:6]}")


async def test_an_ingress_of_class_traefik_carries_a_chat(
    stack_factory: Callable[[str], Stack],
) -> None:
    stack = stack_factory("chat")
    host = f"{stack.namespace}.devcluster.test"
    stack.apply({"ingress": {"enabled": True, "className": "traefik", "host": host}})
    stack.wait_ready()

    def served() -> bool:  # Traefik reads the Ingress a moment after the instance is Ready
        answer = httpx.get(f"http://{ADDRESS}:8080/api/rooms/public", headers={"Host": host})
        return answer.status_code == 200

    wait_for(served, "Traefik serving the Ingress", timeout=60)
    route = Route(
        lambda query: f"ws://{host}:{HTTP_PORT}/api/chat?{query}",
        {"host": ADDRESS, "port": HTTP_PORT},
    )
    await chat_through(route, f"ing-{uuid.uuid4().hex[:6]}", "hello through an Ingress")

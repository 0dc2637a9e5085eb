"""A rolling upgrade with live users: a setting changes, the backend pods roll one at a
time, every connected client is drained with 1001 and reconnects (some through the
Service, some through the devcluster's Gateway over wss://), and no keystroke is lost (the
client resends what is still on screen; late joiners get the replay)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import pytest

from tests.e2e.conftest import Report, Stack, get_json
from tests.e2e.gateway import Site
from tests.fixtures.users import Route, Typist, Watcher, typing_users

pytestmark = [pytest.mark.devcluster, pytest.mark.e2e]

# Who goes which way: a watcher on each route, typists on both.
TYPISTS_VIA = ("service", "gateway", "service")


async def test_rolling_upgrade_under_typing_users_loses_no_keystroke(
    stack_factory: Callable[[str], Stack], report: Report
) -> None:
    """One rollout, users through both routes at once: what a watcher behind the Gateway
    sees of typists behind the Service and the other way round, during the same drains."""
    stack = stack_factory("chat")
    site = Site.of(stack)
    edge = site.spec()
    stack.apply(edge)
    stack.wait_ready()
    site.wait_served()
    old_pods = {p["metadata"]["name"] for p in stack.pods("backend")}
    service = f"ws://{stack.service_ip('chat-backend')}:8080/api/chat?"
    routes = {"service": Route(lambda q: service + q), "gateway": site.route()}
    channel = "upgrade-" + uuid.uuid4().hex[:6]
    watchers = [Watcher(route, channel, f"w-{via}") for via, route in routes.items()]
    typists = [
        Typist(routes[via], channel, f"t{i}-{via}", rate=10) for i, via in enumerate(TYPISTS_VIA)
    ]
    ready_seen: list[int] = []
    async with typing_users(typists, watchers, messages=20) as users:  # 40 s of typing each
        started = time.monotonic()
        stack.apply({**edge, "backend": {"logLevel": "DEBUG"}})  # new config: the pods roll

        def rolled() -> bool:
            body = get_json(stack.kubectl, "deploy", "chat-backend", "-n", stack.namespace)
            ready_seen.append(int(body["status"].get("readyReplicas", 0)))
            current = {p["metadata"]["name"] for p in stack.pods("backend")}
            return len(current) == 3 and not current & old_pods

        while not await asyncio.to_thread(rolled):
            assert time.monotonic() - started < 240, "the rollout did not finish in 240 s"
            await asyncio.sleep(0.5)
        rollout = time.monotonic() - started
    stack.wait_ready()
    drained = users.close_codes.count(1001)
    other_codes = [c for c in users.close_codes if c != 1001]
    typed = users.typed
    lost = {via: users.lost(w) for via, w in zip(routes, watchers, strict=True)}
    report.record("rolling_upgrade_seconds", round(rollout, 1))
    report.record("rolling_upgrade_min_ready_pods", min(ready_seen))
    report.record(
        "rolling_upgrade_keystrokes",
        f"{typed} typed by {len(typists)} users (via {', '.join(TYPISTS_VIA)}), "
        f"lost per watcher: {lost}, "
        f"{drained} drains with 1001",
    )
    assert drained >= 3, [t.connection.close_codes for t in typists]
    assert not other_codes, other_codes
    assert min(ready_seen) >= 2, ready_seen  # the PDB's promise: one pod down at most
    assert all(v == 0 for v in lost.values()), lost

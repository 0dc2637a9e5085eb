"""A rolling upgrade with live users: a setting changes, the backend pods roll one at a
time, every connected client is drained with 1001 and reconnects (through the Service,
or through the devcluster's Gateway over wss://), and no keystroke is lost (the client
resends what is still on screen; late joiners get the replay)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import pytest

from tests.e2e.conftest import Report, Stack, get_json
from tests.e2e.gateway import Site
from tests.e2e.users import Route, Typist, Watcher, typing_users

pytestmark = [pytest.mark.devcluster, pytest.mark.e2e]


@pytest.mark.parametrize("via", ["service", "gateway"])
async def test_rolling_upgrade_under_typing_users_loses_no_keystroke(
    stack_factory: Callable[[str], Stack], report: Report, via: str
) -> None:
    stack = stack_factory("chat")
    site = Site.of(stack)
    edge = site.spec() if via == "gateway" else {}
    stack.apply(edge)
    stack.wait_ready()
    if via == "gateway":
        site.wait_served()
    old_pods = {p["metadata"]["name"] for p in stack.pods("backend")}
    if via == "gateway":
        route = site.route()
    else:
        service = f"ws://{stack.service_ip('chat-backend')}:8080/api/chat?"
        route = Route(lambda q: service + q)
    channel = "upgrade-" + uuid.uuid4().hex[:6]
    watchers = [Watcher(route, channel, f"w{i}") for i in range(2)]
    typists = [Typist(route, channel, f"t{i}", rate=10) for i in range(3)]
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
    lost = {w.connection.query: users.lost(w) for w in watchers}
    report.record(f"rolling_upgrade_seconds[{via}]", round(rollout, 1))
    report.record(f"rolling_upgrade_min_ready_pods[{via}]", min(ready_seen))
    report.record(
        f"rolling_upgrade_keystrokes[{via}]",
        f"{typed} typed by 3 users, lost per watcher: {sorted(lost.values())}, "
        f"{drained} drains with 1001",
    )
    assert drained >= 3, [t.connection.close_codes for t in typists]
    assert not other_codes, other_codes
    assert min(ready_seen) >= 2, ready_seen  # the PDB's promise: one pod down at most
    assert all(v == 0 for v in lost.values()), lost

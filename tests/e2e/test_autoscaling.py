"""The HPA on real metrics: chat load on one backend pod makes the autoscaler add pods
(metrics-server's CPU numbers), and it removes them after the load stops and its
scale-down window (shortened here to 20 s) has passed.

The instance scales on CPU alone (``targetMemoryUtilizationPercentage: 0``): an idle
chat server holds about 40 % of its 128Mi request, and Python keeps what it grew to
under load, so with the default 80 % memory target two pods stay (ceil(2 x 45 / 80) = 2)
long after the load, as a CI run here showed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import Report, Stack, get_json, wait_for

pytestmark = [pytest.mark.devcluster, pytest.mark.e2e]

LOAD_CLIENTS = 12
FRAMES_PER_SECOND = 25  # under the server's 30 per connection
LOAD_SECONDS_MAX = 180


async def _typist(url: str, stop: asyncio.Event) -> None:
    """Types fast into the room and reads (and drops) everything the room says."""
    tag = url.rsplit("uid=", 1)[1].split("&", 1)[0]
    async with connect(url, open_timeout=10, max_queue=None) as conn:

        async def read() -> None:
            with contextlib.suppress(ConnectionClosed):
                async for _ in conn:
                    pass

        reader = asyncio.create_task(read())
        n = 0
        try:
            while not stop.is_set():
                n += 1
                text = "x" * (1 + n % 40)
                frame = {
                    "type": "chat",
                    "message_id": f"{tag}-m{n // 40}",  # a message is its author's
                    "payload": text,
                    "position": {"x": 1, "y": 1},
                }
                await conn.send(json.dumps(frame))
                await asyncio.sleep(1 / FRAMES_PER_SECOND)
        finally:
            reader.cancel()


def _hpa(stack: Stack) -> dict[str, int]:
    body = get_json(stack.kubectl, "hpa", "chat-backend", "-n", stack.namespace)
    deployment = get_json(stack.kubectl, "deploy", "chat-backend", "-n", stack.namespace)
    return {
        "desired": int(body["status"].get("desiredReplicas", 0)),
        "ready": int(deployment["status"].get("readyReplicas", 0)),
    }


async def test_load_scales_the_backend_up_and_quiet_scales_it_down(
    stack_factory: Callable[[str], Stack], report: Report
) -> None:
    stack = stack_factory("chat")
    stack.apply(
        {
            "autoscaling": {
                "minReplicas": 1,
                "maxReplicas": 3,
                "targetCPUUtilizationPercentage": 50,
                "targetMemoryUtilizationPercentage": 0,
                "scaleDownStabilizationSeconds": 20,
            }
        }
    )
    stack.wait_ready()
    assert _hpa(stack)["ready"] == 1

    def hpa_sees_cpu() -> bool:
        body = get_json(stack.kubectl, "hpa", "chat-backend", "-n", stack.namespace)
        return any(
            m.get("resource", {}).get("current", {}).get("averageUtilization") is not None
            for m in body.get("status", {}).get("currentMetrics") or []
        )

    # The autoscaler needs a first metrics-server sample of the new pod (every 15 s).
    await asyncio.to_thread(wait_for, hpa_sees_cpu, "the HPA's first CPU reading", 120)
    service = f"ws://{stack.service_ip('chat-backend')}:8080/api/chat?"
    channel = "load-" + uuid.uuid4().hex[:6]
    stop = asyncio.Event()
    started = time.monotonic()
    load = [
        asyncio.create_task(_typist(service + f"uid=load{i}&channel={channel}", stop))
        for i in range(LOAD_CLIENTS)
    ]
    try:
        decided = ready = None
        while ready is None:
            failed = [t.exception() for t in load if t.done() and not t.cancelled()]
            assert not any(failed), f"load clients failed: {failed}"
            assert time.monotonic() - started < LOAD_SECONDS_MAX, (
                f"no scale-up: {_hpa(stack)} "
                f"{get_json(stack.kubectl, 'hpa', 'chat-backend', '-n', stack.namespace)['status']}"
            )
            state = await asyncio.to_thread(_hpa, stack)
            if decided is None and state["desired"] > 1:
                decided = time.monotonic() - started
            if state["ready"] > 1:
                ready = time.monotonic() - started
            await asyncio.sleep(1)
    finally:
        stop.set()
        await asyncio.gather(*load, return_exceptions=True)
    quiet = time.monotonic()
    scaled_down = None
    while scaled_down is None:
        assert time.monotonic() - quiet < 240, f"no scale-down: {_hpa(stack)}"
        if (await asyncio.to_thread(_hpa, stack))["desired"] == 1:
            scaled_down = time.monotonic() - quiet
        await asyncio.sleep(1)
    report.record("hpa_scale_up_decided_seconds", round(decided or ready, 1))
    report.record("hpa_scale_up_pod_ready_seconds", round(ready, 1))
    report.record("hpa_scale_down_after_quiet_seconds", round(scaled_down, 1))

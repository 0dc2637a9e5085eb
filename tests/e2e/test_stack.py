"""A platform team's path, for real: the operator in-cluster (two replicas, one leader),
an instance Ready only when its real pods are, and users on different backend pods
chatting through the deployed Redis."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

import pytest
import redis

from tests.chatserver.client import client, joined
from tests.e2e.conftest import (
    OPERATOR_NS,
    Report,
    Stack,
    get_json,
    http_get,
    is_ready,
    redis_at,
    wait_for,
)
from tests.fixtures.devcluster import Kubectl

pytestmark = [pytest.mark.devcluster, pytest.mark.e2e]


def ws(base: str, query: str) -> str:
    return base.replace("http://", "ws://") + "/api/chat?" + query


def chat(mid: str, text: str) -> dict[str, object]:
    return {"type": "chat", "message_id": mid, "payload": text, "position": {"x": 10, "y": 20}}


def test_the_operator_runs_in_cluster_with_one_leader(
    kubectl: Kubectl, operator_installed: None
) -> None:
    pods = get_json(
        kubectl, "pods", "-n", OPERATOR_NS, "-l", "app.kubernetes.io/name=asocial-operator"
    )["items"]
    running = [p for p in pods if is_ready(p) and not p["metadata"].get("deletionTimestamp")]
    assert len(running) == 2, [p["metadata"]["name"] for p in pods]
    for pod in running:
        assert pod["spec"]["nodeName"] == "devcluster-node"
        assert pod["spec"]["serviceAccountName"] == "asocial-operator"
        container = pod["status"]["containerStatuses"][0]
        assert container["image"].endswith("asocial-operator:0.1.0"), container["image"]
    names = {p["metadata"]["name"] for p in running}

    def leader() -> str | None:
        # A previous installation's leader may hold the Lease until its pod has stopped.
        spec = get_json(kubectl, "lease", "asocial-operator", "-n", OPERATOR_NS)["spec"]
        holder = str(spec.get("holderIdentity") or "")
        return holder if any(holder.startswith(name) for name in names) else None

    wait_for(leader, f"one of {sorted(names)} to lead")

    # Liveness and metrics through the operator's Service, from outside the pods.
    svc = get_json(kubectl, "svc", "asocial-operator", "-n", OPERATOR_NS)["spec"]["clusterIP"]

    def answered(url: str) -> str | None:
        # kube-proxy may still route to a previous installation's pods for a moment.
        status, body = http_get(url)
        return body if status == 200 else None

    wait_for(lambda: answered(f"http://{svc}:8080/healthz"), "liveness through the Service", 30)
    metrics = wait_for(lambda: answered(f"http://{svc}:9090/metrics"), "metrics", 30)
    assert "# TYPE asocial_operator_reconciles_total counter" in metrics, metrics[:500]


async def test_an_instance_is_ready_on_real_pods_and_users_chat_across_them(
    stack_factory: Callable[[str], Stack], report: Report
) -> None:
    stack = stack_factory("chat")
    started = time.monotonic()
    stack.apply()
    # Ready only once the real pods are: every backend pod answers /ready itself.
    stack.wait_ready(timeout=300)
    report.record("apply_to_ready_seconds", round(time.monotonic() - started, 1))
    status = stack.status()
    assert status["backend"]["ready"] == "3/3", status
    assert status["redis"]["ready"] == "1/1", status
    urls = stack.backend_urls()
    assert len(urls) == 3
    for url in urls:
        code, body = http_get(url + "/ready")
        assert code == 200, body
        assert json.loads(body)["checks"]["redis"] == "ok"
    table = stack.kubectl("get", "asi", "-n", stack.namespace).stdout
    assert "Ready" in table, table
    assert "3/3" in table, table

    # Redis answers with the generated password, and refuses a wrong one.
    password = stack.secret_value("chat-redis-auth", "redis-password")
    redis_pod = stack.pods("redis")[0]
    assert redis_pod["spec"]["nodeName"] == "devcluster-node"
    redis_ip = redis_pod["status"]["podIP"]
    assert redis_at(redis_ip, password=password).ping() is True
    with pytest.raises(redis.AuthenticationError, match="invalid username-password pair"):
        redis_at(redis_ip, password="not-" + password).ping()

    # Users on two different pods: keystrokes, presence, late-joiner replay.
    a, b, c = urls
    room = "e2e-" + uuid.uuid4().hex[:6]
    async with joined(ws(a, f"uid=ann&username=Ann&channel={room}")) as ann:
        async with client(ws(b, f"uid=bob&username=Bob&channel={room}")) as bob:
            sync = await bob.recv_type("user_sync")
            assert {u["user_id"] for u in sync["users"]} == {"ann", "bob"}
            await ann.recv_type("user_joined", user_id="bob")
            for text in ("h", "hi", "hi b", "hi bo", "hi bob"):
                await ann.send(chat("m1", text))
                got = await bob.recv_type("chat", message_id="m1")
                assert (got["payload"], got["user_id"]) == (text, "ann")
            await bob.send(chat("m2", "hey ann"))
            assert (await ann.recv_type("chat", message_id="m2"))["payload"] == "hey ann"
            # A late joiner on the third pod sees what is still on screen.
            async with client(ws(c, f"uid=cat&channel={room}")) as cat:
                replayed = [f for f in await cat.drain(1.0) if f["type"] == "chat"]
                latest = {f["message_id"]: f["payload"] for f in replayed}
                assert latest == {"m1": "hi bob", "m2": "hey ann"}, replayed
        await ann.recv_type("user_left", user_id="bob")

"""The images `make images` builds from Dockerfile.server and Dockerfile.operator: each
runs as its non-root user, carries no compiler or installer and only its own program's
libraries, starts, and answers its health endpoint."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import (
    CHAT_IMAGE,
    NODE,
    OPERATOR_IMAGE,
    OPERATOR_NS,
    Report,
    get_json,
    http_get,
    is_ready,
    wait_for,
)
from tests.fixtures.devcluster import Kubectl

pytestmark = [pytest.mark.devcluster, pytest.mark.e2e]

# Python run inside a container: who am I, what is on PATH, what imports.
PROBE = """
import importlib.util, json, os, shutil
print(json.dumps({
    "uid": os.getuid(),
    "tools": sorted(t for t in ("gcc", "cc", "c++", "g++", "make", "pip", "pip3")
                    if shutil.which(t)),
    "modules": {m: importlib.util.find_spec(m) is not None for m in (
        "chatserver", "asocial_operator", "fastapi", "uvicorn", "redis", "kopf",
        "kubernetes")},
}))
"""


def probe(kubectl: Kubectl, namespace: str, pod: str) -> dict[str, Any]:
    out = kubectl("exec", "-n", namespace, pod, "--", "python3", "-c", PROBE).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def image_size(kubectl: Kubectl, ref: str) -> int:
    node = get_json(kubectl, "node", NODE)
    for image in node["status"].get("images", []):
        if any(name.endswith(ref) for name in image.get("names") or []):
            return int(image["sizeBytes"])
    raise AssertionError(f"{ref} is not on {NODE}")


@pytest.fixture
def chat_pod(kubectl: Kubectl, real_node: str) -> Iterator[tuple[str, str]]:
    """The chat image run as it comes: its own entrypoint and user, nothing set by us
    but "must not be root" (the kubelet refuses to start a root image then)."""
    namespace = f"e2e-img-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", namespace)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "chat"},
        "spec": {
            "securityContext": {"runAsNonRoot": True},
            "containers": [
                {
                    "name": "chat",
                    "image": CHAT_IMAGE,
                    "imagePullPolicy": "Never",
                    "readinessProbe": {
                        "httpGet": {"path": "/health", "port": 8080},
                        "periodSeconds": 1,
                    },
                }
            ],
        },
    }
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(pod))
    try:
        yield namespace, "chat"
    finally:
        kubectl("delete", "namespace", namespace, "--wait=false")


def test_chat_image_runs_as_non_root_with_only_the_chat_server(
    kubectl: Kubectl, chat_pod: tuple[str, str], report: Report
) -> None:
    namespace, name = chat_pod

    def ready_pod() -> dict[str, Any] | None:
        pod = get_json(kubectl, "pod", name, "-n", namespace)
        return pod if is_ready(pod) else None

    pod = wait_for(ready_pod, "the chat image's pod Ready", 60)
    status, body = http_get(f"http://{pod['status']['podIP']}:8080/health")
    assert status == 200, body
    assert json.loads(body)["status"] == "ok"
    found = probe(kubectl, namespace, name)
    assert found["uid"] == 10001
    assert found["tools"] == []
    assert found["modules"] == {
        "chatserver": True,
        "fastapi": True,
        "uvicorn": True,
        "redis": True,
        "asocial_operator": False,
        "kopf": False,
        "kubernetes": False,
    }
    report.record("image_asocial_chat_mib", round(image_size(kubectl, CHAT_IMAGE) / 2**20, 1))


def test_operator_image_runs_as_non_root_with_only_the_operator(
    kubectl: Kubectl, operator_installed: None, report: Report
) -> None:
    pods = get_json(
        kubectl, "pods", "-n", OPERATOR_NS, "-l", "app.kubernetes.io/name=asocial-operator"
    )["items"]
    running = [p for p in pods if is_ready(p) and not p["metadata"].get("deletionTimestamp")]
    assert running
    ip = running[0]["status"]["podIP"]
    status, _ = http_get(f"http://{ip}:8080/healthz")
    assert status == 200
    found = probe(kubectl, OPERATOR_NS, running[0]["metadata"]["name"])
    assert found["uid"] == 10001
    assert found["tools"] == []
    assert found["modules"] == {
        "chatserver": False,
        "fastapi": False,
        "uvicorn": False,
        "redis": False,
        "asocial_operator": True,
        "kopf": True,
        "kubernetes": True,
    }
    report.record(
        "image_asocial_operator_mib", round(image_size(kubectl, OPERATOR_IMAGE) / 2**20, 1)
    )

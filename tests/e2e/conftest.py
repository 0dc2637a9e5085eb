"""The real stack: the images built here, the operator installed in-cluster with
``kubectl apply -k deploy/devcluster/``, instances on real pods on the devcluster's node.

These tests run after every other test but the ``last`` ones (see ``tests/conftest.py``):
the in-cluster operator watches all namespaces, so it is installed only once the
operator suite's own operator processes are gone, and removed again at the end.
Measured numbers go to :class:`Report`, printed at the end of the run and written to
``$ASOCIAL_E2E_REPORT`` (default ``/tmp/asocial-e2e-report.json``).
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis

from tests.fixtures import processes
from tests.fixtures.devcluster import KUBECONFIG_ENV, Kubectl, devcluster

REPO_ROOT = Path(__file__).resolve().parents[2]
NODE = "devcluster-node"
OPERATOR_NS = "asocial-system"
CHAT_IMAGE = "devcluster.local/asocial-chat:0.1.0"
OPERATOR_IMAGE = "devcluster.local/asocial-operator:0.1.0"
REDIS_IMAGE = "devcluster.local/redis:7"
T = TypeVar("T")


def wait_for(check: Callable[[], T | None], what: str, timeout: float = 120.0) -> T:
    """``processes.wait_for`` with connection and decoding errors counted as "not yet"."""
    return processes.wait_for(
        check,
        what,
        timeout,
        tolerate=(AssertionError, KeyError, OSError, ValueError, redis.RedisError),
        interval=0.25,
    )


def redis_at(host: str, port: int = 6379, password: str | None = None) -> redis.Redis:
    """A redis-py client for one real Redis or Sentinel (answers decoded)."""
    return redis.Redis(
        host=host, port=port, password=password, socket_timeout=5, decode_responses=True
    )


def http_get(url: str, timeout: float = 3.0) -> tuple[int, str]:
    """Status and body; status 0 when there was no HTTP answer (refused, timed out)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return 0, repr(exc)


@dataclass
class Report:
    """Numbers measured on the real stack, by name (seconds unless the name says)."""

    values: dict[str, Any] = field(default_factory=dict)

    def record(self, name: str, value: Any) -> None:
        self.values[name] = value
        print(f"[e2e] {name} = {value}")


_REPORT = Report()


@pytest.fixture(scope="session")
def report() -> Report:
    return _REPORT


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _REPORT.values:
        return
    terminalreporter.section("real-stack measurements")
    for name, value in _REPORT.values.items():
        terminalreporter.write_line(f"{name}: {value}")
    path = Path(os.environ.get("ASOCIAL_E2E_REPORT", "/tmp/asocial-e2e-report.json"))
    path.write_text(json.dumps(_REPORT.values, indent=2) + "\n")


def get_json(kubectl: Kubectl, *args: str) -> dict[str, Any]:
    out = kubectl("get", *args, "-o", "json")
    value: dict[str, Any] = json.loads(out.stdout)
    return value


@pytest.fixture(scope="session")
def real_node(kubectl: Kubectl) -> str:
    if os.environ.get(KUBECONFIG_ENV):
        pytest.skip("an external cluster: the devcluster's real node and images are not there")
    node = get_json(kubectl, "node", NODE)
    ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert ready, node["status"]["conditions"]
    assert ready[0]["status"] == "True", node["status"]["conditions"]
    # Cached by content: a no-op unless the sources changed since `make images`.
    devcluster("images")
    return NODE


@pytest.fixture(scope="session")
def operator_installed(kubectl: Kubectl, real_node: str) -> Iterator[None]:
    """``kubectl apply -k deploy/devcluster/``, then both replicas running the current
    image; the operator Deployment is deleted at the end (the CRD stays)."""
    kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "-k",
        str(REPO_ROOT / "deploy" / "devcluster"),
    )
    kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/asocialinstances.asocial.io",
    )
    # The image tag stays while its content follows the sources: start fresh pods.
    kubectl("rollout", "restart", "deploy/asocial-operator", "-n", OPERATOR_NS)
    kubectl(
        "rollout",
        "status",
        "deploy/asocial-operator",
        "-n",
        OPERATOR_NS,
        "--timeout=180s",
        timeout=200,
    )
    yield
    kubectl("delete", "deploy/asocial-operator", "-n", OPERATOR_NS, "--ignore-not-found")


def instance_body(name: str, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    """An AsocialInstance on the real node with the local images; ``spec`` merged over."""
    body: dict[str, Any] = {
        "apiVersion": "asocial.io/v1alpha1",
        "kind": "AsocialInstance",
        "metadata": {"name": name},
        "spec": {
            # Every test client reaches the pods from the node's one address.
            "backend": {"image": CHAT_IMAGE, "clientRateLimitPerMinute": 0},
            "redis": {"image": REDIS_IMAGE},
            "ingress": {"enabled": False},
        },
    }
    for key, value in (spec or {}).items():
        if isinstance(value, dict) and isinstance(body["spec"].get(key), dict):
            body["spec"][key] = {**body["spec"][key], **value}
        else:
            body["spec"][key] = value
    return body


@dataclass
class Stack:
    """One namespace with one instance, and helpers to look at its real pods."""

    kubectl: Kubectl
    namespace: str
    name: str

    def apply(self, spec: dict[str, Any] | None = None) -> None:
        body = instance_body(self.name, spec)
        self.kubectl(
            "apply", "--server-side", "-n", self.namespace, "-f", "-", input=json.dumps(body)
        )

    def status(self) -> dict[str, Any]:
        body = get_json(self.kubectl, "asi", self.name, "-n", self.namespace)
        status: dict[str, Any] = body.get("status", {})
        return status

    def wait_ready(self, timeout: float = 240.0) -> float:
        """Seconds until the instance's phase is Ready for its current generation."""
        started = time.monotonic()

        def ready() -> bool:
            body = get_json(self.kubectl, "asi", self.name, "-n", self.namespace)
            status = body.get("status", {})
            conditions = {c["type"]: c for c in status.get("conditions", [])}
            cond = conditions.get("Ready", {})
            return bool(
                status.get("phase") == "Ready"
                and cond.get("observedGeneration") == body["metadata"]["generation"]
            )

        wait_for(ready, f"{self.namespace}/{self.name} Ready", timeout)
        return time.monotonic() - started

    def pods(self, component: str, *, ready_only: bool = True) -> list[dict[str, Any]]:
        items = get_json(
            self.kubectl,
            "pods",
            "-n",
            self.namespace,
            "-l",
            f"app.kubernetes.io/instance={self.name},app.kubernetes.io/component={component}",
        )["items"]
        pods = [p for p in items if not p["metadata"].get("deletionTimestamp")]
        if ready_only:
            pods = [p for p in pods if is_ready(p)]
        return sorted(pods, key=lambda p: p["metadata"]["name"])

    def backend_urls(self) -> list[str]:
        """``http://<pod IP>:8080`` of every ready backend pod."""
        return [f"http://{p['status']['podIP']}:8080" for p in self.pods("backend")]

    def service_ip(self, name: str) -> str:
        svc = get_json(self.kubectl, "svc", name, "-n", self.namespace)
        ip: str = svc["spec"]["clusterIP"]
        return ip

    def secret_value(self, name: str, key: str) -> str:
        import base64

        secret = get_json(self.kubectl, "secret", name, "-n", self.namespace)
        return base64.b64decode(secret["data"][key]).decode()


def is_ready(pod: dict[str, Any]) -> bool:
    conditions: list[dict[str, Any]] = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


@pytest.fixture
def stack_factory(kubectl: Kubectl, operator_installed: None) -> Iterator[Callable[[str], Stack]]:
    made: list[str] = []

    def make(name: str = "chat") -> Stack:
        namespace = f"e2e-{uuid.uuid4().hex[:8]}"
        kubectl("create", "namespace", namespace)
        made.append(namespace)
        return Stack(kubectl, namespace, name)

    yield make
    for namespace in made:
        kubectl("delete", "namespace", namespace, "--wait=false")

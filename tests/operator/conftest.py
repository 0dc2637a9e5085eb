"""Fixtures for operator tests against a real API server (the devcluster).

The operator runs as a real process (``python -m asocial_operator``) so tests
see exactly what users get: its CLI, logs, liveness and metrics. One shared
operator watches the ``asi-shared-*`` namespaces; tests that need their own
operator (restart, RBAC) use namespaces outside that pattern.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from asocial_operator import cluster
from tests.fixtures import processes
from tests.fixtures.devcluster import ON_FAKE_NODES, Kubectl
from tests.operator import crd

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_PATTERN = "asi-shared-*"
T = TypeVar("T")


def wait_for(check: Callable[[], T | None], what: str, timeout: float = 60.0) -> T:
    """``processes.wait_for`` with API errors counted as "not yet"."""
    return processes.wait_for(
        check, what, timeout, tolerate=(cluster.ApiError, AssertionError, KeyError)
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class OperatorProcess:
    """``asocial-operator`` as a subprocess with its log in a file."""

    def __init__(
        self,
        *,
        kubeconfig: str,
        namespaces: list[str],
        log_path: Path,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.kubeconfig = kubeconfig
        self.namespaces = namespaces
        self.log_path = log_path
        self.extra_args = list(extra_args)
        self.process: subprocess.Popen[bytes] | None = None
        self.liveness_port = free_port()
        self.metrics_port = free_port()

    def start(self, *, wait: bool = True) -> None:
        args = [sys.executable, "-m", "asocial_operator", "--kubeconfig", self.kubeconfig]
        args += [f"--namespace={ns}" for ns in self.namespaces] or ["--all-namespaces"]
        args += [
            f"--liveness=http://127.0.0.1:{self.liveness_port}/healthz",
            f"--metrics-port={self.metrics_port}",
            "--log-format=json",
            "--verbose",
            *self.extra_args,
        ]
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT, env=env
            )
        if wait:
            wait_for(self.alive, "the operator's liveness endpoint", timeout=60)

    def alive(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"operator exited {self.process.returncode}:\n{self.logs()[-3000:]}")
        try:
            url = f"http://127.0.0.1:{self.liveness_port}/healthz"
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text: str = response.read().decode()
            return text

    def stop(self, *, kill: bool = False) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture(scope="session")
def api(kubeconfig: str) -> cluster.Cluster:
    """The operator's own API helper, with admin rights, for reads and applies in tests."""
    return cluster.Cluster(cluster.load_api_client(kubeconfig))


@pytest.fixture(scope="session")
def crd_installed(kubectl: Kubectl) -> None:
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd.CRD_PATH))
    kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        f"crd/{crd.crd()['metadata']['name']}",
    )


@pytest.fixture(scope="session")
def shared_operator(
    kubeconfig: str, crd_installed: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    log = tmp_path_factory.mktemp("operator") / "shared-operator.log"
    op = OperatorProcess(kubeconfig=kubeconfig, namespaces=[SHARED_PATTERN], log_path=log)
    op.start()
    yield op
    op.stop()


def make_namespace(kubectl: Kubectl, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    return name


@pytest.fixture
def shared_ns(kubectl: Kubectl, shared_operator: OperatorProcess) -> Iterator[str]:
    """A fresh namespace watched by the shared operator."""
    name = make_namespace(kubectl, "asi-shared")
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def own_ns(kubectl: Kubectl, crd_installed: None) -> Iterator[str]:
    """A fresh namespace no shared operator watches."""
    name = make_namespace(kubectl, "asi-own")
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


def instance(name: str, namespace: str, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    """An instance whose pods go to the devcluster's kwok nodes (unless ``spec`` says
    where): these tests are about the operator, and kwok makes pods Ready at once."""
    return {
        "apiVersion": "asocial.io/v1alpha1",
        "kind": "AsocialInstance",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"scheduling": ON_FAKE_NODES, **(spec or {})},
    }


def apply_instance(kubectl: Kubectl, body: dict[str, Any]) -> None:
    """Apply as a user would (kubectl, its own field manager)."""
    kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=json.dumps(body))


def status_of(api: cluster.Cluster, namespace: str, name: str) -> dict[str, Any]:
    body = api.get("AsocialInstance", namespace, name) or {}
    result: dict[str, Any] = body.get("status") or {}
    return result


def wait_phase(
    api: cluster.Cluster, namespace: str, name: str, phase: str = "Ready", timeout: float = 90
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        body = api.get("AsocialInstance", namespace, name) or {}
        st = body.get("status") or {}
        generation = body.get("metadata", {}).get("generation")
        if st.get("phase") == phase and st.get("observedGeneration") == generation:
            return st
        return None

    try:
        return wait_for(check, f"{namespace}/{name} to be {phase}", timeout=timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; status now: {status_of(api, namespace, name)}") from None


@contextlib.contextmanager
def own_operator(
    kubeconfig: str, namespace: str, tmp_path: Path, *, name: str = "operator"
) -> Iterator[OperatorProcess]:
    op = OperatorProcess(
        kubeconfig=kubeconfig, namespaces=[namespace], log_path=tmp_path / f"{name}.log"
    )
    op.start()
    try:
        yield op
    finally:
        op.stop()

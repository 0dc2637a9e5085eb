"""An operator killed in the middle of a reconcile converges after it comes back."""

from __future__ import annotations

from pathlib import Path

import pytest

from asocial_operator import cluster
from tests.fixtures.devcluster import Kubectl
from tests.operator.conftest import (
    OperatorProcess,
    apply_instance,
    instance,
    wait_for,
    wait_phase,
)

pytestmark = pytest.mark.devcluster


def test_restart_mid_reconcile_converges(
    kubeconfig: str, kubectl: Kubectl, api: cluster.Cluster, own_ns: str, tmp_path: Path
) -> None:
    ns = own_ns
    op = OperatorProcess(kubeconfig=kubeconfig, namespaces=[ns], log_path=tmp_path / "op.log")
    op.start()
    try:
        apply_instance(kubectl, instance("chat", ns, {"redis": {"replicas": 3}}))
        # Kill it as soon as the first child lands: the pass is half done.
        wait_for(lambda: api.get("Secret", ns, "chat-redis-auth"), "the first child", timeout=30)
        op.stop(kill=True)
        password = api.get("Secret", ns, "chat-redis-auth")["data"]["redis-password"]  # type: ignore[index]

        # A change while it is down is picked up too.
        apply_instance(
            kubectl,
            instance("chat", ns, {"redis": {"replicas": 3}, "backend": {"image": "chat:3"}}),
        )
        op.start()
        wait_phase(api, ns, "chat", "Ready", timeout=120)
        dep = api.get("Deployment", ns, "chat-backend")
        assert dep is not None
        assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "chat:3"
        secret = api.get("Secret", ns, "chat-redis-auth")
        assert secret is not None
        assert secret["data"]["redis-password"] == password  # not rotated by the restart
    finally:
        op.stop()

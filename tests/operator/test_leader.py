"""Several operator replicas with --leader-elect: one reconciles, a standby takes over."""

from __future__ import annotations

import time
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

LEASE_S = 4


def holder(kubectl: Kubectl, namespace: str, name: str = "asocial-operator") -> str | None:
    result = kubectl(
        "get",
        "lease",
        name,
        "-n",
        namespace,
        "-o",
        "jsonpath={.spec.holderIdentity}",
        check=False,
    )
    return result.stdout.strip() or None if result.returncode == 0 else None


def replica(kubeconfig: str, ns: str, log_path: Path, *extra: str) -> OperatorProcess:
    return OperatorProcess(
        kubeconfig=kubeconfig,
        namespaces=[ns],
        log_path=log_path,
        extra_args=[
            "--leader-elect",
            f"--leader-elect-namespace={ns}",
            f"--leader-elect-lease-seconds={LEASE_S}",
            *extra,
        ],
    )


def reconciled(op: OperatorProcess) -> bool:
    """Whether this replica has run any reconcile (its own metrics say so)."""
    return any(
        line.startswith("asocial_operator_reconciles_total{") and not line.endswith(" 0.0")
        for line in op.metrics().splitlines()
    )


def test_one_replica_leads_and_a_standby_takes_over(
    kubeconfig: str, kubectl: Kubectl, api: cluster.Cluster, own_ns: str, tmp_path: Path
) -> None:
    ns = own_ns
    first = replica(kubeconfig, ns, tmp_path / "first.log")
    second = replica(kubeconfig, ns, tmp_path / "second.log")
    first.start()
    try:
        leader = wait_for(lambda: holder(kubectl, ns), "a lease holder", timeout=30)
        second.start()  # waits for its liveness endpoint: a standby answers it
        apply_instance(kubectl, instance("one", ns))
        wait_phase(api, ns, "one", "Ready", timeout=120)
        assert holder(kubectl, ns) == leader, "leadership moved while the leader was healthy"
        assert reconciled(first), first.logs()[-2000:]
        assert not reconciled(second), "the standby reconciled while another replica led"
        # What the alert "the operator has no leader" sums over the replicas.
        assert "asocial_operator_leader 1.0" in first.metrics().splitlines()
        assert "asocial_operator_leader 0.0" in second.metrics().splitlines()
        assert "standing by" in second.logs()

        first.stop(kill=True)  # no release: the standby must wait the lease out
        new_leader = wait_for(
            lambda: (h := holder(kubectl, ns)) not in (None, leader) and h,
            "the standby to take the lease over",
            timeout=LEASE_S * 4 + 10,
        )
        apply_instance(kubectl, instance("two", ns))
        wait_phase(api, ns, "two", "Ready", timeout=120)
        assert reconciled(second), second.logs()[-2000:]

        # Someone else takes the lease: the leader must stop reconciling and exit.
        kubectl(
            "patch",
            "lease",
            "asocial-operator",
            "-n",
            ns,
            "--type=merge",
            "-p",
            '{"spec": {"holderIdentity": "intruder"}}',
        )
        assert second.process is not None
        wait_for(
            lambda: second.process is not None and second.process.poll() is not None,
            "the deposed leader to exit",
            timeout=LEASE_S * 2 + 10,
        )
        assert second.process.returncode == 1, second.logs()[-2000:]
        assert "leadership lost" in second.logs()

        third = replica(kubeconfig, ns, tmp_path / "third.log")
        third.start()
        try:
            wait_for(
                lambda: holder(kubectl, ns) not in (None, "intruder", leader, new_leader),
                "a new replica to take over the abandoned lease",
                timeout=LEASE_S * 4 + 10,
            )
        finally:
            third.stop()  # a clean stop hands the lease back at once
        assert third.process is not None
        assert third.process.returncode == 0, third.logs()[-2000:]
        assert holder(kubectl, ns) is None, "the lease was not released on a clean stop"
    finally:
        first.stop()
        second.stop()


def test_a_replica_stopped_at_any_moment_exits_cleanly_and_holds_nothing(
    kubeconfig: str, kubectl: Kubectl, own_ns: str, tmp_path: Path
) -> None:
    ns = own_ns
    for delay in (0.0, 0.5, 1.0, 1.5, 2.0, 3.0):
        op = replica(kubeconfig, ns, tmp_path / f"op-{delay}.log")
        op.start(wait=False)
        time.sleep(delay)
        op.stop()
        assert op.process is not None
        if "starting;" in op.logs():  # logged once its own signal handlers are in place
            assert op.process.returncode == 0, f"after {delay}s:\n{op.logs()[-2000:]}"
        assert holder(kubectl, ns) is None, f"stopped after {delay}s, it kept the lease"


def test_the_lease_name_can_be_chosen(
    kubeconfig: str, kubectl: Kubectl, own_ns: str, tmp_path: Path
) -> None:
    ns = own_ns
    op = replica(kubeconfig, ns, tmp_path / "named.log", "--leader-elect-name=chat-a")
    op.start()
    try:
        wait_for(lambda: holder(kubectl, ns, "chat-a"), "the named lease's holder", timeout=30)
        assert holder(kubectl, ns) is None, "the default lease must stay untouched"
    finally:
        op.stop()
    assert holder(kubectl, ns, "chat-a") is None

"""The deploy/ RBAC is enough to run the operator, and no more than it needs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from asocial_operator import cluster
from tests.fixtures.devcluster import Kubectl
from tests.operator.conftest import (
    REPO_ROOT,
    OperatorProcess,
    apply_instance,
    instance,
    make_namespace,
    wait_phase,
)

pytestmark = pytest.mark.devcluster

SA = "system:serviceaccount:asocial-system:asocial-operator"


def token_kubeconfig(kubectl: Kubectl, admin_kubeconfig: str, path: Path) -> str:
    """A kubeconfig that authenticates as the operator's ServiceAccount."""
    token = kubectl(
        "create", "token", "asocial-operator", "-n", "asocial-system", "--duration=1h"
    ).stdout.strip()
    admin = yaml.safe_load(Path(admin_kubeconfig).read_text())
    current = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])
    cluster_entry = next(c for c in admin["clusters"] if c["name"] == current["context"]["cluster"])
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster_entry],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [
            {"name": "operator", "context": {"cluster": cluster_entry["name"], "user": "operator"}}
        ],
        "current-context": "operator",
    }
    path.write_text(json.dumps(config))
    return str(path)


def install_rbac(kubectl: Kubectl, namespace: str) -> None:
    """The namespace-scoped install: cluster-wide rights for the namespaced role removed."""
    kubectl("delete", "clusterrolebinding", "asocial-operator", "--ignore-not-found")
    base = REPO_ROOT / "deploy" / "base"
    for name in ("namespace.yaml", "serviceaccount.yaml", "rbac.yaml"):
        kubectl("apply", "--server-side", "--force-conflicts", "-f", str(base / name))
    # Only the cluster-scoped binding from bindings.yaml; namespaced rights via a RoleBinding.
    bindings = list(yaml.safe_load_all((base / "bindings.yaml").read_text()))
    cluster_binding = next(
        b for b in bindings if b["metadata"]["name"] == "asocial-operator-cluster"
    )
    lease_binding = next(
        b for b in bindings if b["metadata"]["name"] == "asocial-operator-leader-election"
    )
    role_binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "asocial-operator", "namespace": namespace},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "asocial-operator",
        },
        "subjects": [
            {"kind": "ServiceAccount", "name": "asocial-operator", "namespace": "asocial-system"}
        ],
    }
    for obj in (cluster_binding, lease_binding, role_binding):
        kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=json.dumps(obj))


def test_rbac_has_no_wildcards() -> None:
    for doc in yaml.safe_load_all((REPO_ROOT / "deploy" / "base" / "rbac.yaml").read_text()):
        for rule in doc["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], rule


def test_kustomizations_build(kubectl: Kubectl) -> None:
    for overlay in ("deploy", "deploy/namespaced"):
        out = kubectl("kustomize", str(REPO_ROOT / overlay)).stdout
        kinds = {doc["kind"] for doc in yaml.safe_load_all(out) if doc}
        assert {"CustomResourceDefinition", "ServiceAccount", "ClusterRole", "Deployment"} <= kinds


def test_operator_runs_with_its_service_account(
    kubectl: Kubectl,
    kubeconfig: str,
    api: cluster.Cluster,
    own_ns: str,
    tmp_path: Path,
) -> None:
    ns = own_ns
    other = make_namespace(kubectl, "asi-other")
    try:
        install_rbac(kubectl, ns)
        config = token_kubeconfig(kubectl, kubeconfig, tmp_path / "sa.kubeconfig")
        op = OperatorProcess(
            kubeconfig=config,
            namespaces=[ns],
            log_path=tmp_path / "sa.log",
            extra_args=["--leader-elect", "--leader-elect-namespace=asocial-system"],
        )
        op.start()
        try:
            apply_instance(kubectl, instance("chat", ns))
            wait_phase(api, ns, "chat", "Ready", timeout=120)
        finally:
            op.stop()
        assert "forbidden" not in op.logs().lower(), op.logs()[-2000:]
        assert "leading: lease asocial-system/asocial-operator acquired" in op.logs()
        assert "released" in op.logs(), op.logs()[-2000:]

        def can(verb: str, what: str, namespace: str) -> str:
            result = subprocess.run(
                [*kubectl.argv, "auth", "can-i", verb, what, "-n", namespace, f"--as={SA}"],
                capture_output=True,
                text=True,
                check=False,
            )
            return result.stdout.strip()

        assert can("get", "secrets", ns) == "yes"
        assert can("get", "secrets", other) == "no"
        assert can("list", "secrets", other) == "no"
        assert can("create", "deployments", other) == "no"
        assert can("delete", "namespaces", other) == "no"
        assert can("update", "leases", "asocial-system") == "yes"
        assert can("update", "leases", other) == "no"
        assert can("delete", "leases", "asocial-system") == "no"
    finally:
        kubectl("delete", "namespace", other, "--wait=false", check=False)

"""The Helm chart, rendered by the real helm (built by ``devcluster/devcluster build``):
it lints, its generated files are fresh, its defaults render exactly the objects of
``kubectl apply -k deploy/`` (and, watching listed namespaces, those of
``deploy/namespaced/``), bad values are refused with a message, and its PrometheusRule
reads only its own operator. Installing, upgrading and uninstalling it on the real
cluster is ``tests/e2e/test_helm.py``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.devcluster import DEVCLUSTER, REPO_ROOT

pytestmark = pytest.mark.tools

CHART = REPO_ROOT / "charts" / "asocial-operator"
HELM_ONLY_LABELS = (
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
)


def built(binary: str) -> str:
    found = subprocess.run(
        [str(DEVCLUSTER), "which", binary], capture_output=True, text=True, check=False
    )
    if found.returncode != 0:
        pytest.fail(f"{binary} is not built: {found.stderr.strip()}")
    return found.stdout.strip()


@pytest.fixture(scope="module")
def helm() -> str:
    return built("helm")


def render(helm: str, *values: str, release: str = "asocial-operator") -> list[dict[str, Any]]:
    args = [helm, "template", release, str(CHART), "--namespace", "asocial-system"]
    for value in values:
        args += ["--set", value]
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=60).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def kustomize(path: Path) -> list[dict[str, Any]]:
    kubectl = built("kubectl")
    out = subprocess.run(
        [kubectl, "kustomize", str(path)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def comparable(doc: dict[str, Any]) -> dict[str, Any]:
    """An object without what only Helm adds: its release labels and the CRD's keep."""
    meta = doc["metadata"]
    for label in HELM_ONLY_LABELS:
        meta.get("labels", {}).pop(label, None)
    annotations = meta.get("annotations", {})
    annotations.pop("helm.sh/resource-policy", None)
    if not annotations:
        meta.pop("annotations", None)
    return doc


def by_identity(docs: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {
        (d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]): comparable(d)
        for d in docs
        if d["kind"] != "Namespace"  # the chart installs into a namespace, never makes one
    }


def test_the_chart_lints(helm: str) -> None:
    result = subprocess.run(
        [helm, "lint", "--strict", str(CHART)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_charts_generated_files_are_fresh() -> None:
    python = REPO_ROOT / ".venv" / "bin" / "python"
    result = subprocess.run(
        [str(python), str(REPO_ROOT / "charts" / "render.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr


def test_the_defaults_render_what_deploy_installs(helm: str) -> None:
    chart = by_identity(render(helm))
    deploy = by_identity(kustomize(REPO_ROOT / "deploy"))
    assert sorted(chart) == sorted(deploy)
    for key, expected in deploy.items():
        assert chart[key] == expected, key


def test_listed_namespaces_render_what_deploy_namespaced_installs(helm: str) -> None:
    chart = by_identity(render(helm, "watchNamespaces={asocial-apps}"))
    deploy = by_identity(kustomize(REPO_ROOT / "deploy" / "namespaced"))
    assert sorted(chart) == sorted(deploy)
    for key, expected in deploy.items():
        assert chart[key] == expected, key


def test_another_release_name_has_its_own_cluster_objects_and_lease(helm: str) -> None:
    docs = render(helm, release="team-b")
    cluster_scoped = {d["metadata"]["name"] for d in docs if "namespace" not in d["metadata"]}
    assert cluster_scoped == {
        "asocialinstances.asocial.io",
        "team-b-asocial-operator",
        "team-b-asocial-operator-cluster",
    }
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--leader-elect-name=team-b-asocial-operator" in args


def test_the_crd_is_kept_on_uninstall_and_can_be_left_out(helm: str) -> None:
    (crd,) = [d for d in render(helm) if d["kind"] == "CustomResourceDefinition"]
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    kinds = {d["kind"] for d in render(helm, "crds.install=false")}
    assert "CustomResourceDefinition" not in kinds


def test_values_turn_metrics_and_log_format(helm: str) -> None:
    docs = render(
        helm,
        "metrics.enabled=false",
        "logFormat=text",
        "image.repository=registry.example.com/asocial-operator",
        "image.tag=9.9.9",
        "image.pullPolicy=Always",
        "replicas=1",
        "leaderElection.enabled=false",
    )
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/asocial-operator:9.9.9"
    assert container["imagePullPolicy"] == "Always"
    assert container["args"] == ["--all-namespaces", "--log-format=text", "--metrics-port=0"]
    assert [p["name"] for p in container["ports"]] == ["liveness"]
    assert not any(d["kind"] == "Role" for d in docs), "no Lease without leader election"


def test_the_operators_prometheus_rule_reads_only_its_own_operator(helm: str) -> None:
    docs = render(helm, "metrics.prometheusRule.enabled=true", release="team-b")
    (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    alerts = [r for g in rule["spec"]["groups"] for r in g["rules"]]
    assert {a["alert"] for a in alerts} == {
        "AsocialOperatorReconcileErrors",
        "AsocialOperatorNoLeader",
    }
    for alert in alerts:
        assert 'namespace="asocial-system",job="team-b-asocial-operator"' in alert["expr"]
        assert "__SELECTOR__" not in alert["expr"]
        assert "{{ $value" not in alert["expr"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (("replicas=2", "leaderElection.enabled=false"), "replicas > 1 needs leaderElection"),
        (("logFormat=xml",), "at '/logFormat': value must be one of 'json', 'text'"),
        (("leaderElection.leaseSeconds=1",), "at '/leaderElection/leaseSeconds': minimum"),
        (("replica=2",), "additional properties 'replica' not allowed"),
        (("watchNamespaces={Team_A}",), "at '/watchNamespaces/0'"),
    ],
)
def test_bad_values_are_refused_with_what_to_change(
    helm: str, values: tuple[str, ...], message: str
) -> None:
    args = [helm, "template", "x", str(CHART)]
    for value in values:
        args += ["--set", value]
    result = subprocess.run(args, capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr

"""The Helm chart on the real cluster, with the real helm: a team moving from
``kubectl apply -k deploy/`` to Helm installs the chart over the CRD already there, gets
the operator Ready and an instance Ready on real pods, upgrades to a chart whose CRD has
a new field (accepted afterwards, refused before), and uninstalls: the CRD and the
instance stay.

The suite's own in-cluster operator (cluster-wide) is scaled to zero meanwhile, so that
every reconcile of the test's instance is the chart's operator's.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import (
    OPERATOR_IMAGE,
    OPERATOR_NS,
    Stack,
    get_json,
    instance_body,
    wait_for,
)
from tests.fixtures.devcluster import DEVCLUSTER, REPO_ROOT, Kubectl

pytestmark = pytest.mark.e2e

CHART = REPO_ROOT / "charts" / "asocial-operator"
RELEASE = "asocial-helm"
RELEASE_NS = "asocial-helm"
FULLNAME = f"{RELEASE}-asocial-operator"
CRD = "crd/asocialinstances.asocial.io"
NEW_FIELD = "note"


@pytest.fixture
def helm(kubectl: Kubectl) -> list[str]:
    found = subprocess.run(
        [str(DEVCLUSTER), "which", "helm"], capture_output=True, text=True, check=True
    )
    return [found.stdout.strip(), f"--kubeconfig={kubectl.kubeconfig}"]


def run(argv: list[str], *args: str, timeout: float = 300) -> str:
    result = subprocess.run(
        [*argv, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"helm {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout


@pytest.fixture
def suite_operator_paused(kubectl: Kubectl, operator_installed: None) -> Iterator[None]:
    """The suite's cluster-wide operator at zero replicas for the test, then back."""
    deploy = ("deploy/asocial-operator", "-n", OPERATOR_NS)
    replicas = get_json(kubectl, *deploy)["spec"]["replicas"]
    kubectl("scale", *deploy, "--replicas=0")
    wait_for(
        lambda: not get_json(kubectl, "pods", "-n", OPERATOR_NS)["items"],
        "the suite's operator pods gone",
        timeout=60,
    )
    try:
        yield
    finally:
        kubectl("scale", *deploy, f"--replicas={replicas}")
        kubectl("rollout", "status", *deploy, "--timeout=180s", timeout=200)


def chart_with_a_new_crd_field(tmp_path: Path) -> Path:
    """A copy of the chart, version 0.1.1, whose CRD has ``spec.note``."""
    chart = tmp_path / "asocial-operator"
    shutil.copytree(CHART, chart)
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    meta["version"] = "0.1.1"
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta))
    template = chart / "templates" / "crd.yaml"
    lines = template.read_text().splitlines(keepends=True)
    opening, body, closing = lines[0], "".join(lines[1:-1]), lines[-1]
    crd: dict[str, Any] = yaml.safe_load(body)
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    schema["properties"]["spec"]["properties"][NEW_FIELD] = {
        "type": "string",
        "description": "A note for the instance's owners.",
    }
    template.write_text(opening + yaml.safe_dump(crd, sort_keys=False) + closing)
    return chart


def apply_with_note(kubectl: Kubectl, namespace: str) -> subprocess.CompletedProcess[str]:
    body = instance_body("chat", {NEW_FIELD: "owned by team blue"})
    return kubectl(
        "apply",
        "--server-side",
        "-n",
        namespace,
        "-f",
        "-",
        input=json.dumps(body),
        check=False,
    )


def test_install_upgrade_and_uninstall_with_helm(
    kubectl: Kubectl, helm: list[str], suite_operator_paused: None, tmp_path: Path
) -> None:
    apps = f"helm-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", apps)
    kubectl("create", "namespace", RELEASE_NS)
    installed = False
    try:
        # The CRD is already there (from kubectl apply -k): the chart takes it over.
        run(
            helm,
            "install",
            RELEASE,
            str(CHART),
            "--namespace",
            RELEASE_NS,
            "--take-ownership",
            "--force-conflicts",
            "--set",
            f"image.repository={OPERATOR_IMAGE.split(':')[0]}",
            "--set",
            "image.pullPolicy=Never",
            "--set",
            f"watchNamespaces={{{apps}}}",
            "--wait",
            "--timeout",
            "180s",
        )
        installed = True
        deployment = get_json(kubectl, "deploy", FULLNAME, "-n", RELEASE_NS)
        assert deployment["status"].get("readyReplicas") == 2, deployment["status"]
        lease = wait_for(
            lambda: get_json(kubectl, "lease", FULLNAME, "-n", RELEASE_NS)["spec"].get(
                "holderIdentity"
            ),
            "a leader among the chart's replicas",
            timeout=60,
        )
        assert lease.startswith(FULLNAME), lease

        stack = Stack(kubectl, apps, "chat")
        stack.apply()
        stack.wait_ready()
        assert stack.pods("backend"), "Ready without a ready backend pod"
        assert stack.pods("redis"), "Ready without a ready Redis pod"

        refused = apply_with_note(kubectl, apps)
        assert refused.returncode != 0, "a field the CRD does not have yet was accepted"
        assert f".spec.{NEW_FIELD}" in refused.stderr, refused.stderr

        upgraded = chart_with_a_new_crd_field(tmp_path)
        # kubectl still co-owns the CRD's fields it applied: an upgrade after a takeover
        # forces them over (as the chart's README says).
        run(
            helm,
            *("upgrade", RELEASE, str(upgraded), "--namespace", RELEASE_NS),
            *("--reuse-values", "--force-conflicts"),
        )
        assert "asocial-operator-0.1.1" in run(helm, "list", "--namespace", RELEASE_NS)
        wait_for(
            lambda: apply_with_note(kubectl, apps).returncode == 0,
            "the upgraded CRD accepting spec.note",
            timeout=30,
        )
        live = get_json(kubectl, "asi", "chat", "-n", apps)
        assert live["spec"][NEW_FIELD] == "owned by team blue"

        run(helm, "uninstall", RELEASE, "--namespace", RELEASE_NS, "--wait")
        installed = False
        assert kubectl("get", CRD, check=False).returncode == 0, "uninstall deleted the CRD"
        assert get_json(kubectl, "asi", "chat", "-n", apps)["spec"][NEW_FIELD]
        assert get_json(kubectl, "deploy", "chat-backend", "-n", apps)
        gone = kubectl("get", "deploy", FULLNAME, "-n", RELEASE_NS, check=False)
        assert gone.returncode != 0, "the operator outlived its uninstall"
    finally:
        if installed:
            subprocess.run(
                [*helm, "uninstall", RELEASE, "--namespace", RELEASE_NS], check=False, timeout=120
            )
        kubectl("delete", "namespace", apps, RELEASE_NS, "--wait=false")

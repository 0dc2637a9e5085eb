"""spec.gateway against the devcluster's API server, which serves the Gateway API's CRDs:
the HTTPRoute the operator keeps, and the instance's status as a Gateway's controller
answers (the test writes the route's status the way a controller would; the real
proxy's answers are the e2e suite's)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from asocial_operator import cluster
from tests.fixtures.devcluster import Kubectl
from tests.operator.conftest import apply_instance, instance, make_namespace, wait_for

pytestmark = pytest.mark.devcluster

CONTROLLER = "example.com/test-controller"


@pytest.fixture
def infra(kubectl: Kubectl) -> Iterator[str]:
    """The platform team's namespace, with its Gateway: one HTTPS and one HTTP listener."""
    ns = make_namespace(kubectl, "infra")
    gateway = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "edge", "namespace": ns},
        "spec": {
            "gatewayClassName": "example",
            "listeners": [
                {
                    "name": "https",
                    "protocol": "HTTPS",
                    "port": 443,
                    "hostname": "*.example.com",
                    "tls": {"certificateRefs": [{"name": "wildcard"}]},
                    "allowedRoutes": {"namespaces": {"from": "All"}},
                },
                {"name": "http", "protocol": "HTTP", "port": 80},
            ],
        },
    }
    kubectl("apply", "-f", "-", input=json.dumps(gateway))
    yield ns
    kubectl("delete", "namespace", ns, "--wait=false", check=False)


def answer(kubectl: Kubectl, ns: str, infra: str, *, accepted: bool, reason: str) -> None:
    """Write the route's status as the Gateway's controller would."""
    now = "2026-12-06T00:00:00Z"

    def condition(kind: str, ok: bool, why: str) -> dict[str, Any]:
        return {
            "type": kind,
            "status": "True" if ok else "False",
            "reason": why,
            "message": f"{why} by the test controller",
            "lastTransitionTime": now,
            "observedGeneration": 1,
        }

    parent = {
        "parentRef": {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": "edge",
            "namespace": infra,
            "sectionName": "https",
        },
        "controllerName": CONTROLLER,
        "conditions": [
            condition("Accepted", accepted, reason),
            condition("ResolvedRefs", True, "ResolvedRefs"),
        ],
    }
    patch = json.dumps({"status": {"parents": [parent]}})
    kubectl(
        "patch", "httproute", "chat", "-n", ns, "--subresource=status", "--type=merge", "-p", patch
    )


def status_of(api: cluster.Cluster, ns: str) -> dict[str, Any]:
    body = api.get("AsocialInstance", ns, "chat") or {}
    result: dict[str, Any] = body.get("status") or {}
    return result


def gateway_condition(status: dict[str, Any]) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions") or [] if c["type"] == "GatewayReady"), None)


def test_the_route_follows_its_gateways_answers(
    kubectl: Kubectl, api: cluster.Cluster, shared_ns: str, infra: str
) -> None:
    ns = shared_ns
    spec = {
        "ingress": {"enabled": False},
        "gateway": {
            "parentRefs": [{"name": "edge", "namespace": infra, "sectionName": "https"}],
            "hostnames": ["chat.example.com"],
        },
    }
    apply_instance(kubectl, instance("chat", ns, spec))
    route = wait_for(lambda: api.get("HTTPRoute", ns, "chat"), "the HTTPRoute", timeout=60)
    assert route["metadata"]["labels"]["app.kubernetes.io/component"] == "route"
    assert route["spec"]["parentRefs"][0]["namespace"] == infra
    paths = [m["path"]["value"] for r in route["spec"]["rules"] for m in r["matches"]]
    assert sorted(paths) == ["/", "/api", "/static"]

    # No controller has answered: the pods are up, the instance is not Ready.
    waiting = wait_for(
        lambda: (
            s
            if (c := gateway_condition(s := status_of(api, ns)))
            and c["reason"] == "NotAccepted"
            and s.get("backend", {}).get("ready") == "3/3"
            else None
        ),
        "GatewayReady False with the pods ready",
        timeout=120,
    )
    assert waiting["phase"] != "Ready"
    assert "no Gateway controller has answered" in waiting["message"]

    answer(kubectl, ns, infra, accepted=True, reason="Accepted")
    ready = wait_for(
        lambda: s if (s := status_of(api, ns)).get("phase") == "Ready" else None,
        "Ready once the Gateway accepted the route",
        timeout=60,
    )
    assert ready["endpoint"] == "https://chat.example.com"
    columns = kubectl("get", "asi", "chat", "-n", ns, "--no-headers").stdout.split()
    assert "https://chat.example.com" in columns

    answer(kubectl, ns, infra, accepted=False, reason="NotAllowedByListeners")
    refused = wait_for(
        lambda: s if (s := status_of(api, ns)).get("phase") == "Degraded" else None,
        "Degraded once the Gateway refused the route",
        timeout=60,
    )
    condition = gateway_condition(refused)
    assert condition is not None
    assert condition["status"] == "False"
    assert f"does not admit routes from namespace {ns}" in condition["message"]


def test_a_deleted_route_is_restored_and_goes_with_its_instance(
    kubectl: Kubectl, api: cluster.Cluster, shared_ns: str, infra: str
) -> None:
    ns = shared_ns
    spec = {"gateway": {"parentRefs": [{"name": "edge", "namespace": infra}]}}
    apply_instance(kubectl, instance("chat", ns, spec))
    first = wait_for(lambda: api.get("HTTPRoute", ns, "chat"), "the HTTPRoute", timeout=60)
    assert api.get("Ingress", ns, "chat") is not None, "ingress and gateway together"
    kubectl("delete", "httproute", "chat", "-n", ns)
    again = wait_for(
        lambda: (
            r
            if (r := api.get("HTTPRoute", ns, "chat"))
            and r["metadata"]["uid"] != first["metadata"]["uid"]
            else None
        ),
        "the HTTPRoute restored",
        timeout=30,
    )
    assert again["spec"]["parentRefs"] == first["spec"]["parentRefs"]
    kubectl("delete", "asocialinstance", "chat", "-n", ns)
    wait_for(
        lambda: api.get("HTTPRoute", ns, "chat") is None or None,
        "the HTTPRoute garbage-collected with its instance",
        timeout=60,
    )

"""Status computation: phases, conditions, printer fields, messages."""

from __future__ import annotations

from typing import Any

import pytest

from asocial_operator import spec as specs
from asocial_operator import status

NOW = "2026-01-01T00:00:00Z"
LATER = "2026-01-01T00:05:00Z"


def deployment(
    *, replicas: int = 3, ready: int = 3, updated: int | None = None, gen: int = 1
) -> dict[str, Any]:
    return {
        "metadata": {"generation": gen},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "readyReplicas": ready,
            "updatedReplicas": replicas if updated is None else updated,
        },
    }


def statefulset(*, replicas: int = 1, ready: int = 1) -> dict[str, Any]:
    return {
        "metadata": {"generation": 1},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "readyReplicas": ready,
            "updatedReplicas": replicas,
            "currentRevision": "r1",
            "updateRevision": "r1",
        },
    }


INGRESS_NO_ADDRESS: dict[str, Any] = {"status": {"loadBalancer": {}}}


def compute(
    observed: status.Observed,
    *,
    spec: specs.InstanceSpec | None = None,
    previous: dict[str, Any] | None = None,
    now: str = NOW,
    errors: tuple[str, ...] = (),
) -> dict[str, Any]:
    return status.compute(
        spec or specs.parse({}),
        namespace="ns",
        name="chat",
        generation=2,
        observed=observed,
        previous=previous,
        now=now,
        errors=errors,
    )


def conditions(result: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in result["conditions"]}


def test_ready() -> None:
    result = compute(status.Observed(deployment(), statefulset(), INGRESS_NO_ADDRESS))
    assert result["phase"] == "Ready"
    assert result["backend"] == {"replicas": 3, "readyReplicas": 3, "ready": "3/3"}
    assert result["redis"]["ready"] == "1/1"
    assert result["redis"]["master"] == "chat-redis.ns.svc:6379"
    assert result["endpoint"] == "http://chat-backend.ns.svc:8080"
    assert result["observedGeneration"] == 2
    assert conditions(result) == {
        "Ready": "True",
        "BackendReady": "True",
        "RedisReady": "True",
        "IngressReady": "False",
    }
    assert "no address yet" in result["message"]
    for cond in result["conditions"]:
        assert cond["observedGeneration"] == 2
        assert cond["lastTransitionTime"] == NOW
        assert cond["reason"]
        assert cond["message"]


def test_nothing_yet_is_pending() -> None:
    result = compute(status.Observed())
    assert result["phase"] == "Pending"
    assert "backend Deployment does not exist yet" in result["message"]
    assert result["backend"]["ready"] == "0/3"


def test_rollout_is_progressing() -> None:
    result = compute(status.Observed(deployment(updated=1, ready=2), statefulset()))
    assert result["phase"] == "Progressing"
    assert "rolling out the backend: 2/3" in result["message"]


def test_lost_pods_after_ready_is_degraded() -> None:
    previous = compute(status.Observed(deployment(), statefulset()))
    result = compute(
        status.Observed(deployment(ready=1), statefulset()), previous=previous, now=LATER
    )
    assert result["phase"] == "Degraded"
    assert result["message"] == "waiting: 1/3 backend pods ready"
    times = {c["type"]: c["lastTransitionTime"] for c in result["conditions"]}
    assert times["BackendReady"] == LATER  # changed
    assert times["RedisReady"] == NOW  # unchanged keeps its time


def test_errors_fail() -> None:
    result = compute(status.Observed(), errors=("applying Deployment chat-backend: forbidden",))
    assert result["phase"] == "Failed"
    assert result["message"] == "applying Deployment chat-backend: forbidden"


def test_scale_down_in_progress_is_not_ready() -> None:
    spec = specs.parse({"autoscaling": {"enabled": False}, "backend": {"replicas": 2}})
    dep = deployment(replicas=2, ready=3)
    dep["status"]["replicas"] = 3
    result = compute(status.Observed(dep, statefulset()), spec=spec)
    assert result["phase"] == "Progressing"


def test_hpa_desired_never_below_min() -> None:
    result = compute(status.Observed(deployment(replicas=1, ready=1), statefulset()))
    assert result["backend"]["ready"] == "1/3"
    assert result["phase"] != "Ready"


def test_autoscaling_off_uses_replicas() -> None:
    spec = specs.parse({"autoscaling": {"enabled": False}, "backend": {"replicas": 1}})
    result = compute(status.Observed(deployment(replicas=1, ready=1), statefulset()), spec=spec)
    assert result["phase"] == "Ready"


@pytest.mark.parametrize(
    ("raw", "ready", "master"),
    [
        ({"redis": {"replicas": 3}}, "3/3", "sentinel chat-redis-sentinel.ns.svc:26379 (mymaster)"),
        (
            {"redis": {"mode": "external", "url": "redis://r:6379/0"}},
            "external",
            "redis://r:6379/0",
        ),
    ],
)
def test_redis_fields(raw: dict[str, Any], ready: str, master: str) -> None:
    result = compute(
        status.Observed(deployment(), statefulset(replicas=3, ready=3)), spec=specs.parse(raw)
    )
    assert result["redis"]["ready"] == ready
    assert result["redis"]["master"] == master
    assert "secret" not in repr(result)


def test_credentials_in_an_external_url_never_reach_status() -> None:
    # parse() refuses such a URL (as the CRD does); the address strips them all the same.
    redis = specs.Redis(mode="external", url="redis://u:secret@r:6379/0")
    address = specs.redis_address(redis, namespace="ns", name="chat")
    assert address.shown == "redis://r:6379/0"
    with pytest.raises(specs.SpecError, match="must not carry credentials"):
        specs.parse({"redis": {"mode": "external", "url": "redis://u:secret@r:6379/0"}})


def test_ingress_with_address_and_tls_endpoint() -> None:
    spec = specs.parse(
        {"ingress": {"host": "chat.example.com", "tls": {"enabled": True, "clusterIssuer": "le"}}}
    )
    ing = {"status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}}}
    result = compute(status.Observed(deployment(), statefulset(), ing), spec=spec)
    assert result["endpoint"] == "https://chat.example.com"
    assert conditions(result)["IngressReady"] == "True"
    assert result["message"] == "ready: 3/3 backend pods ready; 1/1 Redis pods ready"


def test_paused_keeps_observed_fields() -> None:
    previous = compute(status.Observed(deployment(), statefulset()))
    result = status.paused(previous, generation=3, now=LATER)
    assert result["phase"] == "Paused"
    assert result["backend"] == previous["backend"]
    assert result["observedGeneration"] == 3


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ({}, "no accounts (auth.mode anonymous): snapshots on pod storage"),
        (
            {"auth": {"mode": "firebase", "firebase": {"projectId": "p"}}},
            "accounts kept: append-only file on pod storage (emptyDir), lost when a pod is "
            "deleted; set redis.persistence.enabled to keep accounts",
        ),
        (
            {
                "auth": {"mode": "firebase", "firebase": {"projectId": "p"}},
                "redis": {"persistence": {"enabled": True}},
            },
            "accounts kept: append-only file on a PersistentVolumeClaim per pod",
        ),
        (
            {"redis": {"mode": "external", "url": "redis://r:6379/0"}},
            "external: the external Redis's own persistence applies",
        ),
    ],
)
def test_status_says_how_redis_keeps_accounts(raw: dict[str, Any], says: str) -> None:
    result = compute(status.Observed(deployment(), statefulset()), spec=specs.parse(raw))
    assert result["redis"]["persistence"].startswith(says)


# --- the HTTPRoute on a Gateway ----------------------------------------------------------

GATEWAY_SPEC = specs.parse(
    {
        "ingress": {"enabled": False},
        "gateway": {
            "parentRefs": [{"name": "edge", "namespace": "infra", "sectionName": "https"}],
            "hostnames": ["chat.example.com"],
        },
    }
)
EDGE = ("infra", "edge")


def route(*parents: tuple[str, str, str]) -> dict[str, Any]:
    """An HTTPRoute whose status has, per parent, (Accepted, ResolvedRefs, reason)."""
    return {
        "status": {
            "parents": [
                {
                    "parentRef": {"name": "edge", "namespace": "infra", "sectionName": "https"},
                    "controllerName": "example.com/gateway",
                    "conditions": [
                        {"type": "Accepted", "status": accepted, "reason": reason, "message": "m"},
                        {"type": "ResolvedRefs", "status": resolved, "reason": "ResolvedRefs"},
                    ],
                }
                for accepted, resolved, reason in parents
            ]
        }
    }


def gateway(protocol: str = "HTTPS", hostname: str = "*.example.com") -> dict[str, Any]:
    listener = {"name": "https", "protocol": protocol, "port": 443, "hostname": hostname}
    return {"spec": {"listeners": [listener]}, "status": {"addresses": [{"value": "10.0.0.7"}]}}


def with_route(
    route_body: dict[str, Any] | None, gateways: dict[tuple[str, str], Any] | None = None
) -> status.Observed:
    return status.Observed(
        deployment(), statefulset(), gateway_api=True, route=route_body, gateways=gateways or {}
    )


def test_an_accepted_route_on_an_https_listener_is_ready_with_an_https_url() -> None:
    result = compute(
        with_route(route(("True", "True", "Accepted")), {EDGE: gateway()}), spec=GATEWAY_SPEC
    )
    assert result["phase"] == "Ready"
    assert conditions(result)["GatewayReady"] == "True"
    gw = next(c for c in result["conditions"] if c["type"] == "GatewayReady")
    assert gw["message"] == (
        "the route is served: Gateway infra/edge (listener https): Accepted, ResolvedRefs"
    )
    assert result["endpoint"] == "https://chat.example.com"


def test_an_http_listener_gives_an_http_url() -> None:
    result = compute(
        with_route(route(("True", "True", "Accepted")), {EDGE: gateway("HTTP")}),
        spec=GATEWAY_SPEC,
    )
    assert result["endpoint"] == "http://chat.example.com"


@pytest.mark.parametrize(
    ("reason", "says"),
    [
        ("NotAllowedByListeners", "does not admit routes from namespace ns"),
        ("NoMatchingListenerHostname", "has no listener for the hostnames chat.example.com"),
        ("NoMatchingParent", "name one of its listeners, or leave sectionName out"),
        ("Whatever", "has not accepted the route (Whatever: m)"),
    ],
)
def test_a_refused_route_keeps_the_instance_from_ready_and_says_what_to_change(
    reason: str, says: str
) -> None:
    result = compute(with_route(route(("False", "True", reason))), spec=GATEWAY_SPEC)
    assert result["phase"] == "Pending"
    assert conditions(result)["GatewayReady"] == "False"
    gw = next(c for c in result["conditions"] if c["type"] == "GatewayReady")
    assert gw["reason"] == "NotAccepted"
    assert gw["message"].startswith("Gateway infra/edge (listener https) ")
    assert says in gw["message"]
    assert says in result["message"]
    assert result["endpoint"] == "http://chat-backend.ns.svc:8080"


def test_unresolved_backends_are_not_ready() -> None:
    result = compute(with_route(route(("True", "False", "Accepted"))), spec=GATEWAY_SPEC)
    assert conditions(result)["GatewayReady"] == "False"


def test_a_route_no_controller_answered_says_so() -> None:
    result = compute(with_route({"status": {}}), spec=GATEWAY_SPEC)
    assert result["phase"] == "Pending"
    assert "no Gateway controller has answered for the route yet" in result["message"]


def test_without_the_gateway_api_the_condition_says_how_to_get_it() -> None:
    result = compute(status.Observed(deployment(), statefulset()), spec=GATEWAY_SPEC)
    gw = next(c for c in result["conditions"] if c["type"] == "GatewayReady")
    assert (gw["status"], gw["reason"]) == ("False", "GatewayAPIMissing")
    assert "install its standard CRDs" in gw["message"]
    assert conditions(result)["BackendReady"] == "True"


def test_one_accepting_gateway_of_two_is_enough_and_the_other_is_named() -> None:
    body = route(("True", "True", "Accepted"), ("False", "True", "NotAllowedByListeners"))
    result = compute(with_route(body, {EDGE: gateway()}), spec=GATEWAY_SPEC)
    assert result["phase"] == "Ready"
    gw = next(c for c in result["conditions"] if c["type"] == "GatewayReady")
    assert "; but Gateway infra/edge (listener https) does not admit" in gw["message"]


def test_no_gateway_condition_without_spec_gateway() -> None:
    result = compute(status.Observed(deployment(), statefulset()))
    assert "GatewayReady" not in conditions(result)

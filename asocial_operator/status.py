"""Pure: children's observed state → the instance's status.

Computes ``phase``, metav1.Condition-shaped ``conditions`` (with
``observedGeneration`` and ``lastTransitionTime`` kept while a condition's
status does not change), the printer-column fields and a ``message`` in
plain words. No I/O; the caller passes the clock.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from typing import Any

from asocial_operator import naming
from asocial_operator import spec as specs

PENDING, PROGRESSING, READY, DEGRADED, FAILED, PAUSED = (
    "Pending",
    "Progressing",
    "Ready",
    "Degraded",
    "Failed",
    "Paused",
)
PHASES = (PENDING, PROGRESSING, READY, DEGRADED, FAILED, PAUSED)

Body = Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class Observed:
    """The live children that status depends on (``None`` when absent)."""

    backend: Body | None = None
    redis: Body | None = None
    ingress: Body | None = None
    frontend: Body | None = None
    gateway_api: bool = False
    """Whether the Gateway API's HTTPRoute CRD is installed."""
    route: Body | None = None
    gateways: Mapping[tuple[str, str], Body] = dataclasses.field(default_factory=dict)
    """The Gateways that accepted the route, by (namespace, name)."""


@dataclasses.dataclass(frozen=True)
class Check:
    ok: bool
    reason: str
    message: str
    rolling: bool = False


def _int(body: Body | None, *path: str) -> int:
    value: Any = body
    for key in path:
        if not isinstance(value, Mapping):
            return 0
        value = value.get(key)
    return value if isinstance(value, int) else 0


def _rolled_out(body: Body) -> bool:
    """The controller saw the latest spec, every pod is updated and no surplus pod remains."""
    generation = _int(body, "metadata", "generation")
    observed = _int(body, "status", "observedGeneration")
    replicas = _int(body, "spec", "replicas")
    updated = _int(body, "status", "updatedReplicas")
    current = _int(body, "status", "replicas")
    return observed >= generation and updated >= replicas and current == replicas


def backend_desired(spec: specs.InstanceSpec, deployment: Body | None) -> int:
    """Pods the backend should have: the HPA's choice, but never below its minimum."""
    if not spec.autoscaling.enabled:
        return spec.backend.replicas
    current = _int(deployment, "spec", "replicas")
    return max(current, spec.autoscaling.min_replicas)


def check_backend(spec: specs.InstanceSpec, deployment: Body | None) -> Check:
    if deployment is None:
        return Check(False, "NotCreated", "the backend Deployment does not exist yet")
    desired = backend_desired(spec, deployment)
    ready = _int(deployment, "status", "readyReplicas")
    rolled = _rolled_out(deployment)
    for cond in deployment.get("status", {}).get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return Check(False, "RolloutStuck", f"backend rollout is stuck: {cond.get('message')}")
    if ready >= desired and rolled:
        return Check(True, "PodsReady", f"{ready}/{desired} backend pods ready")
    if not rolled:
        return Check(
            False, "RollingOut", f"rolling out the backend: {ready}/{desired} pods ready", True
        )
    return Check(False, "PodsNotReady", f"{ready}/{desired} backend pods ready")


def check_redis(spec: specs.InstanceSpec, sts: Body | None) -> Check:
    if not spec.redis.managed:
        return Check(True, "External", "uses an external Redis")
    if sts is None:
        return Check(False, "NotCreated", "the Redis StatefulSet does not exist yet")
    desired = spec.redis.replicas
    ready = _int(sts, "status", "readyReplicas")
    status = sts.get("status", {})
    rolled = _rolled_out(sts) and status.get("currentRevision") == status.get("updateRevision")
    if ready >= desired and rolled:
        return Check(True, "PodsReady", f"{ready}/{desired} Redis pods ready")
    if not rolled:
        return Check(False, "RollingOut", f"rolling out Redis: {ready}/{desired} pods ready", True)
    return Check(False, "PodsNotReady", f"{ready}/{desired} Redis pods ready")


def check_ingress(spec: specs.InstanceSpec, ingress: Body | None) -> Check:
    if not spec.ingress.enabled:
        return Check(True, "Disabled", "no Ingress requested")
    if ingress is None:
        return Check(False, "NotCreated", "the Ingress does not exist yet")
    lb = ingress.get("status", {}).get("loadBalancer", {}).get("ingress") or []
    if lb:
        address = lb[0].get("hostname") or lb[0].get("ip") or "an address"
        return Check(True, "AddressAssigned", f"the Ingress is served at {address}")
    return Check(
        False,
        "AddressPending",
        f"the Ingress has no address yet (is an ingress controller for class "
        f"{spec.ingress.class_name!r} running?)",
    )


# What a Gateway's refusal means, and what to change (Gateway API condition reasons).
_REFUSED = {
    "NotAllowedByListeners": (
        "does not admit routes from namespace {namespace}: ask its owners to admit it in a "
        "listener's allowedRoutes, or attach to another Gateway"
    ),
    "NoMatchingListenerHostname": (
        "has no listener for the hostnames {hostnames}: use hostnames under a listener's "
        "hostname (see kubectl get gateway -o yaml), or ask its owners for a listener"
    ),
    "NoMatchingParent": (
        "has no listener that matches gateway.parentRefs (sectionName {section}): "
        "name one of its listeners, or leave sectionName out"
    ),
    "UnsupportedValue": "refused a value of the route: {detail}",
    "BackendNotFound": "cannot find the route's backend Service: {detail}",
    "RefNotPermitted": "may not reach the route's backend: {detail}",
    "InvalidKind": "cannot use the route's backend: {detail}",
}


def _condition_of(conditions: Sequence[Body], kind: str) -> Body | None:
    return next((c for c in conditions if c.get("type") == kind), None)


def route_parents(route: Body | None) -> list[Body]:
    """Each parent's entry in the route's status (written by the Gateway's controller)."""
    if route is None:
        return []
    parents = (route.get("status") or {}).get("parents") or []
    return [p for p in parents if isinstance(p, Mapping)]


def accepted_parents(route: Body | None) -> list[Body]:
    """The parentRefs of the Gateways that accepted the route."""
    out = []
    for parent in route_parents(route):
        accepted = _condition_of(parent.get("conditions") or [], "Accepted")
        if accepted is not None and accepted.get("status") == "True":
            out.append(parent.get("parentRef") or {})
    return out


def _gateway_name(ref: Body, namespace: str) -> str:
    section = f" (listener {ref['sectionName']})" if ref.get("sectionName") else ""
    return f"Gateway {ref.get('namespace') or namespace}/{ref.get('name')}{section}"


def check_gateway(spec: specs.InstanceSpec, observed: Observed, *, namespace: str) -> Check:
    """Ready when at least one Gateway accepted the route and resolved its backends;
    otherwise what each Gateway said, in words, with what to change."""
    gw = spec.gateway
    if gw is None:
        return Check(True, "Disabled", "no HTTPRoute requested")
    if not observed.gateway_api:
        return Check(
            False,
            "GatewayAPIMissing",
            "the Gateway API is not installed in this cluster (no CRD "
            "httproutes.gateway.networking.k8s.io): install its standard CRDs and a Gateway "
            "controller, or remove spec.gateway",
        )
    if observed.route is None:
        return Check(False, "NotCreated", "the HTTPRoute does not exist yet")
    parents = route_parents(observed.route)
    if not parents:
        names = ", ".join(_gateway_name(_ref(r), namespace) for r in gw.parent_refs)
        return Check(
            False,
            "NotAccepted",
            f"no Gateway controller has answered for the route yet: is one running for "
            f"{names}, and does the Gateway exist?",
        )
    accepted, refused = [], []
    for parent in parents:
        ref = parent.get("parentRef") or {}
        conditions = parent.get("conditions") or []
        found = (_condition_of(conditions, kind) for kind in ("Accepted", "ResolvedRefs"))
        verdict = [c for c in found if c]
        failing = next((c for c in verdict if c.get("status") != "True"), None)
        who = _gateway_name(ref, namespace)
        if failing is None and len(verdict) == 2:
            accepted.append(f"{who}: Accepted, ResolvedRefs")
            continue
        reason = str((failing or {}).get("reason") or "Pending")
        detail = str((failing or {}).get("message") or "not accepted yet")
        template = _REFUSED.get(reason, "has not accepted the route ({reason}: {detail})")
        words = template.format(
            namespace=namespace,
            hostnames=", ".join(gw.hostnames) or "(none set)",
            section=ref.get("sectionName") or "(none)",
            reason=reason,
            detail=detail,
        )
        refused.append(f"{who} {words}")
    if accepted:
        message = "the route is served: " + "; ".join(accepted)
        if refused:
            message += "; but " + "; ".join(refused)
        return Check(True, "Accepted", message)
    return Check(False, "NotAccepted", "; ".join(refused))


def _ref(ref: specs.ParentRef) -> Body:
    out: dict[str, Any] = {"name": ref.name}
    if ref.namespace:
        out["namespace"] = ref.namespace
    if ref.section_name:
        out["sectionName"] = ref.section_name
    return out


def _gateway_endpoint(spec: specs.InstanceSpec, observed: Observed, namespace: str) -> str | None:
    """``https://host`` when an accepting Gateway serves the route on an HTTPS listener
    (else ``http://``); the host is the route's first hostname, else the listener's,
    else the Gateway's address."""
    gw = spec.gateway
    if gw is None:
        return None
    for ref in accepted_parents(observed.route):
        gateway = observed.gateways.get((ref.get("namespace") or namespace, ref.get("name", "")))
        if gateway is None:
            continue
        listeners = (gateway.get("spec") or {}).get("listeners") or []
        section = ref.get("sectionName")
        usable = [li for li in listeners if not section or li.get("name") == section]
        secure = [li for li in usable if li.get("protocol") == "HTTPS"]
        listener = (secure or usable or [{}])[0]
        scheme = "https" if secure else "http"
        host = gw.hostnames[0] if gw.hostnames else str(listener.get("hostname") or "")
        if not host or host.startswith("*"):
            addresses = (gateway.get("status") or {}).get("addresses") or [{}]
            host = str(addresses[0].get("value") or "")
        if host:
            port = listener.get("port")
            default = 443 if secure else 80
            suffix = f":{port}" if port and port != default and host[0].isdigit() else ""
            return f"{scheme}://{host}{suffix}"
    return None


def endpoint(
    spec: specs.InstanceSpec, *, namespace: str, name: str, observed: Observed | None = None
) -> str:
    via_gateway = _gateway_endpoint(spec, observed or Observed(), namespace)
    if via_gateway:
        return via_gateway
    if spec.ingress.enabled and spec.ingress.host:
        scheme = "https" if spec.ingress.tls.enabled else "http"
        return f"{scheme}://{spec.ingress.host}"
    return f"http://{naming.Names(name).backend}.{namespace}.svc:8080"


def _condition(
    kind: str, check: Check, *, generation: int, previous: Mapping[str, Body], now: str
) -> dict[str, Any]:
    status = "True" if check.ok else "False"
    old = previous.get(kind)
    since = old.get("lastTransitionTime") if old and old.get("status") == status else None
    return {
        "type": kind,
        "status": status,
        "reason": check.reason,
        "message": check.message,
        "observedGeneration": generation,
        "lastTransitionTime": since or now,
    }


def _phase(
    backend: Check,
    redis: Check,
    gateway: Check,
    *,
    errors: Sequence[str],
    previous_phase: str | None,
) -> str:
    if errors:
        return FAILED
    if backend.ok and redis.ok and gateway.ok:
        return READY
    if backend.rolling or redis.rolling:
        return PROGRESSING
    if previous_phase in (READY, DEGRADED):
        return DEGRADED
    return PENDING


def compute(
    spec: specs.InstanceSpec,
    *,
    namespace: str,
    name: str,
    generation: int,
    observed: Observed,
    previous: Mapping[str, Any] | None,
    now: str,
    errors: Sequence[str] = (),
) -> dict[str, Any]:
    """The full status for one instance. ``errors`` are failures of this reconcile."""
    previous = previous or {}
    prev_conditions = {c.get("type", ""): c for c in previous.get("conditions") or []}
    backend = check_backend(spec, observed.backend)
    redis = check_redis(spec, observed.redis)
    ingress = check_ingress(spec, observed.ingress)
    gateway = check_gateway(spec, observed, namespace=namespace)
    phase = _phase(backend, redis, gateway, errors=errors, previous_phase=previous.get("phase"))
    if errors:
        message = "; ".join(errors)
        ready = Check(False, "ReconcileFailed", message)
    elif phase == READY:
        message = f"ready: {backend.message}; {redis.message}"
        if not ingress.ok:
            message += f"; {ingress.message}"
        ready = Check(True, "AllReady", message)
    else:
        waiting = [c.message for c in (backend, redis, gateway) if not c.ok]
        message = "waiting: " + "; ".join(waiting)
        ready = Check(False, phase, message)
    desired = backend_desired(spec, observed.backend)
    ready_pods = _int(observed.backend, "status", "readyReplicas")
    redis_desired = spec.redis.replicas if spec.redis.managed else 0
    redis_ready = _int(observed.redis, "status", "readyReplicas")
    condition = functools.partial(
        _condition, generation=generation, previous=prev_conditions, now=now
    )
    return {
        "phase": phase,
        "message": message,
        "observedGeneration": generation,
        "endpoint": endpoint(spec, namespace=namespace, name=name, observed=observed),
        "backend": {
            "replicas": desired,
            "readyReplicas": ready_pods,
            "ready": f"{ready_pods}/{desired}",
        },
        "redis": {
            "replicas": redis_desired,
            "readyReplicas": redis_ready,
            "ready": f"{redis_ready}/{redis_desired}" if spec.redis.managed else "external",
            "master": redis_master(spec, namespace=namespace, name=name),
            "persistence": redis_persistence(spec),
        },
        "conditions": [
            condition("Ready", ready),
            condition("BackendReady", backend),
            condition("RedisReady", redis),
            condition("IngressReady", ingress),
            *([condition("GatewayReady", gateway)] if spec.gateway is not None else []),
        ],
    }


def redis_persistence(spec: specs.InstanceSpec) -> str:
    """How long what Redis holds lasts, in words (``kubectl get asi -o yaml``)."""
    r = spec.redis
    if not r.managed:
        return "external: the external Redis's own persistence applies"
    disk = (
        "on a PersistentVolumeClaim per pod"
        if r.persistence.enabled
        else "on pod storage (emptyDir), lost when a pod is deleted"
        + ("" if r.managed_sentinel else "; set redis.persistence.enabled to keep accounts")
    )
    if spec.keeps_accounts:
        return f"accounts kept: append-only file {disk}"
    return f"no accounts (auth.mode anonymous): snapshots {disk}"


def redis_master(spec: specs.InstanceSpec, *, namespace: str, name: str) -> str:
    """Where the chat server looks for the Redis master (no credentials)."""
    return specs.redis_address(spec.redis, namespace=namespace, name=name).shown


def paused(previous: Mapping[str, Any] | None, *, generation: int, now: str) -> dict[str, Any]:
    """Status while ``spec.paused``: keep what was observed, say that nothing is reconciled."""
    out = dict(previous or {})
    out["phase"] = PAUSED
    out["message"] = "paused: spec.paused is true, the operator changes nothing"
    out["observedGeneration"] = generation
    return out

"""End to end against the devcluster: create, converge, roll, repair drift, pause, delete.

Each test has its own namespace; the shared operator process watches them all.
Under kwok pods become Ready without running containers, so "Ready" here means
the Kubernetes objects and controllers agree, which is what the operator reports.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from asocial_operator import cluster, naming
from tests.fixtures.devcluster import Kubectl
from tests.operator.conftest import (
    OperatorProcess,
    apply_instance,
    instance,
    wait_for,
    wait_phase,
)
from tests.operator.expected import MINIMAL_CHILDREN

pytestmark = pytest.mark.devcluster

REPAIR_SECONDS = 10


def get(api: cluster.Cluster, ns: str, kind: str, name: str) -> dict[str, Any] | None:
    return api.get(kind, ns, name)


def must(api: cluster.Cluster, ns: str, kind: str, name: str) -> dict[str, Any]:
    obj = api.get(kind, ns, name)
    assert obj is not None, f"{kind} {name} missing"
    return obj


def create_ready(
    kubectl: Kubectl, api: cluster.Cluster, ns: str, spec: dict[str, Any] | None = None
) -> dict[str, Any]:
    apply_instance(kubectl, instance("chat", ns, spec))
    return wait_phase(api, ns, "chat", "Ready", timeout=120)


def test_create_builds_every_child_and_reports_ready(
    kubectl: Kubectl, api: cluster.Cluster, shared_ns: str
) -> None:
    ns = shared_ns
    apply_instance(kubectl, instance("chat", ns, {"ingress": {"host": "chat.example.com"}}))
    owner = wait_for(lambda: get(api, ns, "AsocialInstance", "chat"), "the instance")
    uid = owner["metadata"]["uid"]

    def all_children() -> list[dict[str, Any]] | None:
        found = [get(api, ns, kind, name) for kind, name in MINIMAL_CHILDREN]
        present = [obj for obj in found if obj is not None]
        return present if len(present) == len(found) else None

    children = wait_for(all_children, "all children", timeout=30)
    for child in children:
        meta = child["metadata"]
        assert meta["labels"][naming.LABEL_INSTANCE] == "chat"
        assert meta["labels"][naming.LABEL_MANAGED_BY] == "asocial-operator"
        assert meta["ownerReferences"][0]["uid"] == uid
        managers = {m["manager"] for m in meta.get("managedFields", [])}
        assert "asocial-operator" in managers

    dep = must(api, ns, "Deployment", "chat-backend")
    pod = dep["spec"]["template"]
    assert pod["metadata"]["annotations"][naming.CHECKSUM_ANNOTATION]
    assert pod["spec"]["containers"][0]["image"] == "ghcr.io/asocial/asocial-chat:0.1.0"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    cm = must(api, ns, "ConfigMap", "chat-config")
    assert cm["data"]["ASOCIAL_REDIS_URL"] == f"redis://chat-redis.{ns}.svc:6379/0"
    ing = must(api, ns, "Ingress", "chat")
    assert ing["spec"]["rules"][0]["host"] == "chat.example.com"

    status = wait_phase(api, ns, "chat", "Ready", timeout=120)
    assert status["backend"]["ready"] == "3/3"
    assert status["redis"]["ready"] == "1/1"
    assert status["endpoint"] == "http://chat.example.com"
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["status"] == "True"
    assert conditions["BackendReady"]["status"] == "True"
    assert conditions["RedisReady"]["status"] == "True"
    # No ingress controller in the devcluster: honest about the missing address.
    assert conditions["IngressReady"]["status"] == "False"
    assert conditions["IngressReady"]["reason"] == "AddressPending"

    table = kubectl("get", "asi", "-n", ns).stdout.splitlines()
    assert table[0].split() == ["NAME", "PHASE", "READY", "REDIS", "URL", "AGE"]
    assert table[1].split()[:5] == ["chat", "Ready", "3/3", "1/1", "http://chat.example.com"]
    assert "chat" in kubectl("get", "asocial", "-n", ns).stdout  # the category


def test_spec_changes_converge(kubectl: Kubectl, api: cluster.Cluster, shared_ns: str) -> None:
    ns = shared_ns
    create_ready(kubectl, api, ns)

    # Image change → rolling update to the new image, then Ready again.
    apply_instance(kubectl, instance("chat", ns, {"backend": {"image": "chat:2"}}))
    wait_for(
        lambda: (
            must(api, ns, "Deployment", "chat-backend")["spec"]["template"]["spec"]["containers"][
                0
            ]["image"]
            == "chat:2"
        ),
        "the new image in the Deployment",
    )
    wait_phase(api, ns, "chat", "Ready", timeout=120)
    dep = must(api, ns, "Deployment", "chat-backend")
    assert dep["status"]["updatedReplicas"] == dep["spec"]["replicas"]

    # Autoscaling off → HPA removed, replicas applied.
    spec: dict[str, Any] = {
        "backend": {"image": "chat:2", "replicas": 2},
        "autoscaling": {"enabled": False},
    }
    apply_instance(kubectl, instance("chat", ns, spec))
    wait_for(lambda: get(api, ns, "HorizontalPodAutoscaler", "chat-backend") is None, "HPA removed")
    wait_for(
        lambda: must(api, ns, "Deployment", "chat-backend")["spec"]["replicas"] == 2,
        "2 replicas",
    )

    # Ingress off → Ingress removed.
    spec["ingress"] = {"enabled": False}
    apply_instance(kubectl, instance("chat", ns, spec))
    wait_for(lambda: get(api, ns, "Ingress", "chat") is None, "Ingress removed")

    # Redis 1 → 3: replication with Sentinel, and the chat server pointed at Sentinel.
    spec["redis"] = {"replicas": 3}
    apply_instance(kubectl, instance("chat", ns, spec))
    wait_for(lambda: get(api, ns, "Service", "chat-redis-sentinel"), "Sentinel Service")
    wait_for(lambda: get(api, ns, "Service", "chat-redis") is None, "standalone Service removed")
    sts = must(api, ns, "StatefulSet", "chat-redis")
    assert sts["spec"]["replicas"] == 3
    containers = [c["name"] for c in sts["spec"]["template"]["spec"]["containers"]]
    assert containers == ["redis", "sentinel"]
    cm = must(api, ns, "ConfigMap", "chat-config")
    assert cm["data"]["ASOCIAL_REDIS_URL"].startswith("redis+sentinel://chat-redis-sentinel.")
    status = wait_phase(api, ns, "chat", "Ready", timeout=120)
    assert status["redis"]["ready"] == "3/3"
    assert status["backend"]["ready"] == "2/2"


def writes(op: OperatorProcess) -> float:
    for line in op.metrics().splitlines():
        if line.startswith("asocial_operator_api_writes_total "):
            return float(line.split()[1])
    return 0.0


def passes(op: OperatorProcess, result: str) -> float:
    prefix = f'asocial_operator_reconciles_total{{result="{result}"}} '
    for line in op.metrics().splitlines():
        if line.startswith(prefix):
            return float(line.split()[1])
    return 0.0


def test_config_change_rolls_pods_and_no_op_does_not(
    kubectl: Kubectl, api: cluster.Cluster, shared_ns: str, shared_operator: OperatorProcess
) -> None:
    ns = shared_ns
    create_ready(kubectl, api, ns)

    def alone() -> bool:
        # Earlier tests' namespaces still terminating would cause writes of their own.
        names = kubectl("get", "namespaces", "-o", "name").stdout.split()
        return [n for n in names if n.startswith("namespace/asi-shared-")] == [f"namespace/{ns}"]

    wait_for(alone, "other test namespaces to finish terminating", timeout=120)
    seen: list[float] = []

    def quiet() -> bool:
        seen.append(writes(shared_operator))
        return len(seen) >= 5 and len(set(seen[-5:])) == 1

    wait_for(quiet, "the operator to go quiet", timeout=60)
    before = must(api, ns, "Deployment", "chat-backend")
    writes_before = writes(shared_operator)
    unchanged_before = passes(shared_operator, "unchanged")

    # A metadata-only change of the instance is a no-op for the children.
    body = instance("chat", ns)
    body["metadata"]["labels"] = {"team": "chat"}
    apply_instance(kubectl, body)
    wait_for(
        lambda: passes(shared_operator, "unchanged") > unchanged_before,
        "a reconcile pass after the label change",
    )
    after = must(api, ns, "Deployment", "chat-backend")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    # Not even a no-op apply: live children already match what would be applied.
    assert writes(shared_operator) == writes_before

    # A config change rolls the pods through the checksum annotation.
    old_sum = before["spec"]["template"]["metadata"]["annotations"][naming.CHECKSUM_ANNOTATION]
    body["spec"] = {"backend": {"logLevel": "DEBUG"}}
    apply_instance(kubectl, body)

    def rolled() -> bool:
        dep = must(api, ns, "Deployment", "chat-backend")
        ann = dep["spec"]["template"]["metadata"]["annotations"][naming.CHECKSUM_ANNOTATION]
        return bool(
            ann != old_sum and dep["metadata"]["generation"] > before["metadata"]["generation"]
        )

    wait_for(rolled, "a new pod template checksum")
    assert must(api, ns, "ConfigMap", "chat-config")["data"]["ASOCIAL_LOG_LEVEL"] == "DEBUG"
    wait_phase(api, ns, "chat", "Ready", timeout=120)


def test_drift_is_repaired(kubectl: Kubectl, api: cluster.Cluster, shared_ns: str) -> None:
    ns = shared_ns
    create_ready(kubectl, api, ns)
    secret = must(api, ns, "Secret", "chat-redis-auth")
    password = secret["data"]["redis-password"]

    for kind, name in [
        ("Deployment", "chat-backend"),
        ("Secret", "chat-redis-auth"),
        ("Service", "chat-backend"),
    ]:
        old_uid = must(api, ns, kind, name)["metadata"]["uid"]
        kubectl("delete", kind.lower(), name, "-n", ns, "--wait=false")

        def recreated(kind: str = kind, name: str = name, old_uid: str = old_uid) -> bool:
            obj = get(api, ns, kind, name)
            return bool(obj and obj["metadata"]["uid"] != old_uid)

        wait_for(recreated, f"{kind} {name} recreated", timeout=REPAIR_SECONDS)

    # The recreated Secret keeps the password the running pods use.
    secret = wait_for(lambda: get(api, ns, "Secret", "chat-redis-auth"), "the Secret")
    assert secret["data"]["redis-password"] == password

    # A hand edit of a managed field is reverted.
    patch = {"spec": {"template": {"spec": {"terminationGracePeriodSeconds": 99}}}}
    kubectl("patch", "deployment", "chat-backend", "-n", ns, "-p", json.dumps(patch))
    wait_for(
        lambda: (
            must(api, ns, "Deployment", "chat-backend")["spec"]["template"]["spec"][
                "terminationGracePeriodSeconds"
            ]
            == 30
        ),
        "terminationGracePeriodSeconds restored",
        timeout=REPAIR_SECONDS,
    )
    ports = [{"op": "replace", "path": "/spec/ports/0/port", "value": 9999}]
    kubectl("patch", "service", "chat-backend", "-n", ns, "--type=json", "-p", json.dumps(ports))
    wait_for(
        lambda: must(api, ns, "Service", "chat-backend")["spec"]["ports"][0]["port"] == 8080,
        "Service port restored",
        timeout=REPAIR_SECONDS,
    )


def test_paused_instance_is_left_alone(
    kubectl: Kubectl, api: cluster.Cluster, shared_ns: str, shared_operator: OperatorProcess
) -> None:
    ns = shared_ns
    create_ready(kubectl, api, ns)
    apply_instance(kubectl, instance("chat", ns, {"paused": True, "backend": {"image": "x:9"}}))
    wait_phase(api, ns, "chat", "Paused")
    paused_before = passes(shared_operator, "paused")
    kubectl("delete", "service", "chat-backend", "-n", ns)
    # The deletion's event led to a pass, and the pass left the Service deleted.
    wait_for(lambda: passes(shared_operator, "paused") > paused_before, "a paused pass")
    assert get(api, ns, "Service", "chat-backend") is None
    image = must(api, ns, "Deployment", "chat-backend")["spec"]["template"]["spec"]["containers"]
    assert image[0]["image"] != "x:9"
    # Unpausing resumes: the Service returns and the image rolls.
    apply_instance(kubectl, instance("chat", ns, {"backend": {"image": "x:9"}}))
    wait_for(lambda: get(api, ns, "Service", "chat-backend"), "Service back after unpause")
    wait_phase(api, ns, "chat", "Ready", timeout=120)


def test_deletion_cleans_up_everything(
    kubectl: Kubectl, api: cluster.Cluster, shared_ns: str
) -> None:
    ns = shared_ns
    create_ready(kubectl, api, ns)
    body = must(api, ns, "AsocialInstance", "chat")
    assert not body["metadata"].get("finalizers")
    kubectl("delete", "asi", "chat", "-n", ns)

    def all_gone() -> bool:
        return all(get(api, ns, kind, name) is None for kind, name in MINIMAL_CHILDREN)

    wait_for(all_gone, "garbage collection of all children", timeout=90)
    leftovers = kubectl(
        "get",
        "all,cm,secret,sa,pdb,netpol,ing",
        "-n",
        ns,
        "-l",
        f"{naming.LABEL_INSTANCE}=chat",
        "-o",
        "name",
    ).stdout.split()
    assert leftovers == []


def test_secrets_never_leak(
    kubectl: Kubectl, api: cluster.Cluster, shared_ns: str, shared_operator: OperatorProcess
) -> None:
    ns = shared_ns
    create_ready(kubectl, api, ns, {"redis": {"replicas": 3}})
    secret = must(api, ns, "Secret", "chat-redis-auth")
    password = base64.b64decode(secret["data"]["redis-password"]).decode()
    assert len(password) >= 32
    events = kubectl("get", "events", "-n", ns, "-o", "json").stdout
    assert "asocial-operator" in events
    configmaps = kubectl("get", "configmaps", "-n", ns, "-o", "json").stdout
    status = json.dumps(must(api, ns, "AsocialInstance", "chat").get("status"))
    for where, text in [
        ("operator log", shared_operator.logs()),
        ("events", events),
        ("configmaps", configmaps),
        ("status", status),
    ]:
        assert password not in text, f"the Redis password appears in {where}"
        assert secret["data"]["redis-password"] not in text, f"encoded password in {where}"


def test_operator_metrics(
    shared_operator: OperatorProcess, kubectl: Kubectl, api: cluster.Cluster, shared_ns: str
) -> None:
    ns = shared_ns
    apply_instance(kubectl, instance("measured", ns))
    wait_phase(api, ns, "measured", "Ready", timeout=120)
    text = shared_operator.metrics()
    assert "asocial_operator_reconciles_total" in text
    assert "asocial_operator_reconcile_duration_seconds_bucket" in text
    assert 'asocial_operator_instances{phase="Ready"}' in text
    assert "asocial_operator_leader 1.0" in text.splitlines()
    labels = f'instance_name="measured",instance_namespace="{ns}"'
    assert f"asocial_operator_instance_ready{{{labels}}} 1.0" in text
    lines = text.splitlines()
    for state in ("desired", "ready"):
        sample = (
            f'asocial_operator_instance_replicas{{component="backend",{labels},state="{state}"}}'
        )
        assert any(line.startswith(sample) and not line.endswith(" 0.0") for line in lines)

    kubectl("delete", "asocialinstance", "measured", "-n", ns, "--wait=true")
    wait_for(
        lambda: labels not in shared_operator.metrics(),
        "the deleted instance's series gone from the operator's metrics",
        timeout=30,
    )


def test_redis_persistence_and_claim_retention(
    kubectl: Kubectl, api: cluster.Cluster, shared_ns: str
) -> None:
    ns = shared_ns
    spec: dict[str, Any] = {"redis": {"persistence": {"enabled": True, "size": "1Gi"}}}
    status = create_ready(kubectl, api, ns, spec)
    assert status["redis"]["ready"] == "1/1"
    claims = kubectl("get", "pvc", "-n", ns, "-o", "json").stdout
    (claim,) = json.loads(claims)["items"]
    assert claim["metadata"]["name"] == "data-chat-redis-0"
    wait_for(
        lambda: (
            json.loads(
                kubectl("get", "pvc", claim["metadata"]["name"], "-n", ns, "-o", "json").stdout
            )["status"].get("phase")
            == "Bound"
        ),
        "the claim to bind",
    )
    # Claims are kept by default when the instance goes away.
    kubectl("delete", "asi", "chat", "-n", ns)
    wait_for(lambda: get(api, ns, "StatefulSet", "chat-redis") is None, "StatefulSet collected")
    assert kubectl("get", "pvc", "-n", ns, "-o", "name").stdout.split() == [
        "persistentvolumeclaim/data-chat-redis-0"
    ]


def test_external_redis_creates_no_redis(
    kubectl: Kubectl, api: cluster.Cluster, shared_ns: str
) -> None:
    ns = shared_ns
    spec = {
        "redis": {
            "mode": "external",
            "url": "rediss://redis.example.internal:6380/0",
            "passwordSecretRef": {"name": "my-redis", "key": "pw"},
        },
        "ingress": {"enabled": False},
    }
    status = create_ready(kubectl, api, ns, spec)
    assert status["redis"]["ready"] == "external"
    assert get(api, ns, "StatefulSet", "chat-redis") is None
    assert get(api, ns, "Secret", "chat-redis-auth") is None
    dep = must(api, ns, "Deployment", "chat-backend")
    env = dep["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env[0]["valueFrom"]["secretKeyRef"] == {"name": "my-redis", "key": "pw"}
    cm = must(api, ns, "ConfigMap", "chat-config")
    assert cm["data"]["ASOCIAL_REDIS_URL"] == "rediss://redis.example.internal:6380/0"


MONITORING_KINDS = {"servicemonitors": "ServiceMonitor", "prometheusrules": "PrometheusRule"}


def monitoring_crd(plural: str, kind: str) -> dict[str, Any]:
    """A stand-in for a Prometheus Operator CRD (any fields accepted)."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


def test_frontend_and_monitoring_objects(
    kubectl: Kubectl, api: cluster.Cluster, shared_ns: str
) -> None:
    """A frontend takes `/`; a ServiceMonitor and a PrometheusRule (where their CRDs
    exist) and the dashboard ConfigMap appear when asked for, and go."""
    ns = shared_ns
    added = []
    for plural, kind in MONITORING_KINDS.items():
        crd = f"{plural}.monitoring.coreos.com"
        # The devcluster's real node brings the Prometheus Operator's own CRDs.
        if kubectl("get", "crd", crd, check=False).returncode != 0:
            body = json.dumps(monitoring_crd(plural, kind))
            kubectl("apply", "--server-side", "-f", "-", input=body)
            added.append(crd)
        kubectl("wait", "--for=condition=Established", f"crd/{crd}")
    try:
        spec: dict[str, Any] = {
            "frontend": {"image": "web:1", "replicas": 2},
            "monitoring": {"serviceMonitor": True, "prometheusRule": True, "dashboard": True},
        }
        create_ready(kubectl, api, ns, spec)
        assert must(api, ns, "Deployment", "chat-frontend")["spec"]["replicas"] == 2
        assert must(api, ns, "Service", "chat-frontend")["spec"]["ports"][0]["port"] == 80
        paths = must(api, ns, "Ingress", "chat")["spec"]["rules"][0]["http"]["paths"]
        assert [(p["path"], p["backend"]["service"]["name"]) for p in paths] == [
            ("/api", "chat-backend"),
            ("/", "chat-frontend"),
        ]
        monitor = wait_for(lambda: get(api, ns, "ServiceMonitor", "chat-backend"), "ServiceMonitor")
        assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
        rule = wait_for(lambda: get(api, ns, "PrometheusRule", "chat-alerts"), "PrometheusRule")
        alerts = [r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]]
        assert "AsocialRedisDown" in alerts
        dashboard = must(api, ns, "ConfigMap", "chat-dashboard")
        assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert json.loads(dashboard["data"]["asocial-dashboard.json"])["uid"] == "asocial-chat"

        apply_instance(kubectl, instance("chat", ns, {}))
        wait_for(lambda: get(api, ns, "Deployment", "chat-frontend") is None, "frontend removed")
        for kind, name in (
            ("ServiceMonitor", "chat-backend"),
            ("PrometheusRule", "chat-alerts"),
            ("ConfigMap", "chat-dashboard"),
        ):
            wait_for(lambda k=kind, n=name: get(api, ns, k, n) is None, f"{kind} {name} removed")
    finally:
        for crd in added:
            kubectl("delete", "crd", crd, "--wait=false")

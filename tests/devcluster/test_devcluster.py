"""The devcluster is a real Kubernetes control plane: exercise it with kubectl and the
Python client the way the operator and its tests will."""

from __future__ import annotations

import base64
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from tests.fixtures import processes
from tests.fixtures.devcluster import (
    KUBECONFIG_ENV,
    ON_FAKE_NODES,
    Kubectl,
    devcluster,
    devcluster_bin_dir,
)

pytestmark = pytest.mark.devcluster

T = TypeVar("T")
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
KWOK_ANNOTATION = "kwok.x-k8s.io/node"
_SERIALIZER = k8s.ApiClient()


_SANITIZE: Callable[[object], Any] = _SERIALIZER.sanitize_for_serialization


def as_json(obj: object) -> Any:
    """An API model object as the JSON the API server sent (camelCase keys)."""
    return _SANITIZE(obj)


def wait_for(check: Callable[[], T | None], what: str, timeout: float = 90.0) -> T:
    """``processes.wait_for`` with API errors counted as "not yet"."""
    return processes.wait_for(check, what, timeout, tolerate=(ApiException,), interval=0.5)


def gone(read: Callable[[], object]) -> bool:
    try:
        read()
    except ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


def apply(kubectl: Kubectl, namespace: str, *objects: dict[str, Any]) -> str:
    manifest = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
    return kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest)).stdout


def pod_template(app: str, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": app}},
        "spec": {
            "containers": [
                {
                    "name": app,
                    "image": PAUSE_IMAGE,
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                }
            ],
            **ON_FAKE_NODES,
            **spec,
        },
    }


def deployment(name: str, replicas: int, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": pod_template(name, **spec),
        },
    }


@pytest.fixture(scope="session")
def api_client(kubeconfig: str) -> Iterator[k8s.ApiClient]:
    # The client's helpers are untyped; bind them to typed names instead of ignoring.
    new_client: Callable[..., k8s.ApiClient] = k8s_config.new_client_from_config
    api = new_client(config_file=kubeconfig)
    close: Callable[[], None] = api.close
    try:
        yield api
    finally:
        close()


@pytest.fixture
def core(api_client: k8s.ApiClient) -> k8s.CoreV1Api:
    return k8s.CoreV1Api(api_client)


@pytest.fixture
def namespace(core: k8s.CoreV1Api, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace (with its default ServiceAccount) per test, deleted afterwards."""
    short = request.node.name.removeprefix("test_").replace("_", "-")[:30].strip("-")
    name = f"dc-{short}-{uuid.uuid4().hex[:6]}"
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
    wait_for(
        lambda: core.read_namespaced_service_account("default", name),
        "the namespace's default ServiceAccount",
    )
    try:
        yield name
    finally:
        core.delete_namespace(name)


def fake_nodes(core: k8s.CoreV1Api) -> set[str]:
    nodes = as_json(core.list_node())["items"]
    return {
        n["metadata"]["name"]
        for n in nodes
        if KWOK_ANNOTATION in n["metadata"].get("annotations", {})
    }


def is_ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def test_deployment_gets_three_ready_pods_spread_over_fake_nodes(
    kubectl: Kubectl, core: k8s.CoreV1Api, namespace: str
) -> None:
    spread = {
        "maxSkew": 1,
        "topologyKey": "kubernetes.io/hostname",
        "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"app": "web"}},
    }
    apply(kubectl, namespace, deployment("web", 3, topologySpreadConstraints=[spread]))
    kubectl("rollout", "status", "deployment/web", "-n", namespace, "--timeout=120s", timeout=150)

    pods = as_json(core.list_namespaced_pod(namespace, label_selector="app=web"))["items"]
    ready = [p for p in pods if is_ready(p) and p["status"]["phase"] == "Running"]
    assert len(ready) == 3, [(p["metadata"]["name"], p["status"]["phase"]) for p in pods]
    nodes = fake_nodes(core)
    used = {p["spec"]["nodeName"] for p in ready}
    assert used <= nodes
    assert len(used) == min(3, len(nodes))
    assert all(p["status"].get("podIP") for p in ready)


def test_statefulset_claims_bind_and_pods_become_ready(
    kubectl: Kubectl, api_client: k8s.ApiClient, core: k8s.CoreV1Api, namespace: str
) -> None:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "db"},
        "spec": {"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"port": 5432}]},
    }
    template = pod_template("db")
    template["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    statefulset = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db"},
        "spec": {
            "serviceName": "db",
            "replicas": 2,
            "selector": {"matchLabels": {"app": "db"}},
            "template": template,
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
            ],
        },
    }
    apply(kubectl, namespace, service, statefulset)
    apps = k8s.AppsV1Api(api_client)
    wait_for(
        lambda: (
            as_json(apps.read_namespaced_stateful_set("db", namespace))["status"].get(
                "readyReplicas"
            )
            == 2
        ),
        "2 ready StatefulSet replicas",
        timeout=120,
    )
    claims = as_json(core.list_namespaced_persistent_volume_claim(namespace))["items"]
    assert sorted(c["metadata"]["name"] for c in claims) == ["data-db-0", "data-db-1"]
    assert all(c["status"]["phase"] == "Bound" for c in claims)
    volumes: set[str] = {c["spec"]["volumeName"] for c in claims}
    assert len(volumes) == 2
    for pod in as_json(core.list_namespaced_pod(namespace, label_selector="app=db"))["items"]:
        assert is_ready(pod)
        claim_names = [
            v["persistentVolumeClaim"]["claimName"]
            for v in pod["spec"]["volumes"]
            if "persistentVolumeClaim" in v
        ]
        assert claim_names == [f"data-{pod['metadata']['name']}"]

    kubectl("delete", "statefulset", "db", "-n", namespace, "--wait=true")
    kubectl("delete", "pvc", "--all", "-n", namespace, "--wait=true")


def test_deleting_an_owner_garbage_collects_dependents(
    kubectl: Kubectl, api_client: k8s.ApiClient, core: k8s.CoreV1Api, namespace: str
) -> None:
    owner = core.create_namespaced_config_map(
        namespace, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="owner"), data={"a": "b"})
    )
    ref = k8s.V1OwnerReference(
        api_version="v1", kind="ConfigMap", name="owner", uid=as_json(owner)["metadata"]["uid"]
    )
    core.create_namespaced_config_map(
        namespace, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="dep", owner_references=[ref]))
    )
    core.create_namespaced_secret(
        namespace,
        k8s.V1Secret(metadata=k8s.V1ObjectMeta(name="dep", owner_references=[ref])),
    )
    kubectl("delete", "configmap", "owner", "-n", namespace)
    wait_for(lambda: gone(lambda: core.read_namespaced_config_map("dep", namespace)), "cm GC")
    wait_for(lambda: gone(lambda: core.read_namespaced_secret("dep", namespace)), "secret GC")

    # Foreground cascading deletion through Deployment -> ReplicaSet -> Pods.
    apply(kubectl, namespace, deployment("gc", 2))
    kubectl("rollout", "status", "deployment/gc", "-n", namespace, "--timeout=120s", timeout=150)
    apps = k8s.AppsV1Api(api_client)
    assert apps.list_namespaced_replica_set(namespace, label_selector="app=gc").items
    kubectl("delete", "deployment", "gc", "-n", namespace, "--cascade=foreground", "--wait=true")
    wait_for(
        lambda: not apps.list_namespaced_replica_set(namespace, label_selector="app=gc").items,
        "ReplicaSets to be collected",
    )
    wait_for(
        lambda: not core.list_namespaced_pod(namespace, label_selector="app=gc").items,
        "pods to be collected",
    )


def widget_crd(group: str) -> dict[str, Any]:
    spec_schema = {
        "type": "object",
        "required": ["size", "minReplicas", "maxReplicas"],
        "x-kubernetes-validations": [
            {
                "rule": "self.minReplicas <= self.maxReplicas",
                "message": "minReplicas must not exceed maxReplicas",
            }
        ],
        "properties": {
            "size": {"type": "string", "enum": ["small", "large"]},
            "minReplicas": {"type": "integer", "minimum": 0},
            "maxReplicas": {"type": "integer", "maximum": 10},
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": "Size", "type": "string", "jsonPath": ".spec.size"},
                        {"name": "Max", "type": "integer", "jsonPath": ".spec.maxReplicas"},
                        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": spec_schema,
                                "status": {
                                    "type": "object",
                                    "properties": {"phase": {"type": "string"}},
                                },
                            },
                        }
                    },
                }
            ],
        },
    }


def test_crd_with_status_printer_columns_and_cel_validation(
    kubectl: Kubectl, api_client: k8s.ApiClient, namespace: str
) -> None:
    group = f"t{uuid.uuid4().hex[:8]}.devcluster.asocial.test"
    crd = widget_crd(group)
    resource = f"widgets.{group}"
    kubectl("apply", "-f", "-", input=json.dumps(crd))
    try:
        kubectl("wait", "--for=condition=Established", f"crd/{resource}", "--timeout=60s")

        def widget(name: str, size: str, low: int, high: int) -> str:
            body = {
                "apiVersion": f"{group}/v1",
                "kind": "Widget",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"size": size, "minReplicas": low, "maxReplicas": high},
            }
            return json.dumps(body)

        wait_for(
            lambda: (
                kubectl(
                    "apply", "-f", "-", input=widget("w1", "small", 1, 3), check=False
                ).returncode
                == 0
            ),
            "the new resource to be served",
            timeout=60,
        )
        kubectl(
            "patch", resource, "w1", "-n", namespace, "--subresource=status", "--type=merge",
            "-p", '{"status": {"phase": "Ready"}}',
        )  # fmt: skip
        table = kubectl("get", resource, "-n", namespace).stdout.splitlines()
        assert table[0].split() == ["NAME", "SIZE", "MAX", "PHASE", "AGE"], table
        assert table[1].split()[:4] == ["w1", "small", "3", "Ready"], table

        too_big = kubectl("apply", "-f", "-", input=widget("w2", "small", 1, 11), check=False)
        assert too_big.returncode != 0
        assert "spec.maxReplicas" in too_big.stderr
        assert "should be less than or equal to 10" in too_big.stderr

        bad_enum = kubectl("apply", "-f", "-", input=widget("w3", "huge", 1, 2), check=False)
        assert bad_enum.returncode != 0
        assert 'Unsupported value: "huge"' in bad_enum.stderr

        cel = kubectl("apply", "-f", "-", input=widget("w4", "large", 5, 2), check=False)
        assert cel.returncode != 0
        assert "minReplicas must not exceed maxReplicas" in cel.stderr

        custom = k8s.CustomObjectsApi(api_client)
        with pytest.raises(ApiException) as rejected:
            custom.create_namespaced_custom_object(
                group, "v1", namespace, "widgets", json.loads(widget("w5", "large", 7, 2))
            )
        assert rejected.value.status == 422
        assert "minReplicas must not exceed maxReplicas" in str(rejected.value.body)
        stored: Any = custom.get_namespaced_custom_object(group, "v1", namespace, "widgets", "w1")
        assert stored["status"] == {"phase": "Ready"}
    finally:
        kubectl("delete", "crd", resource, "--ignore-not-found", "--wait=false")


def _token_client(kubeconfig: str, token: str, tmp_path: Path) -> k8s.ApiClient:
    """An API client that authenticates with nothing but a bearer token."""
    loaded = yaml.safe_load(Path(kubeconfig).read_text())
    contexts = {c["name"]: c["context"] for c in loaded["contexts"]}
    cluster_name = contexts[loaded["current-context"]]["cluster"]
    cluster = {c["name"]: c["cluster"] for c in loaded["clusters"]}[cluster_name]
    cfg = k8s.Configuration()
    cfg.host = cluster["server"]
    if "certificate-authority-data" in cluster:
        ca = tmp_path / "ca.crt"
        ca.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
        cfg.ssl_ca_cert = str(ca)
    elif "certificate-authority" in cluster:
        cfg.ssl_ca_cert = cluster["certificate-authority"]
    cfg.api_key = {"authorization": f"Bearer {token}"}
    return k8s.ApiClient(cfg)


def test_rbac_denies_a_service_account_token_without_permissions(
    kubectl: Kubectl, kubeconfig: str, namespace: str, tmp_path: Path
) -> None:
    kubectl("create", "serviceaccount", "nobody", "-n", namespace)
    token = kubectl("create", "token", "nobody", "-n", namespace, "--duration=10m").stdout.strip()
    assert token.count(".") == 2  # a JWT from the TokenRequest API

    with _token_client(kubeconfig, token, tmp_path) as as_nobody:
        review = k8s.AuthenticationV1Api(as_nobody).create_self_subject_review(
            k8s.V1SelfSubjectReview()
        )
        username = as_json(review)["status"]["userInfo"]["username"]
        assert username == f"system:serviceaccount:{namespace}:nobody"

        core = k8s.CoreV1Api(as_nobody)
        with pytest.raises(ApiException) as denied:
            core.list_namespaced_secret(namespace)
        assert denied.value.status == 403
        assert "forbidden" in str(denied.value.body).lower()

        # Granting a Role makes exactly that request succeed.
        kubectl(
            "create", "role", "cm-reader", "--verb=list", "--resource=configmaps", "-n", namespace
        )
        kubectl(
            "create", "rolebinding", "cm-reader", "--role=cm-reader",
            f"--serviceaccount={namespace}:nobody", "-n", namespace,
        )  # fmt: skip

        def can_list() -> bool:
            try:
                core.list_namespaced_config_map(namespace)
            except ApiException as exc:
                if exc.status == 403:
                    return False
                raise
            return True

        wait_for(can_list, "the RoleBinding to take effect", timeout=30)
        with pytest.raises(ApiException) as still_denied:
            core.list_namespaced_secret(namespace)
        assert still_denied.value.status == 403


def test_hpa_ingress_pdb_and_networkpolicy_are_accepted(
    kubectl: Kubectl, api_client: k8s.ApiClient, namespace: str
) -> None:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
    }
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1,
            "maxReplicas": 3,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 50},
                    },
                }
            ],
        },
    }
    ingress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "web"},
        "spec": {
            "rules": [
                {
                    "host": "web.example.test",
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": "web", "port": {"number": 80}}},
                            }
                        ]
                    },
                }
            ]
        },
    }
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "web"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}},
    }
    netpol = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "web"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "web"}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [{"podSelector": {"matchLabels": {"role": "frontend"}}}],
                    "ports": [{"protocol": "TCP", "port": 80}],
                }
            ],
        },
    }
    out = apply(kubectl, namespace, deployment("web", 1), service, hpa, ingress, pdb, netpol)
    for kind in ("horizontalpodautoscaler", "ingress", "poddisruptionbudget", "networkpolicy"):
        assert f"{kind}.".lower() in out.lower(), out

    autoscaling = k8s.AutoscalingV2Api(api_client)
    networking = k8s.NetworkingV1Api(api_client)
    policy = k8s.PolicyV1Api(api_client)
    read_hpa = autoscaling.read_namespaced_horizontal_pod_autoscaler
    assert as_json(read_hpa("web", namespace))["spec"]["maxReplicas"] == 3
    rule = as_json(networking.read_namespaced_ingress("web", namespace))["spec"]["rules"][0]
    assert rule["host"] == "web.example.test"
    stored_policy = as_json(networking.read_namespaced_network_policy("web", namespace))
    assert stored_policy["spec"]["policyTypes"] == ["Ingress"]
    # The disruption controller runs: it counts the Deployment's healthy pod.
    wait_for(
        lambda: (
            as_json(policy.read_namespaced_pod_disruption_budget("web", namespace))["status"].get(
                "currentHealthy"
            )
            == 1
        ),
        "the PodDisruptionBudget status",
        timeout=120,
    )
    # The HPA controller runs too, but without a metrics server it cannot read CPU usage.
    conditions = wait_for(
        lambda: as_json(read_hpa("web", namespace)).get("status", {}).get("conditions"),
        "HPA conditions",
        timeout=120,
    )
    assert "AbleToScale" in {c["type"] for c in conditions}


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def _listening_ports() -> set[int]:
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            parts = line.split()
            if parts[3] == "0A":
                ports.add(int(parts[1].rsplit(":", 1)[1], 16))
    return ports


def test_down_leaves_no_process_and_no_listening_port(tmp_path: Path) -> None:
    """A second, private devcluster (own state dir, own free ports) goes up and down."""
    if os.environ.get(KUBECONFIG_ENV) and not (devcluster_bin_dir() / "kube-apiserver").exists():
        pytest.skip("devcluster binaries are not built (using an external cluster)")
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASOCIAL_DEVCLUSTER_")}
    env["ASOCIAL_DEVCLUSTER_DIR"] = str(state)
    env["ASOCIAL_DEVCLUSTER_PVS"] = "2"
    env["ASOCIAL_DEVCLUSTER_REAL_NODE"] = "0"  # the machine's one real node is the main one's

    started = time.monotonic()
    kubeconfig = devcluster("up", env=env, timeout=240).strip().splitlines()[-1]
    up_seconds = time.monotonic() - started
    assert Path(kubeconfig).is_relative_to(state)
    recorded = json.loads((state / "state.json").read_text())
    pids = [int(p["pid"]) for p in recorded["processes"].values()]
    ports = {int(p) for p in recorded["ports"].values()}
    assert len(pids) == 5
    assert all(_alive(pid) for pid in pids)
    with socket.create_connection(("127.0.0.1", recorded["ports"]["apiserver"]), timeout=5):
        pass
    assert ports & _listening_ports()
    print(f"private devcluster up in {up_seconds:.1f}s")

    devcluster("down", env=env, timeout=120)

    assert [pid for pid in pids if _alive(pid)] == []
    assert ports & _listening_ports() == set()
    for port in ports:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
    assert not state.exists()

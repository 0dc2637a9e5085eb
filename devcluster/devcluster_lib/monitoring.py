"""The devcluster's monitoring: the Prometheus Operator and one Prometheus on the real
node, as a platform team runs them.

The Prometheus ``devcluster-system/devcluster`` selects every ServiceMonitor and every
PrometheusRule in every namespace, scrapes every 5 s and evaluates rules every 5 s (a
development cluster: alerts show within seconds of their ``for``). Its API is the
Service ``devcluster-system/prometheus`` (port 9090), reachable from the host like any
Service. There is no web UI (the binary is built without its assets); the HTTP API is
all there.

The CRDs and the two ClusterRoles (the operator's, and the one Prometheus scrapes with)
are the module's own files, applied by ``cluster`` with the Gateway API's CRDs. Objects
here are data; ``cluster`` creates them.
"""

from __future__ import annotations

from typing import Any

from . import config

NAMESPACE = "devcluster-system"
PROMETHEUS = "devcluster"
SERVICE = "prometheus"
PORT = 9090
OPERATOR_IMAGE = f"devcluster.local/prometheus-operator:{config.PROMETHEUS_OPERATOR_VERSION}"
RELOADER_IMAGE = f"devcluster.local/prometheus-config-reloader:{config.PROMETHEUS_OPERATOR_VERSION}"
PROMETHEUS_IMAGE = f"devcluster.local/prometheus:{config.PROMETHEUS_VERSION}"
INTERVAL = "5s"
LABELS = {"app.kubernetes.io/part-of": "devcluster"}
OPERATOR_LABELS = {**LABELS, "app.kubernetes.io/name": "prometheus-operator"}

Object = dict[str, Any]

_RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}


def _binding(name: str, account: str) -> Object:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": f"devcluster-{name}", "labels": LABELS},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}],
    }


def _account(name: str) -> Object:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": LABELS},
    }


def _operator() -> Object:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "prometheus-operator", "namespace": NAMESPACE, "labels": LABELS},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "prometheus-operator"}},
            "template": {
                "metadata": {"labels": OPERATOR_LABELS},
                "spec": {
                    "serviceAccountName": "prometheus-operator",
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 65534,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "prometheus-operator",
                            "image": OPERATOR_IMAGE,
                            "imagePullPolicy": "Never",
                            "args": [f"--prometheus-config-reloader={RELOADER_IMAGE}"],
                            "env": [{"name": "GOGC", "value": "30"}],
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "resources": {
                                "requests": {"cpu": "50m", "memory": "64Mi"},
                                "limits": {"memory": "256Mi"},
                            },
                            "securityContext": _RESTRICTED,
                        }
                    ],
                },
            },
        },
    }


def _prometheus() -> Object:
    everything: Object = {}
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "Prometheus",
        "metadata": {"name": PROMETHEUS, "namespace": NAMESPACE, "labels": LABELS},
        "spec": {
            "image": PROMETHEUS_IMAGE,
            "version": config.PROMETHEUS_VERSION,
            "imagePullPolicy": "Never",
            "replicas": 1,
            "serviceAccountName": "prometheus",
            "serviceMonitorSelector": everything,
            "serviceMonitorNamespaceSelector": everything,
            "podMonitorSelector": everything,
            "podMonitorNamespaceSelector": everything,
            "ruleSelector": everything,
            "ruleNamespaceSelector": everything,
            "scrapeInterval": INTERVAL,
            "evaluationInterval": INTERVAL,
            "retention": "6h",
            "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}},
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65534,
                "fsGroup": 65534,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
        },
    }


def _service() -> Object:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": SERVICE, "namespace": NAMESPACE, "labels": LABELS},
        "spec": {
            "selector": {"app.kubernetes.io/name": "prometheus", "prometheus": PROMETHEUS},
            "ports": [{"name": "web", "port": PORT, "targetPort": "web"}],
        },
    }


def objects() -> list[tuple[str, Object]]:
    """(collection path, object) pairs to create, in order (after the CRDs and the
    ClusterRoles ``prometheus-operator`` and ``prometheus`` exist)."""
    core = f"/api/v1/namespaces/{NAMESPACE}"
    rbac = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"
    return [
        (
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        ),
        (f"{core}/serviceaccounts", _account("prometheus-operator")),
        (f"{core}/serviceaccounts", _account("prometheus")),
        (rbac, _binding("prometheus-operator", "prometheus-operator")),
        (rbac, _binding("prometheus", "prometheus")),
        (f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments", _operator()),
        (f"/apis/monitoring.coreos.com/v1/namespaces/{NAMESPACE}/prometheuses", _prometheus()),
        (f"{core}/services", _service()),
    ]


def available(prometheus: Object | None) -> tuple[bool, str]:
    """Whether the operator reports the Prometheus Available."""
    conditions = ((prometheus or {}).get("status") or {}).get("conditions") or []
    for condition in conditions:
        if condition.get("type") == "Available":
            ok = condition.get("status") == "True"
            return ok, "available" if ok else str(condition.get("message", ""))[:300]
    return False, "no status yet"

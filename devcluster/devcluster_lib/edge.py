"""The devcluster's edge: Traefik as a pod on the real node, serving the Gateway API and
Ingresses of class ``traefik``, and the Gateway ``devcluster-system/devcluster`` that
application routes attach to.

The pod uses the host's network and listens on loopback only, as kind maps ports to its
ingress: HTTP on ``127.0.0.1:8080``, HTTPS on ``127.0.0.1:8443`` (the Gateway's two
listeners, whose ports are Traefik's entry points), its health on ``127.0.0.1:9080``.
The HTTPS certificate covers ``*.devcluster.test``, ``localhost`` and ``127.0.0.1`` and
is signed by a CA that the devcluster makes once and keeps in its cache, so a browser or
client told to trust it (``devcluster ca``) goes on trusting it across ``down`` and
``up``. Objects are data here; ``cluster`` creates them.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from . import certs, config

NAMESPACE = "devcluster-system"
GATEWAY = "devcluster"
GATEWAY_CLASS = "traefik"
INGRESS_CLASS = "traefik"
TLS_SECRET = "devcluster-tls"
HTTP_PORT, HTTPS_PORT, HEALTH_PORT = 8080, 8443, 9080
IMAGE = f"devcluster.local/traefik:{config.TRAEFIK_VERSION}"
HOSTNAMES = ("*.devcluster.test", "devcluster.test", "localhost")
LABELS = {"app.kubernetes.io/name": "traefik", "app.kubernetes.io/part-of": "devcluster"}

Object = dict[str, Any]


def ca_dir() -> Path:
    """The edge CA, kept across clusters: ``down`` does not remove it."""
    return config.cache_root() / "edge-ca"


def ca_cert() -> Path:
    return certs.edge_ca(ca_dir()).ca_cert


def _traefik_args() -> list[str]:
    return [
        f"--entryPoints.web.address=127.0.0.1:{HTTP_PORT}",
        f"--entryPoints.websecure.address=127.0.0.1:{HTTPS_PORT}",
        f"--entryPoints.traefik.address=127.0.0.1:{HEALTH_PORT}",
        "--ping=true",
        "--ping.entryPoint=traefik",
        "--providers.kubernetesgateway=true",
        "--providers.kubernetesgateway.statusAddress.ip=127.0.0.1",
        "--providers.kubernetesingress=true",
        f"--providers.kubernetesingress.ingressClass={INGRESS_CLASS}",
        "--providers.kubernetesingress.ingressEndpoint.ip=127.0.0.1",
        "--global.checkNewVersion=false",
        "--global.sendAnonymousUsage=false",
        "--log.level=INFO",
    ]


def _rbac() -> list[tuple[str, Object]]:
    """Least privilege for Traefik's two providers: read what it routes, write the
    status of what it serves. Secrets are read cluster-wide, for listeners' and
    Ingresses' certificates wherever they are."""
    read = ["get", "list", "watch"]
    gateway_kinds = ["gatewayclasses", "gateways", "httproutes", "grpcroutes", "referencegrants"]
    gateway_kinds.append("backendtlspolicies")
    rules = [
        {
            # ConfigMaps hold the CAs of BackendTLSPolicies; nodes, for its informers.
            "apiGroups": [""],
            "resources": ["services", "secrets", "namespaces", "configmaps", "nodes"],
            "verbs": read,
        },
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": read},
        {
            "apiGroups": ["networking.k8s.io"],
            "resources": ["ingresses", "ingressclasses"],
            "verbs": read,
        },
        {
            "apiGroups": ["networking.k8s.io"],
            "resources": ["ingresses/status"],
            "verbs": ["update"],
        },
        {"apiGroups": ["gateway.networking.k8s.io"], "resources": gateway_kinds, "verbs": read},
        {
            "apiGroups": ["gateway.networking.k8s.io"],
            "resources": [f"{kind}/status" for kind in gateway_kinds if kind != "referencegrants"],
            "verbs": ["update", "patch"],
        },
    ]
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    return [
        (
            f"{rbac}/clusterroles",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": "devcluster-traefik", "labels": LABELS},
                "rules": rules,
            },
        ),
        (
            f"{rbac}/clusterrolebindings",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "devcluster-traefik", "labels": LABELS},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "devcluster-traefik",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "traefik", "namespace": NAMESPACE}],
            },
        ),
    ]


def _deployment() -> Object:
    probe = {
        "httpGet": {"host": "127.0.0.1", "path": "/ping", "port": HEALTH_PORT},
        "periodSeconds": 2,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "traefik", "namespace": NAMESPACE, "labels": LABELS},
        "spec": {
            "replicas": 1,
            # Host ports: the old pod must be gone before the new one can listen.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": {"app.kubernetes.io/name": "traefik"}},
            "template": {
                "metadata": {"labels": LABELS},
                "spec": {
                    "serviceAccountName": "traefik",
                    "hostNetwork": True,
                    "dnsPolicy": "ClusterFirstWithHostNet",
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 65532,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "traefik",
                            "image": IMAGE,
                            "imagePullPolicy": "Never",
                            "command": ["/traefik"],
                            "args": _traefik_args(),
                            "readinessProbe": probe,
                            "livenessProbe": {**probe, "periodSeconds": 10},
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                        }
                    ],
                },
            },
        },
    }


def _gateway() -> Object:
    admitted = {"namespaces": {"from": "All"}}
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": GATEWAY, "namespace": NAMESPACE, "labels": LABELS},
        "spec": {
            "gatewayClassName": GATEWAY_CLASS,
            "listeners": [
                {"name": "http", "protocol": "HTTP", "port": HTTP_PORT, "allowedRoutes": admitted},
                {
                    "name": "https",
                    "protocol": "HTTPS",
                    "port": HTTPS_PORT,
                    "tls": {"mode": "Terminate", "certificateRefs": [{"name": TLS_SECRET}]},
                    "allowedRoutes": admitted,
                },
            ],
        },
    }


def objects(tls_cert: bytes, tls_key: bytes) -> list[tuple[str, Object]]:
    """(collection path, object) pairs to create, in order."""
    core = f"/api/v1/namespaces/{NAMESPACE}"
    gateway_api = "/apis/gateway.networking.k8s.io/v1"
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": TLS_SECRET, "namespace": NAMESPACE, "labels": LABELS},
        "data": {
            "tls.crt": base64.b64encode(tls_cert).decode(),
            "tls.key": base64.b64encode(tls_key).decode(),
        },
    }
    return [
        (
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        ),
        (
            f"{core}/serviceaccounts",
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "traefik", "namespace": NAMESPACE, "labels": LABELS},
            },
        ),
        *_rbac(),
        (f"{core}/secrets", secret),
        (
            "/apis/networking.k8s.io/v1/ingressclasses",
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "IngressClass",
                "metadata": {"name": INGRESS_CLASS, "labels": LABELS},
                "spec": {"controller": "traefik.io/ingress-controller"},
            },
        ),
        (
            f"{gateway_api}/gatewayclasses",
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "GatewayClass",
                "metadata": {"name": GATEWAY_CLASS, "labels": LABELS},
                "spec": {"controllerName": "traefik.io/gateway-controller"},
            },
        ),
        (f"{gateway_api}/namespaces/{NAMESPACE}/gateways", _gateway()),
        (f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments", _deployment()),
    ]


def server_certificate(state: Path) -> tuple[bytes, bytes]:
    """The HTTPS listener's certificate and key, signed by the kept edge CA."""
    cert, key = certs.edge_server_cert(
        certs.edge_ca(ca_dir()),
        state / "edge",
        dns=HOSTNAMES,
        ips=("127.0.0.1",),
    )
    return cert.read_bytes(), key.read_bytes()


def serving() -> tuple[bool, str]:
    """Whether Traefik answers on both listeners (any HTTP status counts)."""
    for url in (f"http://127.0.0.1:{HTTP_PORT}/", f"http://127.0.0.1:{HEALTH_PORT}/ping"):
        try:
            with urllib.request.urlopen(url, timeout=2):
                pass
        except urllib.error.HTTPError:
            continue  # an answer (404 where no route matches yet)
        except OSError as exc:
            return False, f"{url}: {exc}"
    return True, "serving"


def gateway_programmed(status: Object | None) -> tuple[bool, str]:
    """Whether Traefik took the Gateway (its Programmed condition)."""
    conditions = ((status or {}).get("status") or {}).get("conditions") or []
    programmed = [c for c in conditions if c.get("type") == "Programmed"]
    if programmed and programmed[0].get("status") == "True":
        return True, "programmed"
    return False, json.dumps(conditions)[:300] or "no status yet"

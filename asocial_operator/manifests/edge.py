"""What faces users: the Ingress, the HTTPRoute, the optional frontend and the
ServiceMonitor.

Pure data; no I/O.
"""

from __future__ import annotations

from asocial_operator import naming
from asocial_operator.manifests import common

NGINX = "nginx.ingress.kubernetes.io"
TRAEFIK = "traefik.ingress.kubernetes.io"


def ingress_annotations(ctx: common.Context) -> dict[str, str]:
    """What the Ingress's controller needs, by class: ingress-nginx's own annotations
    for ``nginx`` (retired upstream in March 2026: no more fixes), Traefik's for
    ``traefik``, none for any other class. cert-manager's, and the user's own, always.
    The per-client request limit is the chat server's, so it holds behind any of them."""
    ing = ctx.spec.ingress
    annotations: dict[str, str] = {}
    if ing.class_name == "nginx":
        timeout = str(ing.proxy_timeout_seconds)
        annotations |= {
            # WebSockets stay open for long; nginx's 60 s default would cut idle ones.
            f"{NGINX}/proxy-read-timeout": timeout,
            f"{NGINX}/proxy-send-timeout": timeout,
            f"{NGINX}/proxy-http-version": "1.1",
            # Per client IP: requests per minute, at the edge as well.
            f"{NGINX}/limit-rpm": str(ing.rate_limit_per_minute),
        }
        if ing.tls.enabled:
            annotations[f"{NGINX}/ssl-redirect"] = "true"
    elif ing.class_name == "traefik" and ing.tls.enabled:
        # Traefik serves an Ingress on every entry point unless told; with TLS, only
        # the secure one (it proxies WebSockets and keeps them open without settings).
        annotations |= {
            f"{TRAEFIK}/router.entrypoints": "websecure",
            f"{TRAEFIK}/router.tls": "true",
        }
    if ing.tls.enabled and ing.tls.cluster_issuer:
        annotations["cert-manager.io/cluster-issuer"] = ing.tls.cluster_issuer
    if ing.tls.enabled and ing.tls.issuer:
        annotations["cert-manager.io/issuer"] = ing.tls.issuer
    annotations.update(ing.annotations)
    return annotations


def _path(path: str, service: str, port: int, kind: str = "Prefix") -> common.Manifest:
    return {
        "path": path,
        "pathType": kind,
        "backend": {"service": {"name": service, "port": {"number": port}}},
    }


def build_ingress(ctx: common.Context) -> common.Manifest | None:
    """Public routes only: the API and the canvas page. The backend's ``/metrics``,
    ``/ready`` and ``/health`` stay reachable inside the cluster, never through here."""
    ing, names = ctx.spec.ingress, ctx.names
    if not ing.enabled:
        return None
    backend = names.backend, common.BACKEND_PORT
    paths = [_path("/api", *backend)]
    if ctx.spec.frontend is not None:
        paths.append(_path("/", names.frontend, 80))
    else:
        paths += [_path("/", *backend, kind="Exact"), _path("/static", *backend)]
    rule: common.Manifest = {"http": {"paths": paths}}
    if ing.host:
        rule = {"host": ing.host, **rule}
    spec: common.Manifest = {"ingressClassName": ing.class_name, "rules": [rule]}
    if ing.tls.enabled and ing.host:
        spec["tls"] = [{"hosts": [ing.host], "secretName": ing.tls.secret_name or names.tls_secret}]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": common.metadata(
            ctx, names.ingress, naming.INGRESS, annotations=ingress_annotations(ctx)
        ),
        "spec": spec,
    }


GATEWAY_API = "gateway.networking.k8s.io"


def build_route(ctx: common.Context, *, crd_installed: bool) -> common.Manifest | None:
    """An HTTPRoute on the platform team's Gateway(s), when asked for and the Gateway
    API is installed: the Ingress's public paths, never ``/metrics``, ``/ready`` or
    ``/health``."""
    gw, names = ctx.spec.gateway, ctx.names
    if gw is None or not crd_installed:
        return None
    backend = {"name": names.backend, "port": common.BACKEND_PORT}

    def rule(backend_ref: common.Manifest, *paths: tuple[str, str]) -> common.Manifest:
        return {
            "matches": [{"path": {"type": kind, "value": value}} for kind, value in paths],
            "backendRefs": [backend_ref],
        }

    if ctx.spec.frontend is not None:
        rules = [
            rule(backend, ("PathPrefix", "/api")),
            rule({"name": names.frontend, "port": 80}, ("PathPrefix", "/")),
        ]
    else:
        rules = [rule(backend, ("PathPrefix", "/api"), ("Exact", "/"), ("PathPrefix", "/static"))]
    parents = []
    for ref in gw.parent_refs:
        parent: common.Manifest = {"group": GATEWAY_API, "kind": "Gateway", "name": ref.name}
        if ref.namespace:
            parent["namespace"] = ref.namespace
        if ref.section_name:
            parent["sectionName"] = ref.section_name
        parents.append(parent)
    spec: common.Manifest = {"parentRefs": parents, "rules": rules}
    if gw.hostnames:
        spec["hostnames"] = list(gw.hostnames)
    return {
        "apiVersion": f"{GATEWAY_API}/v1",
        "kind": "HTTPRoute",
        "metadata": common.metadata(ctx, names.route, naming.ROUTE),
        "spec": spec,
    }


def build_frontend(ctx: common.Context) -> list[common.Manifest]:
    """Frontend Deployment and Service, or nothing when no frontend is configured."""
    fe, names = ctx.spec.frontend, ctx.names
    if fe is None:
        return []
    selector = naming.selector(ctx.name, naming.FRONTEND)
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": common.metadata(ctx, names.frontend, naming.FRONTEND),
        "spec": {
            "replicas": fe.replicas,
            "selector": {"matchLabels": selector},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {"labels": naming.labels(ctx.name, naming.FRONTEND)},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": common.restricted_pod_security(10001),
                    "topologySpreadConstraints": common.topology_spread(selector),
                    **common.pod_placement(ctx),
                    "containers": [
                        {
                            "name": "frontend",
                            "image": fe.image,
                            "ports": [
                                {
                                    "name": "http",
                                    "containerPort": common.FRONTEND_PORT,
                                    "protocol": "TCP",
                                }
                            ],
                            "resources": fe.resources.as_dict(),
                            "readinessProbe": {
                                "httpGet": {"path": "/", "port": "http"},
                                "periodSeconds": 5,
                            },
                            "livenessProbe": {
                                "httpGet": {"path": "/", "port": "http"},
                                "initialDelaySeconds": 10,
                                "periodSeconds": 10,
                            },
                            "securityContext": common.restricted_container_security(),
                            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                        }
                    ],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": common.metadata(ctx, names.frontend, naming.FRONTEND),
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    return [deployment, service]


def build_service_monitor(ctx: common.Context, *, crd_installed: bool) -> common.Manifest | None:
    """A Prometheus Operator ServiceMonitor, only when asked for and its CRD exists."""
    if not (ctx.spec.monitoring.service_monitor and crd_installed):
        return None
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": common.metadata(ctx, ctx.names.backend, naming.BACKEND),
        "spec": {
            "selector": {"matchLabels": naming.selector(ctx.name, naming.BACKEND)},
            "endpoints": [
                {
                    "port": "http",
                    "path": "/metrics",
                    "interval": ctx.spec.monitoring.scrape_interval,
                }
            ],
        },
    }

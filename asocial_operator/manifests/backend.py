"""The chat backend: ServiceAccount, Deployment, Service, HPA and PodDisruptionBudget.

Pure data; no I/O. Defaults follow the seed architecture (probes, resources,
30 s termination grace, autoscaling behaviour).
"""

from __future__ import annotations

from asocial_operator import naming
from asocial_operator.manifests import common, config

POD_UID = 10001


def build_service_account(ctx: common.Context) -> common.Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": common.metadata(ctx, ctx.names.service_account, naming.BACKEND),
        # The chat server never calls the Kubernetes API.
        "automountServiceAccountToken": False,
    }


def _env(ctx: common.Context) -> list[common.Manifest]:
    redis = ctx.spec.redis
    if redis.managed:
        ref = {"name": ctx.names.secret, "key": common.PASSWORD_KEY}
    elif redis.password_secret_ref is not None:
        ref = {"name": redis.password_secret_ref.name, "key": redis.password_secret_ref.key}
    else:
        return []
    return [{"name": "ASOCIAL_REDIS_PASSWORD", "valueFrom": {"secretKeyRef": ref}}]


def _secret_volumes(ctx: common.Context) -> tuple[list[common.Manifest], list[common.Manifest]]:
    """Volumes and mounts for auth material: mounted read-only, never copied."""
    auth = ctx.spec.auth
    wanted: list[tuple[str, str, str]] = []
    if auth.mode == "firebase" and auth.firebase and auth.firebase.service_account:
        wanted.append(("firebase", auth.firebase.service_account.name, config.FIREBASE_MOUNT))
    if auth.mode == "jwt" and auth.jwt:
        if auth.jwt.secret:
            wanted.append(("jwt-secret", auth.jwt.secret.name, config.JWT_SECRET_MOUNT))
        if auth.jwt.public_key:
            wanted.append(("jwt-public-key", auth.jwt.public_key.name, config.JWT_PUBLIC_KEY_MOUNT))
    volumes = [{"name": n, "secret": {"secretName": s, "defaultMode": 0o440}} for n, s, _ in wanted]
    mounts = [{"name": n, "mountPath": m, "readOnly": True} for n, _, m in wanted]
    return volumes, mounts


def build_deployment(ctx: common.Context, *, checksum: str) -> common.Manifest:
    """The backend Deployment; ``checksum`` rolls the pods when their config changes."""
    s, names = ctx.spec, ctx.names
    selector = naming.selector(ctx.name, naming.BACKEND)
    volumes, mounts = _secret_volumes(ctx)
    container: common.Manifest = {
        "name": "chat",
        "image": s.backend.image,
        "ports": [{"name": "http", "containerPort": common.BACKEND_PORT, "protocol": "TCP"}],
        "envFrom": [{"configMapRef": {"name": names.config}}],
        "resources": s.backend.resources.as_dict(),
        "livenessProbe": {
            "httpGet": {"path": "/health", "port": "http"},
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "readinessProbe": {
            "httpGet": {"path": "/ready", "port": "http"},
            "initialDelaySeconds": 5,
            "periodSeconds": 5,
            "timeoutSeconds": 2,
            "failureThreshold": 2,
        },
        # Let endpoint removal propagate before SIGTERM starts the drain.
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(common.PRESTOP_SECONDS)]}}},
        "securityContext": common.restricted_container_security(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, *mounts],
    }
    if env := _env(ctx):
        # Only when non-empty: the API server drops empty lists, and an
        # absent key would look like drift forever.
        container["env"] = env
    spec: common.Manifest = {
        "selector": {"matchLabels": selector},
        "revisionHistoryLimit": 5,
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
        },
        "template": {
            "metadata": {
                "labels": naming.labels(ctx.name, naming.BACKEND),
                "annotations": {
                    naming.CHECKSUM_ANNOTATION: checksum,
                    "prometheus.io/scrape": "true",
                    "prometheus.io/port": str(common.BACKEND_PORT),
                    "prometheus.io/path": "/metrics",
                },
            },
            "spec": {
                "serviceAccountName": names.service_account,
                "automountServiceAccountToken": False,
                "terminationGracePeriodSeconds": common.TERMINATION_GRACE_SECONDS,
                "securityContext": common.restricted_pod_security(POD_UID),
                "topologySpreadConstraints": common.topology_spread(selector),
                **common.pod_placement(ctx),
                "containers": [container],
                "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}, *volumes],
            },
        },
    }
    # Under the HPA the replica count belongs to the autoscaler: leaving the
    # field out of our apply keeps the two from fighting over it.
    if not s.autoscaling.enabled:
        spec = {"replicas": s.backend.replicas, **spec}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": common.metadata(ctx, names.backend, naming.BACKEND),
        "spec": spec,
    }


def build_service(ctx: common.Context) -> common.Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": common.metadata(ctx, ctx.names.backend, naming.BACKEND),
        "spec": {
            "type": "ClusterIP",
            "selector": naming.selector(ctx.name, naming.BACKEND),
            "ports": [
                {
                    "name": "http",
                    "port": common.BACKEND_PORT,
                    "targetPort": "http",
                    "protocol": "TCP",
                }
            ],
        },
    }


def build_hpa(ctx: common.Context) -> common.Manifest | None:
    a = ctx.spec.autoscaling
    if not a.enabled:
        return None
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": common.metadata(ctx, ctx.names.backend, naming.BACKEND),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": ctx.names.backend,
            },
            "minReplicas": a.min_replicas,
            "maxReplicas": a.max_replicas,
            "metrics": [
                _utilization("cpu", a.target_cpu),
                *([_utilization("memory", a.target_memory)] if a.target_memory else []),
            ],
            "behavior": {
                "scaleDown": {
                    "stabilizationWindowSeconds": a.scale_down_stabilization_seconds,
                    "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}],
                },
                "scaleUp": {
                    "stabilizationWindowSeconds": 0,
                    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 30}],
                },
            },
        },
    }


def _utilization(resource: str, percent: int) -> common.Manifest:
    return {
        "type": "Resource",
        "resource": {
            "name": resource,
            "target": {"type": "Utilization", "averageUtilization": percent},
        },
    }


def build_pdb(ctx: common.Context) -> common.Manifest:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": common.metadata(ctx, ctx.names.backend, naming.BACKEND),
        "spec": {
            # maxUnavailable rather than minAvailable: never blocks a drain of a 1-pod backend.
            "maxUnavailable": 1,
            "selector": {"matchLabels": naming.selector(ctx.name, naming.BACKEND)},
        },
    }

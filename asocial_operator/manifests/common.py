"""Shared pieces of child manifests: the build context, metadata, owner references.

Pure data; no I/O.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from asocial_operator import naming
from asocial_operator import spec as specs

Manifest = dict[str, Any]

BACKEND_PORT = 8080
FRONTEND_PORT = 3000
REDIS_PORT = specs.REDIS_PORT
SENTINEL_PORT = specs.SENTINEL_PORT
# The server drains WebSockets on SIGTERM for this long; the pod gets 30 s in
# total, minus the preStop pause that lets endpoints update first.
TERMINATION_GRACE_SECONDS = 30
PRESTOP_SECONDS = 5
SHUTDOWN_GRACE_SECONDS = TERMINATION_GRACE_SECONDS - PRESTOP_SECONDS
SECRET_MOUNT_ROOT = "/var/run/secrets/asocial"
PASSWORD_KEY = "redis-password"


@dataclasses.dataclass(frozen=True)
class Context:
    """Everything a builder needs: the owner's identity, its spec and the Redis password.

    ``redis_password`` is the managed Redis password (already generated or read
    back from the existing Secret by the caller); ``None`` in external mode.
    """

    namespace: str
    name: str
    uid: str
    spec: specs.InstanceSpec
    redis_password: str | None = None

    @property
    def names(self) -> naming.Names:
        return naming.Names(self.name)


def owner_reference(ctx: Context) -> Manifest:
    return {
        "apiVersion": naming.API_VERSION,
        "kind": naming.KIND,
        "name": ctx.name,
        "uid": ctx.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def metadata(
    ctx: Context, name: str, component: str, *, annotations: Mapping[str, str] | None = None
) -> Manifest:
    meta: Manifest = {
        "name": name,
        "namespace": ctx.namespace,
        "labels": naming.labels(ctx.name, component),
        "ownerReferences": [owner_reference(ctx)],
    }
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def checksum(*parts: Any) -> str:
    """A stable digest of rendered configuration; secrets enter only hashed."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def restricted_container_security() -> Manifest:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def restricted_pod_security(uid: int) -> Manifest:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def topology_spread(selector: Mapping[str, str]) -> list[Manifest]:
    """Spread pods over zones and nodes, preferring but never blocking scheduling."""
    return [
        {
            "maxSkew": 1,
            "topologyKey": key,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": dict(selector)},
        }
        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
    ]


def pod_placement(ctx: Context) -> Manifest:
    """The pod spec fields every pod template takes from ``spec.scheduling`` and
    ``spec.imagePullSecrets``; empty ones are left out (the API server drops them)."""
    s = ctx.spec
    out: Manifest = {}
    if s.scheduling.node_selector:
        out["nodeSelector"] = dict(s.scheduling.node_selector)
    if s.scheduling.tolerations:
        out["tolerations"] = [t.as_dict() for t in s.scheduling.tolerations]
    if s.image_pull_secrets:
        out["imagePullSecrets"] = [{"name": n} for n in s.image_pull_secrets]
    return out

"""Objects created right after the API server is up: fake nodes (tainted), storage."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .api import ApiClient

KWOK_ANNOTATION = "kwok.x-k8s.io/node"
FAKE_NODE_TAINT = "devcluster.asocial.io/fake-node"
"""On every fake node (NoSchedule): kwok starts no container, so a pod there would read
Running with nothing running. Only what tolerates it (scale tests) lands there."""
KWOK_ANNOTATION_SELECTOR = f"{KWOK_ANNOTATION}=fake"
STORAGE_CLASS = "standard"
POOL_LABEL = "devcluster/pool"
POOL_SELECTOR = f"{POOL_LABEL}%3Dstatic"


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def node_count() -> int:
    return _env_int("ASOCIAL_DEVCLUSTER_NODES", 3)


def pv_count() -> int:
    return _env_int("ASOCIAL_DEVCLUSTER_PVS", 100)


def node(name: str) -> dict[str, Any]:
    resources = {"cpu": "32", "memory": "256Gi", "pods": "110", "ephemeral-storage": "1Ti"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {KWOK_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node-role.kubernetes.io/agent": "",
                "type": "kwok",
            },
        },
        "spec": {"taints": [{"key": FAKE_NODE_TAINT, "value": "true", "effect": "NoSchedule"}]},
        "status": {
            "allocatable": resources,
            "capacity": resources,
        },
    }


def storage_class() -> dict[str, Any]:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": "kubernetes.io/no-provisioner",
        "volumeBindingMode": "Immediate",
        "reclaimPolicy": "Delete",
    }


def persistent_volume(index: int, volumes_dir: Path) -> dict[str, Any]:
    name = f"devcluster-pv-{index:03d}"
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "labels": {POOL_LABEL: "static"}},
        "spec": {
            "capacity": {"storage": "10Gi"},
            "accessModes": ["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany"],
            # Recycle: the PV controller scrubs a released volume with a recycler pod
            # (completed by a kwok stage) and makes it Available again.
            "persistentVolumeReclaimPolicy": "Recycle",
            "storageClassName": STORAGE_CLASS,
            "volumeMode": "Filesystem",
            "hostPath": {"path": str(volumes_dir / name), "type": "DirectoryOrCreate"},
        },
    }


def node_names() -> list[str]:
    return [f"kwok-node-{i}" for i in range(node_count())]


def bootstrap(volumes_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    """(collection path, object) pairs to create, in order."""
    items: list[tuple[str, dict[str, Any]]] = [("/api/v1/nodes", node(n)) for n in node_names()]
    items.append(("/apis/storage.k8s.io/v1/storageclasses", storage_class()))
    items += [
        ("/api/v1/persistentvolumes", persistent_volume(i, volumes_dir)) for i in range(pv_count())
    ]
    return items


def reclaim_volumes(api: ApiClient) -> list[str]:
    """Return released or failed pool volumes whose claim is gone to ``Available``.

    The PV controller normally recycles them (reclaim policy Recycle); this heals the
    pool when a recycle attempt failed. Leftover finished recycler pods are removed too.
    """
    reclaimed: list[str] = []
    volumes = api.get_json(f"/api/v1/persistentvolumes?labelSelector={POOL_SELECTOR}")
    for pv in volumes.get("items", []):
        if pv.get("status", {}).get("phase") not in ("Released", "Failed"):
            continue
        ref = pv["spec"].get("claimRef") or {}
        if ref.get("name"):
            claim_path = (
                f"/api/v1/namespaces/{ref.get('namespace')}/persistentvolumeclaims/{ref['name']}"
            )
            status, body = api.request(claim_path)
            if status == 200 and json.loads(body)["metadata"]["uid"] == ref.get("uid"):
                continue  # still claimed
        name = pv["metadata"]["name"]
        status, body = api.request(
            f"/api/v1/persistentvolumes/{name}",
            method="PATCH",
            body=b'{"spec": {"claimRef": null}}',
            content_type="application/merge-patch+json",
        )
        if status == 200:
            reclaimed.append(name)
    pods = api.get_json("/api/v1/namespaces/default/pods")
    for pod in pods.get("items", []):
        name = pod["metadata"]["name"]
        if name.startswith("recycler-for-") and pod.get("status", {}).get("phase") in (
            "Succeeded",
            "Failed",
        ):
            api.request(f"/api/v1/namespaces/default/pods/{name}", method="DELETE")
    return reclaimed

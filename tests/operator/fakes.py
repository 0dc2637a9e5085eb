"""An in-memory twin of ``cluster.Api`` for unit tests of the reconciler."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from asocial_operator import cluster


class FakeApi:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.instances: dict[tuple[str, str], dict[str, Any]] = {}
        self.events: list[dict[str, str]] = []
        self.writes: list[str] = []
        self.fail_apply: dict[str, cluster.ApiError] = {}
        self.crds: set[str] = set()

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        obj = self.objects.get((kind, namespace, name))
        return copy.deepcopy(obj) if obj else None

    def apply(
        self, manifest: Mapping[str, Any], *, field_manager: str = "asocial-operator"
    ) -> dict[str, Any]:
        meta = manifest["metadata"]
        key = (manifest["kind"], meta["namespace"], meta["name"])
        if field_manager != "asocial-operator":
            self.writes.append(f"bootstrap {key[0]} {key[2]}")
            return copy.deepcopy(dict(manifest))
        self.writes.append(f"apply {key[0]} {key[2]}")
        if manifest["kind"] in self.fail_apply:
            raise self.fail_apply[manifest["kind"]]
        obj = copy.deepcopy(dict(manifest))
        old = self.objects.get(key)
        obj["metadata"]["generation"] = (old or {}).get("metadata", {}).get("generation", 0) + 1
        obj["metadata"]["uid"] = f"uid-{key[2]}"
        self.objects[key] = obj
        return copy.deepcopy(obj)

    def delete(self, kind: str, namespace: str, name: str) -> bool:
        self.writes.append(f"delete {kind} {name}")
        return self.objects.pop((kind, namespace, name), None) is not None

    def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> dict[str, Any]:
        self.writes.append(f"status {name}")
        body = self.instances[(namespace, name)]
        body["status"] = copy.deepcopy(dict(status))
        return copy.deepcopy(body)

    def post_event(self, owner: Mapping[str, Any], *, type: str, reason: str, message: str) -> None:
        self.events.append({"type": type, "reason": reason, "message": message})

    def crd_exists(self, name: str, *, ttl: float = 60.0) -> bool:
        return name in self.crds


def instance(
    name: str = "chat", *, spec: dict[str, Any] | None = None, gen: int = 1
) -> dict[str, Any]:
    return {
        "apiVersion": "asocial.io/v1alpha1",
        "kind": "AsocialInstance",
        "metadata": {"name": name, "namespace": "team", "uid": "uid-owner", "generation": gen},
        "spec": spec or {},
    }

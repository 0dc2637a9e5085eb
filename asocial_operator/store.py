"""What the operator last saw of instances and their children (an informer cache).

Fed by watch events and by the responses of our own writes, read by the
reconciler to decide what to apply without extra GETs. Thread-safe; no I/O.

Why not kopf's indexes: kopf's ``@kopf.index`` keeps what handlers return per watched
object, but the reconciler needs (a) our own write responses in the cache at once, so a
status computed right after an apply sees the new generation (kopf indexes only learn
from watch events, a moment later), and (b) synchronous reads from worker threads, where
the blocking Kubernetes client runs. Both are a few lines here.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from typing import Any

from asocial_operator import naming

Body = dict[str, Any]
Key = tuple[str, str]  # (namespace, instance name)
ChildKey = tuple[str, str, str]  # (kind, namespace, name)


def instance_key(body: Mapping[str, Any]) -> Key:
    meta = body["metadata"]
    return str(meta["namespace"]), str(meta["name"])


def owner_instance(body: Mapping[str, Any]) -> Key | None:
    """The instance a child belongs to, from its controller owner reference."""
    meta = body.get("metadata", {})
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == naming.KIND and ref.get("controller"):
            return str(meta.get("namespace")), str(ref.get("name"))
    return None


def _version(body: Mapping[str, Any] | None) -> int | None:
    raw = (body or {}).get("metadata", {}).get("resourceVersion")
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


def _older(new: Mapping[str, Any], old: Mapping[str, Any] | None) -> bool:
    """Whether ``new`` is an older version than what is stored.

    Our own write's response and the watch event for a later change race each
    other; keeping the newest stops a stale copy (say, a StatefulSet without
    its ready count) from sticking when no further event comes. resourceVersions
    are etcd revisions in practice; if they ever do not parse, newest-arrival wins.
    """
    new_v, old_v = _version(new), _version(old)
    return new_v is not None and old_v is not None and new_v < old_v


class Store:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._instances: dict[Key, Body] = {}
        self._children: dict[ChildKey, Body] = {}
        self._by_owner: dict[Key, set[ChildKey]] = {}

    def put_instance(self, body: Mapping[str, Any]) -> Key:
        key = instance_key(body)
        with self._lock:
            if not _older(body, self._instances.get(key)):
                self._instances[key] = copy.deepcopy(dict(body))
        return key

    def remove_instance(self, key: Key) -> None:
        with self._lock:
            self._instances.pop(key, None)

    def instance(self, key: Key) -> Body | None:
        with self._lock:
            body = self._instances.get(key)
            return copy.deepcopy(body) if body is not None else None

    def status(self, key: Key) -> dict[str, Any] | None:
        """The instance's last seen ``status`` (a copy; empty before the first), or
        ``None`` if the instance is not known."""
        with self._lock:
            body = self._instances.get(key)
            return copy.deepcopy(body.get("status") or {}) if body is not None else None

    def keys(self) -> list[Key]:
        with self._lock:
            return list(self._instances)

    def put_child(self, body: Mapping[str, Any]) -> Key | None:
        """Remember a child; returns its owning instance (None if it has none)."""
        meta = body["metadata"]
        ckey = (str(body["kind"]), str(meta["namespace"]), str(meta["name"]))
        owner = owner_instance(body)
        with self._lock:
            if _older(body, self._children.get(ckey)):
                return owner
            self._drop_child(ckey)
            self._children[ckey] = copy.deepcopy(dict(body))
            if owner is not None:
                self._by_owner.setdefault(owner, set()).add(ckey)
        return owner

    def remove_child(self, kind: str, namespace: str, name: str) -> None:
        with self._lock:
            self._drop_child((kind, namespace, name))

    def _drop_child(self, ckey: ChildKey) -> None:
        old = self._children.pop(ckey, None)
        if old is not None:
            owner = owner_instance(old)
            if owner is not None:
                self._by_owner.get(owner, set()).discard(ckey)

    def child(self, kind: str, namespace: str, name: str) -> Body | None:
        with self._lock:
            return self._children.get((kind, namespace, name))

    def children_of(self, key: Key) -> list[Body]:
        with self._lock:
            return [self._children[c] for c in sorted(self._by_owner.get(key, ()))]

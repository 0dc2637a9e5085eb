"""The operator's own Prometheus metrics. No Kubernetes I/O.

Per-instance series carry ``instance_namespace`` and ``instance_name``: Prometheus gives
every scraped series its own ``namespace`` and ``instance`` (the operator pod's), so
those names would be renamed ``exported_*`` on the way in.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import prometheus_client

from asocial_operator import status

RECONCILES = prometheus_client.Counter(
    "asocial_operator_reconciles_total",
    "Reconcile passes by result (unchanged, changed, paused, invalid, error, gone).",
    ["result"],
)
RESULTS = ("unchanged", "changed", "paused", "invalid", "error", "gone")
for _result in RESULTS:  # every result exported from the start, at 0
    RECONCILES.labels(result=_result)
RECONCILE_SECONDS = prometheus_client.Histogram(
    "asocial_operator_reconcile_duration_seconds",
    "Time of one reconcile pass.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
INSTANCES = prometheus_client.Gauge(
    "asocial_operator_instances", "AsocialInstances by status phase.", ["phase"]
)
API_WRITES = prometheus_client.Counter(
    "asocial_operator_api_writes_total", "Mutating API requests sent (applies, deletes, status)."
)
LEADER = prometheus_client.Gauge(
    "asocial_operator_leader",
    "1 while this replica reconciles (holds the Lease, or runs without leader election).",
)
INSTANCE_READY = prometheus_client.Gauge(
    "asocial_operator_instance_ready",
    "1 while an instance's phase is Ready, else 0 (reported by the leading replica).",
    ["instance_namespace", "instance_name"],
)
INSTANCE_REPLICAS = prometheus_client.Gauge(
    "asocial_operator_instance_replicas",
    "An instance's pods as its status last said: desired and ready, per component"
    " (backend, redis).",
    ["instance_namespace", "instance_name", "component", "state"],
)

_phases: dict[tuple[str, str], str] = {}  # each instance's last reported phase
_phases_lock = threading.Lock()
for _phase in status.PHASES:
    INSTANCES.labels(phase=_phase)


def observe_instance(key: tuple[str, str], current: Mapping[str, Any] | None) -> None:
    """Report one instance from its last status (``None``: it is gone, its series go).

    Called after each reconcile of that instance and on its deletion, so the cost does
    not grow with the number of instances."""
    with _phases_lock:
        before = _phases.pop(key, None)
        if before is not None:
            INSTANCES.labels(phase=before).dec()
        if current is None:
            if before is not None:
                INSTANCE_READY.remove(*key)
                for component in _COMPONENTS:
                    for state in ("desired", "ready"):
                        INSTANCE_REPLICAS.remove(*key, component, state)
            return
        phase = str(current.get("phase") or status.PENDING)
        _phases[key] = phase
        INSTANCES.labels(phase=phase).inc()
        INSTANCE_READY.labels(*key).set(1 if phase == status.READY else 0)
        for component in _COMPONENTS:
            part = current.get(component) or {}
            for state, field in (("desired", "replicas"), ("ready", "readyReplicas")):
                INSTANCE_REPLICAS.labels(*key, component, state).set(int(part.get(field) or 0))


_COMPONENTS = ("backend", "redis")


def serve(port: int, *, addr: str = "0.0.0.0") -> None:
    """Expose /metrics on ``port`` from a daemon thread."""
    prometheus_client.start_http_server(port, addr=addr)

"""The operator's own Prometheus metrics. No Kubernetes I/O."""

from __future__ import annotations

import collections
from collections.abc import Iterable

import prometheus_client

from asocial_operator import status

RECONCILES = prometheus_client.Counter(
    "asocial_operator_reconciles_total",
    "Reconcile passes by result (unchanged, changed, paused, invalid, error, gone).",
    ["result"],
)
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


def observe_phases(phases: Iterable[str]) -> None:
    counts = collections.Counter(p or status.PENDING for p in phases)
    for phase in status.PHASES:
        INSTANCES.labels(phase=phase).set(counts.get(phase, 0))


def serve(port: int, *, addr: str = "0.0.0.0") -> None:
    """Expose /metrics on ``port`` from a daemon thread."""
    prometheus_client.start_http_server(port, addr=addr)

"""The per-instance series and the per-phase counts follow each instance's last status,
instance by instance, and leave nothing behind when an instance goes."""

from __future__ import annotations

import prometheus_client

from asocial_operator import metrics

REGISTRY = prometheus_client.REGISTRY


def phase_count(phase: str) -> float:
    return REGISTRY.get_sample_value("asocial_operator_instances", {"phase": phase}) or 0.0


def ready(key: tuple[str, str]) -> float | None:
    labels = {"instance_namespace": key[0], "instance_name": key[1]}
    return REGISTRY.get_sample_value("asocial_operator_instance_ready", labels)


def test_phase_counts_follow_each_instance_and_forget_the_deleted() -> None:
    a, b = ("metrics-test", "a"), ("metrics-test", "b")
    pending, ready_ = phase_count("Pending"), phase_count("Ready")

    metrics.observe_instance(a, {})
    metrics.observe_instance(b, {"phase": "Pending"})
    assert phase_count("Pending") == pending + 2
    metrics.observe_instance(a, {"phase": "Ready", "backend": {"replicas": 2, "readyReplicas": 1}})
    metrics.observe_instance(a, {"phase": "Ready", "backend": {"replicas": 2, "readyReplicas": 2}})
    assert (phase_count("Pending"), phase_count("Ready")) == (pending + 1, ready_ + 1)
    assert (ready(a), ready(b)) == (1.0, 0.0)
    replicas = {"instance_namespace": "metrics-test", "instance_name": "a", "component": "backend"}
    assert (
        REGISTRY.get_sample_value(
            "asocial_operator_instance_replicas", {**replicas, "state": "ready"}
        )
        == 2.0
    )

    metrics.observe_instance(a, None)
    metrics.observe_instance(a, None)  # a second DELETED, or a reconcile after it
    metrics.observe_instance(b, None)
    assert (phase_count("Pending"), phase_count("Ready")) == (pending, ready_)
    assert (ready(a), ready(b)) == (None, None)
    assert (
        REGISTRY.get_sample_value(
            "asocial_operator_instance_replicas", {**replicas, "state": "ready"}
        )
        is None
    )

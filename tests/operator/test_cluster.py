"""API paths and error classification of the cluster layer (no network)."""

from __future__ import annotations

import pytest

from asocial_operator import cluster


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        ("ConfigMap", "/api/v1/namespaces/ns/configmaps/x"),
        ("Deployment", "/apis/apps/v1/namespaces/ns/deployments/x"),
        (
            "HorizontalPodAutoscaler",
            "/apis/autoscaling/v2/namespaces/ns/horizontalpodautoscalers/x",
        ),
        ("AsocialInstance", "/apis/asocial.io/v1alpha1/namespaces/ns/asocialinstances/x"),
        ("ServiceMonitor", "/apis/monitoring.coreos.com/v1/namespaces/ns/servicemonitors/x"),
    ],
)
def test_paths(kind: str, path: str) -> None:
    assert cluster.BY_KIND[kind].path("ns", "x") == path


def test_status_subresource_path() -> None:
    assert cluster.INSTANCE.path("ns", "x", subresource="status").endswith("/x/status")


def test_unknown_kind_says_so() -> None:
    with pytest.raises(ValueError, match="does not manage kind 'Pod'"):
        cluster.resource_of({"kind": "Pod"})


def test_error_classification() -> None:
    assert cluster.ApiError(409, "Conflict", "").retryable
    assert cluster.ApiError(0, "Unreachable", "").retryable
    assert not cluster.ApiError(422, "Invalid", "").retryable
    assert cluster.ApiError(404, "NotFound", "").not_found
    terminating = cluster.ApiError(403, "Forbidden", "namespace x because it is being terminated")
    assert terminating.namespace_terminating
    assert not cluster.ApiError(403, "Forbidden", "forbidden").namespace_terminating
    assert cluster.ApiError(404, "NotFound", 'namespaces "x" not found').namespace_gone
    assert not cluster.ApiError(404, "NotFound", "the server could not find it").namespace_gone


def test_message_is_the_status_message_only() -> None:
    body = b'{"kind":"Status","message":"secrets \\"x\\" is forbidden","details":{"x":"y"}}'
    assert cluster._message(body) == 'secrets "x" is forbidden'
    assert cluster._message(b"not json") == "not json"

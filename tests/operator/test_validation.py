"""The API server rejects bad AsocialInstances with messages that say what to fix."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fixtures.devcluster import Kubectl
from tests.operator.conftest import instance

pytestmark = pytest.mark.devcluster

INVALID: list[tuple[str, dict[str, Any], str]] = [
    (
        "min-above-max",
        {"autoscaling": {"minReplicas": 8, "maxReplicas": 4}},
        "autoscaling.minReplicas must be less than or equal to autoscaling.maxReplicas",
    ),
    (
        "tls-without-host",
        {"ingress": {"tls": {"enabled": True, "clusterIssuer": "le"}}},
        "ingress.host is required when ingress.tls.enabled is true",
    ),
    ("external-without-url", {"redis": {"mode": "external"}}, "redis.mode external needs"),
    ("redis-two-replicas", {"redis": {"replicas": 2}}, "spec.redis.replicas: Unsupported value: 2"),
    (
        "firebase-without-project",
        {"auth": {"mode": "firebase"}},
        "auth.mode firebase needs auth.firebase.projectId",
    ),
    ("unknown-log-level", {"backend": {"logLevel": "LOUD"}}, "spec.backend.logLevel"),
    (
        "tiny-message-size",
        {"backend": {"maxMessageSize": 1}},
        "should be greater than or equal to 64",
    ),
    (
        "password-in-url",
        {"redis": {"mode": "external", "url": "redis://:hunter2@r:6379/0"}},
        "redis.url must not carry credentials",
    ),
    (
        "redis-env-override",
        {"backend": {"extraEnv": [{"name": "ASOCIAL_REDIS_URL", "value": "x"}]}},
        "extraEnv must not set ASOCIAL_REDIS_*",
    ),
    (
        "toleration-exists-with-value",
        {"scheduling": {"tolerations": [{"key": "a", "operator": "Exists", "value": "b"}]}},
        "a toleration with operator Exists must not set value",
    ),
    (
        "toleration-without-key",
        {"scheduling": {"tolerations": [{"value": "b"}]}},
        "a toleration without a key must use operator Exists",
    ),
    (
        "pull-secret-without-name",
        {"imagePullSecrets": [{}]},
        "spec.imagePullSecrets[0].name: Required value",
    ),
    (
        "gateway-without-parents",
        {"gateway": {"parentRefs": [], "hostnames": ["chat.example.com"]}},
        "gateway.parentRefs needs at least one Gateway",
    ),
    (
        "gateway-parent-without-name",
        {"gateway": {"parentRefs": [{"namespace": "infra"}]}},
        "spec.gateway.parentRefs[0].name: Required value",
    ),
    (
        "gateway-bad-hostname",
        {"gateway": {"parentRefs": [{"name": "edge"}], "hostnames": ["Chat Example"]}},
        "spec.gateway.hostnames[0]",
    ),
    (
        "jwt-without-key",
        {"auth": {"mode": "jwt", "jwt": {"issuer": "me"}}},
        "auth.mode jwt needs one of",
    ),
]


@pytest.mark.parametrize(("case", "spec", "message"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_instance_is_rejected(
    kubectl: Kubectl, crd_installed: None, case: str, spec: dict[str, Any], message: str
) -> None:
    body = instance(case, "default", spec)
    result = kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(body), check=False)
    assert result.returncode != 0, f"{case} was accepted"
    assert message in result.stderr, result.stderr


def test_bad_name_is_rejected(kubectl: Kubectl, crd_installed: None) -> None:
    body = instance("x" * 41, "default")
    result = kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(body), check=False)
    assert "metadata.name must be at most 40 characters" in result.stderr


@pytest.mark.parametrize("spec", [{}, {"ingress": {"host": "chat.example.com"}}])
def test_minimal_instances_are_accepted(
    kubectl: Kubectl, crd_installed: None, spec: dict[str, Any]
) -> None:
    body = instance("ok", "default", spec)
    out = kubectl("create", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(body))
    created = json.loads(out.stdout)
    assert created["spec"]["backend"]["replicas"] == 3  # defaulted by the schema
    assert created["spec"]["redis"]["mode"] == "managed"

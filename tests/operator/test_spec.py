"""Parsing the CR spec: defaults, typed values and errors that name the field to fix."""

from __future__ import annotations

import re
from typing import Any

import pytest

from asocial_operator import spec as specs


def test_defaults() -> None:
    s = specs.parse({})
    assert s.paused is False
    assert s.backend.replicas == 3
    assert s.backend.max_message_size == 4096
    assert s.backend.rate_limit_per_minute == 100
    assert s.backend.message_fade_seconds == 5
    assert s.backend.resources.as_dict() == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "1", "memory": "256Mi"},
    }
    assert (s.autoscaling.enabled, s.autoscaling.min_replicas, s.autoscaling.max_replicas) == (
        True,
        3,
        10,
    )
    assert (s.autoscaling.target_cpu, s.autoscaling.target_memory) == (70, 80)
    assert s.redis.managed
    assert s.redis.replicas == 1
    assert not s.redis.uses_sentinel
    assert s.auth.mode == "anonymous"
    assert s.ingress.enabled
    assert s.ingress.class_name == "nginx"
    assert s.ingress.rate_limit_per_minute == 100
    assert s.frontend is None
    assert s.monitoring.service_monitor is False


def test_none_is_empty() -> None:
    assert specs.parse(None) == specs.parse({})


def test_full_spec() -> None:
    s = specs.parse(
        {
            "backend": {
                "image": "chat:2",
                "resources": {"requests": {"cpu": 1}},
                "extraEnv": [{"name": "ASOCIAL_MAX_CONNECTIONS", "value": "500"}],
                "allowedOrigins": ["https://chat.example.com"],
            },
            "redis": {"replicas": 3, "persistence": {"enabled": True, "size": "1Gi"}},
            "auth": {
                "mode": "jwt",
                "required": True,
                "jwt": {"secretRef": {"name": "jwt"}, "issuer": "me"},
            },
            "ingress": {
                "host": "chat.example.com",
                "tls": {"enabled": True, "clusterIssuer": "letsencrypt"},
            },
            "frontend": {"image": "web:1"},
        }
    )
    assert s.backend.resources.requests == {"cpu": "1"}
    assert s.backend.extra_env == (("ASOCIAL_MAX_CONNECTIONS", "500"),)
    assert s.redis.uses_sentinel
    assert s.redis.persistence.size == "1Gi"
    assert s.auth.jwt is not None
    assert s.auth.jwt.secret == specs.SecretRef("jwt", "secret")
    assert s.ingress.tls.enabled
    assert s.frontend == specs.Frontend(image="web:1")


def test_external_sentinel() -> None:
    s = specs.parse(
        {
            "redis": {
                "mode": "external",
                "sentinel": {"hosts": ["a:26379", "b:26379"]},
                "passwordSecretRef": {"name": "redis"},
            }
        }
    )
    assert s.redis.uses_sentinel
    assert s.redis.sentinel == specs.Sentinel(hosts=("a:26379", "b:26379"))
    assert s.redis.password_secret_ref == specs.SecretRef("redis", "password")


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"autoscaling": {"minReplicas": 5, "maxReplicas": 2}}, "minReplicas"),
        ({"ingress": {"tls": {"enabled": True}}}, "spec.ingress.host is required"),
        ({"redis": {"mode": "external"}}, "spec.redis.mode external needs redis.url"),
        ({"redis": {"replicas": 2}}, "spec.redis.replicas must be 1"),
        ({"redis": {"mode": "cluster"}}, "spec.redis.mode must be managed or external"),
        ({"redis": {"url": "redis://x"}}, "only for redis.mode external"),
        ({"auth": {"mode": "firebase"}}, "needs auth.firebase.projectId"),
        ({"auth": {"mode": "jwt", "jwt": {}}}, "needs one of auth.jwt.secretRef"),
        ({"auth": {"required": True}}, "anonymous"),
        ({"backend": {"replicas": "3"}}, "spec.backend.replicas must be an integer"),
        ({"backend": {"replicas": True}}, "spec.backend.replicas must be an integer"),
        ({"backend": {"extraEnv": [{"name": "ASOCIAL_REDIS_URL"}]}}, "configure Redis"),
        ({"frontend": {}}, "spec.frontend.image is required"),
        ({"backend": []}, "spec.backend must be an object"),
    ],
)
def test_errors_name_the_field(raw: dict[str, Any], fragment: str) -> None:
    with pytest.raises(specs.SpecError, match=fragment):
        specs.parse(raw)


def test_scheduling_and_pull_secrets() -> None:
    s = specs.parse(
        {
            "scheduling": {
                "nodeSelector": {"disk": "ssd"},
                "tolerations": [
                    {
                        "key": "dedicated",
                        "operator": "Equal",
                        "value": "chat",
                        "effect": "NoSchedule",
                    },
                    {"operator": "Exists"},
                ],
            },
            "imagePullSecrets": [{"name": "regcred"}],
        }
    )
    assert s.scheduling.node_selector == {"disk": "ssd"}
    assert [t.as_dict() for t in s.scheduling.tolerations] == [
        {"key": "dedicated", "operator": "Equal", "value": "chat", "effect": "NoSchedule"},
        {"operator": "Exists"},
    ]
    assert s.image_pull_secrets == ("regcred",)
    assert specs.parse({}).scheduling == specs.Scheduling()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"scheduling": {"tolerations": [{"key": "a", "operator": "In"}]}}, "must be Exists or"),
        ({"scheduling": {"tolerations": [{"key": "a", "effect": "Never"}]}}, ".effect must be"),
        (
            {"scheduling": {"tolerations": [{"key": "a", "operator": "Exists", "value": "b"}]}},
            "operator Exists must not set value",
        ),
        ({"scheduling": {"tolerations": [{"value": "b"}]}}, "without a key must use operator"),
        ({"scheduling": {"tolerations": "x"}}, "spec.scheduling.tolerations must be a list"),
        ({"imagePullSecrets": [{}]}, "spec.imagePullSecrets[0].name is required"),
    ],
)
def test_scheduling_errors_name_the_field(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(specs.SpecError, match=re.escape(message)):
        specs.parse(raw)

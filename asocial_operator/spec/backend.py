"""``spec.backend``, ``spec.autoscaling`` and ``spec.frontend``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from asocial_operator.spec.errors import Rule, SpecError
from asocial_operator.spec.fields import Resources, field, resources

DEFAULT_BACKEND_IMAGE = "ghcr.io/asocial/asocial-chat:0.1.0"

BACKEND_RESOURCES = Resources(
    # An idle chat server holds about 50 MiB: a 64Mi request put it at 77 % of the
    # autoscaler's 80 % memory target before the first user arrived.
    requests={"cpu": "100m", "memory": "128Mi"},
    limits={"cpu": "1", "memory": "256Mi"},
)

FRONTEND_RESOURCES = Resources(
    requests={"cpu": "100m", "memory": "128Mi"}, limits={"cpu": "500m", "memory": "512Mi"}
)


@dataclasses.dataclass(frozen=True)
class Backend:
    image: str = DEFAULT_BACKEND_IMAGE
    replicas: int = 3
    resources: Resources = BACKEND_RESOURCES
    log_level: str = "INFO"
    max_message_size: int = 4096
    rate_limit_per_minute: int = 100
    client_rate_limit_per_minute: int = 100
    message_fade_seconds: int = 5
    allowed_origins: tuple[str, ...] = ()
    extra_env: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class Autoscaling:
    enabled: bool = True
    min_replicas: int = 3
    max_replicas: int = 10
    target_cpu: int = 70
    target_memory: int = 80
    scale_down_stabilization_seconds: int = 300


@dataclasses.dataclass(frozen=True)
class Frontend:
    image: str
    replicas: int = 2
    resources: Resources = FRONTEND_RESOURCES


def parse_backend(raw: Mapping[str, Any]) -> Backend:
    p, d = "spec.backend", Backend()
    env = raw.get("extraEnv") or []
    extra: list[tuple[str, str]] = []
    for item in env:
        name = str(item.get("name", ""))
        if not name:
            raise SpecError(f"{p}.extraEnv entries need a name")
        if name.startswith("ASOCIAL_REDIS_"):
            raise SpecError(f"spec.backend.{Rule.EXTRA_ENV_REDIS} (got {name})")
        extra.append((name, str(item.get("value", ""))))
    return Backend(
        image=field(raw, "image", d.image, str, p),
        replicas=field(raw, "replicas", d.replicas, int, p),
        resources=resources(raw, BACKEND_RESOURCES, p),
        log_level=field(raw, "logLevel", d.log_level, str, p),
        max_message_size=field(raw, "maxMessageSize", d.max_message_size, int, p),
        rate_limit_per_minute=field(raw, "rateLimitPerMinute", d.rate_limit_per_minute, int, p),
        client_rate_limit_per_minute=field(
            raw, "clientRateLimitPerMinute", d.client_rate_limit_per_minute, int, p
        ),
        message_fade_seconds=field(raw, "messageFadeSeconds", d.message_fade_seconds, int, p),
        allowed_origins=tuple(str(o) for o in raw.get("allowedOrigins") or ()),
        extra_env=tuple(extra),
    )


def parse_autoscaling(raw: Mapping[str, Any]) -> Autoscaling:
    p, d = "spec.autoscaling", Autoscaling()
    result = Autoscaling(
        enabled=field(raw, "enabled", d.enabled, bool, p),
        min_replicas=field(raw, "minReplicas", d.min_replicas, int, p),
        max_replicas=field(raw, "maxReplicas", d.max_replicas, int, p),
        target_cpu=field(raw, "targetCPUUtilizationPercentage", d.target_cpu, int, p),
        target_memory=field(raw, "targetMemoryUtilizationPercentage", d.target_memory, int, p),
        scale_down_stabilization_seconds=field(
            raw,
            "scaleDownStabilizationSeconds",
            d.scale_down_stabilization_seconds,
            int,
            p,
        ),
    )
    if result.min_replicas > result.max_replicas:
        raise SpecError(f"spec.{Rule.MIN_ABOVE_MAX}")
    return result


def parse_frontend(raw: Mapping[str, Any] | None) -> Frontend | None:
    if raw is None:
        return None
    p = "spec.frontend"
    image = field(raw, "image", "", str, p)
    if not image:
        raise SpecError(f"{p}.image is required when a frontend is configured")
    return Frontend(
        image=image,
        replicas=field(raw, "replicas", 2, int, p),
        resources=resources(raw, FRONTEND_RESOURCES, p),
    )

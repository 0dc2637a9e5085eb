"""The whole spec: every section together, and :func:`parse`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from asocial_operator.spec.auth import Auth, parse_auth
from asocial_operator.spec.backend import (
    Autoscaling,
    Backend,
    Frontend,
    parse_autoscaling,
    parse_backend,
    parse_frontend,
)
from asocial_operator.spec.edge import (
    Gateway,
    Ingress,
    Monitoring,
    parse_gateway,
    parse_ingress,
    parse_monitoring,
)
from asocial_operator.spec.fields import field, section
from asocial_operator.spec.redis import Redis, parse_redis
from asocial_operator.spec.scheduling import Scheduling, parse_pull_secrets, parse_scheduling


@dataclasses.dataclass(frozen=True)
class InstanceSpec:
    paused: bool = False
    scheduling: Scheduling = Scheduling()
    image_pull_secrets: tuple[str, ...] = ()
    backend: Backend = Backend()
    autoscaling: Autoscaling = Autoscaling()
    redis: Redis = Redis()
    auth: Auth = Auth()
    ingress: Ingress = Ingress()
    gateway: Gateway | None = None
    frontend: Frontend | None = None
    monitoring: Monitoring = Monitoring()

    @property
    def keeps_accounts(self) -> bool:
        """Signed-in users have accounts and rooms in the instance's Redis, which must
        then survive restarts (append-only file)."""
        return self.auth.mode != "anonymous"


def parse(raw: Mapping[str, Any] | None) -> InstanceSpec:
    """Parse a CR ``spec`` (defaulted or not) into an :class:`InstanceSpec`."""
    raw = raw or {}
    frontend, gateway = raw.get("frontend"), raw.get("gateway")
    return InstanceSpec(
        paused=field(raw, "paused", False, bool, "spec"),
        scheduling=parse_scheduling(section(raw, "scheduling", "spec")),
        image_pull_secrets=parse_pull_secrets(raw.get("imagePullSecrets")),
        backend=parse_backend(section(raw, "backend", "spec")),
        autoscaling=parse_autoscaling(section(raw, "autoscaling", "spec")),
        redis=parse_redis(section(raw, "redis", "spec")),
        auth=parse_auth(section(raw, "auth", "spec")),
        ingress=parse_ingress(section(raw, "ingress", "spec")),
        gateway=parse_gateway(section(raw, "gateway", "spec") if gateway is not None else None),
        frontend=parse_frontend(section(raw, "frontend", "spec") if frontend is not None else None),
        monitoring=parse_monitoring(section(raw, "monitoring", "spec")),
    )

"""What faces users: ``spec.ingress``, ``spec.gateway`` and ``spec.monitoring``."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from asocial_operator.spec.errors import Rule, SpecError
from asocial_operator.spec.fields import field, section


@dataclasses.dataclass(frozen=True)
class Tls:
    enabled: bool = False
    cluster_issuer: str | None = None
    issuer: str | None = None
    """A cert-manager Issuer in the instance's namespace (instead of a ClusterIssuer)."""
    secret_name: str | None = None


@dataclasses.dataclass(frozen=True)
class Ingress:
    enabled: bool = True
    host: str | None = None
    class_name: str = "nginx"
    annotations: Mapping[str, str] = dataclasses.field(default_factory=dict)
    rate_limit_per_minute: int = 100
    proxy_timeout_seconds: int = 3600
    tls: Tls = Tls()


@dataclasses.dataclass(frozen=True)
class ParentRef:
    """A Gateway the instance's HTTPRoute attaches to (Gateway API ``parentRefs``)."""

    name: str
    namespace: str | None = None
    """None: the instance's own namespace."""
    section_name: str | None = None
    """One listener of the Gateway; None: every listener that admits the route."""


@dataclasses.dataclass(frozen=True)
class Gateway:
    """An HTTPRoute for the platform team's Gateway(s)."""

    parent_refs: tuple[ParentRef, ...]
    hostnames: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Monitoring:
    """What the operator creates for Prometheus and Grafana (each only when asked)."""

    service_monitor: bool = False
    scrape_interval: str = "30s"
    """How often the ServiceMonitor has Prometheus scrape each backend pod."""
    prometheus_rule: bool = False
    """The chat stack's alerts for this instance (a Prometheus Operator PrometheusRule)."""
    dashboard: bool = False
    """A ConfigMap holding the Grafana dashboard, labelled for Grafana's sidecar."""


_DURATION = re.compile(r"([0-9]+(ms|s|m|h))+")


def _duration(value: str, path: str) -> str:
    if not _DURATION.fullmatch(value):
        raise SpecError(f"{path} must be a Prometheus duration such as 30s or 1m, got {value!r}")
    return value


def parse_monitoring(raw: Mapping[str, Any]) -> Monitoring:
    p = "spec.monitoring"
    return Monitoring(
        service_monitor=field(raw, "serviceMonitor", False, bool, p),
        scrape_interval=_duration(
            field(raw, "scrapeInterval", "30s", str, p), f"{p}.scrapeInterval"
        ),
        prometheus_rule=field(raw, "prometheusRule", False, bool, p),
        dashboard=field(raw, "dashboard", False, bool, p),
    )


def parse_ingress(raw: Mapping[str, Any]) -> Ingress:
    p, d = "spec.ingress", Ingress()
    t = section(raw, "tls", p)
    tp = f"{p}.tls"
    tls = Tls(
        enabled=field(t, "enabled", False, bool, tp),
        cluster_issuer=field(t, "clusterIssuer", None, str, tp),
        issuer=field(t, "issuer", None, str, tp),
        secret_name=field(t, "secretName", None, str, tp),
    )
    result = Ingress(
        enabled=field(raw, "enabled", d.enabled, bool, p),
        host=field(raw, "host", None, str, p),
        class_name=field(raw, "className", d.class_name, str, p),
        annotations={str(k): str(v) for k, v in section(raw, "annotations", p).items()},
        rate_limit_per_minute=field(raw, "rateLimitPerMinute", d.rate_limit_per_minute, int, p),
        proxy_timeout_seconds=field(raw, "proxyTimeoutSeconds", d.proxy_timeout_seconds, int, p),
        tls=tls,
    )
    if tls.enabled and not result.host:
        raise SpecError(f"spec.{Rule.TLS_HOST}")
    if tls.enabled and not (tls.cluster_issuer or tls.issuer or tls.secret_name):
        raise SpecError(f"spec.{Rule.TLS_SOURCE}")
    return result


def parse_gateway(raw: Mapping[str, Any] | None) -> Gateway | None:
    if raw is None:
        return None
    p = "spec.gateway"
    refs = raw.get("parentRefs") or []
    if not isinstance(refs, list):
        raise SpecError(f"{p}.parentRefs must be a list")
    if not refs:
        raise SpecError(f"spec.{Rule.GATEWAY_PARENTS}")
    parents = []
    for i, ref in enumerate(refs):
        rp = f"{p}.parentRefs[{i}]"
        if not isinstance(ref, Mapping):
            raise SpecError(f"{rp} must be an object")
        name = field(ref, "name", None, str, rp)
        if not name:
            raise SpecError(f"{rp}.name is required: the name of the Gateway")
        parents.append(
            ParentRef(
                name=name,
                namespace=field(ref, "namespace", None, str, rp),
                section_name=field(ref, "sectionName", None, str, rp),
            )
        )
    hostnames = raw.get("hostnames") or []
    if not isinstance(hostnames, list):
        raise SpecError(f"{p}.hostnames must be a list")
    return Gateway(parent_refs=tuple(parents), hostnames=tuple(str(h) for h in hostnames))

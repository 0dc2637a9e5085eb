"""Pure builders: an instance's spec → the list of child manifests (plain dicts).

No I/O and no randomness here: the caller passes the Redis password (read
back from the existing Secret or freshly generated) in the
:class:`common.Context`, and whether the ServiceMonitor, PrometheusRule and HTTPRoute CRDs
exist.
"""

from __future__ import annotations

from asocial_operator.manifests import backend, common, config, drift, edge, monitoring, redis

Context = common.Context
Manifest = common.Manifest

__all__ = [
    "Context",
    "Manifest",
    "backend",
    "build_all",
    "common",
    "config",
    "drift",
    "edge",
    "monitoring",
]


def backend_checksum(ctx: common.Context) -> str:
    return config.config_checksum(ctx)


def redis_checksum(ctx: common.Context) -> str:
    scripts = redis.build_scripts(ctx)
    return common.checksum(ctx.redis_password or "", scripts["data"] if scripts else {})


def build_all(
    ctx: common.Context,
    *,
    service_monitor_crd: bool = False,
    prometheus_rule_crd: bool = False,
    route_crd: bool = False,
) -> list[common.Manifest]:
    """Every child the instance should have right now, in a safe apply order.

    Children not in this list but labelled as the instance's are stale and
    get deleted by the reconciler (e.g. the HPA after autoscaling is turned off).
    """
    optional = [
        config.build_secret(ctx),
        config.build_config_map(ctx),
        redis.build_scripts(ctx),
        *redis.build_services(ctx),
        redis.build_statefulset(ctx, checksum=redis_checksum(ctx)),
        redis.build_pdb(ctx),
        redis.build_network_policy(ctx),
        backend.build_service_account(ctx),
        backend.build_service(ctx),
        backend.build_deployment(ctx, checksum=backend_checksum(ctx)),
        backend.build_hpa(ctx),
        backend.build_pdb(ctx),
        *edge.build_frontend(ctx),
        edge.build_ingress(ctx),
        edge.build_route(ctx, crd_installed=route_crd),
        edge.build_service_monitor(ctx, crd_installed=service_monitor_crd),
        monitoring.build_prometheus_rule(ctx, crd_installed=prometheus_rule_crd),
        monitoring.build_dashboard(ctx),
    ]
    return [m for m in optional if m is not None]

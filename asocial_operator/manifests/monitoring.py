"""What an instance gives Prometheus and Grafana: its alert rules (a PrometheusRule)
and its dashboard (a ConfigMap for Grafana's sidecar). Pure data; no I/O."""

from __future__ import annotations

import functools
import json

from asocial_operator import naming
from asocial_operator.manifests import common
from asocial_operator.monitoring import dashboard, rules

DASHBOARD_LABEL = "grafana_dashboard"
"""The label Grafana's dashboard sidecar looks for (its chart's default)."""
DASHBOARD_KEY = "asocial-dashboard.json"


def build_prometheus_rule(ctx: common.Context, *, crd_installed: bool) -> common.Manifest | None:
    """The chat stack's alerts, on this instance's series only; only when asked for and
    the Prometheus Operator's CRD exists. (The operator's own alerts ship with it.)"""
    if not (ctx.spec.monitoring.prometheus_rule and crd_installed):
        return None
    selector = rules.for_instance(ctx.namespace, ctx.name, ctx.names.backend)
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": common.metadata(ctx, ctx.names.alerts, naming.MONITORING),
        "spec": {"groups": [rules.chat_rules(selector)]},
    }


def build_dashboard(ctx: common.Context) -> common.Manifest | None:
    """The dashboard as a ConfigMap Grafana's sidecar loads (any namespace it watches)."""
    if not ctx.spec.monitoring.dashboard:
        return None
    meta = common.metadata(ctx, ctx.names.dashboard, naming.MONITORING)
    meta["labels"][DASHBOARD_LABEL] = "1"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta,
        "data": {DASHBOARD_KEY: _dashboard_json()},
    }


@functools.cache
def _dashboard_json() -> str:
    """The same for every instance and every pass: rendered once per process."""
    return json.dumps(dashboard.build(), indent=2, sort_keys=True)

"""The Grafana dashboard of the chat stack and the operator (JSON model, schema 39).

Shipped as ``deploy/monitoring/asocial-dashboard.json`` and, when an instance asks for it,
as a ConfigMap that Grafana's dashboard sidecar discovers. Its variables pick the
Prometheus data source, the namespace and the backend ``job`` (the Service's name under a
ServiceMonitor); every query is in :func:`queries`, so tests run each one against a real
Prometheus.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

UID = "asocial-chat"
TITLE = "Asocial chat"
CHAT = 'namespace="$namespace",job="$job"'
"""The matchers every chat panel's queries carry."""


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    unit: str
    targets: tuple[tuple[str, str], ...]
    """(legend, PromQL) per series."""


def _rate(name: str, by: str = "") -> str:
    group = f" by ({by})" if by else ""
    return f"sum{group} (rate({name}{{{CHAT}}}[$__rate_interval]))"


PANELS: tuple[tuple[str, tuple[Panel, ...]], ...] = (
    (
        "Connections",
        (
            Panel(
                "Open connections",
                "WebSocket connections per backend pod, and each pod's limit.",
                "short",
                (
                    ("{{pod}}", f"sum by (pod) (websocket_connections_active{{{CHAT}}})"),
                    ("limit per pod", f"max(websocket_connections_limit{{{CHAT}}})"),
                ),
            ),
            Panel(
                "Joins and leaves",
                "Connections accepted and ended per second, all pods.",
                "ops",
                (
                    ("joins", _rate("websocket_connections_total")),
                    ("leaves", _rate("websocket_connections_closed_total")),
                ),
            ),
        ),
    ),
    (
        "Traffic",
        (
            Panel(
                "Frames in and deliveries",
                "Chat frames published by this stack's users, and frames queued to a"
                " receiver (one per frame per receiver).",
                "ops",
                (
                    ("frames in", _rate("messages_published_total")),
                    ("deliveries", _rate("messages_delivered_total")),
                ),
            ),
            Panel(
                "Broadcast latency",
                "From the server stamping a frame to its queuing for each receiver.",
                "s",
                tuple(
                    (
                        f"p{int(q * 100)}",
                        f"histogram_quantile({q}, sum by (le) (rate("
                        f"message_broadcast_latency_seconds_bucket{{{CHAT}}}[$__rate_interval])))",
                    )
                    for q in (0.5, 0.9, 0.99)
                ),
            ),
        ),
    ),
    (
        "Refusals",
        (
            Panel(
                "Drops and refusals by reason",
                "Frames not delivered, frames answered with an error, connections refused.",
                "ops",
                (
                    ("dropped: {{reason}}", _rate("messages_dropped_total", "reason")),
                    ("frame refused: {{code}}", _rate("frames_rejected_total", "code")),
                    (
                        "connection refused: {{reason}}",
                        _rate("websocket_connections_rejected_total", "reason"),
                    ),
                    ("slow consumer closed", _rate("slow_consumers_disconnected_total")),
                ),
            ),
            Panel(
                "Rate limiting and auth failures",
                "Frames over a user's rate, requests over a client address's limit, and"
                " connections refused by authentication.",
                "ops",
                (
                    ("frames rate-limited", _rate("rate_limited_total")),
                    ("requests limited: {{kind}}", _rate("client_requests_limited_total", "kind")),
                    ("auth failed: {{reason}}", _rate("auth_failures_total", "reason")),
                ),
            ),
        ),
    ),
    (
        "Redis",
        (
            Panel(
                "Redis health",
                "Backend pods subscribed to Redis (1 each when healthy).",
                "short",
                (("{{pod}}", f"sum by (pod) (broker_connected{{{CHAT}}})"),),
            ),
            Panel(
                "Failovers and reconnects",
                "Master moves followed, connection losses, frames read back from history.",
                "short",
                (
                    (
                        "master moves",
                        f"max(increase(broker_master_moves_total{{{CHAT}}}[$__range]))",
                    ),
                    ("reconnects/s", _rate("broker_reconnects_total")),
                    ("frames recovered/s", _rate("broker_frames_recovered_total")),
                    ("history lost/s", _rate("broker_history_lost_total")),
                ),
            ),
        ),
    ),
    (
        "Pods",
        (
            Panel(
                "CPU per pod",
                "CPU seconds per second of each backend process.",
                "percentunit",
                (
                    (
                        "{{pod}}",
                        f"sum by (pod) (rate(process_cpu_seconds_total{{{CHAT}}}"
                        "[$__rate_interval]))",
                    ),
                ),
            ),
            Panel(
                "Memory per pod",
                "Resident memory of each backend process.",
                "bytes",
                (("{{pod}}", f"sum by (pod) (process_resident_memory_bytes{{{CHAT}}})"),),
            ),
        ),
    ),
    (
        "Operator",
        (
            Panel(
                "Reconciles by result",
                "Reconcile passes per second, by result (error means a failed API call).",
                "ops",
                (
                    (
                        "{{result}}",
                        "sum by (result) "
                        "(rate(asocial_operator_reconciles_total[$__rate_interval]))",
                    ),
                    (
                        "p99 duration (s)",
                        "histogram_quantile(0.99, sum by (le) (rate("
                        "asocial_operator_reconcile_duration_seconds_bucket[$__rate_interval])))",
                    ),
                ),
            ),
            Panel(
                "Instances by phase",
                "AsocialInstances per status phase (only the leading replica reports them).",
                "short",
                (("{{phase}}", "max by (phase) (asocial_operator_instances)"),),
            ),
        ),
    ),
)


def queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every series on the dashboard."""
    return [(p.title, expr) for _, row in PANELS for p in row for _, expr in p.targets]


def _variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "query": {"query": query, "refId": name},
        "definition": query,
        "refresh": 2,
        "sort": 1,
    }


def build() -> dict[str, Any]:
    """The dashboard's JSON model."""
    panels: list[dict[str, Any]] = []
    y, next_id = 0, 1
    for row_title, row in PANELS:
        panels.append(
            {
                "id": next_id,
                "type": "row",
                "title": row_title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        next_id, y = next_id + 1, y + 1
        width = 24 // len(row)
        for index, panel in enumerate(row):
            panels.append(
                {
                    "id": next_id,
                    "type": "timeseries",
                    "title": panel.title,
                    "description": panel.description,
                    "datasource": {"type": "prometheus", "uid": "${datasource}"},
                    "gridPos": {"h": 8, "w": width, "x": index * width, "y": y},
                    "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
                    "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
                    "targets": [
                        {
                            "refId": chr(ord("A") + i),
                            "expr": expr,
                            "legendFormat": legend,
                            "datasource": {"type": "prometheus", "uid": "${datasource}"},
                        }
                        for i, (legend, expr) in enumerate(panel.targets)
                    ],
                }
            )
            next_id += 1
        y += 8
    return {
        "uid": UID,
        "title": TITLE,
        "description": "Connections, traffic, latency, refusals, Redis, pods and the operator"
        " of an Asocial chat stack.",
        "tags": ["asocial"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s",
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                },
                _variable("namespace", "Namespace", "label_values(broker_connected, namespace)"),
                _variable(
                    "job",
                    "Backend",
                    'label_values(broker_connected{namespace="$namespace"}, job)',
                ),
            ]
        },
        "panels": panels,
    }

"""The alert rules for the chat stack and the operator, as Prometheus rule groups.

One source for every way they ship: the plain rules file
(``deploy/monitoring/asocial-rules.yaml``, every instance a Prometheus scrapes), the
PrometheusRule the operator creates for one instance (its series only), and the Helm
chart's PrometheusRule for the operator. Each alert's runbook entry is in
``deploy/monitoring/README.md`` under its name (the ``runbook`` annotation).

Chat series carry the scrape's ``namespace`` and ``job`` (a ServiceMonitor's ``job`` is
the backend Service's name); the operator's per-instance series carry
``instance_namespace`` and ``instance_name``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

RUNBOOK = "deploy/monitoring/README.md"
"""Where each alert's runbook entry is, relative to the project's repository."""

LATENCY_BUDGET_S = 0.1
"""p99 from a frame's arrival to its queuing for each receiver: a keystroke later than
this no longer feels live."""
CONNECTIONS_NEAR = 0.9
"""Share of ``ASOCIAL_MAX_CONNECTIONS`` from which a pod is close to refusing."""


@dataclass(frozen=True)
class Selector:
    """Which series the rules look at: all (``""``), or one instance's."""

    chat: str = ""
    """Label matchers for the chat pods' series, e.g. ``namespace="a",job="b"``."""
    instance: str = ""
    """Label matchers for the operator's series about the instance."""


ALL = Selector()


def for_instance(namespace: str, name: str, backend_service: str) -> Selector:
    return Selector(
        chat=f'namespace="{namespace}",job="{backend_service}"',
        instance=f'instance_namespace="{namespace}",instance_name="{name}"',
    )


def _m(name: str, matchers: str, extra: str = "") -> str:
    """``name{matchers,extra}`` (or bare ``name`` with no matchers at all)."""
    inner = ",".join(part for part in (extra, matchers) if part)
    return f"{name}{{{inner}}}" if inner else name


def _alert(
    name: str, expr: str, for_: str, severity: str, summary: str, description: str
) -> dict[str, Any]:
    rule: dict[str, Any] = {"alert": name, "expr": expr}
    if for_ != "0s":
        rule["for"] = for_
    rule["labels"] = {"severity": severity}
    rule["annotations"] = {
        "summary": summary,
        "description": description,
        "runbook": f"{RUNBOOK}#{name.lower()}",
    }
    return rule


def chat_rules(sel: Selector = ALL) -> dict[str, Any]:
    """The chat stack's alerts: backend pods, Redis, delivery, clients, latency."""
    c, i = sel.chat, sel.instance
    by = "namespace, job"
    ready = _m("asocial_operator_instance_replicas", i, 'component="backend",state="ready"')
    desired = _m("asocial_operator_instance_replicas", i, 'component="backend",state="desired"')
    latency = _m("message_broadcast_latency_seconds_bucket", c)
    unavailable = _m("frames_rejected_total", c, 'code="unavailable"')
    auth = f"sum by ({by}) (rate({_m('auth_failures_total', c)}[5m]))"
    accepted = f"sum by ({by}) (rate({_m('websocket_connections_total', c)}[5m]))"
    rules = [
        _alert(
            "AsocialBackendPodsNotReady",
            f"{ready} < ignoring(state) {desired}",
            "5m",
            "warning",
            "Backend pods of {{ $labels.instance_namespace }}/{{ $labels.instance_name }}"
            " are not all Ready",
            "{{ $value }} backend pods are Ready, fewer than wanted, for 5 minutes.",
        ),
        _alert(
            "AsocialRedisDown",
            f"min by ({by}) ({_m('broker_connected', c)}) == 0",
            "1m",
            "critical",
            "A backend pod of {{ $labels.namespace }}/{{ $labels.job }} has no Redis",
            "At least one backend pod has not been subscribed to Redis for a minute: its"
            " users' frames are refused as unavailable and others' do not reach them.",
        ),
        _alert(
            "AsocialRedisFailingOverOften",
            f"max by ({by}) (increase({_m('broker_master_moves_total', c)}[1h])) > 3",
            "0s",
            "warning",
            "Redis of {{ $labels.namespace }}/{{ $labels.job }} failed over"
            ' {{ printf "%.0f" $value }} times in an hour',
            "The sentinels named a new master more than 3 times in the last hour.",
        ),
        _alert(
            "AsocialBrokerReconnectsSpiking",
            f"sum by ({by}) (increase({_m('broker_reconnects_total', c)}[10m])) > 10",
            "2m",
            "warning",
            "Backend pods of {{ $labels.namespace }}/{{ $labels.job }} keep losing Redis",
            "{{ $value | humanize }} broker reconnects in 10 minutes.",
        ),
        _alert(
            "AsocialSlowConsumerDisconnects",
            f"sum by ({by}) (increase({_m('slow_consumers_disconnected_total', c)}[10m])) > 10",
            "5m",
            "warning",
            "Clients of {{ $labels.namespace }}/{{ $labels.job }} are closed for reading"
            " too slowly",
            "{{ $value | humanize }} connections closed in 10 minutes because their send"
            " queue was full.",
        ),
        _alert(
            "AsocialFramesRefusedUnavailable",
            f"sum by ({by}) (rate({unavailable}[5m])) > 0.1",
            "2m",
            "warning",
            "Chat frames of {{ $labels.namespace }}/{{ $labels.job }} are refused as unavailable",
            "{{ $value | humanize }} frames per second answered 'unavailable' (Redis"
            " unreachable or failing over): senders see their text refused.",
        ),
        _alert(
            "AsocialAuthFailuresSpiking",
            f"({auth} / ({auth} + {accepted}) > 0.2) and ({auth} > 0.1)",
            "10m",
            "warning",
            "Sign-ins to {{ $labels.namespace }}/{{ $labels.job }} are failing",
            "More than a fifth of the connections (and more than 6 a minute) are refused by"
            " authentication.",
        ),
        _alert(
            "AsocialBroadcastLatencyHigh",
            f"histogram_quantile(0.99, sum by ({by}, le) (rate({latency}[5m])))"
            f" > {LATENCY_BUDGET_S}",
            "10m",
            "warning",
            "p99 broadcast latency of {{ $labels.namespace }}/{{ $labels.job }} is"
            " {{ $value | humanizeDuration }}",
            f"Keystrokes take longer than {int(LATENCY_BUDGET_S * 1000)} ms to reach their"
            " receivers (p99 over 5 minutes).",
        ),
        _alert(
            "AsocialConnectionsNearLimit",
            f"{_m('websocket_connections_active', c)}"
            f" / {_m('websocket_connections_limit', c)} > {CONNECTIONS_NEAR}",
            "5m",
            "warning",
            "Pod {{ $labels.instance }} of {{ $labels.namespace }}/{{ $labels.job }} is"
            " near its connection limit",
            "{{ $value | humanizePercentage }} of ASOCIAL_MAX_CONNECTIONS in use: new"
            " connections will soon be refused with too_many_connections.",
        ),
        _alert(
            "AsocialInstanceNotReady",
            f"{_m('asocial_operator_instance_ready', i)} == 0",
            "10m",
            "warning",
            "AsocialInstance {{ $labels.instance_namespace }}/{{ $labels.instance_name }}"
            " has not been Ready for 10 minutes",
            "Its status message says what it waits for: kubectl get asi -n"
            " {{ $labels.instance_namespace }} {{ $labels.instance_name }} -o yaml.",
        ),
    ]
    return {"name": "asocial-chat", "rules": rules}


def operator_rules(selector: str = "") -> dict[str, Any]:
    """The operator's alerts: reconcile errors, no leader. ``selector`` picks the
    operator's series (e.g. its ``namespace`` and ``job``)."""
    errors = _m("asocial_operator_reconciles_total", selector, 'result="error"')
    leader = _m("asocial_operator_leader", selector)
    rules = [
        _alert(
            "AsocialOperatorReconcileErrors",
            f"sum by (namespace, job) (rate({errors}[5m])) > 0.05",
            "10m",
            "warning",
            "The Asocial operator's reconciles are failing",
            "{{ $value | humanize }} failed reconciles per second for 10 minutes: changes"
            " to instances are not being applied.",
        ),
        _alert(
            "AsocialOperatorNoLeader",
            f"(sum({leader}) or vector(0)) < 1",
            "2m",
            "critical",
            "No Asocial operator replica is reconciling",
            "No scraped operator replica holds the lease (or none is scraped at all):"
            " nothing repairs or updates AsocialInstances.",
        ),
    ]
    return {"name": "asocial-operator", "rules": rules}


def rules_file() -> dict[str, Any]:
    """The plain rules file: every instance and the operator, for any Prometheus."""
    return {"groups": [chat_rules(), operator_rules()]}


def alert_names() -> list[str]:
    return [r["alert"] for g in rules_file()["groups"] for r in g["rules"]]

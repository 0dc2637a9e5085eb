"""The devcluster's real Prometheus (run by the real Prometheus Operator) scraping the real
stack the way a team would: the instance's ServiceMonitor and PrometheusRule made by the
operator, the operator's own ServiceMonitor and PrometheusRule as the Helm chart renders
them.

Under chat load every dashboard query returns data, every alert expression evaluates,
every rule group is loaded and healthy, and deleting the Redis pod (on a cordoned node,
so it cannot come back at once) makes ``AsocialRedisDown`` fire, then resolve once Redis
is back.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from asocial_operator.monitoring import dashboard, rules
from tests.e2e.conftest import (
    NODE,
    OPERATOR_NS,
    Report,
    Stack,
    get_json,
    http_get,
    wait_for,
)
from tests.fixtures.devcluster import DEVCLUSTER, REPO_ROOT, Kubectl
from tests.fixtures.users import Numbered, in_the_room

pytestmark = pytest.mark.e2e

MONITORING_NS = "devcluster-system"


class Prometheus:
    """The devcluster's Prometheus, through its Service's cluster IP."""

    def __init__(self, kubectl: Kubectl) -> None:
        ip = get_json(kubectl, "svc", "prometheus", "-n", MONITORING_NS)["spec"]["clusterIP"]
        self.base = f"http://{ip}:9090"

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        status, body = http_get(f"{self.base}/api/v1/{path}?{query}", timeout=10)
        answer = json.loads(body)
        assert status == 200, f"{path} {params}: {status} {body[:500]}"
        assert answer["status"] == "success", answer
        return answer["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.api("query", query=expr)["result"]
        return result

    def firing(self, alert: str, namespace: str) -> bool:
        return any(
            a["labels"]["alertname"] == alert
            and a["labels"].get("namespace") == namespace
            and a["state"] == "firing"
            for a in self.api("alerts")["alerts"]
        )

    def active(self, alert: str, namespace: str) -> bool:
        """Pending or firing."""
        return any(
            a["labels"]["alertname"] == alert and a["labels"].get("namespace") == namespace
            for a in self.api("alerts")["alerts"]
        )


@pytest.fixture
def prometheus(kubectl: Kubectl, real_node: str) -> Prometheus:
    wait_for(
        lambda: (
            get_json(kubectl, "prometheus", "devcluster", "-n", MONITORING_NS)
            .get("status", {})
            .get("availableReplicas")
        ),
        "the devcluster's Prometheus available",
        timeout=120,
    )
    return Prometheus(kubectl)


@pytest.fixture
def operator_monitored(kubectl: Kubectl, operator_installed: None) -> Iterator[None]:
    """The suite's operator scraped and alerted on as the chart would have it: the
    ServiceMonitor and PrometheusRule ``helm template`` renders, applied."""
    helm = subprocess.run(
        [str(DEVCLUSTER), "which", "helm"], capture_output=True, text=True, check=True
    ).stdout.strip()
    rendered = subprocess.run(
        [
            *(helm, "template", "asocial-operator", str(REPO_ROOT / "charts" / "asocial-operator")),
            *("--namespace", OPERATOR_NS),
            *("--set", "metrics.serviceMonitor.enabled=true"),
            *("--set", "metrics.serviceMonitor.interval=5s"),
            *("--set", "metrics.prometheusRule.enabled=true"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    docs = [
        d
        for d in yaml.safe_load_all(rendered)
        if d and d["kind"] in ("ServiceMonitor", "PrometheusRule")
    ]
    assert len(docs) == 2, [d["kind"] for d in docs]
    body = json.dumps({"apiVersion": "v1", "kind": "List", "items": docs})
    kubectl("apply", "--server-side", "-f", "-", input=body)
    yield
    for doc in docs:
        kubectl("delete", doc["kind"], doc["metadata"]["name"], "-n", OPERATOR_NS, check=False)


def concrete(expr: str, namespace: str, job: str) -> str:
    for variable, value in {
        "$__rate_interval": "1m",
        "$__range": "10m",
        "$namespace": namespace,
        "$job": job,
    }.items():
        expr = expr.replace(variable, value)
    return expr


async def test_prometheus_scrapes_the_stack_and_alerts_on_it(
    kubectl: Kubectl,
    prometheus: Prometheus,
    operator_monitored: None,
    stack_factory: Any,
    report: Report,
) -> None:
    stack: Stack = stack_factory("chat")
    stack.apply({"monitoring": {"serviceMonitor": True, "prometheusRule": True, "dashboard": True}})
    stack.wait_ready()
    ns, job = stack.namespace, "chat-backend"
    pods = len(stack.pods("backend"))
    kubectl("get", "configmap", "chat-dashboard", "-n", ns)
    ready = time.monotonic()

    await asyncio.to_thread(
        wait_for,
        lambda: len(prometheus.query(f'up{{namespace="{ns}",job="{job}"}} == 1')) == pods,
        f"Prometheus scraping the {pods} backend pods",
        90,
    )
    await asyncio.to_thread(
        wait_for,
        lambda: prometheus.query(
            f'asocial_operator_reconciles_total{{namespace="{OPERATOR_NS}",'
            'job="asocial-operator",result="changed"}'
        ),
        "Prometheus scraping the operator",
        90,
    )
    report.record("prometheus_scraping_the_pods_seconds", round(time.monotonic() - ready, 1))

    def groups_loaded() -> list[dict[str, Any]] | None:
        groups = prometheus.api("rules")["groups"]
        ours = [
            g
            for g in groups
            if (g["name"] == "asocial-chat" and f"{ns}-chat-alerts" in g["file"])
            or (g["name"] == "asocial-operator" and OPERATOR_NS in g["file"])
        ]
        evaluated = all(
            r.get("lastEvaluation", "").startswith("2") for g in ours for r in g["rules"]
        )
        return ours if len(ours) == 2 and evaluated else None

    groups = await asyncio.to_thread(wait_for, groups_loaded, "both rule groups evaluated", 150)
    report.record("prometheus_rules_evaluated_seconds", round(time.monotonic() - ready, 1))
    expected = set(rules.alert_names())
    assert {r["name"] for g in groups for r in g["rules"]} == expected
    unhealthy = [(r["name"], r.get("lastError")) for g in groups for r in g["rules"]]
    unhealthy = [(name, error) for name, error in unhealthy if error]
    assert not unhealthy, f"rules that failed to evaluate: {unhealthy}"

    # Chat load: two typists on different pods, a watcher.
    urls = stack.backend_urls()
    watcher = await in_the_room(lambda q: _ws(urls[0], q), "monitored")
    typists = [
        Numbered(lambda q, u=url: _ws(u, q), "monitored", f"typist-{i}", rate=10)
        for i, url in enumerate(urls[:2])
    ]
    try:
        await asyncio.to_thread(
            wait_for,
            lambda: all(len(t.delivered(watcher)) >= 20 for t in typists),
            "both typists' frames reaching the watcher",
            30,
        )

        def empty_queries() -> list[str]:
            return [
                f"{title}: {expr}"
                for title, expr in dashboard.queries()
                if not prometheus.query(concrete(expr, ns, job))
            ]

        missing: list[str] = []
        started = time.monotonic()

        def all_answer() -> bool:
            now = empty_queries()
            if now != missing:
                print(f"[monitoring] {time.monotonic() - started:.0f}s: no data for {now}")
            missing[:] = now
            return not missing

        try:
            await asyncio.to_thread(wait_for, all_answer, "every dashboard query", 90)
        except AssertionError as exc:
            raise AssertionError(f"{exc}: no data for {missing}") from None
        report.record("dashboard_queries_with_data", len(dashboard.queries()))
        report.record("dashboard_data_seconds", round(time.monotonic() - ready, 1))
        for group in groups:
            for rule in group["rules"]:
                prometheus.query(rule["query"])  # raises unless Prometheus evaluates it
    finally:
        for typist in typists:
            await typist.stop()
        await watcher.stop()

    # Redis goes away: its pod deleted on a cordoned node cannot come back. Before, the
    # alert is quiet (not even pending): its `for` then counts from the deletion. A pod
    # that started during the load reports 0 until it has subscribed, so this can take a
    # scrape and an evaluation (5 s each) after every pod is connected.
    def quiet() -> bool:
        return not prometheus.active("AsocialRedisDown", ns)

    await asyncio.to_thread(wait_for, quiet, "AsocialRedisDown quiet before Redis goes", 90)
    (redis_pod,) = stack.pods("redis")
    kubectl("cordon", NODE)
    try:
        kubectl("delete", "pod", redis_pod["metadata"]["name"], "-n", ns, "--wait=false")
        gone = time.monotonic()
        await asyncio.to_thread(
            wait_for,
            lambda: prometheus.firing("AsocialRedisDown", ns),
            "AsocialRedisDown firing",
            240,
        )
        report.record("alert_redis_down_firing_seconds", round(time.monotonic() - gone, 1))
    finally:
        kubectl("uncordon", NODE)
    back = time.monotonic()
    await asyncio.to_thread(
        wait_for,
        lambda: not prometheus.active("AsocialRedisDown", ns),
        "AsocialRedisDown resolved after Redis came back",
        180,
    )
    report.record("alert_redis_down_resolved_seconds", round(time.monotonic() - back, 1))


def _ws(base: str, query: str) -> str:
    return base.replace("http://", "ws://") + "/api/chat?" + query

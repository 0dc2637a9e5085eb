"""The alert rules and the dashboard, checked by the real promtool (built by
``devcluster/devcluster build`` from the Prometheus module).

- the shipped files are what ``make monitoring`` writes from the operator package;
- ``promtool check rules`` accepts the rules, the instance's rules and every dashboard
  query (as recording rules);
- ``promtool test rules`` runs ``deploy/monitoring/asocial-rules.test.yaml``, where every
  alert fires on some series and stays quiet on others;
- an instance's PrometheusRule fires for that instance only;
- every metric the rules and the dashboard read is one the chat server or the operator
  exports, and every alert has a runbook entry.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import prometheus_client
import pytest
import yaml

from asocial_operator import metrics as operator_metrics
from asocial_operator.monitoring import __main__ as render
from asocial_operator.monitoring import dashboard, rules
from chatserver.metrics import Metrics
from tests.fixtures.devcluster import DEVCLUSTER, REPO_ROOT

MONITORING = REPO_ROOT / "deploy" / "monitoring"
RULES = MONITORING / render.RULES_FILE
RULE_TESTS = MONITORING / "asocial-rules.test.yaml"
LABELS = {
    "namespace",
    "job",
    "pod",
    "instance",
    "le",
    "reason",
    "code",
    "kind",
    "result",
    "phase",
    "state",
    "component",
    "instance_namespace",
    "instance_name",
}
PROMQL_WORDS = {"by", "on", "ignoring", "group_left", "and", "or", "vector", "humanize"}


@pytest.fixture(scope="module")
def promtool() -> str:
    found = subprocess.run(
        [str(DEVCLUSTER), "which", "promtool"], capture_output=True, text=True, check=False
    )
    if found.returncode != 0:
        pytest.fail(f"promtool is not built: {found.stderr.strip()}")
    return found.stdout.strip()


def run(promtool: str, *args: str, cwd: Path | None = None) -> str:
    result = subprocess.run(
        [promtool, *args], capture_output=True, text=True, cwd=cwd, check=False, timeout=120
    )
    assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout


def test_the_shipped_files_are_generated_from_the_package() -> None:
    assert RULES.read_text() == render.rules_text(), "stale: run `make monitoring`"
    shipped = (MONITORING / render.DASHBOARD_FILE).read_text()
    assert shipped == render.dashboard_text(), "stale: run `make monitoring`"


@pytest.mark.tools
def test_promtool_accepts_the_rules_file(promtool: str) -> None:
    out = run(promtool, "check", "rules", str(RULES))
    assert f"SUCCESS: {len(rules.alert_names())} rules found" in out, out


@pytest.mark.tools
def test_every_alert_fires_on_some_series_and_not_on_others(promtool: str) -> None:
    cases = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in cases:
        for check in case["alert_rule_test"]:
            (fires if check["exp_alerts"] else quiet).add(check["alertname"])
    names = set(rules.alert_names())
    assert names - fires == set(), "alerts no test makes fire"
    assert names - quiet == set(), "alerts no test checks stay quiet"
    out = run(promtool, "test", "rules", RULE_TESTS.name, cwd=MONITORING)
    assert "SUCCESS" in out, out


@pytest.mark.tools
def test_an_instances_rules_fire_for_that_instance_only(promtool: str, tmp_path: Path) -> None:
    selector = rules.for_instance("blue", "chat", "chat-backend")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": [rules.chat_rules(selector)]}))
    down = "1 0x10"
    series = [
        ('broker_connected{namespace="blue",job="chat-backend",pod="a"}', down),
        ('broker_connected{namespace="green",job="chat-backend",pod="b"}', down),
        ('broker_connected{namespace="blue",job="other-backend",pod="c"}', down),
    ]
    series += [
        (
            f'asocial_operator_instance_ready{{instance_namespace="{ns}",instance_name="chat"}}',
            "0x20",
        )
        for ns in ("blue", "green")
    ]
    test = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series],
                "alert_rule_test": [
                    {
                        "eval_time": "5m",
                        "alertname": "AsocialRedisDown",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "critical",
                                    "namespace": "blue",
                                    "job": "chat-backend",
                                },
                                "exp_annotations": _annotations("AsocialRedisDown", selector),
                            }
                        ],
                    },
                    {
                        "eval_time": "15m",
                        "alertname": "AsocialInstanceNotReady",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "warning",
                                    "instance_namespace": "blue",
                                    "instance_name": "chat",
                                },
                                "exp_annotations": _annotations(
                                    "AsocialInstanceNotReady", selector
                                ),
                            }
                        ],
                    },
                ],
            }
        ],
    }
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(test))
    run(promtool, "test", "rules", "test.yaml", cwd=tmp_path)


def _annotations(alert: str, selector: rules.Selector) -> dict[str, str]:
    """The alert's annotations rendered for instance blue/chat (backend job chat-backend);
    only for alerts whose text has no ``$value``."""
    rule = next(r for r in rules.chat_rules(selector)["rules"] if r["alert"] == alert)
    values = {
        "namespace": "blue",
        "job": "chat-backend",
        "instance_namespace": "blue",
        "instance_name": "chat",
    }
    text: dict[str, str] = {}
    for key, value in rule["annotations"].items():
        for label, filled in values.items():
            value = value.replace(f"{{{{ $labels.{label} }}}}", filled)
        assert "{{" not in value, value
        text[key] = value
    return text


def _concrete(expr: str) -> str:
    """A dashboard query as Prometheus itself would run it (Grafana's variables filled)."""
    for variable, value in {
        "$__rate_interval": "1m",
        "$__range": "1h",
        "$namespace": "chat",
        "$job": "chat-backend",
    }.items():
        expr = expr.replace(variable, value)
    return expr


@pytest.mark.tools
def test_promtool_parses_every_dashboard_query(promtool: str, tmp_path: Path) -> None:
    recording = [
        {"record": f"asocial:dashboard_query_{i}", "expr": _concrete(expr)}
        for i, (_, expr) in enumerate(dashboard.queries())
    ]
    path = tmp_path / "queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": recording}]}))
    out = run(promtool, "check", "rules", str(path))
    assert f"SUCCESS: {len(recording)} rules found" in out, out


def _exported() -> set[str]:
    """Every sample name the chat server and the operator export."""
    names: set[str] = set()
    registries = [Metrics().registry, prometheus_client.REGISTRY]
    assert operator_metrics.LEADER is not None  # the operator's families are registered
    for registry in registries:
        for family in registry.collect():
            names.add(family.name)
            names.update(sample.name for sample in family.samples)
            if family.type == "counter":
                names.add(family.name + "_total")
            if family.type == "histogram":
                names.add(family.name + "_bucket")
    return names


def _metric_names(expr: str) -> set[str]:
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", re.sub(r'"[^"]*"', "", expr)))
    functions = {w for w in words if re.search(rf"\b{w}\s*\(", expr)}
    return {
        w for w in words - functions - LABELS - PROMQL_WORDS if "_" in w and not w.startswith("__")
    }


def test_every_metric_read_is_exported() -> None:
    exported = _exported()
    exprs = [expr for _, expr in dashboard.queries()]
    exprs += [r["expr"] for g in rules.rules_file()["groups"] for r in g["rules"]]
    exprs += [v["definition"] for v in dashboard.build()["templating"]["list"][1:]]
    read = set().union(*(_metric_names(e) for e in exprs))
    assert read, "no metric names found"
    assert read - exported == set(), f"read but never exported: {read - exported}"


def test_every_alert_has_a_runbook_entry() -> None:
    runbook = (MONITORING / "README.md").read_text()
    headings = set(re.findall(r"^### (\w+)$", runbook, re.MULTILINE))
    assert set(rules.alert_names()) - headings == set(), "alerts without a runbook entry"
    for group in rules.rules_file()["groups"]:
        for rule in group["rules"]:
            anchor = rule["annotations"]["runbook"].split("#")[1]
            assert anchor == rule["alert"].lower()


def test_the_dashboard_shows_each_part_of_the_stack() -> None:
    model: dict[str, Any] = json.loads(render.dashboard_text())
    titles = {p["title"] for p in model["panels"] if p["type"] == "timeseries"}
    assert {
        "Open connections",
        "Joins and leaves",
        "Frames in and deliveries",
        "Broadcast latency",
        "Drops and refusals by reason",
        "Rate limiting and auth failures",
        "Redis health",
        "Failovers and reconnects",
        "CPU per pod",
        "Memory per pod",
        "Reconciles by result",
        "Instances by phase",
    } <= titles
    ids = [p["id"] for p in model["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"

"""Shared fixtures: real processes (redis-server, chat servers) and the devcluster."""

from __future__ import annotations

import pytest

pytest_plugins = [
    "tests.fixtures.processes",
    "tests.fixtures.redis_setups",
    "tests.fixtures.devcluster",
    "tests.fixtures.firebase",
]


def _order(item: pytest.Item) -> int:
    if item.get_closest_marker("last") is not None:
        return 2
    if item.get_closest_marker("e2e") is not None:
        return 1
    return 0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``e2e`` run after the others (the in-cluster operator they install
    watches every namespace, so it must not meet the operator suite's own operators), and
    tests marked ``last`` after those (they take shared things down: the devcluster's
    clean-``down`` check restarts the cluster the rest of the suite uses)."""
    items.sort(key=_order)


_suite_seconds: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Adds each phase's time (setup, call, teardown) to its suite: ``tests/<suite>/``."""
    parts = report.nodeid.split("/")
    suite = "/".join(parts[:2]) if len(parts) > 2 else parts[0].split("::")[0]
    _suite_seconds[suite] = _suite_seconds.get(suite, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Each suite's time, so the CI budget can be watched suite by suite."""
    if not _suite_seconds:
        return
    terminalreporter.section("time per suite")
    for suite, seconds in sorted(_suite_seconds.items(), key=lambda kv: -kv[1]):
        terminalreporter.write_line(f"{suite:<24} {seconds:8.1f} s")

"""Shared fixtures: real processes (redis-server, chat servers) and the devcluster."""

import pytest

pytest_plugins = [
    "tests.fixtures.processes",
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

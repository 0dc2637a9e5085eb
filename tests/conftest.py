"""Shared fixtures: real processes (redis-server, chat servers) and the devcluster."""

import pytest

pytest_plugins = [
    "tests.fixtures.processes",
    "tests.fixtures.devcluster",
    "tests.fixtures.firebase",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``last`` run after every other test (they take shared things down:
    the devcluster's clean-``down`` check restarts the cluster the rest of the suite uses)."""
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)

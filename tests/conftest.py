"""Shared fixtures: real processes (redis-server, chat servers) and the devcluster."""

pytest_plugins = [
    "tests.fixtures.processes",
    "tests.fixtures.devcluster",
    "tests.fixtures.firebase",
]

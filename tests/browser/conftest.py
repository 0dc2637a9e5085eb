"""Fixtures of the browser tests: Debian's chromium driven by Playwright, and a chat server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.pages import CHROMIUM, SERVER_ENV, browser
from tests.fixtures.processes import ChatProcess


@pytest.fixture(scope="module", autouse=True)
def _chromium_installed() -> None:
    # A missing browser is a broken set-up, not a reason to skip: `make test` installs it.
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: run `make test` (apt chromium)"


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = ChatProcess(tmp_path_factory.mktemp("server"), SERVER_ENV, "browser")
    try:
        yield server.http("").rstrip("/")
    finally:
        server.stop()


__all__ = ["browser"]  # the fixture, defined with the page helpers (e2e uses it too)

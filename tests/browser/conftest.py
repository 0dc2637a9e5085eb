"""Fixtures of the browser tests: Debian's chromium driven by Playwright, and a chat server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright import async_api as pw_api

from tests.browser.pages import CHROMIUM, CHROMIUM_ARGS, SERVER_ENV
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


@pytest.fixture
async def browser() -> AsyncIterator[pw_api.Browser]:
    async with pw_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()

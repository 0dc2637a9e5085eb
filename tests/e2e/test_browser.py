"""Chromium on the canvas the deployed instance serves: two pages, each served by a
different backend pod, chat through the deployed Redis."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright import async_api as pw_api

from tests.browser.pages import browser, open_page
from tests.e2e.conftest import Stack

pytestmark = [pytest.mark.devcluster, pytest.mark.e2e, pytest.mark.browser]
expect = pw_api.expect
SCREENSHOT = Path("/tmp/canvas-real-stack.png")
__all__ = ["browser"]  # the fixture, shared with the local browser tests


async def test_two_pages_on_two_backend_pods_see_each_other_type(
    stack_factory: Callable[[str], Stack], browser: pw_api.Browser
) -> None:
    stack = stack_factory("chat")
    stack.apply()
    stack.wait_ready()
    a, b, _ = stack.backend_urls()
    channel = "browser-" + uuid.uuid4().hex[:8]
    page_a, uid_a = await open_page(browser, f"{a}/?channel={channel}")
    page_b, uid_b = await open_page(browser, f"{b}/?channel={channel}")
    for page in (page_a, page_b):
        for uid in (uid_a, uid_b):
            await expect(page.locator(f'#presence [data-user-id="{uid}"]')).to_be_visible()
    await page_a.mouse.click(420, 260)
    msg_b = page_b.locator(".msg")
    for i, key in enumerate("real pods", start=1):
        await page_a.keyboard.type(key)
        await expect(msg_b).to_have_text("real pods"[:i])
    assert await msg_b.get_attribute("data-user-id") == uid_a
    msg_a = page_a.locator(".msg")
    for attr in ("data-x", "data-y"):
        assert await msg_b.get_attribute(attr) == await msg_a.get_attribute(attr)
    await page_b.bring_to_front()
    await page_b.screenshot(path=SCREENSHOT)

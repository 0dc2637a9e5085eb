"""Helpers for driving the canvas page in Chromium: opening a user's page, two users in
one room, reading the view's state."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from playwright import async_api as pw_api

expect = pw_api.expect

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FADE_SECONDS = 5.0
SERVER_ENV = {
    "ASOCIAL_AUTH_MODE": "anonymous",
    "ASOCIAL_MESSAGE_FADE_SECONDS": str(FADE_SECONDS),
    "ASOCIAL_SHUTDOWN_GRACE_SECONDS": "2",
}
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 3,
    "is_mobile": True,
    "has_touch": True,
}


async def open_page(
    browser: pw_api.Browser, url: str, **context: object
) -> tuple[pw_api.Page, str]:
    """A page in its own context (its own localStorage, so its own uid), once connected."""
    ctx = await browser.new_context(**{**DESKTOP, **context})  # type: ignore[arg-type]
    page = await ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(url)
    await expect(page.locator("#status")).to_have_text("connected", timeout=10_000)
    uid = await page.evaluate("localStorage.getItem('asocial.uid')")
    assert isinstance(uid, str)
    assert not errors
    return page, uid


async def two_users(
    browser: pw_api.Browser, base: str, *, second: dict[str, object] | None = None
) -> tuple[pw_api.Page, str, pw_api.Page, str]:
    channel = f"browser-{uuid.uuid4().hex[:10]}"
    # both ways of naming the room: query string and fragment
    page_a, uid_a = await open_page(browser, f"{base}/?channel={channel}")
    page_b, uid_b = await open_page(browser, f"{base}/#{channel}", **(second or {}))
    assert uid_a != uid_b
    for page in (page_a, page_b):
        for uid in (uid_a, uid_b):
            await expect(page.locator(f'#presence [data-user-id="{uid}"]')).to_be_visible()
        await expect(page.locator("#count")).to_have_text("2")
    return page_a, uid_a, page_b, uid_b


@pytest.fixture
async def browser() -> AsyncIterator[pw_api.Browser]:
    async with pw_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()

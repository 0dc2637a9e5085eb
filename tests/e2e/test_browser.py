"""Chromium on the canvas the deployed instance serves: two pages, each served by a
different backend pod, chat through the deployed Redis; straight to the pods, and over
HTTPS through the devcluster's Gateway."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from playwright import async_api as pw_api

from tests.browser.pages import CHROMIUM, CHROMIUM_ARGS, browser, open_page
from tests.e2e.conftest import Stack
from tests.e2e.gateway import ADDRESS, Site, ca_path, pod_metric

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


@pytest.fixture
def trusting_home(tmp_path: Path) -> Path:
    """A home whose NSS database (``~/.pki/nssdb``, where Chromium on Linux reads the
    user's trust) trusts the devcluster's CA, as a user's would after importing it."""
    nssdb = tmp_path / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    certutil = ["certutil", "-d", f"sql:{nssdb}"]
    subprocess.run([*certutil, "-N", "--empty-password"], check=True)
    trusted = [*certutil, "-A", "-t", "C,,", "-n", "devcluster edge CA", "-i", ca_path()]
    subprocess.run(trusted, check=True)
    return tmp_path


@pytest.fixture
async def trusting_browser(trusting_home: Path) -> AsyncIterator[pw_api.Browser]:
    """Chromium with that home, resolving names under devcluster.test to the Gateway as
    ``/etc/hosts`` would."""
    args = [*CHROMIUM_ARGS, f"--host-resolver-rules=MAP *.devcluster.test {ADDRESS}"]
    async with pw_api.async_playwright() as pw:
        env = {**os.environ, "HOME": str(trusting_home)}
        launched = await pw.chromium.launch(executable_path=CHROMIUM, args=args, env=env)
        try:
            yield launched
        finally:
            await launched.close()


async def test_two_pages_over_https_through_the_gateway_land_on_two_pods_and_chat(
    stack_factory: Callable[[str], Stack], trusting_browser: pw_api.Browser
) -> None:
    """The canvas as users reach it: https://<host>:8443 through Traefik, the certificate
    trusted because the browser trusts the devcluster's CA (no certificate errors are
    ignored). Pages are opened until two sit on different pods: with three pods behind
    the balancer, twelve on one pod would mean it does not spread connections."""
    stack = stack_factory("chat")
    site = Site.of(stack)
    stack.apply(site.spec())
    stack.wait_ready()
    site.wait_served()
    channel = "gateway-" + uuid.uuid4().hex[:8]
    pages: list[tuple[pw_api.Page, str, str]] = []  # page, uid, the pod serving its socket
    before = pod_metric(stack, "websocket_connections_active")
    while len({pod for _, _, pod in pages}) < 2:
        assert len(pages) < 12, f"12 pages, all on {pages[0][2]}"
        page, uid = await open_page(trusting_browser, f"{site.https}/?channel={channel}")
        after = pod_metric(stack, "websocket_connections_active")
        (pod,) = [name for name, n in after.items() if n > before.get(name, 0)]
        pages.append((page, uid, pod))
        before = after
    page_a, uid_a, pod_a = pages[0]
    page_b, uid_b, pod_b = pages[-1]
    assert pod_a != pod_b
    for page, _, _ in pages[1:-1]:
        await page.context.close()
    for page in (page_a, page_b):
        for uid in (uid_a, uid_b):
            await expect(page.locator(f'#presence [data-user-id="{uid}"]')).to_be_visible()
    await page_a.mouse.click(420, 260)
    msg_b = page_b.locator(".msg")
    for i, key in enumerate("over tls", start=1):
        await page_a.keyboard.type(key)
        await expect(msg_b).to_have_text("over tls"[:i])
    assert await msg_b.get_attribute("data-user-id") == uid_a

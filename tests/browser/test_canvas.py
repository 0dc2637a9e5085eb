"""The built-in canvas page, driven end to end in headless Debian chromium.

The real chat server runs as a subprocess on a free port; two browser contexts (two
users, separate localStorage) join the same random channel and watch each other type.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from playwright import async_api as pw_api

from tests.browser.pages import FADE_SECONDS, SERVER_ENV, expect, open_page, two_users
from tests.fixtures.firebase import PROJECT_ID as FIREBASE_PROJECT
from tests.fixtures.firebase import sign_up
from tests.fixtures.processes import ChatProcess, RedisProcess

SCREENSHOT = Path("/tmp/canvas.png")

pytestmark = pytest.mark.browser


def _rgb(hex_colour: str) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


async def test_typing_appears_at_the_same_world_position_and_fades(
    browser: pw_api.Browser, server_url: str
) -> None:
    page_a, uid_a, page_b, _ = await two_users(browser, server_url)

    # A pans by (-100, -50) first: what is sent must be world coordinates, not screen ones
    await page_a.mouse.move(600, 400)
    await page_a.mouse.down()
    await page_a.mouse.move(550, 375, steps=5)
    await page_a.mouse.move(500, 350, steps=5)
    await page_a.mouse.up()
    await page_a.mouse.click(700, 420)

    msg_b = page_b.locator(".msg")
    for i, key in enumerate("hello", start=1):
        await page_a.keyboard.type(key)
        await expect(msg_b).to_have_text("hello"[:i])
        await expect(msg_b).to_have_count(1)
        if i == 1:  # tag the element: later keystrokes must update it, not replace it
            await msg_b.evaluate("el => { el.dataset.probe = 'first' }")
    seen_at = time.monotonic()
    assert await msg_b.get_attribute("data-probe") == "first"
    assert await msg_b.get_attribute("data-user-id") == uid_a

    msg_a = page_a.locator(".msg")
    await expect(msg_a).to_have_text("hello")
    for attr, value in (("data-x", "800"), ("data-y", "470")):
        assert await msg_a.get_attribute(attr) == value
        assert await msg_b.get_attribute(attr) == value
    assert await msg_b.evaluate("el => [el.style.left, el.style.top]") == ["800px", "470px"]
    colour_a = await page_a.evaluate("localStorage.getItem('asocial.color')")
    await expect(msg_b).to_have_css("color", _rgb(colour_a))

    await page_b.bring_to_front()
    await page_b.screenshot(path=SCREENSHOT)

    await expect(msg_b).to_have_count(0, timeout=(FADE_SECONDS + 5) * 1000)
    assert time.monotonic() - seen_at > FADE_SECONDS - 1.5, "faded long before 5 s"
    await expect(msg_a).to_have_count(0, timeout=5_000)


async def test_enter_starts_a_new_message_below(browser: pw_api.Browser, server_url: str) -> None:
    page_a, _, page_b, _ = await two_users(browser, server_url)
    await page_a.mouse.click(300, 300)
    await page_a.keyboard.type("one")
    await page_a.keyboard.press("Enter")
    await page_a.keyboard.type("two")
    msgs = page_b.locator(".msg")
    await expect(msgs).to_have_text(["one", "two"])
    ids = {await m.get_attribute("data-message-id") for m in await msgs.all()}
    assert len(ids) == 2
    assert await msgs.nth(0).get_attribute("data-x") == await msgs.nth(1).get_attribute("data-x")
    y0, y1 = [float(await msgs.nth(i).get_attribute("data-y") or "nan") for i in (0, 1)]
    assert y1 > y0


async def test_markup_is_shown_literally(browser: pw_api.Browser, server_url: str) -> None:
    page_a, _, page_b, _ = await two_users(browser, server_url)
    text = "<b>bold</b> <img src=x onerror=window.pwned=1>"
    await page_a.mouse.click(400, 300)
    await page_a.keyboard.type(text)
    msg_b = page_b.locator(".msg")
    await expect(msg_b).to_have_text(text)
    assert await page_b.locator(".msg b, .msg img").count() == 0
    assert await page_b.evaluate("window.pwned") is None


async def test_name_and_colour_changes_reach_the_other_user(
    browser: pw_api.Browser, server_url: str
) -> None:
    page_a, uid_a, page_b, _ = await two_users(browser, server_url)
    await page_a.fill("#username", "Ada Lovelace")
    await page_a.press("#username", "Enter")
    entry = page_b.locator(f'#presence [data-user-id="{uid_a}"]')
    await expect(entry).to_contain_text("Ada Lovelace")
    await page_a.eval_on_selector(
        "#color",
        "el => { el.value = '#123456'; el.dispatchEvent(new Event('change', {bubbles: true})) }",
    )
    await expect(entry.locator(".dot")).to_have_css("background-color", "rgb(18, 52, 86)")
    assert await page_a.evaluate("localStorage.getItem('asocial.username')") == "Ada Lovelace"


async def test_late_joiner_sees_recent_text_until_it_fades(
    browser: pw_api.Browser, server_url: str
) -> None:
    channel = f"browser-{uuid.uuid4().hex[:10]}"
    page_a, uid_a = await open_page(browser, f"{server_url}/?channel={channel}")
    await page_a.mouse.click(640, 300)
    await page_a.keyboard.type("early")
    await expect(page_a.locator(".msg")).to_have_text("early")
    await asyncio.sleep(2)  # the scenario: B arrives two seconds after A stopped typing
    page_b, _ = await open_page(browser, f"{server_url}/?channel={channel}")
    joined_at = time.monotonic()
    msg_b = page_b.locator(".msg")
    await expect(msg_b).to_have_text("early")
    assert await msg_b.get_attribute("data-user-id") == uid_a
    # replayed text fades with the original (~3 s from now), not a full period after the join
    await expect(msg_b).to_have_count(0, timeout=(FADE_SECONDS + 5) * 1000)
    assert time.monotonic() - joined_at < FADE_SECONDS - 1


async def test_status_shows_reconnecting_and_recovers(
    browser: pw_api.Browser, tmp_path: Path
) -> None:
    server = await asyncio.to_thread(ChatProcess, tmp_path, SERVER_ENV, "reconnect")
    try:
        page, uid = await open_page(browser, server.http("/?channel=reconnect"))
        await asyncio.to_thread(server.stop)
        await expect(page.locator("#status")).to_contain_text("reconnecting")
        await expect(page.locator("#presence li")).to_have_count(0)
        await asyncio.to_thread(server.start)
        await expect(page.locator("#status")).to_have_text("connected", timeout=20_000)
        await expect(page.locator(f'#presence [data-user-id="{uid}"]')).to_be_visible()
    finally:
        await asyncio.to_thread(server.stop)


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[ChatProcess]:
    server = ChatProcess(tmp_path, SERVER_ENV, "restart")
    try:
        yield server
    finally:
        server.stop()


async def test_text_typed_across_a_server_restart_reaches_the_other_user(
    browser: pw_api.Browser, own_server: ChatProcess
) -> None:
    """The server drains (1001) and comes back; what A typed before and during the gap
    reaches B although A typed nothing after it: the page resends its own messages still
    on screen as soon as it reconnects."""
    base = own_server.http("").rstrip("/")
    page_a, _, page_b, _ = await two_users(browser, base)
    await page_a.mouse.click(500, 300)
    await page_a.keyboard.type("before")
    await expect(page_b.locator(".msg")).to_have_text("before")
    await asyncio.to_thread(own_server.stop)  # SIGTERM: both pages get 1001
    await expect(page_a.locator("#status")).not_to_have_text("connected")
    await page_a.keyboard.type(" during")  # typed while no server is there
    await asyncio.to_thread(own_server.start)
    for page in (page_a, page_b):
        await expect(page.locator("#status")).to_have_text("connected", timeout=15_000)
    await expect(page_b.locator(".msg")).to_have_text("before during")


async def test_a_page_back_from_a_drained_server_resumes_from_its_offset(
    browser: pw_api.Browser, redis_server: RedisProcess, tmp_path: Path
) -> None:
    """B's server drains (1001) while A, on another server, types on. B's page comes back
    with ``since`` and ``epoch`` and gets exactly the frames it missed, in order."""
    env = {**SERVER_ENV, "ASOCIAL_REDIS_URL": redis_server.url}
    a = await asyncio.to_thread(ChatProcess, tmp_path, env, "a")
    b = await asyncio.to_thread(ChatProcess, tmp_path, env, "b")
    try:
        channel = f"resume-{uuid.uuid4().hex[:6]}"
        sockets: list[pw_api.WebSocket] = []
        received: list[list[dict[str, object]]] = []

        def watch(ws: pw_api.WebSocket) -> None:
            frames: list[dict[str, object]] = []
            sockets.append(ws)
            received.append(frames)
            ws.on("framereceived", lambda payload: frames.append(json.loads(payload)))

        page_a, _ = await open_page(browser, a.http(f"/?channel={channel}"))
        ctx_b = await browser.new_context(viewport={"width": 1280, "height": 800})
        page_b = await ctx_b.new_page()
        page_b.on("websocket", watch)
        await page_b.goto(b.http(f"/?channel={channel}"))
        await expect(page_b.locator("#status")).to_have_text("connected")
        await page_a.mouse.click(500, 300)
        await page_a.keyboard.type("hi")
        await expect(page_b.locator(".msg")).to_have_text("hi")
        epoch = next(f["epoch"] for f in received[0] if f["type"] == "user_sync")
        last = max(int(str(f["offset"])) for f in received[0] if f["type"] == "chat")
        await asyncio.to_thread(b.stop)  # SIGTERM: B's page gets 1001
        await expect(page_b.locator("#status")).not_to_have_text("connected")
        await page_a.keyboard.type(" there")  # six frames B is not there for
        await asyncio.to_thread(b.start)
        await expect(page_b.locator("#status")).to_have_text("connected", timeout=15_000)
        await expect(page_b.locator(".msg")).to_have_text("hi there")
        assert f"since={last}" in sockets[-1].url
        assert f"epoch={epoch}" in sockets[-1].url
        chats = [f for f in received[-1] if f["type"] == "chat"]
        assert [f["offset"] for f in chats] == list(range(last + 1, last + 7))
        assert [f["payload"] for f in chats][-1] == "hi there"
    finally:
        await asyncio.to_thread(b.stop)
        await asyncio.to_thread(a.stop)


async def test_rooms_are_listed_picked_and_created(
    browser: pw_api.Browser, server_url: str
) -> None:
    page_a, uid_a = await open_page(browser, f"{server_url}/")
    await expect(page_a.locator("#channel")).to_have_text("#default")
    await page_a.click("#channel")
    await expect(page_a.locator("#rooms")).to_be_visible()
    await expect(page_a.locator('#room-list [data-slug="default"]')).to_have_attribute(
        "aria-current", "true"
    )
    # Without sign-in there are no rooms of one's own and no private rooms.
    await expect(page_a.locator("#mine")).to_be_hidden()
    await expect(page_a.locator("#private-box")).to_be_hidden()
    name = f"Night Owls {uuid.uuid4().hex[:6]}"
    await page_a.fill("#room-name", name)
    await page_a.press("#room-name", "Enter")
    slug = name.lower().replace(" ", "-")
    await expect(page_a.locator("#channel")).to_have_text(f"#{slug}")
    await expect(page_a.locator("#rooms")).to_be_hidden()
    assert f"channel={slug}" in page_a.url
    await expect(page_a.locator("#status")).to_have_text("connected")

    page_b, uid_b = await open_page(browser, f"{server_url}/")
    await page_b.click("#channel")
    await page_b.click(f'#room-list [data-slug="{slug}"]')
    await expect(page_b.locator("#channel")).to_have_text(f"#{slug}")
    for page in (page_a, page_b):
        await expect(page.locator("#count")).to_have_text("2")
        await expect(page.locator(f'#presence [data-user-id="{uid_a}"]')).to_be_visible()
        await expect(page.locator(f'#presence [data-user-id="{uid_b}"]')).to_be_visible()
    # a name already taken is refused with the server's reason
    await page_b.click("#channel")
    await page_b.fill("#room-name", name)
    await page_b.press("#room-name", "Enter")
    await expect(page_b.locator("#toast")).to_contain_text("exists")
    await page_b.keyboard.press("Escape")
    await expect(page_b.locator("#rooms")).to_be_hidden()


async def test_a_signed_in_owner_makes_a_private_room_and_lets_someone_in(
    browser: pw_api.Browser, tmp_path: Path
) -> None:
    """Signed in (JWT): a private room made from the rooms menu is under "Your rooms" only;
    someone else is refused there until the owner lets them in by username in the menu,
    and closed out again when the owner removes them."""
    secret = "browser-jwt-secret-of-at-least-32-bytes"
    server = ChatProcess(
        tmp_path, {**SERVER_ENV, "ASOCIAL_AUTH_MODE": "jwt", "ASOCIAL_JWT_SECRET": secret}, "jwt"
    )

    def token(sub: str) -> str:
        now = int(time.time())
        return jwt.encode({"sub": sub, "iat": now, "exp": now + 600}, secret, algorithm="HS256")

    try:
        base = server.http("").rstrip("/")
        ann, bob = token("ann"), token("bob")
        owner, _ = await open_page(browser, f"{base}/?token={ann}")
        await owner.click("#channel")
        await expect(owner.locator("#mine")).to_be_visible()
        await expect(owner.locator("#members")).to_be_hidden()  # default is public
        name = f"Den {uuid.uuid4().hex[:6]}"
        slug = name.lower().replace(" ", "-")
        await owner.fill("#room-name", name)
        await owner.check("#room-private")
        await owner.press("#room-name", "Enter")
        await expect(owner.locator("#channel")).to_have_text(f"#{slug}")
        await expect(owner.locator("#status")).to_have_text("connected")

        guest, _ = await open_page(browser, f"{base}/?token={bob}")
        await guest.goto(f"{base}/?channel={slug}&token={bob}")
        status = guest.locator("#status")
        await expect(status).to_contain_text(f"disconnected: room '{slug}' is private")
        async with httpx.AsyncClient(base_url=base, timeout=10) as api:
            me = await api.get("/api/auth/me", headers={"Authorization": f"Bearer {bob}"})
            bob_name = me.json()["username"]

        await owner.click("#channel")
        mine = owner.locator(f'#my-rooms [data-slug="{slug}"]')
        await expect(mine).to_contain_text(f"private · #{slug}")
        await expect(owner.locator(f'#room-list [data-slug="{slug}"]')).to_have_count(0)
        await expect(owner.locator("#member-list li")).to_have_count(1)
        await expect(owner.locator("#member-list li")).to_contain_text("owner")
        await owner.fill("#member-name", bob_name)
        await owner.press("#member-name", "Enter")
        await expect(owner.locator(f'#member-list [data-username="{bob_name}"]')).to_be_visible()

        await guest.click("#retry")
        await expect(status).to_have_text("connected")
        for page in (owner, guest):
            await expect(page.locator("#count")).to_have_text("2")
        await owner.click(f'#member-list [data-username="{bob_name}"] button')
        await expect(status).to_have_text(
            f"disconnected: you are no longer a member of the private room '{slug}'"
        )
        await expect(owner.locator("#count")).to_have_text("1")
    finally:
        server.stop()


async def test_a_signed_in_page_chats_and_is_seen_once(
    browser: pw_api.Browser,
    firebase_emulator: str,
    redis_server: RedisProcess,
    tmp_path: Path,
) -> None:
    """A page holding a Firebase ID token (the emulator's) is one person in presence, under
    the uid its browser keeps, which is now bound to its account; a sign-out elsewhere
    disconnects it, saying why, and it does not retry on its own."""
    server = ChatProcess(
        tmp_path,
        {
            **SERVER_ENV,
            "ASOCIAL_AUTH_MODE": "firebase",
            "ASOCIAL_FIREBASE_PROJECT_ID": FIREBASE_PROJECT,
            "FIREBASE_AUTH_EMULATOR_HOST": firebase_emulator,
            "ASOCIAL_REDIS_URL": redis_server.url,
        },
        "signed-in",
    )
    try:
        token, account_id = await sign_up(firebase_emulator)
        channel = f"signed-{uuid.uuid4().hex[:8]}"
        base = server.http("").rstrip("/")
        signed, uid_signed = await open_page(browser, f"{base}/?channel={channel}&token={token}")
        assert "token" not in signed.url
        guest, uid_guest = await open_page(browser, f"{base}/?channel={channel}")
        for page in (signed, guest):
            await expect(page.locator("#count")).to_have_text("2")
            await expect(page.locator(f'#presence [data-user-id="{uid_signed}"]')).to_be_visible()
            await expect(page.locator(f'#presence [data-user-id="{uid_guest}"]')).to_be_visible()
            await expect(page.locator(f'#presence [data-user-id="{account_id}"]')).to_have_count(0)
        await expect(
            signed.locator(f'#presence [data-user-id="{uid_signed}"] .you')
        ).to_be_visible()
        await signed.mouse.click(400, 300)
        await signed.keyboard.type("signed in", delay=20)
        text = guest.locator(f'.msg[data-user-id="{uid_signed}"]')
        await expect(text).to_have_text("signed in")
        # The guest cannot be the signed-in user: its uid is bound to the account.
        await guest.evaluate(f"localStorage.setItem('asocial.uid', '{uid_signed}')")
        await guest.reload()
        await expect(guest.locator("#toast")).to_contain_text("belongs to a signed-in account")
        await expect(guest.locator("#status")).to_contain_text("disconnected: uid")

        opened: list[str] = []
        signed.on("websocket", lambda ws: opened.append(ws.url))
        async with httpx.AsyncClient(base_url=base, timeout=10) as api:
            out = await api.post("/api/auth/logout", headers={"Authorization": f"Bearer {token}"})
            assert out.status_code == 200, out.text
        status = signed.locator("#status")
        await expect(status).to_have_text("disconnected: signed out: sign in again to chat")
        await expect(signed.locator("#retry")).to_be_visible()
        await asyncio.sleep(1.5)  # a reconnect would have started within 0.5-1 s
        assert opened == []
    finally:
        server.stop()

"""The canvas on every kind of device: zoom (Ctrl+wheel, touch pinch), the minimap, a
phone's tap and IME input, screen-reader announcements, reduced motion, low-contrast
colours, and refusals shown next to the sender's text. Screenshots of the desktop and
phone views go to /tmp/asocial-screenshots/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright import async_api as pw_api

from tests.browser.pages import PHONE, SERVER_ENV, expect, open_page, two_users
from tests.fixtures.processes import ChatProcess

pytestmark = pytest.mark.browser
SHOTS = Path("/tmp/asocial-screenshots")


@pytest.fixture
def shots() -> Path:
    SHOTS.mkdir(exist_ok=True)
    return SHOTS


async def box(locator: pw_api.Locator) -> dict[str, float]:
    found = await locator.bounding_box()
    assert found is not None
    return dict(found)


async def zoom_percent(page: pw_api.Page) -> int:
    return int((await page.locator("#zoom-level").inner_text()).rstrip("%"))


async def type_at(page: pw_api.Page, x: float, y: float, text: str) -> pw_api.Locator:
    """Click at (x, y), type, and return the page's own message element."""
    await page.mouse.click(x, y)
    await page.keyboard.type(text)
    own = page.locator(".msg", has_text=text)
    await expect(own).to_have_count(1)
    return own


async def test_ctrl_wheel_zooms_around_the_pointer_within_bounds(
    browser: pw_api.Browser, server_url: str
) -> None:
    page_a, _, page_b, _ = await two_users(browser, server_url)
    text = await type_at(page_a, 600, 400, "anchor")
    before = await box(text)
    await page_a.mouse.move(600, 400)
    await page_a.keyboard.down("Control")
    for _ in range(3):  # three notches in
        await page_a.mouse.wheel(0, -100)
    await page_a.keyboard.up("Control")
    await expect(page_a.locator("#zoom-level")).not_to_have_text("100%")
    scale = await zoom_percent(page_a) / 100
    assert scale > 1.5
    after = await box(text)
    # the point under the pointer stays put: the text's left edge and middle line
    assert after["x"] == pytest.approx(before["x"], abs=2)
    assert after["y"] + after["height"] / 2 == pytest.approx(400, abs=3)
    assert after["width"] == pytest.approx(before["width"] * scale, rel=0.05)
    # what others see is unchanged: world coordinates did not move
    seen = page_b.locator(".msg", has_text="anchor")
    assert await seen.get_attribute("data-x") == "600"
    # bounds
    await page_a.keyboard.down("Control")
    for _ in range(20):
        await page_a.mouse.wheel(0, -300)
    await expect(page_a.locator("#zoom-level")).to_have_text("400%")
    for _ in range(40):
        await page_a.mouse.wheel(0, 300)
    await page_a.keyboard.up("Control")
    await expect(page_a.locator("#zoom-level")).to_have_text("25%")
    await page_a.click("#zoom-level")  # back to 100 %
    await expect(page_a.locator("#zoom-level")).to_have_text("100%")


async def touch(cdp: pw_api.CDPSession, kind: str, points: list[tuple[float, float]]) -> None:
    await cdp.send(
        "Input.dispatchTouchEvent",
        {
            "type": kind,
            "touchPoints": [{"x": x, "y": y, "id": i + 1} for i, (x, y) in enumerate(points)],
        },
    )


async def test_on_a_phone_tap_types_and_two_fingers_pinch_around_their_middle(
    browser: pw_api.Browser, server_url: str, shots: Path
) -> None:
    desk, _, phone, phone_uid = await two_users(browser, server_url, second=PHONE)
    await phone.touchscreen.tap(150, 420)
    assert await phone.evaluate("document.activeElement.id") == "typer"
    await phone.keyboard.type("tapped")
    await expect(desk.locator(f'.msg[data-user-id="{phone_uid}"]')).to_have_text("tapped")
    text = phone.locator(".msg", has_text="tapped")
    before = await box(text)
    assert before["x"] == pytest.approx(150, abs=2)

    cdp = await phone.context.new_cdp_session(phone)
    mid_x, mid_y = 200.0, 420.0
    await touch(cdp, "touchStart", [(mid_x - 50, mid_y), (mid_x + 50, mid_y)])
    for step in range(1, 11):
        spread = 50 + 5 * step
        await touch(cdp, "touchMove", [(mid_x - spread, mid_y), (mid_x + spread, mid_y)])
    await touch(cdp, "touchEnd", [])
    await expect(phone.locator("#zoom-level")).to_have_text("200%")
    after = await box(text)
    # the world point between the fingers stayed between them: 50 px left of it doubles
    assert after["x"] == pytest.approx(mid_x - 2 * (mid_x - before["x"]), abs=3)
    assert after["y"] + after["height"] / 2 == pytest.approx(mid_y, abs=3)
    assert await phone.locator(".msg").count() == 1, "the pinch must not place a caret"

    # one finger drags the view; a drag is not a tap
    await touch(cdp, "touchStart", [(300, 600)])
    for step in range(1, 6):
        await touch(cdp, "touchMove", [(300 - 20 * step, 600)])
    await touch(cdp, "touchEnd", [])
    moved = await box(text)
    assert moved["x"] == pytest.approx(after["x"] - 100, abs=3)
    assert await phone.locator(".msg").count() == 1

    # the layout fits a 390 px screen: nothing sticks out, the panels do not overlap
    assert await phone.evaluate("document.documentElement.scrollWidth") <= 390
    boxes = {sel: await box(phone.locator(sel)) for sel in ("header", "aside", "#mapbox")}
    for sel, b in boxes.items():
        assert b["x"] >= 0
        assert b["x"] + b["width"] <= 390, sel
    aside, mapbox = boxes["aside"], boxes["#mapbox"]
    assert (
        aside["x"] + aside["width"] <= mapbox["x"] or aside["y"] >= mapbox["y"] + mapbox["height"]
    )
    await phone.screenshot(path=shots / "phone.png")


async def test_ime_composition_emoji_and_autocorrect_reach_the_other_page_exactly(
    browser: pw_api.Browser, server_url: str
) -> None:
    desk, _, phone, phone_uid = await two_users(browser, server_url, second=PHONE)
    await phone.touchscreen.tap(120, 380)
    cdp = await phone.context.new_cdp_session(phone)
    # a Japanese IME: kana while composing, then the chosen kanji committed
    for partial in ("に", "にほ", "にほん"):
        await cdp.send(
            "Input.imeSetComposition",
            {"text": partial, "selectionStart": len(partial), "selectionEnd": len(partial)},
        )
    await phone.keyboard.press("Enter")  # the IME's Enter picks the candidate, no new line
    await cdp.send("Input.insertText", {"text": "日本"})
    await cdp.send("Input.insertText", {"text": " 👋🏽 cafe"})
    # autocorrect replaces the last word in place (mobile keyboards send insertReplacementText)
    await phone.evaluate(
        """() => {
          const t = document.getElementById('typer');
          t.setRangeText('café', t.value.length - 4, t.value.length, 'end');
          const kind = 'insertReplacementText';
          t.dispatchEvent(new InputEvent('input', {inputType: kind, bubbles: true}));
        }"""
    )
    seen = desk.locator(f'.msg[data-user-id="{phone_uid}"]')
    await expect(seen).to_have_text("日本 👋🏽 café")
    await expect(seen).to_have_count(1)


async def test_the_minimap_shows_far_text_and_takes_you_there(
    browser: pw_api.Browser, server_url: str, shots: Path
) -> None:
    page_a, _, page_b, uid_b = await two_users(browser, server_url)
    await page_b.mouse.move(640, 400)
    await page_b.mouse.wheel(4000, 2500)  # B pans far away and types there
    await type_at(page_b, 400, 300, "over here")
    far = page_a.locator(f'.msg[data-user-id="{uid_b}"]')
    await expect(far).to_have_text("over here")
    assert await far.get_attribute("data-x") == "4400"
    place = await box(far)
    assert place["x"] > 1280, "the text starts out of A's view"
    dot = page_a.locator(f'#minimap i[data-user-id="{uid_b}"]')
    await expect(dot).to_have_count(1)
    spot = await box(dot)
    await page_a.mouse.click(spot["x"] + spot["width"] / 2, spot["y"] + spot["height"] / 2)
    there = await box(far)
    assert 0 <= there["x"] <= 1280
    assert 0 <= there["y"] <= 800
    # the keyboard way: Enter on the minimap goes to the latest message of someone else
    await page_a.mouse.move(640, 400)
    await page_a.mouse.wheel(-3000, -3000)
    assert (await box(far))["x"] > 1280 or (await box(far))["y"] > 800
    await page_a.focus("#minimap")
    await page_a.keyboard.press("Enter")
    there = await box(far)
    assert 0 <= there["x"] <= 1280
    assert 0 <= there["y"] <= 800
    await page_a.screenshot(path=shots / "desktop.png")


async def test_screen_readers_hear_others_messages_and_motion_can_be_reduced(
    browser: pw_api.Browser, server_url: str
) -> None:
    page_a, uid_a, page_b, _ = await two_users(browser, server_url)
    name_b = await page_b.evaluate("localStorage.getItem('asocial.username')")
    await type_at(page_b, 500, 300, "hello there")
    announcer = page_a.locator("#announcer")
    await expect(announcer).to_have_attribute("aria-live", "polite")
    await expect(announcer).to_contain_text(f"{name_b}: hello there")
    assert "hello ther\n" not in await announcer.inner_text()  # settled text, not keystrokes
    assert "hello there" not in await page_b.locator("#announcer").inner_text()  # not one's own

    await page_a.emulate_media(reduced_motion="reduce")
    msg = page_a.locator(".msg", has_text="hello there")
    durations = await msg.evaluate(
        "el => { el.classList.add('fading'); const s = getComputedStyle(el); "
        "return [s.transitionDuration, s.animationName]; }"
    )
    assert durations == ["0s", "none"]

    # a colour too close to the background gets a halo; a dark one does not
    for colour, halo in (("#ffff66", True), ("#1e3a8a", False)):
        await page_a.eval_on_selector(
            "#color",
            "(el, c) => { el.value = c; el.dispatchEvent(new Event('change', {bubbles: true})) }",
            colour,
        )
        await type_at(page_a, 300, 200 + (100 if halo else 200), f"in {colour}")
        seen = page_b.locator(f'.msg[data-user-id="{uid_a}"]', has_text=f"in {colour}")
        await expect(seen).to_have_count(1)
        assert await seen.evaluate("el => el.classList.contains('low-contrast')") == halo


async def test_refused_frames_are_shown_next_to_the_senders_text(
    browser: pw_api.Browser, tmp_path: Path
) -> None:
    server = ChatProcess(tmp_path, {**SERVER_ENV, "ASOCIAL_RATE_LIMIT_PER_MINUTE": "2"}, "limited")
    try:
        base = server.http("").rstrip("/")
        page_a, _, page_b, _ = await two_users(browser, base)
        await page_a.mouse.click(300, 200)
        for word in ("one", "two", "three"):
            await page_a.keyboard.type(word)
            await page_a.keyboard.press("Enter")
        refused = page_a.locator(".msg", has_text="three")
        await expect(refused).to_have_attribute("data-error", re.compile("not sent"))
        await expect(page_a.locator("#announcer")).to_contain_text("not sent")
        await expect(page_b.locator(".msg")).to_have_text(["one", "two"])
    finally:
        server.stop()


@pytest.mark.timeout(120)
async def test_reconnecting_counts_down_and_can_retry_now(
    browser: pw_api.Browser, tmp_path: Path
) -> None:
    server = ChatProcess(tmp_path, SERVER_ENV, "countdown")
    try:
        page, _ = await open_page(browser, server.http("/?channel=countdown"))
        server.stop()
        status = page.locator("#status")
        await expect(page.locator("#retry")).to_be_visible(timeout=10_000)
        # Wait until the next attempt is at least 5 s away, so the click, not the timer,
        # is what reconnects once the server is back.
        await expect(status).to_have_text(re.compile(r"^reconnecting in [5-9] s…$"), timeout=40_000)
        server.start()
        await page.click("#retry")
        await expect(status).to_have_text("connected", timeout=2_000)
        await expect(page.locator("#retry")).to_be_hidden()
    finally:
        server.stop()

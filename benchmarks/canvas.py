"""How the canvas page holds up with hundreds of messages on screen, in Chromium.

    python -m benchmarks.canvas [--messages 300] [--typists 3] [--seconds 10]

A chat server (in-memory broker) and headless Chromium run here. The page is measured
twice in one run: idle (the peer: same page, same machine, nothing arriving), then with
``--typists`` WebSocket clients keeping ``--messages`` messages on screen, each message
growing by one keystroke a second at its own spot. In the page: animation frames per
second (each 1-second window), long tasks (> 50 ms, the PerformanceObserver's), the
messages on screen and the JS heap. Results print as a table with the loaded/idle
ratios and go to ``~/.cache/asocial/bench/canvas-results.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import statistics
import tempfile
import uuid
from pathlib import Path
from typing import Any

import websockets
from playwright import async_api as pw_api

from tests.browser.pages import CHROMIUM, CHROMIUM_ARGS, DESKTOP
from tests.fixtures.processes import ChatProcess

RESULTS = Path.home() / ".cache" / "asocial" / "bench" / "canvas-results.json"
PROBE = """
window.__bench = { frames: [], long: [] };
(function tick(t) { window.__bench.frames.push(t); requestAnimationFrame(tick); })(0);
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) window.__bench.long.push(e.duration);
}).observe({ type: "longtask", buffered: true });
"""


async def sample(page: pw_api.Page, seconds: float) -> dict[str, Any]:
    """Frames per second in each 1 s window, long tasks and what is on screen."""
    await page.evaluate("() => { window.__bench.frames = []; window.__bench.long = []; }")
    counts: list[int] = []
    shown: list[int] = []
    for _ in range(int(seconds)):
        await asyncio.sleep(1)
        frames = await page.evaluate(
            "() => { const n = window.__bench.frames.length; "
            "window.__bench.frames = []; return n; }"
        )
        counts.append(int(frames))
        shown.append(int(await page.evaluate("document.querySelectorAll('.msg').length")))
    long = [float(d) for d in await page.evaluate("window.__bench.long")]
    heap = await page.evaluate("performance.memory ? performance.memory.usedJSHeapSize : 0")
    return {
        "fps_median": statistics.median(counts),
        "fps_worst_second": min(counts),
        "long_tasks": len(long),
        "long_task_ms_total": round(sum(long), 1),
        "long_task_ms_max": round(max(long, default=0.0), 1),
        "messages_on_screen_median": statistics.median(shown),
        "js_heap_mib": round(int(heap) / 2**20, 1),
    }


async def typist(url: str, messages: int, stop: asyncio.Event) -> int:
    """Keep ``messages`` messages of one user growing, one keystroke a second each."""
    sent = 0
    async with websockets.connect(url, max_queue=None) as ws:
        spots = [
            (uuid.uuid4().hex, random.uniform(40, 1240), random.uniform(80, 760))
            for _ in range(messages)
        ]
        texts = ["" for _ in spots]

        async def drain() -> None:
            with contextlib.suppress(websockets.ConnectionClosed):
                async for _ in ws:
                    pass

        reader = asyncio.create_task(drain())
        while not stop.is_set():
            for i, (mid, x, y) in enumerate(spots):
                texts[i] = (texts[i] + random.choice("asocial "))[-24:]
                frame = {
                    "type": "chat",
                    "message_id": mid,
                    "payload": texts[i],
                    "position": {"x": x, "y": y},
                }
                await ws.send(json.dumps(frame))
                sent += 1
                await asyncio.sleep(1 / messages)
        reader.cancel()
    return sent


async def run(args: argparse.Namespace) -> dict[str, Any]:
    server = ChatProcess(
        Path(tempfile.mkdtemp(prefix="canvas-bench-")),
        {
            "ASOCIAL_RATE_LIMIT_PER_MINUTE": "100000",
            "ASOCIAL_CLIENT_RATE_LIMIT_PER_MINUTE": "0",
            "ASOCIAL_FRAMES_PER_SECOND": "1000",
            "ASOCIAL_MESSAGE_FADE_SECONDS": "5",
        },
        "canvas-bench",
    )
    try:
        async with pw_api.async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, "--enable-precise-memory-info"]
            )
            context = await browser.new_context(**DESKTOP)  # type: ignore[arg-type]
            page = await context.new_page()
            await page.add_init_script(PROBE)
            await page.goto(server.http("/?channel=bench"))
            await page.wait_for_selector('#status[data-state="connected"]')
            print("idle page …", flush=True)
            idle = await sample(page, args.seconds)
            stop = asyncio.Event()
            per = args.messages // args.typists
            tasks = [
                asyncio.create_task(typist(server.ws(f"uid=t{i}&channel=bench"), per, stop))
                for i in range(args.typists)
            ]
            await asyncio.sleep(6)  # every message on screen, the first ones refreshed
            print(f"{args.messages} messages on screen …", flush=True)
            loaded = await sample(page, args.seconds)
            stop.set()
            sent = sum(await asyncio.gather(*tasks))
            await browser.close()
    finally:
        server.stop()
    return {"args": vars(args), "idle": idle, "loaded": loaded, "frames_sent": sent}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--typists", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    result = asyncio.run(run(args))
    idle, loaded = result["idle"], result["loaded"]
    print(f"\n{'':28}{'idle':>10}{'loaded':>10}{'loaded/idle':>13}")
    for key in idle:
        a, b = idle[key], loaded[key]
        ratio = f"{b / a:.2f}" if isinstance(a, int | float) and a else "-"
        print(f"{key:28}{a:>10}{b:>10}{ratio:>13}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    main()

"""Simulated end users for the real stack: they reconnect like the canvas page does.

:class:`Typist` types messages keystroke by keystroke (each frame carries the whole text
so far, as the page sends it), reconnects when its socket closes, and sends the latest
frame of each own message still on screen again after a reconnect or an ``unavailable``
refusal: the canvas page's policy. :class:`Watcher` records the latest text it saw of
every message. Keystrokes lost = typed characters that no watcher ever saw.

:class:`Numbered` sends one new message per frame (payload = its number) and never
resends, so every frame can be accounted for: delivered to a watcher or refused to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

URL = Callable[[str], str]  # query string -> ws:// URL (a pod, or the Service)


@dataclass(frozen=True)
class Route:
    """How users reach the chat: the socket URL for a query string, and the keywords
    ``connect`` needs for it (a CA to verify against, the address of the Gateway that
    serves the URL's host name)."""

    url: URL
    options: Mapping[str, Any] = field(default_factory=dict)


def as_route(url: URL | Route) -> Route:
    return url if isinstance(url, Route) else Route(url)


FADE_SECONDS = 5.0
RECONNECT_SECONDS = 0.3


def position() -> dict[str, int]:
    return {"x": 100, "y": 100}


@dataclass
class Connection:
    """One user's socket that comes back after every close, counting close codes."""

    route: Route
    query: str
    close_codes: list[int | None] = field(default_factory=list)
    reconnects: int = 0
    conn: ClientConnection | None = None
    opened: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(
        self, on_frame: Callable[[dict[str, Any]], None], on_open: Callable[[], Any]
    ) -> None:
        while True:
            try:
                async with connect(
                    self.route.url(self.query), open_timeout=5, **self.route.options
                ) as conn:
                    self.conn = conn
                    self.opened.set()
                    result = on_open()
                    if asyncio.iscoroutine(result):
                        await result
                    try:
                        async for raw in conn:
                            on_frame(json.loads(raw))
                    except ConnectionClosed:
                        pass
                    rcvd = conn.protocol.close_rcvd
                    self.close_codes.append(rcvd.code if rcvd else None)
            except (OSError, InvalidHandshake, InvalidStatus, TimeoutError):
                pass
            self.conn = None
            self.opened.clear()
            self.reconnects += 1
            await asyncio.sleep(RECONNECT_SECONDS)

    async def send(self, frame: dict[str, Any]) -> bool:
        conn = self.conn
        if conn is None:
            return False
        try:
            await conn.send(json.dumps(frame))
        except ConnectionClosed:
            return False
        return True


class Watcher:
    """Stays in the room and remembers the latest text of every message it saw."""

    def __init__(self, url: URL | Route, channel: str, name: str = "watcher") -> None:
        self.latest: dict[tuple[str, str], str] = {}
        self.seen_at: dict[tuple[str, str], float] = {}
        self.connection = Connection(
            as_route(url), f"uid={name}-{uuid.uuid4().hex[:6]}&channel={channel}"
        )
        self._task = asyncio.create_task(self.connection.run(self._frame, lambda: None))

    def _frame(self, frame: dict[str, Any]) -> None:
        if frame.get("type") != "chat":
            return
        key = (frame["user_id"], frame["message_id"])
        if len(frame["payload"]) >= len(self.latest.get(key, "")):
            self.latest[key] = frame["payload"]
            self.seen_at[key] = time.monotonic()

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class Typist:
    """Types ``text`` as message after message, ``rate`` keystrokes per second."""

    def __init__(self, url: URL | Route, channel: str, name: str, *, rate: float = 10.0) -> None:
        self.uid = f"{name}-{uuid.uuid4().hex[:6]}"
        self.rate = rate
        self.typed: dict[str, str] = {}  # message_id -> full text typed
        self.own: dict[str, tuple[dict[str, Any], float]] = {}  # id -> (latest frame, until)
        self.refused = 0
        self.connection = Connection(
            as_route(url), f"uid={self.uid}&username={name}&channel={channel}"
        )
        self._reader = asyncio.create_task(self.connection.run(self._frame, self._resend_all))
        self._writer: asyncio.Task[None] | None = None

    def start(self, messages: int, length: int = 20) -> None:
        self._writer = asyncio.create_task(self._type(messages, length))

    async def _type(self, messages: int, length: int) -> None:
        await self.connection.opened.wait()
        for n in range(messages):
            message_id = f"{self.uid}-m{n}"
            text = ""
            for i in range(length):
                text += "abcdefghijklmnopqrstuvwxyz"[(n + i) % 26]
                self.typed[message_id] = text
                frame = {
                    "type": "chat",
                    "message_id": message_id,
                    "payload": text,
                    "position": position(),
                }
                self.own[message_id] = (frame, time.monotonic() + FADE_SECONDS)
                await self.connection.send(frame)
                await asyncio.sleep(1 / self.rate)

    def _frame(self, frame: dict[str, Any]) -> None:
        if frame.get("type") == "error" and frame.get("code") == "unavailable":
            self.refused += 1
            message_id = frame.get("message_id")
            if message_id in self.own:
                asyncio.get_running_loop().call_later(
                    0.5, lambda: asyncio.ensure_future(self._resend(message_id))
                )

    async def _resend(self, message_id: str | None) -> None:
        entry = self.own.get(message_id or "")
        if entry and entry[1] > time.monotonic():
            await self.connection.send(entry[0])

    async def _resend_all(self) -> None:
        now = time.monotonic()
        for frame, until in list(self.own.values()):
            if until > now:
                await self.connection.send(frame)

    async def finished(self) -> None:
        assert self._writer is not None
        await self._writer

    def lost_keystrokes(self, watcher: Watcher) -> int:
        return sum(
            len(text) - len(watcher.latest.get((self.uid, mid), ""))
            for mid, text in self.typed.items()
        )

    async def stop(self) -> None:
        for task in (self._writer, self._reader):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


class Numbered:
    """Sends frame 1, 2, 3 ... (a new message each, payload = its number); never resends."""

    def __init__(self, url: URL | Route, channel: str, name: str, *, rate: float = 10.0) -> None:
        self.uid = f"{name}-{uuid.uuid4().hex[:6]}"
        self.rate = rate
        self.sent: list[int] = []
        self.refused: set[int] = set()
        self.other_errors: list[dict[str, Any]] = []
        self.connection = Connection(as_route(url), f"uid={self.uid}&channel={channel}")
        self._reader = asyncio.create_task(self.connection.run(self._frame, lambda: None))
        self._writer = asyncio.create_task(self._send())

    async def _send(self) -> None:
        n = 0
        while True:
            await self.connection.opened.wait()
            n += 1
            frame = {
                "type": "chat",
                "message_id": f"n{n}",
                "payload": str(n),
                "position": position(),
            }
            if await self.connection.send(frame):
                self.sent.append(n)
            await asyncio.sleep(1 / self.rate)

    def _frame(self, frame: dict[str, Any]) -> None:
        if frame.get("type") != "error":
            return
        if frame.get("code") == "unavailable" and str(frame.get("message_id", "")).startswith("n"):
            self.refused.add(int(frame["message_id"][1:]))
        else:
            self.other_errors.append(frame)

    def delivered(self, watcher: Watcher) -> set[int]:
        return {int(text) for (uid, _), text in watcher.latest.items() if uid == self.uid}

    def unaccounted(self, watcher: Watcher) -> set[int]:
        return set(self.sent) - self.delivered(watcher) - self.refused

    async def stop(self) -> None:
        for task in (self._writer, self._reader):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@dataclass
class Typing:
    """Typists typing in one room while watchers look on, once they have all stopped."""

    typists: list[Typist]
    watchers: list[Watcher]

    @property
    def typed(self) -> int:
        return sum(len(text) for t in self.typists for text in t.typed.values())

    def lost(self, watcher: Watcher) -> int:
        return sum(t.lost_keystrokes(watcher) for t in self.typists)

    @property
    def close_codes(self) -> list[int | None]:
        return [c for t in self.typists for c in t.connection.close_codes]


@contextlib.asynccontextmanager
async def typing_users(
    typists: list[Typist], watchers: list[Watcher], *, messages: int, length: int = 20
) -> AsyncIterator[Typing]:
    """Start the typists, give them 3 s, run the body (the fault), let each typist finish
    its messages and the last frames arrive, then stop everyone."""
    try:
        for t in typists:
            t.start(messages=messages, length=length)
        await asyncio.sleep(3)
        yield Typing(typists, watchers)
        for t in typists:
            await t.finished()
        await asyncio.sleep(2)
    finally:
        for t in typists:
            await t.stop()
        for w in watchers:
            await w.stop()

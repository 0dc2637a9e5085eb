"""A room chat written the way most Python users would: Starlette + ``broadcaster`` on Redis.

It speaks the same wire format as the chat server for the benchmark's purposes (JSON text
frames on ``/api/chat?uid=…&channel=…``; ``chat`` frames are stamped and fanned out to the
room; ``user_sync`` on join, ``user_joined``/``user_left`` to the room) but is the textbook
pattern from broadcaster's own README: one ``broadcast.subscribe(room)`` per socket and a
task group of a receiver and a sender. It keeps no presence store and, like that README,
echoes chat to its author too (the load generator ignores its own frames).

Run: ``BROADCAST_URL=redis://127.0.0.1:6379/0 uvicorn benchmarks.peers.broadcaster_chat:app``
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import anyio
from broadcaster import Broadcast
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

broadcast = Broadcast(os.environ.get("BROADCAST_URL", "redis://127.0.0.1:6379/0"))


def _now_ms() -> int:
    return int(time.time() * 1000)


async def chat_ws(websocket: WebSocket) -> None:
    user_id = websocket.query_params.get("uid") or uuid.uuid4().hex
    channel = websocket.query_params.get("channel") or "default"
    username = websocket.query_params.get("username")
    await websocket.accept()
    joined: dict[str, object] = {"type": "user_joined", "channel_id": channel}
    joined.update({"user_id": user_id, "username": username, "timestamp": _now_ms()})

    async with anyio.create_task_group() as task_group:

        async def run_receiver() -> None:
            await receiver(websocket, user_id=user_id, channel=channel)
            task_group.cancel_scope.cancel()

        async def run_sender() -> None:
            with suppress(WebSocketDisconnect):
                await sender(websocket, user_id=user_id, channel=channel, joined=joined)
            task_group.cancel_scope.cancel()

        task_group.start_soon(run_receiver)
        task_group.start_soon(run_sender)

    left: dict[str, object] = {"type": "user_left", "channel_id": channel, "user_id": user_id}
    left["timestamp"] = _now_ms()
    await broadcast.publish(channel=f"chat:{channel}", message=json.dumps(left))


async def sender(
    websocket: WebSocket, *, user_id: str, channel: str, joined: dict[str, object]
) -> None:
    async with broadcast.subscribe(channel=f"chat:{channel}") as subscriber:
        sync: dict[str, object] = {"type": "user_sync", "channel_id": channel}
        sync["user_id"] = user_id
        sync.update({"users": [{"user_id": user_id}], "timestamp": _now_ms()})
        await websocket.send_text(json.dumps(sync))
        await broadcast.publish(channel=f"chat:{channel}", message=json.dumps(joined))
        async for event in subscriber:  # type: ignore[union-attr]
            if event is not None:
                await websocket.send_text(event.message)


async def receiver(websocket: WebSocket, *, user_id: str, channel: str) -> None:
    try:
        async for text in websocket.iter_text():
            try:
                frame = json.loads(text)
            except ValueError:
                continue
            if not isinstance(frame, dict) or frame.get("type") != "chat":
                continue
            frame["user_id"] = user_id
            frame["channel_id"] = channel
            frame["timestamp"] = _now_ms()
            frame.setdefault("message_id", uuid.uuid4().hex)
            await broadcast.publish(channel=f"chat:{channel}", message=json.dumps(frame))
    except WebSocketDisconnect:
        pass


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    await broadcast.connect()
    try:
        yield
    finally:
        await broadcast.disconnect()


app = Starlette(routes=[WebSocketRoute("/api/chat", chat_ws)], lifespan=lifespan)

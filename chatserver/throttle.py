"""The per-client request limit at the door: over it, a chat upgrade or an ``/api`` call
is answered ``429`` with ``Retry-After`` and the API's JSON error body, before any of
the server's work. The page and its static files, ``/health``, ``/ready`` and
``/metrics`` are never counted.
May use: ``limits``, ``broker``, ``metrics``.
"""

from __future__ import annotations

import logging

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from chatserver.broker.base import BrokerUnavailable
from chatserver.limits import ClientLimiter
from chatserver.metrics import Metrics

log = logging.getLogger(__name__)

CHAT_PATH = "/api/chat"
KINDS = ("chat", "api")
"""What :func:`counted` counts (the ``kind`` of ``client_requests_limited_total``)."""


def counted(scope: Scope) -> str | None:
    """What kind of counted request this is (``chat``, ``api``), or None."""
    path = route_path(scope)
    if scope["type"] == "websocket":
        return "chat" if path == CHAT_PATH else None
    if scope["type"] == "http" and (path == "/api" or path.startswith("/api/")):
        return "api"
    return None


def route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


class Throttle:
    """Decides, and answers the refused; used by the app for chat upgrades and as the
    HTTP middleware (inside CORS, so a browser can read the 429)."""

    def __init__(self, limiter: ClientLimiter, metrics: Metrics) -> None:
        self.limiter = limiter
        self.metrics = metrics

    async def refused(self, scope: Scope, send: Send) -> bool:
        """True when the request was over the limit and has been answered."""
        kind = counted(scope)
        if kind is None:
            return False
        client = scope.get("client")
        address = client[0] if client else "unknown"
        try:
            wait = await self.limiter.retry_after(address)
        except BrokerUnavailable:
            return False  # the limit guards the chat; it must not take it down with Redis
        if wait is None:
            return False
        self.metrics.clients_limited.labels(kind).inc()
        log.info("client over its request limit", extra={"client": address, "kind": kind})
        await _answer(scope, send, wait, self.limiter.per_minute)
        return True


async def _answer(scope: Scope, send: Send, wait: int, per_minute: int) -> None:
    message = (
        f"too many requests from your address: {per_minute} chat connections and API "
        f"calls a minute; try again in {wait} s"
    )
    body = orjson.dumps(
        {"error": message, "message": message, "code": "rate_limited", "retry_after": wait}
    )
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(wait).encode()),
    ]
    if scope["type"] == "websocket":
        if "websocket.http.response" not in scope.get("extensions", {}):
            await send({"type": "websocket.close", "code": 1013})  # the server answers 403
            return
        prefix = "websocket.http.response"
    else:
        prefix = "http.response"
    await send({"type": f"{prefix}.start", "status": 429, "headers": headers})
    await send({"type": f"{prefix}.body", "body": body})


class ThrottleMiddleware:
    """HTTP requests through :class:`Throttle`."""

    def __init__(self, app: ASGIApp, *, throttle: Throttle) -> None:
        self.app = app
        self.throttle = throttle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and await self.throttle.refused(scope, send):
            return
        await self.app(scope, receive, send)

"""The ASGI application: routes, middleware and the lifespan that owns the runtime.

``create_app(settings)`` builds everything but connects nothing; the lifespan starts the
broker and the presence heartbeat and, on the way out, drains connections. Chat
WebSockets bypass the HTTP stack (``ChatApp``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import gc
import logging
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketState

from chatserver import accounts, api, logs, session
from chatserver.accounts.model import AccountError
from chatserver.accounts.service import AccountService
from chatserver.auth import FAILURE_REASONS, Authenticator
from chatserver.broker import create_broker
from chatserver.hub import DROP_REASONS, Hub
from chatserver.limits import ClientLimiter, MessageLimiter
from chatserver.metrics import Metrics
from chatserver.presence import Presence
from chatserver.protocol import ErrorCode
from chatserver.runtime import Runtime
from chatserver.settings import Settings
from chatserver.signouts import SignOuts
from chatserver.tasks import cancel_and_wait
from chatserver.throttle import CHAT_PATH, KINDS, Throttle, ThrottleMiddleware, route_path

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
CLOSE_INTERNAL_ERROR = 1011
KNOWN_PATHS = frozenset({"/", "/health", "/ready", "/metrics"})
API_PATHS = frozenset(
    {
        "/api/auth/me",
        "/api/auth/check-username",
        "/api/auth/username",
        "/api/auth/account",
        "/api/auth/logout",
        "/api/rooms",
        "/api/rooms/public",
        "/api/rooms/mine",
    }
)


def build_runtime(settings: Settings) -> Runtime:
    """Construct (not connect) every shared part; raises on unusable settings."""
    metrics = Metrics(channel_labels=settings.metrics_channel_labels)
    broker = create_broker(settings, metrics)
    metrics.broker_connected.set_function(lambda: 1.0 if broker.connected else 0.0)
    metrics.connections_limit.set(settings.max_connections)
    metrics.start_at_zero(
        dropped=DROP_REASONS,
        refused=[code.value for code in ErrorCode],
        auth_failures=FAILURE_REASONS,
        limited=KINDS,
    )
    presence = Presence(broker, ttl_s=settings.presence_ttl_seconds)
    broker.set_recovery_handler(presence.wake)
    auth = Authenticator(settings)
    signouts = SignOuts(broker)
    return Runtime(
        settings=settings,
        metrics=metrics,
        broker=broker,
        hub=Hub(broker, metrics),
        presence=presence,
        auth=auth,
        limiter=MessageLimiter(broker, per_minute=settings.rate_limit_per_minute),
        accounts=AccountService(
            accounts.create_store(settings, broker),
            broker,
            identities=auth.identities,
            revoker=auth.revoker,
            end_sockets=signouts.announce,
        ),
        signouts=signouts,
    )


class RequestObserver:
    """Pure ASGI middleware: request duration by handler and status, and a correlation id
    (``X-Request-ID``, taken from the request or made) on the response and in the logs."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        request_id = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or uuid.uuid4().hex
        path = scope["path"]
        handler = _handler(path)
        status = 500
        token = logs.correlation_id.set(request_id)
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            self.metrics.http_duration.labels(handler, str(status)).observe(elapsed)
            logs.correlation_id.reset(token)


def _handler(path: str) -> str:
    """The metrics label of a request path: a route, never the raw path (bounded)."""
    if path in KNOWN_PATHS or path in API_PATHS:
        return path
    if path.startswith("/static/"):
        return "/static"
    if path.startswith("/api/rooms/"):
        parts = path.split("/")  # "", "api", "rooms", slug, ...
        if len(parts) == 4:
            return "/api/rooms/{slug}"
        if parts[4:] == ["join"]:
            return "/api/rooms/{slug}/join"
        if parts[4:] == ["members"]:
            return "/api/rooms/{slug}/members"
        if parts[4] == "members" and len(parts) == 6:
            return "/api/rooms/{slug}/members/{username}"
    return "other"


def _index_page(settings: Settings) -> str:
    """The canvas page, told how long text stays on screen (read once, at start)."""
    html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    fade_ms = int(settings.message_fade_seconds * 1000)
    return html.replace(
        '<meta name="asocial-fade-ms" content="5000">',
        f'<meta name="asocial-fade-ms" content="{fade_ms}">',
    )


class ChatApp:
    """The ASGI entry point: ``/api/chat`` WebSockets go straight to their session, all
    else (HTTP, lifespan, other paths) to the FastAPI app.

    Each middleware and routing layer keeps a coroutine frame, and some an exit stack,
    alive for as long as a socket is open: about 7 KiB of every idle connection, for
    work (request metrics, exception pages) that only HTTP needs."""

    def __init__(self, http: FastAPI, runtime: Runtime, throttle: Throttle | None) -> None:
        self.http = http
        self.runtime = runtime
        self.throttle = throttle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and route_path(scope) == CHAT_PATH:
            if self.throttle is not None and await self.throttle.refused(scope, send):
                return
            await self._chat(WebSocket(scope, receive, send))
        else:
            await self.http(scope, receive, send)

    async def _chat(self, websocket: WebSocket) -> None:
        try:
            await session.serve(self.runtime, websocket)
        except Exception:
            log.exception("chat connection failed")
            if websocket.application_state != WebSocketState.CONNECTED:
                raise  # the server answers the handshake with 500
            with contextlib.suppress(Exception):
                await websocket.close(CLOSE_INTERNAL_ERROR, "Internal error")


def create_app(settings: Settings | None = None) -> ChatApp:
    settings = settings or Settings()
    runtime = build_runtime(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.broker.start()
        runtime.hub.start()
        try:
            await runtime.accounts.start()
        except AccountError as exc:  # Redis not up yet: the first API call will say so
            log.warning("could not create the default room: %s", exc.message)
        # Long-lived start-up objects need no scanning; fewer, later collections keep
        # GC pauses out of the fan-out's tail latency.
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
        heartbeat = asyncio.create_task(runtime.presence.run(), name="presence-heartbeat")
        log.info("chat server started", extra={"broker": type(runtime.broker).__name__})
        try:
            yield
        finally:
            await runtime.drain(settings.shutdown_grace_seconds)
            await cancel_and_wait(heartbeat)
            await runtime.hub.close()
            await runtime.broker.close()
            await runtime.accounts.store.close()
            log.info("chat server stopped")

    app = FastAPI(title="Asocial chat", lifespan=lifespan, docs_url=None, redoc_url=None)
    throttle = None
    if settings.client_rate_limit_per_minute:
        limiter = ClientLimiter(runtime.broker, per_minute=settings.client_rate_limit_per_minute)
        throttle = Throttle(limiter, runtime.metrics)
        app.add_middleware(ThrottleMiddleware, throttle=throttle)  # inside CORS: added first
    api.add_cors(app, settings)
    app.add_middleware(RequestObserver, metrics=runtime.metrics)
    api.install(app, runtime.accounts, runtime.auth)

    @app.get("/health")
    async def health() -> dict[str, object]:
        now = datetime.datetime.now(datetime.UTC)
        return {"status": "ok", "timestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ")}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        passed = dict(await runtime.broker.checks())
        checks = {name: "ok" if ok else "down" for name, ok in passed.items()}
        checks["accepting"] = "draining" if runtime.draining else "ok"
        ok = all(passed.values()) and not runtime.draining
        return JSONResponse(
            {"status": "ready" if ok else "unavailable", "checks": checks},
            status_code=200 if ok else 503,
        )

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    page = _index_page(settings)

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static")
    return ChatApp(app, runtime, throttle)

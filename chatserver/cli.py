"""``asocial-chat``: run the chat server (``--host``, ``--port``; the rest from ASOCIAL_*)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys
from types import FrameType

import uvicorn
from pydantic import ValidationError

from chatserver import logs
from chatserver.app import create_app
from chatserver.auth import AuthConfigError
from chatserver.broker.redis_url import RedisURLError
from chatserver.runtime import Runtime
from chatserver.settings import LogFormat, Settings
from chatserver.transport import HeadLimits, protocols

log = logging.getLogger("chatserver")


class DrainingServer(uvicorn.Server):
    """On the first SIGTERM/SIGINT: drain (clients get 1001) within the grace, then exit.

    Plain uvicorn would stop reading sockets first and close them with 1012."""

    def __init__(self, config: uvicorn.Config, runtime: Runtime) -> None:
        super().__init__(config)
        self.runtime = runtime
        self._loop: asyncio.AbstractEventLoop | None = None
        self._draining = False

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._draining or self._loop is None or not self.started:
            super().handle_exit(sig, frame)
            return
        self._draining = True
        self._captured_signals.append(sig)
        log.info("signal %s: draining", signal.Signals(sig).name)
        self._loop.call_soon_threadsafe(
            lambda: self._loop and self._loop.create_task(self._drain())
        )

    async def _drain(self) -> None:
        try:
            await self.runtime.drain(self.runtime.settings.shutdown_grace_seconds)
        finally:
            self.should_exit = True


def _settings_error(exc: ValidationError) -> str:
    lines = ["invalid settings:"]
    for error in exc.errors():
        name = "ASOCIAL_" + "_".join(str(p) for p in error["loc"]).upper()
        lines.append(f"  {name}: {error['msg']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="asocial-chat",
        description="Asocial chat server. Every other setting comes from ASOCIAL_* variables.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on")
    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        print(_settings_error(exc), file=sys.stderr)
        return 2
    logs.configure(level=settings.log_level, json_format=settings.log_format == LogFormat.JSON)
    try:
        app = create_app(settings)
    except (AuthConfigError, RedisURLError, OSError) as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 2
    refused = app.runtime.metrics.connections_rejected
    http_protocol, ws_protocol = protocols(
        HeadLimits(
            max_bytes=settings.max_header_bytes, timeout_s=settings.handshake_timeout_seconds
        ),
        lambda reason: refused.labels(reason).inc(),
        coalesce=settings.write_coalescing,
    )
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        http=http_protocol,  # httptools with a bounded request head (bytes and time)
        ws=ws_protocol,  # websockets-sansio + prepared frames, aborts peers that stop reading
        ws_max_size=settings.transport_max_size,
        ws_ping_interval=settings.ping_interval_seconds,
        ws_ping_timeout=settings.ping_timeout_seconds,
        ws_per_message_deflate=False,  # frames are tiny; deflate would cost CPU per receiver
        log_config=None,
        server_header=False,
        proxy_headers=True,  # X-Forwarded-For/-Proto, from the trusted proxies only
        forwarded_allow_ips=settings.trusted_proxies,
        # The drain uses 90% of the grace; uvicorn gets the rest to close what is left.
        timeout_graceful_shutdown=max(1, round(0.1 * settings.shutdown_grace_seconds)),
    )
    DrainingServer(config, app.runtime).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

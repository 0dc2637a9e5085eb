"""``asocial-operator``: run the operator (wraps kopf's runner).

    asocial-operator                      # all namespaces
    asocial-operator -n team-a -n team-b  # only these namespaces
    asocial-operator --leader-elect       # several replicas, one of them reconciling

Liveness at ``--liveness`` (kopf's probe endpoint; a standby answers it too), the
operator's own Prometheus metrics on ``--metrics-port``, JSON logs by default.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.server
import logging
import os
import signal
import socket
import threading
import uuid
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import kopf
from kubernetes.client import CoordinationV1Api

from asocial_operator import cluster, handlers, leader, metrics

log = logging.getLogger(__name__)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="asocial-operator", description="Run the Asocial Kubernetes operator."
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="watch only this namespace (repeatable; globs allowed)",
    )
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help="watch all namespaces (the default)"
    )
    parser.add_argument(
        "--liveness",
        default=os.environ.get("ASOCIAL_OPERATOR_LIVENESS", "http://0.0.0.0:8080/healthz"),
        help="liveness endpoint URL to serve, or '' to disable (default: %(default)s)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=int(os.environ.get("ASOCIAL_OPERATOR_METRICS_PORT", "9090")),
        help="port for /metrics, 0 to disable (default: %(default)s)",
    )
    parser.add_argument(
        "--log-format", choices=["json", "text"], default="json", help="(default: %(default)s)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--workers", type=int, default=8, help="parallel reconciles (default: %(default)s)"
    )
    parser.add_argument(
        "--watch-timeout",
        type=int,
        default=240,
        help="seconds before every watch stream is renewed (default: %(default)s)",
    )
    parser.add_argument("--kubeconfig", default=None, help="kubeconfig path (default: in-cluster)")
    parser.add_argument(
        "--leader-elect",
        action="store_true",
        default=os.environ.get("ASOCIAL_OPERATOR_LEADER_ELECT", "").lower() in {"1", "true"},
        help="run as one of several replicas: only the holder of a Lease reconciles",
    )
    parser.add_argument(
        "--leader-elect-namespace",
        default=os.environ.get("POD_NAMESPACE") or "asocial-system",
        help="namespace of the Lease (default: $POD_NAMESPACE or %(default)s)",
    )
    parser.add_argument(
        "--leader-elect-name",
        default="asocial-operator",
        help="name of the Lease; separate installs in one namespace need their own "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--leader-elect-lease-seconds",
        type=int,
        default=15,
        help="a standby takes over this long after the leader stops renewing "
        "(default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.leader_elect_lease_seconds < 3:
        parser.error("--leader-elect-lease-seconds must be at least 3")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    log_format = kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.FULL
    kopf.configure(verbose=args.verbose, log_format=log_format)
    # HTTP client internals stay quiet even with --verbose: request details
    # are noise at best and must never carry Secret payloads into logs.
    for name in ("kubernetes", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if not args.verbose:
        # kopf reports every watch event's handler at INFO; our reconciler logs
        # the changes that matter, so keep kopf to warnings and errors.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    if args.metrics_port:
        metrics.serve(args.metrics_port)
    if not args.leader_elect:
        log.info("starting; namespaces=%s", ",".join(args.namespace) or "<all>")
        metrics.LEADER.set(1)
        kopf.run(**kopf_options(args))
        return 0

    elector = leader.LeaderElector(
        CoordinationV1Api(cluster.load_api_client(args.kubeconfig)),
        namespace=args.leader_elect_namespace,
        name=args.leader_elect_name,
        identity=f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}",
        lease_s=args.leader_elect_lease_seconds,
    )
    return asyncio.run(lead(args, elector))


def kopf_options(args: argparse.Namespace) -> dict[str, Any]:
    assert handlers.start is not None  # importing handlers registers them with kopf
    memo = kopf.Memo(
        kubeconfig=args.kubeconfig, workers=args.workers, watch_timeout=args.watch_timeout
    )
    return {
        "standalone": True,  # one reconciler at a time: --leader-elect, or a single replica
        "clusterwide": not args.namespace,
        "namespaces": args.namespace,
        "liveness_endpoint": args.liveness or None,
        "memo": memo,
    }


async def lead(args: argparse.Namespace, elector: leader.LeaderElector) -> int:
    """Stand by until this replica holds the Lease, then run kopf until SIGTERM/SIGINT
    or until the Lease is lost (exit code 1, so Kubernetes restarts us as a standby).

    One event loop from the first signal handler to kopf's own: a signal at any moment
    stops cleanly and hands the Lease back."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()  # kopf waits on it natively, no thread involved
    standing_by = threading.Event()

    def request_stop() -> None:
        stop.set()
        standing_by.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, request_stop)
    log.info("starting; namespaces=%s", ",".join(args.namespace) or "<all>")
    with standby_liveness(args.liveness):
        if not await asyncio.to_thread(elector.acquire, standing_by):
            return 0
    lost, renewal_stop = threading.Event(), threading.Event()

    def on_lost() -> None:
        lost.set()
        loop.call_soon_threadsafe(stop.set)

    elector.keep(renewal_stop, on_lost)
    metrics.LEADER.set(1)
    try:
        if not stop.is_set():
            await kopf.operator(**kopf_options(args), stop_flag=stop)
    finally:
        metrics.LEADER.set(0)
        renewal_stop.set()
        if not lost.is_set():
            await asyncio.to_thread(elector.release)
    return 1 if lost.is_set() else 0


@contextlib.contextmanager
def standby_liveness(url: str) -> Iterator[None]:
    """Answer the liveness probe while standing by, so a standby is not restarted."""
    if not url:
        yield
        return
    parts = urlsplit(url)
    path = parts.path or "/"

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ok = self.path.split("?")[0] == path
            body = b'{"standby": true}' if ok else b"{}"
            self.send_response(200 if ok else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    address = (parts.hostname or "0.0.0.0", parts.port or 80)
    server = http.server.ThreadingHTTPServer(address, Handler)
    thread = threading.Thread(target=server.serve_forever, name="standby-liveness", daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()

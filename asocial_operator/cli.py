"""``asocial-operator``: run the operator (wraps kopf's runner).

    asocial-operator                      # all namespaces
    asocial-operator -n team-a -n team-b  # only these namespaces

Liveness at ``--liveness`` (kopf's probe endpoint), the operator's own
Prometheus metrics on ``--metrics-port``, JSON logs by default.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence

import kopf

from asocial_operator import handlers, metrics


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
    return parser.parse_args(argv)


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
    logging.getLogger(__name__).info("starting; namespaces=%s", ",".join(args.namespace) or "<all>")
    assert handlers.start is not None  # importing handlers registers them with kopf
    memo = kopf.Memo(
        kubeconfig=args.kubeconfig, workers=args.workers, watch_timeout=args.watch_timeout
    )
    kopf.run(
        standalone=True,
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        liveness_endpoint=args.liveness or None,
        memo=memo,
    )
    return 0

"""Command line interface of ``devcluster/devcluster``."""

from __future__ import annotations

import argparse
import os
import sys

from . import build, config, edge
from .cluster import Cluster

USAGE_EPILOG = f"""\
environment:
  ASOCIAL_CACHE_DIR                 build cache root (default ~/.cache/asocial)
  ASOCIAL_DEVCLUSTER_DIR            state dir (default ~/.cache/asocial/devcluster/state)
  ASOCIAL_DEVCLUSTER_APISERVER_PORT, ASOCIAL_DEVCLUSTER_ETCD_PORT,
  ASOCIAL_DEVCLUSTER_ETCD_PEER_PORT, ASOCIAL_DEVCLUSTER_CONTROLLER_MANAGER_PORT,
  ASOCIAL_DEVCLUSTER_SCHEDULER_PORT, ASOCIAL_DEVCLUSTER_KWOK_PORT
                                    fixed loopback ports (default: free ports)
  ASOCIAL_DEVCLUSTER_NODES          number of fake nodes (default 3)
  ASOCIAL_DEVCLUSTER_PVS            number of static 10Gi PersistentVolumes (default 40)
  ASOCIAL_DEVCLUSTER_REAL_NODE      0 = fake nodes only (default 1: also the real node)
  ASOCIAL_GO                        go command (default /usr/local/go/bin/go or PATH)

versions: {config.VERSION_KEY}
"""


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="devcluster",
        description="Local Kubernetes control plane on loopback, kwok fake nodes and one "
        "real node (kubelet, containerd, kube-proxy, CoreDNS, metrics-server).",
        epilog=USAGE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_build = sub.add_parser("build", help="build the pinned binaries into the cache")
    p_build.add_argument("--force", action="store_true", help="rebuild even if present")
    sub.add_parser("up", help="start the cluster (builds first if needed); idempotent")
    sub.add_parser("down", help="stop the processes `up` started and remove the state")
    sub.add_parser("status", help="components, apiserver readiness, nodes (exit 1 if down)")
    sub.add_parser(
        "images",
        help="build the local images (pause, redis, python; asocial-chat and "
        "asocial-operator from the Dockerfiles) and import them into the running node; "
        "cached by content",
    )
    sub.add_parser("kubeconfig", help="print the kubeconfig path")
    sub.add_parser(
        "ca",
        help="print the path of the CA (PEM) that signs the Gateway's HTTPS certificate "
        "(127.0.0.1:8443, *.devcluster.test): trust it in a browser or a client",
    )
    sub.add_parser("bin-dir", help="print the directory holding the built binaries")
    p_which = sub.add_parser(
        "which",
        help="print the path of one built binary, e.g. helm, promtool, prometheus "
        "(exit 1 if it is not built: run `build`)",
    )
    p_which.add_argument("binary", choices=config.ALL_BINARIES)
    p_kubectl = sub.add_parser("kubectl", help="run the built kubectl with the kubeconfig")
    p_kubectl.add_argument("args", nargs=argparse.REMAINDER)

    if argv and argv[0] == "kubectl":
        # Pass everything through untouched (argparse would eat --help etc.).
        cluster = Cluster()
        kubectl = str(cluster.kubectl_path())
        os.execv(kubectl, [kubectl, f"--kubeconfig={cluster.kubeconfig}", *argv[1:]])

    args = parser.parse_args(argv)
    cluster = Cluster()
    if args.command == "build":
        build.build(force=args.force)
        return 0
    if args.command == "up":
        print(cluster.up())
        return 0
    if args.command == "down":
        return 0 if cluster.down() else 1
    if args.command == "status":
        ok, text = cluster.status()
        print(text)
        return 0 if ok else 1
    if args.command == "images":
        return cluster.images()
    if args.command == "kubeconfig":
        print(cluster.kubeconfig)
        return 0
    if args.command == "ca":
        print(edge.ca_cert())
        return 0
    if args.command == "bin-dir":
        print(config.bin_dir())
        return 0
    if args.command == "which":
        path = config.binary_dir(args.binary) / args.binary
        if not os.access(path, os.X_OK):
            print(
                f"{args.binary} is not built yet: run devcluster/devcluster build", file=sys.stderr
            )
            return 1
        print(path)
        return 0
    print(f"unknown command {args.command}", file=sys.stderr)
    return 2

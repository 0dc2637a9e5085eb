"""Operator benchmark on the devcluster; writes benchmarks/OPERATOR.md.

    python benchmarks/operator.py [--latency-runs 20] [--burst 100] [--idle-seconds 300]

Measures: apply → all children created and apply → Ready (p50/p95 over
sequential instances), 100 instances created at once until all are Ready,
API writes by the operator while idle (target 0), and the operator's RSS
with all instances present. Targets from the operator issue: p50
apply→children ≤ 2 s, 100 Ready ≤ 60 s, zero idle writes, RSS ≤ 150 MB.

Each instance needs 4 pods on the devcluster's fake (kwok) nodes, 110 pods a node. The
benchmark counts the room left on them first and adds the fake nodes it lacks (named
``kwok-bench-*``, removed at the end), so any burst size runs on the default devcluster.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "devcluster"))

from devcluster_lib import manifests  # noqa: E402

from asocial_operator import cluster  # noqa: E402
from tests.fixtures.devcluster import ON_FAKE_NODES  # noqa: E402
from tests.operator.conftest import OperatorProcess, wait_for  # noqa: E402

REPORT = ROOT / "benchmarks" / "OPERATOR.md"


def kubectl(kubeconfig: str, *args: str, stdin: str | None = None) -> str:
    binary = subprocess.run(
        [str(ROOT / "devcluster" / "devcluster"), "bin-dir"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    result = subprocess.run(
        [f"{binary}/kubectl", f"--kubeconfig={kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def instance(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "asocial.io/v1alpha1",
        "kind": "AsocialInstance",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"scheduling": ON_FAKE_NODES},  # scale: kwok's fake nodes
    }


PODS_PER_INSTANCE = 4  # by default: three backend pods and one Redis pod
BENCH_NODE_PREFIX = "kwok-bench-"


def fake_node_room(kubeconfig: str) -> tuple[int, int]:
    """Pods the fake nodes hold in all, and pods already on them."""
    nodes = json.loads(kubectl(kubeconfig, "get", "nodes", "-l", "type=kwok", "-o", "json"))
    names = {n["metadata"]["name"] for n in nodes["items"]}
    capacity = sum(int(n["status"]["allocatable"].get("pods", 0)) for n in nodes["items"])
    pods = json.loads(kubectl(kubeconfig, "get", "pods", "-A", "-o", "json"))
    used = sum(1 for p in pods["items"] if p["spec"].get("nodeName") in names)
    return capacity, used


def add_fake_nodes(kubeconfig: str, pods_needed: int) -> list[str]:
    """Add the fake nodes ``pods_needed`` more pods need beyond the room left; their
    names (to delete at the end)."""
    capacity, used = fake_node_room(kubeconfig)
    short = pods_needed - (capacity - used)
    if short <= 0:
        return []
    per_node = int(manifests.node("x")["status"]["allocatable"]["pods"])
    names = [f"{BENCH_NODE_PREFIX}{i}" for i in range(-(-short // per_node))]
    print(
        f"capacity: {pods_needed} pods needed, {capacity - used} free on the fake nodes;"
        f" adding {len(names)} fake nodes",
        file=sys.stderr,
    )
    body = {"apiVersion": "v1", "kind": "List", "items": [manifests.node(n) for n in names]}
    kubectl(kubeconfig, "apply", "--server-side", "-f", "-", stdin=json.dumps(body))
    for name in names:
        kubectl(kubeconfig, "wait", "--for=condition=Ready", f"node/{name}", "--timeout=60s")
    return names


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def metric(op: OperatorProcess, name: str) -> float:
    text = op.metrics()
    match = re.search(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def ready_count(api: cluster.Cluster, namespace: str) -> int:
    body = api._request("GET", cluster.INSTANCE.path(namespace)) or {}
    return sum(1 for i in body.get("items", []) if (i.get("status") or {}).get("phase") == "Ready")


def latency(api: cluster.Cluster, namespace: str, runs: int) -> tuple[list[float], list[float]]:
    children, ready = [], []
    for i in range(runs):
        name = f"lat-{i:03d}"
        t0 = time.monotonic()
        api.apply(instance(name, namespace), field_manager="benchmark")

        # The Ingress is applied last in a pass, so its presence means all children exist.
        def created(n: str = name) -> bool:
            return api.get("Ingress", namespace, n) is not None

        wait_for(created, "children", timeout=60)
        children.append(time.monotonic() - t0)

        def is_ready(n: str = name) -> bool:
            body = api.get("AsocialInstance", namespace, n) or {}
            return (body.get("status") or {}).get("phase") == "Ready"

        wait_for(is_ready, "Ready", timeout=120)
        ready.append(time.monotonic() - t0)
    return children, ready


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-runs", type=int, default=20)
    parser.add_argument("--burst", type=int, default=100)
    parser.add_argument("--idle-seconds", type=int, default=300)
    parser.add_argument("--report", type=Path, default=REPORT)
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so the operator process and namespaces are cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    kubeconfig = (
        os.environ.get("ASOCIAL_TEST_KUBECONFIG")
        or subprocess.run(
            [str(ROOT / "devcluster" / "devcluster"), "up"],
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    kubectl(
        kubeconfig,
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        "crds/asocialinstances.yaml",
    )
    kubectl(kubeconfig, "wait", "--for=condition=Established", "crd/asocialinstances.asocial.io")
    api = cluster.Cluster(cluster.load_api_client(kubeconfig))
    run = uuid.uuid4().hex[:6]
    lat_ns, burst_ns = f"asi-bench-{run}-lat", f"asi-bench-{run}-burst"
    for ns in (lat_ns, burst_ns):
        kubectl(kubeconfig, "create", "namespace", ns)

    added = add_fake_nodes(kubeconfig, PODS_PER_INSTANCE * (args.burst + args.latency_runs))

    log = Path(f"/tmp/asocial-operator-bench-{run}.log")
    op = OperatorProcess(kubeconfig=kubeconfig, namespaces=[f"asi-bench-{run}-*"], log_path=log)
    op.start()
    assert op.process is not None
    try:
        print(f"latency: {args.latency_runs} sequential instances", file=sys.stderr)
        children, ready = latency(api, lat_ns, args.latency_runs)

        print(f"burst: {args.burst} instances at once", file=sys.stderr)
        docs = [instance(f"burst-{i:03d}", burst_ns) for i in range(args.burst)]
        t0 = time.monotonic()
        kubectl(
            kubeconfig,
            "apply",
            "--server-side",
            "-f",
            "-",
            stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}),
        )
        wait_for(lambda: ready_count(api, burst_ns) == args.burst, "all Ready", timeout=600)
        burst_seconds = time.monotonic() - t0
        rss = rss_mb(op.process.pid)

        print(f"idle: {args.idle_seconds}s", file=sys.stderr)
        time.sleep(5)  # let the last status writes of the burst land
        before = metric(op, "asocial_operator_api_writes_total")
        time.sleep(args.idle_seconds)
        idle_writes = metric(op, "asocial_operator_api_writes_total") - before
        rss_idle = rss_mb(op.process.pid)
    finally:
        op.stop()
        for ns in (lat_ns, burst_ns):
            kubectl(kubeconfig, "delete", "namespace", ns, "--wait=false")
        if added:
            kubectl(kubeconfig, "delete", "node", *added, "--wait=false")

    rows = [
        ("apply → all children, p50", f"{statistics.median(children):.2f} s", "≤ 2 s"),
        ("apply → all children, p95", f"{percentile(children, 0.95):.2f} s", ""),
        ("apply → Ready, p50", f"{statistics.median(ready):.2f} s", ""),
        ("apply → Ready, p95", f"{percentile(ready, 0.95):.2f} s", ""),
        (f"{args.burst} instances at once → all Ready", f"{burst_seconds:.1f} s", "≤ 60 s"),
        (f"API writes during {args.idle_seconds} s idle", f"{idle_writes:.0f}", "0"),
        (
            f"operator RSS with {args.burst + args.latency_runs} instances",
            f"{rss:.0f} MB",
            "≤ 150 MB",
        ),
        ("operator RSS after idle", f"{rss_idle:.0f} MB", ""),
    ]
    command = (
        f"python benchmarks/operator.py --latency-runs {args.latency_runs}"
        f" --burst {args.burst} --idle-seconds {args.idle_seconds}"
    )
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    table = "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
    args.report.write_text(
        f"""## Operator

Measured by `{command}`
on the devcluster (real kube-apiserver and controllers, kwok nodes; pods become Ready
without running containers), {machine}.
The operator runs as a local process with 8 reconcile workers.

| measure | result | target |
|---------|--------|--------|
{table}

"Ready" includes the Kubernetes controllers' work (Deployment and StatefulSet
rollouts, kwok marking pods Ready), not only the operator's. Idle writes count every
mutating request the operator sends (applies, deletes, status patches, Events), read
from its `asocial_operator_api_writes_total` metric.
"""
    )
    print(args.report.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

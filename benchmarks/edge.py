"""The edge's cost: one load sent through the devcluster's Gateway (Traefik; HTTPS and
HTTP) and straight to the backend Service, in one run, on the real node.

    python -m benchmarks.edge [--clients 100 --rooms 5 --rate 20 --duration 15s
                               --rounds 2 --out /tmp/asocial-bench-edge.json]

Needs the devcluster up with the operator installed in it (``make demo`` does both). It
applies an instance of three backend pods in namespace ``asocial-bench-edge``, routed on
the Gateway ``devcluster-system/devcluster`` for ``bench-edge.devcluster.test``, and
runs the Go load generator (``benchmarks/loadgen``) against each path in turn, ``--rounds``
times, interleaved so that drift on the machine hits every path alike:

- ``service``: ``ws://<Service IP>:8080`` (kube-proxy to a pod; no proxy, no TLS);
- ``gateway-http``: ``ws://bench-edge.devcluster.test:8080`` through Traefik;
- ``gateway-https``: ``wss://bench-edge.devcluster.test:8443`` through Traefik, the
  certificate verified against the devcluster's CA.

For each it reports the time from dialling to ``user_sync`` (TCP, TLS, the upgrade
through the proxy, the join; ``--concurrency`` connections opened at once), the
end-to-end latency of keystroke frames (sender to each receiver in the room), and the CPU
the backend pods, Traefik and the load generator itself spent per delivered frame (on two
cores the load generator competes with what it measures). The instance's per-client limit
is off: every client comes from this machine's one address. ``--keep`` leaves the
instance running afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.fanout_procs import CLK_TCK, REPO, BenchError, build_loadgen, run_record, say

NAMESPACE = "asocial-bench-edge"
HOST = "bench-edge.devcluster.test"
INSTANCE = "chat"
DEVCLUSTER = REPO / "devcluster" / "devcluster"
PATHS = ("service", "gateway-http", "gateway-https")


def kubectl(*args: str, stdin: str | None = None, timeout: float = 60) -> str:
    done = subprocess.run(
        [str(DEVCLUSTER), "kubectl", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"kubectl {' '.join(args)}: {done.stderr.strip()[-800:]}")
    return done.stdout


def get_json(*args: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(kubectl("get", *args, "-o", "json"))
    return body


def check_cluster() -> None:
    try:
        kubectl("get", "crd", "asocialinstances.asocial.io")
        deploy = get_json("deploy", "asocial-operator", "-n", "asocial-system")
        kubectl("get", "gateway", "devcluster", "-n", "devcluster-system")
    except BenchError as exc:
        raise BenchError(
            f"{exc}\nthis benchmark needs the devcluster up with the operator installed in "
            "it: run `make demo` first"
        ) from exc
    if not deploy.get("status", {}).get("readyReplicas"):
        raise BenchError("the operator (asocial-system/asocial-operator) has no ready pod")


def apply_instance() -> None:
    body = {
        "apiVersion": "asocial.io/v1alpha1",
        "kind": "AsocialInstance",
        "metadata": {"name": INSTANCE, "namespace": NAMESPACE},
        "spec": {
            "backend": {
                "image": "devcluster.local/asocial-chat:0.1.0",
                "replicas": 3,
                "clientRateLimitPerMinute": 0,
            },
            # Three pods throughout: the HPA would add pods under the connect bursts, and
            # later rounds would then measure more processes than earlier ones.
            "autoscaling": {"enabled": False},
            "redis": {"image": "devcluster.local/redis:7"},
            "ingress": {"enabled": False},
            "gateway": {
                "parentRefs": [{"name": "devcluster", "namespace": "devcluster-system"}],
                "hostnames": [HOST],
            },
        },
    }
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    kubectl("apply", "-f", "-", stdin=json.dumps(namespace))
    kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(body))
    say(f"waiting for {NAMESPACE}/{INSTANCE} Ready with its route accepted ...")
    deadline = time.monotonic() + 300
    while True:
        current = get_json("asi", INSTANCE, "-n", NAMESPACE)
        status: dict[str, Any] = current.get("status", {})
        conditions: list[dict[str, Any]] = status.get("conditions", [])
        ready = next((c for c in conditions if c["type"] == "Ready"), {})
        if (
            status.get("phase") == "Ready"
            and ready.get("observedGeneration") == current["metadata"]["generation"]
        ):
            return
        if time.monotonic() > deadline:
            raise BenchError(f"the instance is not Ready after 300 s: {status.get('message')}")
        time.sleep(1)


@dataclass(frozen=True)
class Target:
    name: str
    args: tuple[str, ...]


def targets() -> list[Target]:
    service = get_json("svc", f"{INSTANCE}-backend", "-n", NAMESPACE)["spec"]["clusterIP"]
    ca = subprocess.run(
        [str(DEVCLUSTER), "ca"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return [
        Target("service", ("-url", f"ws://{service}:8080/api/chat")),
        Target(
            "gateway-http",
            ("-url", f"ws://{HOST}:8080/api/chat", "-connect-to", "127.0.0.1:8080"),
        ),
        Target(
            "gateway-https",
            ("-url", f"wss://{HOST}:8443/api/chat", "-connect-to", "127.0.0.1:8443", "-ca", ca),
        ),
    ]


def edge_pids() -> dict[str, list[int]]:
    """Processes by part: the instance's backend pods, and Traefik (found by their pods'
    cgroups, ``pod<uid>``, since they run on this machine)."""
    pods = get_json("pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/component=backend")
    traefik = get_json("pods", "-n", "devcluster-system", "-l", "app.kubernetes.io/name=traefik")
    parts = {
        "backend": {f"pod{p['metadata']['uid']}" for p in pods["items"]},
        "traefik": {f"pod{p['metadata']['uid']}" for p in traefik["items"]},
    }
    found: dict[str, list[int]] = {"backend": [], "traefik": []}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cgroup = (entry / "cgroup").read_text()
        except OSError:
            continue
        for part, marks in parts.items():
            if any(mark in cgroup for mark in marks):
                found[part].append(int(entry.name))
    return found


def cpu_seconds(pids: list[int]) -> float:
    ticks = 0
    for pid in pids:
        try:
            raw = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / CLK_TCK


def run_once(
    loadgen: Path, target: Target, opts: argparse.Namespace, round_: int
) -> dict[str, Any]:
    pids = edge_pids()
    args = [
        str(loadgen),
        *target.args,
        "-clients", str(opts.clients),
        "-rooms", str(opts.rooms),
        "-rate", str(opts.rate),
        "-duration", opts.duration,
        "-concurrency", str(opts.concurrency),
        "-room-prefix", f"edge-{target.name}-{round_}",
    ]  # fmt: skip
    say(f"round {round_}, {target.name}: {opts.clients} clients in {opts.rooms} rooms")
    events, cpu, cpu_run, stderr = _drive(args, pids)
    ready: dict[str, Any] = next((e for e in events if e.get("event") == "ready"), {})
    result = next((e for e in events if e.get("event") == "result"), None)
    if result is None or not ready.get("connected") or not cpu:
        raise BenchError(f"{target.name}: the load generator failed:\n{stderr[-1500:]}")
    delivered = max(int(result["delivered"]), 1)
    return {
        "path": target.name,
        "round": round_,
        "connected": ready["connected"],
        "failed": ready.get("failed", 0),
        "connect_ms": ready.get("connect_ms"),
        "latency_ms": result["latency_ms"],
        "delivered_fraction": result["delivered_fraction"],
        "deliveries_per_s": result["deliveries_per_s"],
        "cpu_seconds": cpu,
        "cpu_us_per_delivery": {k: 1e6 * v / delivered for k, v in cpu.items()},
        "cpu_seconds_whole_run": cpu_run,
        "processes": {part: len(p) for part, p in pids.items()},
    }


def _drive(
    args: list[str], pids: dict[str, list[int]]
) -> tuple[list[dict[str, Any]], dict[str, float], dict[str, float], str]:
    """Run the load generator; its events, the CPU each part used in the measured window
    (between its ``measure_start`` and ``measure_end``) and over the whole run
    (connecting and leaving included), and its stderr."""
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, text=True)
        parts = {**pids, "loadgen": [proc.pid]}

        def sample() -> dict[str, float]:
            return {part: cpu_seconds(p) for part, p in parts.items()}

        events: list[dict[str, Any]] = []
        marks: dict[str, dict[str, float]] = {"start": sample()}
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if not line.startswith("{"):
                    continue
                event = json.loads(line)
                events.append(event)
                if event.get("event") in ("measure_start", "measure_end"):
                    marks[event["event"]] = sample()
                if event.get("event") == "result":
                    marks["end"] = sample()  # before it exits and its ticks go
            proc.wait(timeout=600)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        err.seek(0)
        stderr = err.read()
    if proc.returncode != 0 or not {"measure_start", "measure_end", "end"} <= marks.keys():
        return events, {}, {}, stderr

    def spent(a: str, b: str) -> dict[str, float]:
        return {part: marks[b][part] - marks[a][part] for part in parts}

    return events, spent("measure_start", "measure_end"), spent("start", "end"), stderr


def table(results: list[dict[str, Any]]) -> str:
    rows = [
        "| path | round | connect p50 / p99 ms | keystroke p50 / p99 / max ms | delivered "
        "| backend / Traefik / load generator µs CPU per delivery |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        c, lat, cpu = r["connect_ms"], r["latency_ms"], r["cpu_us_per_delivery"]
        rows.append(
            f"| {r['path']} | {r['round']} | {c['p50']:.1f} / {c['p99']:.1f} "
            f"| {lat['p50']:.1f} / {lat['p99']:.1f} / {lat['max']:.1f} "
            f"| {100 * r['delivered_fraction']:.1f} % "
            f"| {cpu['backend']:.0f} / {cpu['traefik']:.0f} / {cpu['loadgen']:.0f} |"
        )
    return "\n".join(rows)


def ratios(results: list[dict[str, Any]]) -> str:
    """Each gateway path's medians over rounds against the Service's, same run."""

    def median(path: str, pick: Any) -> float:
        return float(statistics.median(pick(r) for r in results if r["path"] == path))

    lines = []
    for path in PATHS[1:]:
        parts = []
        for label, pick in (
            ("connect p50", lambda r: r["connect_ms"]["p50"]),
            ("keystroke p99", lambda r: r["latency_ms"]["p99"]),
            (
                "CPU per delivery",
                lambda r: r["cpu_us_per_delivery"]["backend"] + r["cpu_us_per_delivery"]["traefik"],
            ),
        ):
            base = median("service", pick)
            parts.append(f"{label} {median(path, pick) / base:.2f}x" if base else f"{label} -")
        lines.append(f"{path} vs service: " + ", ".join(parts))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rooms", type=int, default=5)
    parser.add_argument("--rate", type=float, default=20, help="frames/s per room")
    parser.add_argument("--duration", default="15s", help="measured window (Go duration)")
    parser.add_argument("--concurrency", type=int, default=10, help="connections opened at once")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("/tmp/asocial-bench-edge.json"))
    parser.add_argument("--keep", action="store_true", help="leave the instance running")
    opts = parser.parse_args(argv)
    started, load_at_start = time.time(), os.getloadavg()[0]
    if opts.clients < 1 or opts.rooms < 1 or opts.rounds < 1:
        parser.error("--clients, --rooms and --rounds must be at least 1")
    try:
        check_cluster()
        loadgen = build_loadgen()
        apply_instance()
        results = []
        try:
            paths = targets()
            for round_ in range(1, opts.rounds + 1):
                for target in paths if round_ % 2 else reversed(paths):
                    results.append(run_once(loadgen, target, opts, round_))
        finally:
            if not opts.keep:
                kubectl("delete", "namespace", NAMESPACE, "--wait=false")
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    report = {
        **run_record("benchmarks.edge", argv, started=started, load_at_start=load_at_start),
        "options": {k: str(v) for k, v in vars(opts).items()},
        "results": results,
    }
    opts.out.write_text(json.dumps(report, indent=2))
    print(table(results))
    print(ratios(results))
    say(f"written to {opts.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

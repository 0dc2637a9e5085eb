"""Saturation sweep: the highest offered rate each peer carries, one room, one process.

    python -m benchmarks.saturation [--clients 1000 --rates 50,75,100,125,150,200
                                     --peers asocial,asocial-uncoalesced,centrifugo
                                     --p99-ms 50 --duration 10 --servers 1]

For each peer, the fan-out of ``benchmarks.fanout`` (fresh Redis and server per step,
``--clients`` connections in one room, the server alone on CPU 1) at each rate in
``--rates`` (chat frames/s in the room; deliveries/s = rate x (clients - senders)), from
the lowest up, until a step fails: p99 over ``--p99-ms`` or a frame not delivered to
every receiver. The highest passing step is the peer's saturation rate. Prints a table
with the ratio of ours to each peer, and writes every step's numbers as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

from benchmarks import fanout
from benchmarks.fanout_procs import CACHE, BenchError, ready_loadgen, run_record, say


def passed(step: dict[str, Any], p99_ms: float) -> bool:
    p99 = (step.get("latency_ms") or {}).get("p99")
    return (
        p99 is not None
        and p99 <= p99_ms
        and step.get("delivered", 0) >= step.get("expected", 1) > 0
    )


def sweep(
    name: str, rates: list[float], base: fanout.Options, loadgen: Path, p99_ms: float
) -> dict[str, Any]:
    peer = fanout.PEER_TABLE[name]
    steps: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    for rate in rates:
        say(f"\n== {name}: {rate:g} frames/s in the room ==")
        opts = dataclasses.replace(base, rate=rate)
        try:
            step = fanout.fanout_phase(peer, loadgen, opts)
        except BenchError as exc:
            say(f"   {name} failed at {rate:g}/s: {exc}")
            steps.append({"rate": rate, "error": str(exc)})
            break
        step["rate"] = rate
        step["passed"] = passed(step, p99_ms)
        steps.append(step)
        say(
            f"   {step['deliveries_per_s']:,.0f} deliveries/s"
            f" ({step.get('delivered_fraction', 0):.1%} delivered), p99"
            f" {step['latency_ms'].get('p99')} ms, server CPU"
            f" {step.get('server_cpu_percent', 0):.0f}%,"
            f" {step.get('server_cpu_us_per_delivery', 0):.1f} us/delivery:"
            f" {'pass' if step['passed'] else 'FAIL'}"
        )
        if not step["passed"]:
            break
        best = step
    return {
        "steps": steps,
        "saturation_rate": best["rate"] if best else None,
        "saturation_deliveries_per_s": best["deliveries_per_s"] if best else None,
    }


def table(results: dict[str, dict[str, Any]]) -> str:
    ours = results.get("asocial", {}).get("saturation_deliveries_per_s")
    lines = [
        "| peer | highest passing deliveries/s | at frames/s | ours / peer |",
        "|---|---|---|---|",
    ]
    for name, res in results.items():
        top = res.get("saturation_deliveries_per_s")
        ratio = f"{ours / top:.2f}" if ours and top else "-"
        lines.append(
            f"| {name} | {f'{top:,.0f}' if top else 'none'} | {res.get('saturation_rate') or '-'}"
            f" | {ratio} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    summary = (__doc__ or "").split("\n")[0]
    p = argparse.ArgumentParser(prog="python -m benchmarks.saturation", description=summary)
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--rates", default="50,75,100,125,150,200")
    p.add_argument("--peers", default="asocial,asocial-uncoalesced,centrifugo")
    p.add_argument("--p99-ms", type=float, default=50.0)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--servers", type=int, default=1, help="server processes sharing Redis")
    p.add_argument("--out", type=Path, default=CACHE / "saturation-results.json")
    a = p.parse_args(argv)
    try:
        rates = sorted(float(r) for r in a.rates.split(",") if r.strip())
    except ValueError:
        p.error(f"--rates: a comma list of numbers, not {a.rates!r}")
    if not rates or rates[0] <= 0:
        p.error("--rates: at least one rate, all above 0")
    base = fanout.parse(
        [
            *("--clients", str(a.clients), "--rooms", "1", "--duration", str(a.duration)),
            *("--idle", "0", "--peers", a.peers, "--servers", str(a.servers)),
        ]
    )
    loadgen = ready_loadgen(base.nice)
    if loadgen is None:
        return 2
    started, load_at_start = time.time(), os.getloadavg()[0]
    say(f"load average at start: {load_at_start:.2f} (other work on the machine skews all)")
    results = {name: sweep(name, rates, base, loadgen, a.p99_ms) for name in base.peers}
    report = {
        **run_record(
            "benchmarks.saturation",
            argv,
            started=started,
            load_at_start=load_at_start,
            centrifugo_version=base.centrifugo_version,
        ),
        "pass": {"p99_ms": a.p99_ms, "delivered": "every frame to every receiver"},
        "results": results,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2))
    print(table(results))
    say(f"results: {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

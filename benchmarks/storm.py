"""Reconnect storm: every client leaves and comes back within seconds, as after a rolling
upgrade, while each room goes on typing.

    python -m benchmarks.storm [--clients 10000 --rooms 100 --window 10 --rate 1
                                --peers asocial,centrifugo --servers 1]

For each peer: fresh Redis and server(s) (``benchmarks.fanout``'s), ``--clients``
connections over ``--rooms`` rooms plus one typist per room typing ``--rate`` frames/s;
then every connection closes and reconnects, connection i at ``i / clients x window``
seconds. Reported: each reconnect's time to its join confirmation (``user_sync``;
Centrifugo: the subscribe reply) and to its first chat frame after it (the replay of
what is on screen, or live typing), when the last one was back (target: all within
15 s of the start), failures, presence frames per reconnect, the server's CPU over
the storm, and its RSS before, at the peak and 10 s after (target: back to the level
before). Written as JSON with a table of ratios.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks import fanout, fanout_procs
from benchmarks.fanout_procs import (
    CACHE,
    BenchError,
    cpu_percent,
    cpu_sample,
    ready_loadgen,
    run_record,
    say,
)

TARGET_BACK_S = 15.0


class PeakRss:
    """The servers' summed RSS, sampled every 0.2 s until stopped; the highest seen."""

    def __init__(self, servers: fanout.Servers) -> None:
        self.servers = servers
        self.peak = servers.rss_kib()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self.peak = max(self.peak, self.servers.rss_kib())
            except (OSError, BenchError):
                return

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(5)
        return self.peak


def storm(peer: fanout.Peer, loadgen: Path, opts: fanout.Options, window: float) -> dict[str, Any]:
    with fanout.running(peer, opts) as (servers, url):
        args = ["-mode", "storm", "-proto", peer.proto, "-url", url]
        args += ["-clients", str(opts.clients), "-rooms", str(opts.rooms)]
        args += ["-rate", str(opts.rate), "-storm-window", f"{window}s", "-hold", "300s"]
        gen = fanout.Loadgen(loadgen, args, opts, timeout=900 + opts.clients / 20)
        result: dict[str, Any] = {"servers": opts.servers}
        cpu_first: list[fanout_procs.CpuSample] = []
        redis_first = None
        peak: PeakRss | None = None
        started = 0.0
        try:
            for event in gen.events():
                kind = event["event"]
                if kind == "ready":
                    result["connect_failed"] = event["failed"]
                elif kind == "storm_start":
                    started = time.monotonic()
                    result["rss_before_kib"] = servers.rss_kib()
                    cpu_first = servers.cpu()
                    redis_first = cpu_sample(servers.redis.pid)
                    peak = PeakRss(servers)
                elif kind == "storm_end":
                    result["storm_s"] = round(time.monotonic() - started, 2)
                    result["server_cpu_percent"] = fanout.cpu_total(cpu_first, servers.cpu())
                    if redis_first is not None:
                        result["redis_cpu_percent"] = cpu_percent(
                            redis_first, cpu_sample(servers.redis.pid)
                        )
                elif kind == "storm_settled":
                    time.sleep(10.0)
                    result["rss_after_kib"] = servers.rss_kib()
                    if peak is not None:
                        result["rss_peak_kib"] = peak.stop()
                    gen.close_stdin()
                elif kind == "result":
                    result.update({k: v for k, v in event.items() if k != "event"})
            code = gen.wait()
        finally:
            if peak is not None:
                peak.stop()
            gen.kill()
        gone = servers.exited()
        if gone is not None:
            raise BenchError(f"{peer.name} exited during the storm:\n{gone.tail()}")
        if code != 0 or "join_ms" not in result:
            raise BenchError(f"load generator failed (exit {code}): {result}")
        before, after = result.get("rss_before_kib"), result.get("rss_after_kib")
        if before and after:
            result["rss_after_over_before"] = round(after / before, 3)
        result["all_back_within_target"] = (
            result.get("failed", 1) == 0
            and result.get("without_chat", 1) == 0
            and (result.get("last_back_s") or 1e9) <= TARGET_BACK_S
            and (result.get("first_chat_ms") or {}).get("max", 1e9) <= TARGET_BACK_S * 1000
        )
        return result


def row(name: str, r: dict[str, Any]) -> str:
    if "error" in r:
        return f"| {name} | failed: {r['error'][:80]} |"
    join, chat = r.get("join_ms") or {}, r.get("first_chat_ms") or {}
    return (
        f"| {name} | {r.get('back')}/{r.get('clients')} ({r.get('failed')} failed)"
        f" | {r.get('last_back_s', 0):.1f} s | {join.get('p50', 0):.0f} / {join.get('p99', 0):.0f}"
        f" ms | {chat.get('p99', 0):.0f} ms | {r.get('presence_per_rejoin', 0):.0f}"
        f" | {r.get('server_cpu_percent', 0):.0f} %"
        f" | {r.get('rss_before_kib', 0) / 1024:.0f} / {r.get('rss_peak_kib', 0) / 1024:.0f}"
        f" / {r.get('rss_after_kib', 0) / 1024:.0f} MiB |"
    )


def main(argv: list[str] | None = None) -> int:
    summary = (__doc__ or "").split("\n")[0]
    p = argparse.ArgumentParser(prog="python -m benchmarks.storm", description=summary)
    p.add_argument("--clients", type=int, default=10_000)
    p.add_argument("--rooms", type=int, default=100)
    p.add_argument("--window", type=float, default=10.0, help="seconds all reconnect within")
    p.add_argument("--rate", type=float, default=1.0, help="frames/s typed in each room")
    p.add_argument("--peers", default="asocial,centrifugo")
    p.add_argument("--servers", type=int, default=1, help="server processes sharing Redis")
    p.add_argument("--out", type=Path, default=CACHE / "storm-results.json")
    a = p.parse_args(argv)
    if a.window <= 0 or a.rate < 0:
        p.error("--window must be above 0 and --rate at least 0")
    opts = fanout.parse(
        [
            *("--clients", str(a.clients), "--rooms", str(a.rooms), "--idle", "0"),
            *("--peers", a.peers, "--servers", str(a.servers)),
        ]
    )
    opts = dataclasses.replace(opts, rate=a.rate)
    loadgen = ready_loadgen(opts.nice)
    if loadgen is None:
        return 2
    started, load_at_start = time.time(), os.getloadavg()[0]
    say(
        f"storm: {a.clients} clients in {a.rooms} rooms back within {a.window:g} s,"
        f" {a.rate:g} frames/s typed per room; load average {load_at_start:.2f}"
    )
    results: dict[str, dict[str, Any]] = {}
    for name in opts.peers:
        say(f"\n== {name}: reconnect storm ==")
        try:
            results[name] = storm(fanout.PEER_TABLE[name], loadgen, opts, a.window)
        except (BenchError, OSError, json.JSONDecodeError) as exc:
            say(f"   {name} failed: {exc}")
            results[name] = {"error": str(exc)}
    report = {
        **run_record(
            "benchmarks.storm",
            argv,
            started=started,
            load_at_start=load_at_start,
            centrifugo_version=opts.centrifugo_version,
        ),
        "target_back_s": TARGET_BACK_S,
        "results": results,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2))
    print(
        "| peer | back | last back | join p50 / p99 | first chat p99 | presence frames"
        " per rejoin | server CPU | RSS before / peak / after |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(row(name, r))
    say(f"results: {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

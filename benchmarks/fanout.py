"""Fan-out load benchmark: the chat server against reference peers, same workload, one run.

    python -m benchmarks.fanout [--clients 1000 --rooms 1 --rate 50 --duration 10
                                 --idle 10000 --peers asocial,broadcaster,centrifugo]

For every peer it starts a fresh ``redis-server`` and the server, then

1. fan-out: opens ``--clients`` WebSocket connections spread over ``--rooms`` rooms,
   publishes ``--rate`` chat frames per second in each room (a few senders per room,
   keystroke model), and measures, for the frames sent inside the ``--duration`` window,
   deliveries/s, end-to-end latency (send time is embedded in the payload; receivers
   subtract it from their own clock) and the server's CPU (utime+stime from
   /proc/<pid>/stat);
2. idle: on a fresh server, opens ``--idle`` connections over ``--idle-rooms`` rooms and
   reports the server's VmRSS growth per connection.

The load comes from a Go program (benchmarks/loadgen, built with ``go build``) so that
generating it costs a fraction of serving it. With ``--pin`` (the default) the server
gets CPU 1 to itself while the load generator and Redis share CPU 0. Results are printed
as a table with the ratios to our server and written as JSON (``--out``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

from benchmarks.fanout_procs import (
    CACHE,
    BenchError,
    CpuSample,
    Proc,
    centrifugo_binary,
    child_setup,
    cpu_percent,
    cpu_sample,
    free_port,
    pinned,
    python,
    ready_loadgen,
    redis_server,
    rss_kib,
    run_record,
    say,
    spawn,
    wait_port,
)

PEERS = ("asocial", "broadcaster", "centrifugo")
CENTRIFUGO_VERSION = "v6.9.1"


@dataclasses.dataclass(frozen=True)
class Options:
    clients: int
    rooms: int
    rate: float
    senders: int
    burst: int
    duration: float
    warmup: float
    idle: int
    idle_rooms: int
    peers: tuple[str, ...]
    pin: bool
    build: bool
    centrifugo_version: str
    out: Path
    profile: bool
    nice: int
    servers: int = 1

    @property
    def server_cpus(self) -> str | None:
        return "1" if self.pin else None

    @property
    def load_cpus(self) -> str | None:
        return "0" if self.pin else None


# --- servers -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Peer:
    name: str
    proto: str  # the load generator's -proto
    path: str  # WebSocket path
    start: Callable[[str, int, Options], Proc]


def _start_asocial(redis_url: str, port: int, opts: Options, *, coalescing: bool = True) -> Proc:
    env = {
        "ASOCIAL_REDIS_URL": redis_url,
        "ASOCIAL_LOG_LEVEL": "WARNING",
        "ASOCIAL_CLIENT_RATE_LIMIT_PER_MINUTE": "0",  # every client is 127.0.0.1
        "ASOCIAL_MAX_CONNECTIONS": str(max(20_000, opts.idle + opts.clients + 100)),
        "ASOCIAL_WRITE_COALESCING": "true" if coalescing else "false",
    }
    cmd = [python(), "-m", "chatserver.cli", "--host", "127.0.0.1", "--port", str(port)]
    return spawn(f"asocial-{port}", pinned(cmd, opts.server_cpus), env=env)


def _start_asocial_uncoalesced(redis_url: str, port: int, opts: Options) -> Proc:
    """Ours with one write per frame per socket: the A/B of ``ASOCIAL_WRITE_COALESCING``."""
    return _start_asocial(redis_url, port, opts, coalescing=False)


def _start_broadcaster(redis_url: str, port: int, opts: Options) -> Proc:
    cmd = [python(), "-m", "uvicorn", "benchmarks.peers.broadcaster_chat:app"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    cmd += ["--backlog", "4096"]
    return spawn(
        f"broadcaster-{port}", pinned(cmd, opts.server_cpus), env={"BROADCAST_URL": redis_url}
    )


def centrifugo_config(redis_url: str, port: int) -> dict[str, Any]:
    """Redis engine; anonymous connections may subscribe and publish in ``bench:*``;
    presence and join/leave pushes on, like our user_sync/user_joined."""
    address = redis_url.rsplit("/", 1)[0]
    return {
        "log": {"level": "error"},
        "http_server": {"address": "127.0.0.1", "port": port},
        "engine": {"type": "redis", "redis": {"address": [address]}},
        "client": {"allow_anonymous_connect_without_token": True, "allowed_origins": ["*"]},
        "channel": {
            "namespaces": [
                {
                    "name": "bench",
                    "allow_subscribe_for_anonymous": True,
                    "allow_subscribe_for_client": True,
                    "allow_publish_for_anonymous": True,
                    "allow_publish_for_client": True,
                    "presence": True,
                    "join_leave": True,
                    "force_push_join_leave": True,
                }
            ]
        },
    }


def _start_centrifugo(redis_url: str, port: int, opts: Options) -> Proc:
    binary = centrifugo_binary(opts.centrifugo_version, build=opts.build)
    config = CACHE / f"centrifugo-{port}.json"
    config.write_text(json.dumps(centrifugo_config(redis_url, port), indent=2))
    cmd = [str(binary), "--config", str(config)]
    return spawn(f"centrifugo-{port}", pinned(cmd, opts.server_cpus), cwd=CACHE)


PEER_TABLE = {
    "asocial": Peer("asocial", "asocial", "/api/chat", _start_asocial),
    "asocial-uncoalesced": Peer(
        "asocial-uncoalesced", "asocial", "/api/chat", _start_asocial_uncoalesced
    ),
    "broadcaster": Peer("broadcaster", "asocial", "/api/chat", _start_broadcaster),
    "centrifugo": Peer("centrifugo", "centrifugo", "/connection/websocket", _start_centrifugo),
}


@contextmanager
def running(peer: Peer, opts: Options) -> Iterator[tuple[Servers, str]]:
    """Fresh Redis and ``opts.servers`` fresh server processes sharing it; yields them and
    the load generator's ``-url`` (a comma list when several)."""
    with redis_server(opts.load_cpus) as (redis_url, redis_proc):
        started: list[Proc] = []
        try:
            ports = []
            for _ in range(opts.servers):
                port = free_port()
                started.append(peer.start(redis_url, port, opts))
                ports.append(port)
            for port, proc in zip(ports, started, strict=True):
                wait_port(port, proc.popen)
            time.sleep(1.0)  # let the lifespan finish (broker subscriber, presence sweeper)
            urls = ",".join(f"ws://127.0.0.1:{port}{peer.path}" for port in ports)
            yield Servers(started, redis_proc, redis_url), urls
        except BenchError as exc:
            tails = "".join(f"\n--- {p.log} ---\n{p.tail()}" for p in started)
            raise BenchError(f"{exc}{tails}") from exc
        finally:
            for proc in started:
                proc.stop()


@dataclasses.dataclass
class Servers:
    """The server processes of one run and their Redis."""

    procs: list[Proc]
    redis: Proc
    redis_url: str

    def cpu(self) -> list[CpuSample]:
        return [cpu_sample(p.pid) for p in self.procs]

    def rss_kib(self) -> int:
        return sum(rss_kib(p.pid) for p in self.procs)

    def exited(self) -> Proc | None:
        return next((p for p in self.procs if p.popen.poll() is not None), None)

    def publishes(self) -> int:
        """PUBLISH commands Redis ran so far (from scripts too)."""
        with redis.Redis.from_url(self.redis_url, socket_timeout=5) as client:
            stats: dict[str, dict[str, int]] = client.info("commandstats")
        return sum(
            stats.get(name, {}).get("calls", 0) for name in ("cmdstat_publish", "cmdstat_spublish")
        )


def cpu_total(first: list[CpuSample], second: list[CpuSample]) -> float:
    """Share of one core the processes used together, in percent."""
    return sum(cpu_percent(a, b) for a, b in zip(first, second, strict=True))


# --- load generator ----------------------------------------------------------------------


class Loadgen:
    """The Go load generator: JSON events on stdout, progress on stderr (echoed)."""

    def __init__(self, binary: Path, args: list[str], opts: Options, *, timeout: float) -> None:
        cmd = pinned([str(binary), *args], opts.load_cpus)
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=child_setup,
        )
        self.deadline = time.monotonic() + timeout
        self._echo = threading.Thread(target=self._forward_stderr, daemon=True)
        self._echo.start()
        self._watchdog = threading.Thread(target=self._watch, daemon=True)
        self._watchdog.start()

    def _forward_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            say("   " + line.decode(errors="replace").rstrip())

    def _watch(self) -> None:
        while self.proc.poll() is None:
            if time.monotonic() > self.deadline:
                say("   load generator overran its time budget: killing it")
                self.proc.kill()
                return
            time.sleep(0.5)

    def events(self) -> Iterator[dict[str, Any]]:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            event: dict[str, Any] = json.loads(line)
            yield event

    def close_stdin(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def wait(self) -> int:
        self.close_stdin()
        code = self.proc.wait(30)
        self._echo.join(5)
        return code


def fanout_phase(peer: Peer, loadgen: Path, opts: Options) -> dict[str, Any]:
    with running(peer, opts) as (servers, url):
        args = ["-mode", "fanout", "-proto", peer.proto, "-url", url]
        args += ["-clients", str(opts.clients), "-rooms", str(opts.rooms)]
        args += ["-rate", str(opts.rate), "-senders", str(opts.senders)]
        args += ["-burst", str(opts.burst)]
        args += ["-duration", f"{opts.duration}s", "-warmup", f"{opts.warmup}s"]
        budget = 240 + opts.duration + opts.warmup + opts.clients / 50
        gen = Loadgen(loadgen, args, opts, timeout=budget)
        result: dict[str, Any] = {"servers": opts.servers}
        first = second = None
        gen_first = redis_first = None
        publishes_first = 0
        rss_before = servers.rss_kib()
        profiler: subprocess.Popen[bytes] | None = None
        try:
            for event in gen.events():
                kind = event["event"]
                if kind == "ready":
                    result["connect_failed"] = event["failed"]
                    result["rss_connected_kib"] = servers.rss_kib()
                elif kind == "measure_start":
                    first = servers.cpu()
                    gen_first = cpu_sample(gen.proc.pid)
                    redis_first = cpu_sample(servers.redis.pid)
                    publishes_first = servers.publishes()
                    if opts.profile:
                        profiler = start_profiler(peer.name, servers.procs[0].pid, opts.duration)
                elif kind == "measure_end":
                    second = servers.cpu()
                    if gen_first is not None:
                        result["loadgen_cpu_percent"] = cpu_percent(
                            gen_first, cpu_sample(gen.proc.pid)
                        )
                    if redis_first is not None:
                        result["redis_cpu_percent"] = cpu_percent(
                            redis_first, cpu_sample(servers.redis.pid)
                        )
                        result["redis_publishes"] = servers.publishes() - publishes_first
                    result["rss_end_kib"] = servers.rss_kib()
                elif kind == "result":
                    result.update({k: v for k, v in event.items() if k != "event"})
            code = gen.wait()
        finally:
            gen.kill()  # also on errors and Ctrl-C: never leave it running
        if profiler is not None:
            profiler.wait(60)
        gone = servers.exited()
        if gone is not None:
            raise BenchError(f"{peer.name} exited during the run:\n{gone.tail()}")
        if code != 0 or "deliveries_per_s" not in result:
            raise BenchError(f"load generator failed (exit {code}): {result}")
        delivered = max(1, result["delivered"])
        if first and second:
            result["server_cpu_percent"] = cpu_total(first, second)
            cpu_s = result["server_cpu_percent"] / 100 * opts.duration
            result["server_cpu_us_per_delivery"] = cpu_s / delivered * 1e6
        if "redis_cpu_percent" in result:
            redis_s = result["redis_cpu_percent"] / 100 * opts.duration
            result["redis_cpu_us_per_delivery"] = redis_s / delivered * 1e6
            # The window's PUBLISHes (presence beats included) per chat frame sent in it.
            result["redis_publishes_per_frame"] = result["redis_publishes"] / max(
                1, result.get("sent", 0)
            )
        result["rss_start_kib"] = rss_before
        return result


def start_profiler(name: str, pid: int, duration: float) -> subprocess.Popen[bytes] | None:
    """py-spy over the measured window (Python servers only; needs ``pip install py-spy``)."""
    if name == "centrifugo":
        return None
    out = CACHE / f"profile-{name}.txt"
    cmd = ["py-spy", "record", "-p", str(pid), "-d", str(int(duration)), "-r", "200"]
    cmd += ["-f", "raw", "-o", str(out), "--nonblocking"]
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except FileNotFoundError:
        say("   py-spy is not installed; skipping the profile")
        return None
    say(f"   profiling {name} into {out}")
    return proc


def idle_phase(peer: Peer, loadgen: Path, opts: Options) -> dict[str, Any]:
    with running(peer, opts) as (servers, url):
        before = servers.rss_kib()
        args = ["-mode", "idle", "-proto", peer.proto, "-url", url]
        args += ["-clients", str(opts.idle), "-rooms", str(opts.idle_rooms), "-hold", "600s"]
        args += ["-room-prefix", "idle"]
        gen = Loadgen(loadgen, args, opts, timeout=900)
        result: dict[str, Any] = {"rss_before_kib": before}
        try:
            for event in gen.events():
                kind = event["event"]
                if kind == "ready":
                    result["connect_failed"] = event["failed"]
                elif kind == "idle_ready":
                    connected = event["connected"]
                    result["connected"] = connected
                    say(f"   {connected} idle connections open; letting the server settle")
                    time.sleep(5.0)
                    after = servers.rss_kib()
                    result["rss_after_kib"] = after
                    idle_cpu = servers.cpu()
                    time.sleep(3.0)
                    result["idle_cpu_percent"] = cpu_total(idle_cpu, servers.cpu())
                    result["kib_per_connection"] = (after - before) / max(1, connected)
                    gen.close_stdin()
                elif kind == "result":
                    result["still_open"] = event["still_open"]
            gen.wait()
        finally:
            gen.kill()
        if not result.get("connected"):
            raise BenchError(f"no idle connection could be opened: {result}")
        if "kib_per_connection" not in result:
            raise BenchError(f"idle phase produced no measurement: {result}")
        return result


# --- report ------------------------------------------------------------------------------


def _fmt(value: Any, spec: str) -> str:
    if value is None:
        return "—"
    return format(value, spec)


def table(results: dict[str, dict[str, Any]]) -> str:
    head = (
        f"{'peer':<12} {'conns':>6} {'deliv/s':>9} {'got %':>6} {'p50 ms':>7} {'p95 ms':>7} "
        f"{'p99 ms':>7} {'CPU %':>6} {'µs/deliv':>8} {'RSS MiB':>8} {'idle KiB/conn':>13}"
    )
    lines = [head, "-" * len(head)]
    for name, res in results.items():
        if "error" in res:
            lines.append(f"{name:<12} failed: {res['error'].splitlines()[0][:90]}")
            continue
        fan, idle = res.get("fanout", {}), res.get("idle", {})
        lat = fan.get("latency_ms", {})
        got = fan.get("delivered_fraction")
        rss = fan.get("rss_end_kib")
        lines.append(
            f"{name:<12} {_fmt(fan.get('connections'), 'd'):>6} "
            f"{_fmt(fan.get('deliveries_per_s'), ',.0f'):>9} "
            f"{_fmt(got * 100 if got is not None else None, '.1f'):>6} "
            f"{_fmt(lat.get('p50'), '.1f'):>7} {_fmt(lat.get('p95'), '.1f'):>7} "
            f"{_fmt(lat.get('p99'), '.1f'):>7} {_fmt(fan.get('server_cpu_percent'), '.0f'):>6} "
            f"{_fmt(fan.get('server_cpu_us_per_delivery'), '.2f'):>8} "
            f"{_fmt(rss / 1024 if rss else None, '.0f'):>8} "
            f"{_fmt(idle.get('kib_per_connection'), '.1f'):>13}"
        )
    return "\n".join(lines)


RATIO_KEYS = {
    "deliveries_per_s": ("fanout", "deliveries_per_s"),
    "p99_ms": ("fanout", "latency_ms", "p99"),
    "cpu_us_per_delivery": ("fanout", "server_cpu_us_per_delivery"),
    "idle_kib_per_connection": ("idle", "kib_per_connection"),
}


def _dig(data: dict[str, Any], path: tuple[str, ...]) -> float | None:
    value: Any = data
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return float(value) if isinstance(value, int | float) else None


def ratios(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """asocial / peer for each metric (>1 means ours is higher: good for deliveries/s,
    bad for latency, CPU and memory)."""
    ours = results.get("asocial", {})
    out: dict[str, dict[str, float | None]] = {}
    for name, res in results.items():
        if name == "asocial":
            continue
        row: dict[str, float | None] = {}
        for key, path in RATIO_KEYS.items():
            a, b = _dig(ours, path), _dig(res, path)
            row[key] = a / b if a is not None and b else None
        out[name] = row
    return out


def ratio_lines(table_ratios: dict[str, dict[str, float | None]]) -> str:
    lines = ["ratios asocial / peer (deliveries: higher is better for us; the rest: lower)"]
    for name, row in table_ratios.items():
        parts = [f"{k}={_fmt(v, '.2f')}" for k, v in row.items()]
        lines.append(f"  vs {name:<12} " + "  ".join(parts))
    return "\n".join(lines)


# --- main --------------------------------------------------------------------------------


def parse(argv: list[str] | None) -> Options:
    summary = (__doc__ or "").split("\n")[0]
    p = argparse.ArgumentParser(prog="python -m benchmarks.fanout", description=summary)
    p.add_argument("--clients", type=int, default=1000, help="fan-out connections (default 1000)")
    p.add_argument("--rooms", type=int, default=1, help="rooms for the fan-out (default 1)")
    p.add_argument("--rate", type=float, default=50, help="chat frames/s per room (default 50)")
    p.add_argument("--senders", type=int, default=0, help="senders per room (0: one per 10/s)")
    p.add_argument(
        "--burst",
        type=int,
        default=1,
        help="frames a sender types in one go, 150 ms apart, then pauses (default 1: evenly)",
    )
    p.add_argument("--duration", type=float, default=10, help="measured seconds (default 10)")
    p.add_argument("--warmup", type=float, default=2, help="unmeasured seconds first (default 2)")
    p.add_argument("--idle", type=int, default=10_000, help="idle connections (0 skips)")
    p.add_argument("--idle-rooms", type=int, default=0, help="rooms for them (0: one per 100)")
    p.add_argument(
        "--peers", default=",".join(PEERS), help="comma list of " + ", ".join(PEER_TABLE)
    )
    p.add_argument(
        "--servers", type=int, default=1, help="server processes sharing Redis (default 1)"
    )
    p.add_argument("--no-pin", action="store_true", help="do not pin server / load to CPUs")
    p.add_argument("--no-build", action="store_true", help="never build Centrifugo")
    p.add_argument("--centrifugo-version", default=CENTRIFUGO_VERSION)
    p.add_argument("--profile", action="store_true", help="py-spy the Python servers")
    p.add_argument(
        "--nice",
        type=int,
        default=-10 if os.geteuid() == 0 else 0,
        help="scheduling priority of every benchmark process (default -10 as root, else 0)",
    )
    p.add_argument(
        "--out", type=Path, default=CACHE / "fanout-results.json", help="JSON results file"
    )
    a = p.parse_args(argv)
    peers = tuple(x.strip() for x in a.peers.split(",") if x.strip())
    unknown = [x for x in peers if x not in PEER_TABLE]
    if unknown:
        p.error(f"unknown peers: {', '.join(unknown)}")
    if min(a.clients, a.rooms) < 1 or a.clients < 2 * a.rooms or a.duration <= 0 or a.rate <= 0:
        p.error("need --clients >= 2 * --rooms >= 2, --duration > 0 and --rate > 0")
    if a.burst < 1:
        p.error("need --burst >= 1")
    if not 1 <= a.servers <= a.clients // a.rooms:
        p.error("need 1 <= --servers <= clients per room (each room spans every server)")
    return Options(
        clients=a.clients,
        rooms=a.rooms,
        rate=a.rate,
        senders=a.senders,
        burst=a.burst,
        duration=a.duration,
        warmup=a.warmup,
        idle=a.idle,
        idle_rooms=a.idle_rooms or max(1, a.idle // 100),
        peers=peers,
        pin=not a.no_pin and (os.cpu_count() or 1) >= 2,
        build=not a.no_build,
        centrifugo_version=a.centrifugo_version,
        out=a.out,
        profile=a.profile,
        nice=a.nice,
        servers=a.servers,
    )


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    loadgen = ready_loadgen(opts.nice)
    if loadgen is None:
        return 2
    started = time.time()
    say(
        f"fan-out: {opts.clients} clients in {opts.rooms} room(s), {opts.rate:g} frames/s per "
        f"room, {opts.duration:g}s measured; idle: {opts.idle} connections in "
        f"{opts.idle_rooms} rooms; peers: {', '.join(opts.peers)}; "
        f"pinning: {'server CPU 1, load+redis CPU 0' if opts.pin else 'off'}; nice {opts.nice}"
    )
    load_at_start = os.getloadavg()[0]
    say(f"load average at start: {load_at_start:.2f} (other work on the machine skews all)")
    results: dict[str, dict[str, Any]] = {}
    for name in opts.peers:
        peer = PEER_TABLE[name]
        res: dict[str, Any] = {}
        results[name] = res
        try:
            say(f"\n== {name}: fan-out ==")
            res["fanout"] = fanout_phase(peer, loadgen, opts)
            fan = res["fanout"]
            say(
                f"   {fan['deliveries_per_s']:,.0f} deliveries/s, p99 "
                f"{fan['latency_ms'].get('p99')} ms, server CPU "
                f"{fan.get('server_cpu_percent', 0):.0f}%, "
                f"{fan.get('silent_receivers')} receivers got nothing"
            )
            if opts.idle > 0:
                say(f"\n== {name}: {opts.idle} idle connections ==")
                res["idle"] = idle_phase(peer, loadgen, opts)
                say(f"   {res['idle']['kib_per_connection']:.1f} KiB RSS per connection")
        except (BenchError, OSError, subprocess.SubprocessError, json.JSONDecodeError) as exc:
            say(f"   {name} failed: {exc}")
            res["error"] = str(exc)
    peer_ratios = ratios(results)
    report: dict[str, Any] = {
        **run_record(
            "benchmarks.fanout",
            argv,
            started=started,
            load_at_start=load_at_start,
            centrifugo_version=opts.centrifugo_version,
        ),
        "options": {k: str(v) for k, v in dataclasses.asdict(opts).items()},
        "results": results,
        "ratios_asocial_over_peer": peer_ratios,
        "targets": {
            "deliveries_per_s": 50_000,
            "p99_ms": 50,
            "idle_connections": 10_000,
            "kib_per_connection": 30,
        },
    }
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(json.dumps(report, indent=2))
    say("\n" + table(results))
    if len(results) > 1:
        say(ratio_lines(peer_ratios))
    say(f"\nJSON: {opts.out}   ({time.time() - started:.0f}s)")
    return 0 if all("error" not in r for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

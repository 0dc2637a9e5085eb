"""Process plumbing for the fan-out benchmark: ports, Redis, servers, /proc sampling, builds."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("ASOCIAL_BENCH_CACHE", Path.home() / ".cache" / "asocial" / "bench"))
LOADGEN_SRC = Path(__file__).resolve().parent / "loadgen"
CENTRIFUGO_MODULE = "github.com/centrifugal/centrifugo/v6"
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """A step of the benchmark that cannot go on (the message says why)."""


def say(text: str) -> None:
    print(text, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_port(port: int, proc: subprocess.Popen[bytes], *, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"process exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise BenchError(f"nothing listening on port {port} after {timeout:.0f}s")


NICE = 0  # set by the benchmark before it starts anything


def child_setup() -> None:
    """In the child before exec: as many sockets as the hard limit permits, and the
    benchmark's scheduling priority (negative when root: other work on the machine
    then skews the numbers less).

    With autogroup scheduling (kernel.sched_autogroup_enabled) a nice value only
    ranks processes within their session, and every session gets a fair share of a
    core; so each child gets a session of its own whose autogroup takes the nice."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if NICE:
        os.setsid()
        with contextlib.suppress(OSError), open("/proc/self/autogroup", "w") as f:
            f.write(str(NICE))
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, NICE)


def pinned(cmd: Sequence[str], cpus: str | None) -> list[str]:
    """``cmd`` confined to ``cpus`` (taskset list syntax) when pinning is on."""
    if cpus is None or shutil.which("taskset") is None:
        return list(cmd)
    return ["taskset", "-c", cpus, *cmd]


@dataclasses.dataclass
class Proc:
    """A child process whose log goes to a file and that is always reaped."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)

    def tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


def spawn(
    name: str, cmd: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path = REPO
) -> Proc:
    logs = CACHE / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            list(cmd),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            preexec_fn=child_setup,
        )
    return Proc(name, popen, log)


@contextlib.contextmanager
def redis_server(cpus: str | None) -> Iterator[tuple[str, Proc]]:
    """A throwaway redis-server on a free loopback port, no persistence."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise BenchError("redis-server is not installed (Debian package redis-server)")
    port = free_port()
    cmd = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    cmd += ["--maxclients", "10000", "--protected-mode", "no"]
    proc = spawn(f"redis-{port}", pinned(cmd, cpus))
    try:
        wait_port(port, proc.popen)
        yield f"redis://127.0.0.1:{port}/0", proc
    finally:
        proc.stop()


@dataclasses.dataclass(frozen=True)
class CpuSample:
    at: float
    ticks: int


def cpu_sample(pid: int) -> CpuSample:
    """utime + stime of one process (all its threads), in clock ticks."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        raw = f.read().decode()
    fields = raw[raw.rindex(")") + 2 :].split()
    return CpuSample(time.monotonic(), int(fields[11]) + int(fields[12]))


def cpu_percent(first: CpuSample, second: CpuSample) -> float:
    """Share of one core used between two samples, in percent."""
    wall = second.at - first.at
    return 100.0 * (second.ticks - first.ticks) / CLK_TCK / wall if wall > 0 else 0.0


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise BenchError(f"no VmRSS for pid {pid}")


def _newer(target: Path, sources: Sequence[Path]) -> bool:
    if not target.exists():
        return False
    built = target.stat().st_mtime
    return all(src.stat().st_mtime <= built for src in sources)


def build_loadgen() -> Path:
    """``go build`` the load generator into the cache (skipped when up to date)."""
    target = CACHE / "loadgen"
    sources = [*sorted(LOADGEN_SRC.glob("*.go")), LOADGEN_SRC / "go.mod", LOADGEN_SRC / "go.sum"]
    if _newer(target, sources):
        return target
    if shutil.which("go") is None:
        raise BenchError("the load generator needs the Go toolchain (`go`) to build")
    say(f"building the load generator ({LOADGEN_SRC.relative_to(REPO)}) ...")
    CACHE.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["go", "build", "-trimpath", "-o", str(target), "."],
        cwd=LOADGEN_SRC,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"go build of the load generator failed:\n{done.stderr[-2000:]}")
    return target


def centrifugo_binary(version: str, *, build: bool) -> Path:
    """Centrifugo built from its Go module with ``go install`` into the cache."""
    target = CACHE / "bin" / "centrifugo"
    stamp = CACHE / "bin" / "centrifugo.version"
    if target.exists() and (not stamp.exists() or stamp.read_text().strip() == version):
        return target
    if not build:
        raise BenchError(f"{target} is missing and building was turned off (--no-build)")
    if shutil.which("go") is None:
        raise BenchError("Centrifugo is built with the Go toolchain, and `go` is not installed")
    say(f"building Centrifugo {version} with `go install {CENTRIFUGO_MODULE}@{version}` ...")
    say("  (a few hundred packages: several minutes on two cores)")
    env = {**os.environ, "GOBIN": str(target.parent)}
    target.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["go", "install", f"{CENTRIFUGO_MODULE}@{version}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
        cwd=CACHE,
    )
    if done.returncode != 0:
        raise BenchError(f"go install {CENTRIFUGO_MODULE}@{version} failed:\n{done.stderr[-2000:]}")
    stamp.write_text(version + "\n")
    return target


def python() -> str:
    return sys.executable


def run_record(
    module: str,
    argv: list[str] | None,
    *,
    started: float,
    load_at_start: float,
    centrifugo_version: str | None = None,
) -> dict[str, Any]:
    """What every benchmark's JSON begins with: the command, when it ran, the machine and
    its load average at the start and the end, and the peer's version (if it ran one)."""
    record: dict[str, Any] = {
        "command": " ".join([f"python -m {module}", *(sys.argv[1:] if argv is None else argv)]),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_start": load_at_start,
            "load_average_at_end": os.getloadavg()[0],
        },
    }
    if centrifugo_version is not None:
        record["centrifugo"] = f"{CENTRIFUGO_MODULE}@{centrifugo_version}"
    return record


def ready_loadgen(nice: int) -> Path | None:
    """Give every process the benchmark starts the priority ``nice``, and build the load
    generator; None, having said why, when it cannot be built."""
    global NICE
    NICE = nice
    try:
        return build_loadgen()
    except BenchError as exc:
        say(f"cannot build the load generator: {exc}")
        return None

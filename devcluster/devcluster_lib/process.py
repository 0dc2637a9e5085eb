"""Start, identify and stop the devcluster's own processes (by PID, never by name)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Proc:
    """A started process: PID plus kernel start time, which guards against PID reuse."""

    name: str
    pid: int
    start_ticks: int
    exe: str

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "start_ticks": self.start_ticks, "exe": self.exe}

    @staticmethod
    def from_json(name: str, data: dict[str, Any]) -> Proc:
        return Proc(name, int(data["pid"]), int(data["start_ticks"]), str(data["exe"]))


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of a PID, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; it is enclosed in parentheses.
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def is_alive(proc: Proc) -> bool:
    st = _stat(proc.pid)
    if st is None:
        return False
    state, start = st
    return start == proc.start_ticks and state not in ("Z", "X")


def spawn(
    name: str, argv: list[str], log: Path, cwd: Path, env: dict[str, str] | None = None
) -> Proc:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        child = subprocess.Popen(
            argv,
            env={**os.environ, **env} if env else None,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
        )
    st = _stat(child.pid)
    start = st[1] if st else 0
    # The process outlives this CLI on purpose; forget the Popen without a warning.
    child.returncode = 0
    return Proc(name, child.pid, start, argv[0])


def stop(procs: list[Proc], timeout: float = 15.0) -> list[str]:
    """Stop the given processes one after the other, in list order.

    Each gets SIGTERM and, if still running after ``timeout`` seconds, SIGKILL. Clients
    go first so the API server does not wait on their in-flight requests while it drains.
    Returns the names of processes that could not be stopped.
    """
    for proc in procs:
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            if not is_alive(proc):
                break
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and is_alive(proc):
                _reap()
                time.sleep(0.05)
    return [p.name for p in procs if is_alive(p)]


def _reap() -> None:
    """Collect exited children of this process (when `up` fails and cleans up)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def listening_ports(pids: set[int]) -> set[int]:
    """TCP ports in LISTEN state owned by any of ``pids`` (from /proc)."""
    inodes: set[str] = set()
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        try:
            entries = list(fd_dir.iterdir())
        except OSError:
            continue
        for entry in entries:
            try:
                target = os.readlink(entry)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 9 and parts[3] == "0A" and parts[9] in inodes:
                ports.add(int(parts[1].rsplit(":", 1)[1], 16))
    return ports

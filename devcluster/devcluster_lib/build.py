"""Build etcd, the Kubernetes control plane, kubectl and kwok from pinned Go modules."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import config


@dataclass(frozen=True)
class Target:
    name: str
    module_dir: str
    package: str
    ldflags: tuple[str, ...] = ()


def _k8s_ldflags() -> tuple[str, ...]:
    major, minor = config.K8S_VERSION.lstrip("v").split(".")[:2]
    flags: list[str] = []
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={config.K8S_VERSION}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
        ]
    return tuple(flags)


def targets() -> list[Target]:
    k8s = _k8s_ldflags()
    kwok_version = config.KWOK_VERSION.lstrip("v")
    kube_version = config.K8S_VERSION.lstrip("v")
    return [
        Target("etcd", "etcd", "go.etcd.io/etcd/server/v3"),
        Target("kube-apiserver", "k8s", "k8s.io/kubernetes/cmd/kube-apiserver", k8s),
        Target(
            "kube-controller-manager",
            "k8s",
            "k8s.io/kubernetes/cmd/kube-controller-manager",
            k8s,
        ),
        Target("kube-scheduler", "k8s", "k8s.io/kubernetes/cmd/kube-scheduler", k8s),
        Target("kubectl", "k8s", "k8s.io/kubernetes/cmd/kubectl", k8s),
        Target(
            "kwok",
            "kwok",
            "sigs.k8s.io/kwok/cmd/kwok",
            (
                f"-X sigs.k8s.io/kwok/pkg/consts.Version={kwok_version}",
                f"-X sigs.k8s.io/kwok/pkg/consts.KubeVersion={kube_version}",
            ),
        ),
    ]


def missing_binaries() -> list[str]:
    out = config.bin_dir()
    return [name for name in config.ALL_BINARIES if not os.access(out / name, os.X_OK)]


def is_built() -> bool:
    return not missing_binaries()


def _log(message: str) -> None:
    print(f"[devcluster build] {message}", file=sys.stderr, flush=True)


def _build_one(target: Target, out: Path, go: str) -> None:
    module_dir = config.DEVCLUSTER_DIR / target.module_dir
    tmp = out / f".{target.name}.tmp"
    ldflags = " ".join(("-s", "-w", *target.ldflags))
    cmd = [go, "build", "-trimpath", "-ldflags", ldflags, "-o", str(tmp), target.package]
    env = dict(os.environ)
    env.setdefault("CGO_ENABLED", "0")
    env["GOWORK"] = "off"
    start = time.monotonic()
    _log(f"building {target.name} ({target.package}) ...")
    proc = subprocess.Popen(cmd, cwd=module_dir, env=env)
    next_report = 30.0
    while True:
        try:
            rc = proc.wait(timeout=1.0)
            break
        except subprocess.TimeoutExpired:
            elapsed = time.monotonic() - start
            if elapsed >= next_report:
                _log(f"  still building {target.name}: {elapsed:.0f}s elapsed")
                next_report += 30.0
    elapsed = time.monotonic() - start
    if rc != 0:
        tmp.unlink(missing_ok=True)
        raise SystemExit(
            f"[devcluster build] FAILED: {target.name} (exit {rc}) after {elapsed:.0f}s\n"
            f"  command: (cd {module_dir} && {' '.join(cmd)})"
        )
    tmp.replace(out / target.name)
    _log(f"built {target.name} in {elapsed:.0f}s")


def build(force: bool = False) -> Path:
    """Build every missing binary (all of them with ``force``); return the bin dir."""
    out = config.bin_dir()
    out.mkdir(parents=True, exist_ok=True)
    # One build at a time per cache (2 cores are busy enough with a single go build).
    with (out.parent / ".build.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build_locked(out, force)


def _build_locked(out: Path, force: bool) -> Path:
    go = config.go_binary()
    if shutil.which(go) is None:
        raise SystemExit(f"[devcluster build] Go toolchain not found: {go} (set ASOCIAL_GO)")
    wanted = [t for t in targets() if force or not os.access(out / t.name, os.X_OK)]
    if not wanted:
        _log(f"all binaries present in {out}")
        return out
    total_start = time.monotonic()
    _log(f"output: {out}")
    for target in wanted:
        _build_one(target, out, go)
    _log(f"done in {time.monotonic() - total_start:.0f}s")
    return out

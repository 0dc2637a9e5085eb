"""Pinned versions, filesystem locations and environment knobs of the devcluster."""

from __future__ import annotations

import os
from pathlib import Path

K8S_VERSION = "v1.36.5"
K8S_STAGING_VERSION = "v0.36.5"
ETCD_VERSION = "v3.6.16"
KWOK_VERSION = "v0.8.0"

DEVCLUSTER_DIR = Path(__file__).resolve().parent.parent
"""The ``devcluster/`` directory of the repository (holds the wrapper Go modules)."""

VERSION_KEY = f"k8s-{K8S_VERSION}_etcd-{ETCD_VERSION}_kwok-{KWOK_VERSION}"

CONTROL_PLANE_BINARIES = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
)
ALL_BINARIES = ("etcd", *CONTROL_PLANE_BINARIES, "kwok")


def cache_root() -> Path:
    """Root of the build cache, outside the work tree."""
    env = os.environ.get("ASOCIAL_CACHE_DIR")
    base = Path(env) if env else Path.home() / ".cache" / "asocial"
    return base / "devcluster"


def bin_dir() -> Path:
    """Directory holding the binaries for the pinned versions."""
    return cache_root() / VERSION_KEY / "bin"


def state_dir() -> Path:
    """Per-instance state: certificates, kubeconfig, etcd data, PIDs and logs."""
    env = os.environ.get("ASOCIAL_DEVCLUSTER_DIR")
    if env:
        return Path(env).resolve()
    return Path.home() / ".cache" / "asocial" / "devcluster" / "state"


def go_binary() -> str:
    """The ``go`` command to build with (``ASOCIAL_GO`` overrides)."""
    env = os.environ.get("ASOCIAL_GO")
    if env:
        return env
    for candidate in ("/usr/local/go/bin/go",):
        if os.access(candidate, os.X_OK):
            return candidate
    return "go"

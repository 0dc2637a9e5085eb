"""Pinned versions, filesystem locations and environment knobs of the devcluster."""

from __future__ import annotations

import os
from pathlib import Path

K8S_VERSION = "v1.36.5"
K8S_STAGING_VERSION = "v0.36.5"
ETCD_VERSION = "v3.6.16"
KWOK_VERSION = "v0.8.0"

# The real node (versions also pinned in the wrapper modules under devcluster/node/).
CONTAINERD_VERSION = "v2.3.7"
RUNC_VERSION = "v1.4.4"
CNI_PLUGINS_VERSION = "v1.9.1"
CRI_TOOLS_VERSION = "v1.37.0"
COREDNS_VERSION = "v1.13.1"
METRICS_SERVER_VERSION = "v0.8.0"
# The edge: Traefik serves the Gateway API and Ingresses of class traefik. v3.7 does not
# build from the module proxy (it replaces a nested module that is not served).
TRAEFIK_MODULE = "github.com/traefik/traefik/v3"
TRAEFIK_VERSION = "v3.6.12"
# The Gateway API's standard-channel CRDs, from its Go module (what Traefik v3.6 serves).
GATEWAY_API_VERSION = "v1.4.0"
GATEWAY_API_MODULE = "sigs.k8s.io/gateway-api"

# Day two: helm, the Prometheus Operator (and its config reloader), Prometheus and
# promtool. Debian's Prometheus (2.42) is older than the operator supports (2.45).
HELM_VERSION = "v4.3.2"
PROMETHEUS_OPERATOR_VERSION = "v0.85.0"
PROMETHEUS_MODULE = "github.com/prometheus/prometheus"
PROMETHEUS_MODULE_VERSION = "v0.316.0"
PROMETHEUS_VERSION = "v3.16.0"
"""The release that module version is (its ``VERSION`` file)."""

DEVCLUSTER_DIR = Path(__file__).resolve().parent.parent
"""The ``devcluster/`` directory of the repository (holds the wrapper Go modules)."""

VERSION_KEY = f"k8s-{K8S_VERSION}_etcd-{ETCD_VERSION}_kwok-{KWOK_VERSION}"

CONTROL_PLANE_BINARIES = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
)
NODE_BINARIES = (
    "kubelet",
    "kube-proxy",
    "containerd",
    "containerd-shim-runc-v2",
    "ctr",
    "runc",
    "bridge",
    "host-local",
    "loopback",
    "portmap",
    "crictl",
    "coredns",
    "metrics-server",
    "pause",
)
EDGE_BINARIES = ("traefik",)
OPS_BINARIES = (
    "helm",
    "prometheus-operator",
    "prometheus-config-reloader",
    "prometheus",
    "promtool",
)
ALL_BINARIES = (
    "etcd",
    *CONTROL_PLANE_BINARIES,
    "kwok",
    *NODE_BINARIES,
    *EDGE_BINARIES,
    *OPS_BINARIES,
)

PAUSE_IMAGE = "devcluster.local/pause:1"
"""The pod sandbox image, built locally from the ``pause`` binary (no registry needed)."""

NODE_VERSION_KEY = (
    f"k8s-{K8S_VERSION}_containerd-{CONTAINERD_VERSION}_runc-{RUNC_VERSION}"
    f"_cni-{CNI_PLUGINS_VERSION}_crictl-{CRI_TOOLS_VERSION}_coredns-{COREDNS_VERSION}"
    f"_metrics-server-{METRICS_SERVER_VERSION}"
)


def cache_root() -> Path:
    """Root of the build cache, outside the work tree."""
    env = os.environ.get("ASOCIAL_CACHE_DIR")
    base = Path(env) if env else Path.home() / ".cache" / "asocial"
    return base / "devcluster"


def bin_dir() -> Path:
    """Directory holding the control-plane binaries for the pinned versions."""
    return cache_root() / VERSION_KEY / "bin"


def node_bin_dir() -> Path:
    """Directory holding the node binaries (CNI plugins in ``cni/``) for the pinned
    versions."""
    return cache_root() / NODE_VERSION_KEY / "bin"


def gateway_api_crds() -> Path:
    """The Gateway API's standard CRDs (YAML), copied from its module by ``build``."""
    return cache_root() / f"gateway-api-{GATEWAY_API_VERSION}" / "standard"


PROMETHEUS_OPERATOR_MODULE = "github.com/prometheus-operator/prometheus-operator"


def prometheus_operator_manifests() -> Path:
    """The Prometheus Operator's CRDs and the ClusterRoles of the operator and of
    Prometheus (YAML), copied from its module by ``build``."""
    return cache_root() / f"prometheus-operator-{PROMETHEUS_OPERATOR_VERSION}" / "manifests"


def edge_bin_dir() -> Path:
    """Directory holding the edge proxy (Traefik) for its pinned version."""
    return cache_root() / f"traefik-{TRAEFIK_VERSION}" / "bin"


def ops_bin_dir() -> Path:
    """Directory holding the day-two tools (helm, Prometheus and its operator)."""
    key = (
        f"helm-{HELM_VERSION}_prometheus-operator-{PROMETHEUS_OPERATOR_VERSION}"
        f"_prometheus-{PROMETHEUS_VERSION}"
    )
    return cache_root() / f"ops-{key}" / "bin"


def binary_dir(name: str) -> Path:
    """Where binary ``name`` is built to."""
    if name in EDGE_BINARIES:
        return edge_bin_dir()
    if name in OPS_BINARIES:
        return ops_bin_dir()
    return node_bin_dir() if name in NODE_BINARIES else bin_dir()


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

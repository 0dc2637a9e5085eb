"""Build etcd, the Kubernetes control plane, kubectl and kwok from pinned Go modules."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from . import config, log


@dataclass(frozen=True)
class Target:
    name: str
    module_dir: str
    package: str
    ldflags: tuple[str, ...] = ()
    cgo: bool = False
    tags: tuple[str, ...] = ()
    inside: str | None = None
    """``module@version`` to build inside, as downloaded, instead of a wrapper module:
    for a module whose ``go.mod`` has ``replace`` directives (``go install`` refuses
    those, and a wrapper would not apply them)."""

    @property
    def out_dir(self) -> Path:
        return config.binary_dir(self.name)


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
        *node_targets(),
        *ops_targets(),
    ]


def node_targets() -> list[Target]:
    """The real node: kubelet and kube-proxy (same module as the control plane), the
    container runtime and the cluster add-ons."""
    k8s = _k8s_ldflags()
    containerd = config.CONTAINERD_VERSION
    ctrd_flags = (f"-X github.com/containerd/containerd/v2/version.Version={containerd}",)
    cni = "github.com/containernetworking/plugins/plugins"
    return [
        Target("kubelet", "k8s", "k8s.io/kubernetes/cmd/kubelet", k8s),
        Target("kube-proxy", "k8s", "k8s.io/kubernetes/cmd/kube-proxy", k8s),
        Target(
            "containerd",
            "node/containerd",
            "github.com/containerd/containerd/v2/cmd/containerd",
            ctrd_flags,
        ),
        Target(
            "containerd-shim-runc-v2",
            "node/containerd",
            "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2",
            ctrd_flags,
        ),
        Target("ctr", "node/containerd", "github.com/containerd/containerd/v2/cmd/ctr", ctrd_flags),
        # runc needs cgo for libseccomp (Debian's libseccomp-dev) and its nsenter C code.
        Target(
            "runc",
            "node/runc",
            "github.com/opencontainers/runc",
            (f"-X main.version={config.RUNC_VERSION.lstrip('v')}",),
            cgo=True,
            tags=("seccomp",),
        ),
        Target("bridge", "node/cni", f"{cni}/main/bridge"),
        Target("host-local", "node/cni", f"{cni}/ipam/host-local"),
        Target("loopback", "node/cni", f"{cni}/main/loopback"),
        Target("portmap", "node/cni", f"{cni}/meta/portmap"),
        Target(
            "crictl",
            "node/crictl",
            "sigs.k8s.io/cri-tools/cmd/crictl",
            (f"-X sigs.k8s.io/cri-tools/pkg/version.Version={config.CRI_TOOLS_VERSION}",),
        ),
        Target("coredns", "node/coredns", "github.com/coredns/coredns"),
        Target("pause", "node/pause", "asocial.local/devcluster/node/pause"),
        Target(
            "metrics-server", "node/metrics-server", "sigs.k8s.io/metrics-server/cmd/metrics-server"
        ),
        Target(
            "traefik",
            "",
            "./cmd/traefik",
            (f"-X {config.TRAEFIK_MODULE}/pkg/version.Version={config.TRAEFIK_VERSION}",),
            inside=f"{config.TRAEFIK_MODULE}@{config.TRAEFIK_VERSION}",
        ),
    ]


def ops_targets() -> list[Target]:
    """Day two: helm, the Prometheus Operator with its config reloader, Prometheus with
    only Kubernetes service discovery (``remove_all_sd``), and promtool."""
    helm = "helm.sh/helm/v4/internal/version"
    common = "github.com/prometheus/common/version"
    operator = (f"-X {common}.Version={config.PROMETHEUS_OPERATOR_VERSION.lstrip('v')}",)
    prometheus = (f"-X {common}.Version={config.PROMETHEUS_VERSION.lstrip('v')}",)
    inside = f"{config.PROMETHEUS_MODULE}@{config.PROMETHEUS_MODULE_VERSION}"
    po = "github.com/prometheus-operator/prometheus-operator/cmd"
    sd = ("remove_all_sd", "enable_kubernetes_sd")
    return [
        Target(
            "helm",
            "ops/helm",
            "helm.sh/helm/v4/cmd/helm",
            (f"-X {helm}.version={config.HELM_VERSION}", f"-X {helm}.gitTreeState=clean"),
        ),
        Target("prometheus-operator", "ops/prometheus-operator", f"{po}/operator", operator),
        Target(
            "prometheus-config-reloader",
            "ops/prometheus-operator",
            f"{po}/prometheus-config-reloader",
            operator,
        ),
        Target(
            "prometheus",
            "",
            "./cmd/prometheus",
            prometheus,
            tags=sd,
            inside=inside,
        ),
        # The same tags as Prometheus: the two share their compiled packages.
        Target("promtool", "", "./cmd/promtool", prometheus, tags=sd, inside=inside),
    ]


def missing_binaries() -> list[str]:
    return [
        name
        for name in config.ALL_BINARIES
        if not os.access(config.binary_dir(name) / name, os.X_OK)
    ]


def is_built() -> bool:
    return (
        not missing_binaries()
        and any(config.gateway_api_crds().glob("*.yaml"))
        and any(config.prometheus_operator_manifests().glob("*.yaml"))
    )


def _downloaded(module: str, go: str) -> Path:
    """Where the module cache holds ``module@version`` (read-only), downloaded if needed."""
    result = subprocess.run(
        [go, "mod", "download", "-json", module],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "GOFLAGS": "-mod=mod", "GOWORK": "off"},
        cwd=config.cache_root(),
    )
    if result.returncode != 0:
        raise SystemExit(f"[devcluster build] FAILED: go mod download {module}:\n{result.stdout}")
    return Path(json.loads(result.stdout)["Dir"])


def _gateway_api_crds(go: str) -> None:
    """Copy the Gateway API's standard-channel CRDs out of its module (downloaded, not
    built: only the YAML under config/crd/standard is used)."""
    target = config.gateway_api_crds()
    if any(target.glob("*.yaml")):
        return
    module = f"{config.GATEWAY_API_MODULE}@{config.GATEWAY_API_VERSION}"
    source = _downloaded(module, go) / "config" / "crd" / "standard"
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for crd in sorted(source.glob("*.yaml")):
        shutil.copyfile(crd, partial / crd.name)
    partial.replace(target)
    _log(f"Gateway API {config.GATEWAY_API_VERSION} CRDs in {target}")


PROMETHEUS_OPERATOR_FILES = (
    *(
        f"example/prometheus-operator-crd/monitoring.coreos.com_{plural}.yaml"
        for plural in (
            "alertmanagerconfigs",
            "alertmanagers",
            "podmonitors",
            "probes",
            "prometheusagents",
            "prometheuses",
            "prometheusrules",
            "scrapeconfigs",
            "servicemonitors",
            "thanosrulers",
        )
    ),
    "example/rbac/prometheus-operator/prometheus-operator-cluster-role.yaml",
    "example/rbac/prometheus/prometheus-cluster-role.yaml",
)


def _prometheus_operator_manifests(go: str) -> None:
    """Copy the Prometheus Operator's CRDs and its two ClusterRoles (the operator's, and
    the one Prometheus scrapes with) out of its module: used as published, not rewritten."""
    target = config.prometheus_operator_manifests()
    if any(target.glob("*.yaml")):
        return
    module = f"{config.PROMETHEUS_OPERATOR_MODULE}@{config.PROMETHEUS_OPERATOR_VERSION}"
    source = _downloaded(module, go)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for file in PROMETHEUS_OPERATOR_FILES:
        shutil.copyfile(source / file, partial / Path(file).name)
    partial.replace(target)
    _log(f"Prometheus Operator {config.PROMETHEUS_OPERATOR_VERSION} CRDs and RBAC in {target}")


_log = log.scoped("build")


def _module_copy(module: str, go: str) -> Path:
    """A writable copy of ``module@version`` as the module proxy serves it (its own
    ``go.mod`` and ``go.sum`` then apply, ``replace`` directives included)."""
    name, version = module.split("@")
    copy = config.cache_root() / "src" / f"{name.replace('/', '_')}-{version}"
    if (copy / "go.mod").exists():
        return copy
    partial = copy.with_name(copy.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(_downloaded(module, go), partial)
    for path in [partial, *partial.rglob("*")]:  # the module cache's files are read-only
        path.chmod(path.stat().st_mode | 0o200)
    partial.replace(copy)
    return copy


def _build_one(target: Target, go: str) -> None:
    out = target.out_dir
    out.mkdir(parents=True, exist_ok=True)
    if target.inside is not None:
        module_dir = _module_copy(target.inside, go)
    else:
        module_dir = config.DEVCLUSTER_DIR / target.module_dir
    tmp = out / f".{target.name}.tmp"
    ldflags = " ".join(("-s", "-w", *target.ldflags))
    cmd = [go, "build", "-trimpath", "-ldflags", ldflags, "-o", str(tmp)]
    if target.tags:
        cmd += ["-tags", ",".join(target.tags)]
    cmd.append(target.package)
    env = dict(os.environ)
    env["CGO_ENABLED"] = "1" if target.cgo else "0"
    env["GOWORK"] = "off"
    if target.cgo:
        _require_seccomp()
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


def _require_seccomp() -> None:
    if not Path("/usr/include/seccomp.h").exists():
        raise SystemExit(
            "[devcluster build] runc needs libseccomp's headers: "
            "apt-get install -y libseccomp-dev gcc (or run `make test`, which installs them)"
        )


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
    config.cache_root().mkdir(parents=True, exist_ok=True)
    _gateway_api_crds(go)
    _prometheus_operator_manifests(go)
    wanted = [t for t in targets() if force or not os.access(t.out_dir / t.name, os.X_OK)]
    if not wanted:
        _log(f"all binaries present in {out} and {config.node_bin_dir()}")
        return out
    total_start = time.monotonic()
    _log(f"output: {out} and {config.node_bin_dir()}")
    fetches = _prefetch(wanted, go)
    try:
        for index, target in enumerate(wanted, 1):
            _log(f"[{index}/{len(wanted)}]")
            _build_one(target, go)
    finally:
        for fetch in fetches:
            fetch.kill()
            fetch.wait()
    _log(f"done in {time.monotonic() - total_start:.0f}s")
    return out


def _prefetch(wanted: list[Target], go: str) -> list[subprocess.Popen[bytes]]:
    """Download, in the background, the modules every later target needs (``go list
    -deps`` loads the build graph without compiling): on a cold module cache the
    downloads wait on the network while the first builds use the cores, instead of each
    build fetching its own after the one before has finished."""
    by_module: dict[str, list[str]] = {}
    for target in wanted[1:]:
        if target.inside is None:  # its module is copied first, when its turn comes
            by_module.setdefault(target.module_dir, []).append(target.package)
    fetches = []
    for module_dir, packages in by_module.items():
        env = {**os.environ, "GOWORK": "off", "CGO_ENABLED": "0"}
        fetches.append(
            subprocess.Popen(
                [go, "list", "-deps", *packages],
                cwd=config.DEVCLUSTER_DIR / module_dir,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    return fetches

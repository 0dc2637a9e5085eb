"""The real node: containerd + runc, a CNI bridge, kubelet, kube-proxy, CoreDNS and
metrics-server as local processes, registered with the devcluster's API server.

One real node per machine (it owns a bridge, iptables rules, sysctls and cgroups):
``NODE_LOCK`` records which state dir holds it. Everything the node changes outside its
state dir is recorded in ``node.json`` at start and undone by ``stop``: sysctls are put
back, the kubelet's mounts unmounted, containers and shims killed by PID, the bridge,
network namespaces and cgroups it made removed, and only its own iptables chains
flushed (``kube-proxy --cleanup`` for kube-proxy's; the kubelet's and CNI's by name).

Every ordinary workload runs here: kwok's fake nodes are the ones tainted (see
``manifests``), and only what tolerates that taint (scale tests) lands on them. The node
is labelled ``devcluster.asocial.io/node: real`` for workloads that want to say so.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import certs, config, ctr, images, kubeconfig, process, steps
from .api import ApiClient

NODE_NAME = "devcluster-node"
BRIDGE = "asocial0"
NODE_CIDR = "10.88.0.0/24"
NODE_IP = certs.NODE_IP
DNS_SERVICE_IP = "10.96.0.10"
CLUSTER_DOMAIN = "cluster.local"
NODE_LABEL = "devcluster.asocial.io/node"
NODE_LOCK = Path("/run/asocial-devcluster-node.json")
PROXY_HEALTHZ_PORT = 10256
NODE_COMPONENTS = ("containerd", "kubelet", "kube-proxy", "coredns", "metrics-server")

# Sysctls the node needs or its components change; restored by `stop`.
# The cluster is IPv4 only, so the interfaces made while the node runs (the bridge, a
# veth per pod) get no IPv6: otherwise every pod started or stopped adds or removes a
# link-local address on the host, and programs that watch the host's addresses take it
# for a network change (Chromium fails requests it is connecting with ERR_NETWORK_CHANGED).
SYSCTLS = {
    "net/ipv4/ip_forward": "1",
    "net/bridge/bridge-nf-call-iptables": "1",
    "net/bridge/bridge-nf-call-ip6tables": "1",
    "net/ipv6/conf/default/disable_ipv6": "1",
}
KUBELET_SYSCTLS = ("kernel/panic", "kernel/panic_on_oops", "vm/overcommit_memory")
KUBELET_CHAINS = ("KUBE-FIREWALL", "KUBE-KUBELET-CANARY", "KUBE-IPTABLES-HINT")
SHARED_PATHS = (
    Path("/var/lib/kubelet/device-plugins"),
    Path("/var/log/containers"),
    Path("/var/log/pods"),
)


def enabled() -> bool:
    """The real node starts with ``up`` unless ``ASOCIAL_DEVCLUSTER_REAL_NODE=0``."""
    return os.environ.get("ASOCIAL_DEVCLUSTER_REAL_NODE", "1") not in ("0", "false", "no")


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, capture_output=True, text=True)


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name


def _read_sysctl(name: str) -> str | None:
    try:
        return _sysctl_path(name).read_text().strip()
    except OSError:
        return None


def _write_sysctl(name: str, value: str) -> None:
    with contextlib.suppress(OSError):
        _sysctl_path(name).write_text(value)


def preflight() -> list[str]:
    """What is missing for a real node on this machine, each with what to do."""
    problems = []
    if os.geteuid() != 0:
        problems.append("the real node needs root (namespaces, cgroups, iptables)")
    for tool, package in (("iptables", "iptables"), ("ip", "iproute2"), ("mount", "mount")):
        if shutil.which(tool) is None:
            problems.append(f"`{tool}` is missing: apt-get install -y {package}")
    if (
        not Path("/sys/fs/cgroup/memory").is_dir()
        and not Path("/sys/fs/cgroup/cgroup.controllers").exists()
    ):
        problems.append("no memory cgroup is mounted under /sys/fs/cgroup")
    if not _sysctl_path("net/bridge/bridge-nf-call-iptables").exists():
        _run("modprobe", "br_netfilter", check=False)
        if not _sysctl_path("net/bridge/bridge-nf-call-iptables").exists():
            problems.append("br_netfilter is not available (modprobe br_netfilter failed)")
    return problems


class Node:
    """The real node of one devcluster state dir."""

    def __init__(self, root: Path, pki: certs.Pki) -> None:
        self.root = root
        self.dir = root / "node"
        self.pki = pki
        self.logs = root / "logs"
        self.state_file = self.dir / "node.json"
        self.bin = config.node_bin_dir()
        self.sock = self.dir / "containerd" / "containerd.sock"
        self.kubelet_dir = self.dir / "kubelet"
        self.cni_conf = self.dir / "cni" / "net.d"
        self.cni_bin = self.dir / "cni" / "bin"

    # ------------------------------------------------------------------ state
    def _load(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}
        return data

    def _save(self, data: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(self.state_file)

    # ------------------------------------------------------------------- lock
    def check_available(self) -> None:
        """Fail early, before anything starts, when another state dir holds the node."""
        try:
            holder = json.loads(NODE_LOCK.read_text())
        except (OSError, ValueError):
            return
        if holder.get("state_dir") != str(self.root):
            self._claim()

    def _claim(self) -> None:
        """Take the machine's one real node, or say who has it."""
        try:
            holder = json.loads(NODE_LOCK.read_text())
        except (OSError, ValueError):
            holder = None
        if holder and holder.get("state_dir") != str(self.root):
            kubelet = holder.get("kubelet")
            if kubelet and process.is_alive(process.Proc.from_json("kubelet", kubelet)):
                raise SystemExit(
                    f"devcluster: this machine's real node is taken by the devcluster in "
                    f"{holder['state_dir']}; stop it there (devcluster down with "
                    "ASOCIAL_DEVCLUSTER_DIR set to it), or start this one with fake nodes "
                    "only: ASOCIAL_DEVCLUSTER_REAL_NODE=0"
                )
        NODE_LOCK.write_text(json.dumps({"state_dir": str(self.root)}) + "\n")

    def _record_lock(self, kubelet: process.Proc | None) -> None:
        """Says which kubelet holds the machine's node (``_claim`` checks it is alive)."""
        assert kubelet is not None, "the kubelet is a process"
        NODE_LOCK.write_text(
            json.dumps({"state_dir": str(self.root), "kubelet": kubelet.to_json()}) + "\n"
        )

    def _release(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            if json.loads(NODE_LOCK.read_text()).get("state_dir") == str(self.root):
                NODE_LOCK.unlink()

    # ------------------------------------------------------------- components
    def containerd(self) -> ctr.Containerd:
        return ctr.Containerd(self.bin / "ctr", self.sock)

    def components(self, api: Callable[[], ApiClient], server: str) -> list[steps.Component]:
        """The node's processes in start order (``down`` stops them in reverse): each
        one's argv, readiness, and what it undoes outside the state dir once stopped.
        ``api`` gives the cluster's API client once the control plane is up."""
        path_env = {"PATH": f"{self.bin}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
        kc = self.dir

        def node_ready() -> tuple[bool, str]:
            return NODE_NAME in api().ready_nodes(), f"{NODE_NAME} not Ready yet"

        ms_port = 4443
        return [
            steps.Component(
                "containerd",
                lambda: [str(self.bin / "containerd"), f"--config={self._containerd()}"],
                env=lambda: path_env,
                prepare=lambda: self._prepare(server),
                ready=(
                    steps.Readiness(
                        "containerd socket", lambda: (self.sock.exists(), str(self.sock)), 30
                    ),
                ),
                then=lambda _: ctr.import_all(self.containerd(), images.node_archives()),
                undo=self._undo,
            ),
            steps.Component(
                "kubelet",
                lambda: [
                    str(self.bin / "kubelet"),
                    f"--config={self._kubelet_config()}",
                    f"--kubeconfig={kc / 'kubelet.kubeconfig'}",
                    f"--root-dir={self.kubelet_dir}",
                    f"--hostname-override={NODE_NAME}",
                    f"--node-ip={NODE_IP}",
                    f"--node-labels={NODE_LABEL}=real",
                    "--v=1",
                ],
                env=lambda: path_env,
                ready=(steps.Readiness("the real node Ready", node_ready, 60),),
                then=self._record_lock,
                # The pods' containers go right after the kubelet, which would restart them.
                undo=self._stop_containers,
            ),
            steps.Component(
                "kube-proxy",
                lambda: [
                    str(self.bin / "kube-proxy"),
                    f"--config={self._kube_proxy_config(kc / 'kube-proxy.kubeconfig')}",
                ],
                env=lambda: path_env,
                ready=(steps.Readiness("kube-proxy's rules", _proxy_healthy, 30),),
                undo=self._cleanup_proxy,
            ),
            steps.Component(
                "coredns",
                lambda: [
                    str(self.bin / "coredns"),
                    "-conf",
                    str(self._corefile(kc / "coredns.kubeconfig")),
                ],
                env=lambda: path_env,
                ready=(
                    steps.Readiness(
                        "CoreDNS", lambda: _http_ok("http://127.0.0.1:18053/health"), 30
                    ),
                ),
            ),
            steps.Component(
                "metrics-server",
                lambda: [
                    str(self.bin / "metrics-server"),
                    f"--kubeconfig={kc / 'metrics-server.kubeconfig'}",
                    f"--authentication-kubeconfig={kc / 'metrics-server.kubeconfig'}",
                    f"--authorization-kubeconfig={kc / 'metrics-server.kubeconfig'}",
                    f"--bind-address={NODE_IP}",
                    f"--secure-port={ms_port}",
                    f"--cert-dir={self.dir / 'metrics-server'}",
                    "--kubelet-insecure-tls",
                    "--kubelet-preferred-address-types=InternalIP",
                    "--kubelet-use-node-status-port",
                    "--metric-resolution=15s",
                    "--v=1",
                ],
                env=lambda: path_env,
                then=lambda _: api().create_all(addon_objects(ms_port)),
            ),
        ]

    def _prepare(self, server: str) -> None:
        """Before containerd: claim the machine's node, set its sysctls, make the
        bridge and the CNI config, the node's certificates and kubeconfigs."""
        problems = preflight()
        if problems:
            raise SystemExit(
                "devcluster: cannot start the real node:\n  - "
                + "\n  - ".join(problems)
                + "\n(or start with fake nodes only: ASOCIAL_DEVCLUSTER_REAL_NODE=0)"
            )
        self._claim()
        data = self._load()
        data["sysctls"] = {name: _read_sysctl(name) for name in (*SYSCTLS, *KUBELET_SYSCTLS)}
        data["paths_existed"] = {str(p): p.exists() for p in SHARED_PATHS}
        self._save(data)
        for name, value in SYSCTLS.items():
            _write_sysctl(name, value)
        self._network(data)
        self._certs()
        for name in ("kubelet", "kube-proxy", "coredns", "metrics-server"):
            kubeconfig.write(
                self.dir / f"{name}.kubeconfig",
                server=server,
                ca_cert=self.pki.ca_cert,
                client_cert=self.pki.client_cert(name),
                client_key=self.pki.client_key(name),
                user=name,
                embed=False,
            )

    def _network(self, data: dict[str, Any]) -> None:
        if _run("ip", "link", "show", BRIDGE, check=False).returncode != 0:
            _run("ip", "link", "add", BRIDGE, "type", "bridge")
            data["bridge_created"] = True
            self._save(data)
        _write_sysctl(f"net/ipv6/conf/{BRIDGE}/disable_ipv6", "1")
        _run("ip", "addr", "replace", f"{NODE_IP}/24", "dev", BRIDGE)
        _run("ip", "link", "set", BRIDGE, "up")
        self.cni_conf.mkdir(parents=True, exist_ok=True)
        self.cni_bin.mkdir(parents=True, exist_ok=True)
        for plugin in ("bridge", "host-local", "loopback", "portmap"):
            target = self.cni_bin / plugin
            if not target.exists():
                target.symlink_to(self.bin / plugin)
        conf = {
            "cniVersion": "1.0.0",
            "name": "devcluster",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    "ipMasq": True,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": NODE_CIDR, "gateway": NODE_IP}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(self.dir / "cni" / "ipam"),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }
        (self.cni_conf / "10-devcluster.conflist").write_text(json.dumps(conf, indent=1))

    def _certs(self) -> None:
        certs.node_certs(self.pki, NODE_NAME, NODE_IP)

    def _containerd(self) -> Path:
        base = self.dir / "containerd"
        (base / "root").mkdir(parents=True, exist_ok=True)
        (base / "state").mkdir(parents=True, exist_ok=True)
        text = f"""version = 3
root = '{base / "root"}'
state = '{base / "state"}'

[grpc]
  address = '{self.sock}'

[ttrpc]
  address = '{self.sock}.ttrpc'

[debug]
  level = 'warn'

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = '{config.PAUSE_IMAGE}'

  [plugins.'io.containerd.cri.v1.runtime']
    restrict_oom_score_adj = true
    tolerate_missing_hugetlb_controller = true
    disable_hugetlb_controller = true
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = '{self.bin / "runc"}'
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ['{self.cni_bin}']
      conf_dir = '{self.cni_conf}'
"""
        path = base / "config.toml"
        path.write_text(text)
        return path

    def _kubelet_config(self) -> Path:
        cfg = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "containerRuntimeEndpoint": f"unix://{self.sock}",
            "failSwapOn": False,
            "address": NODE_IP,
            "port": 10250,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": 0,
            "tlsCertFile": str(self.pki.client_cert("kubelet-serving")),
            "tlsPrivateKeyFile": str(self.pki.client_key("kubelet-serving")),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(self.pki.ca_cert)},
            },
            "authorization": {"mode": "Webhook"},
            "clusterDNS": [DNS_SERVICE_IP],
            "clusterDomain": CLUSTER_DOMAIN,
            "resolvConf": "/etc/resolv.conf",
            "hairpinMode": "hairpin-veth",
            "serializeImagePulls": False,
            "imageGCHighThresholdPercent": 100,
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
            },
            "cgroupsPerQOS": True,
            "enforceNodeAllocatable": ["pods"],
            "maxPods": 60,
            # A development cluster: a changed ConfigMap or Secret reaches the pods that
            # mount it within seconds (the default sync is every minute), e.g. the
            # Prometheus configuration and rules the Prometheus Operator writes.
            "syncFrequency": "10s",
            "shutdownGracePeriod": "0s",
            "logging": {"format": "text"},
        }
        path = self.dir / "kubelet-config.json"
        path.write_text(json.dumps(cfg, indent=1))
        return path

    def _kube_proxy_config(self, kc: Path) -> Path:
        cfg = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(kc)},
            "mode": "iptables",
            "clusterCIDR": NODE_CIDR,
            "hostnameOverride": NODE_NAME,
            "bindAddress": NODE_IP,
            "healthzBindAddress": f"127.0.0.1:{PROXY_HEALTHZ_PORT}",
            "metricsBindAddress": "127.0.0.1:10249",
            "conntrack": {
                "maxPerCore": 0,
                "min": 0,
                "tcpEstablishedTimeout": "0s",
                "tcpCloseWaitTimeout": "0s",
            },
            "iptables": {"localhostNodePorts": False, "masqueradeAll": False},
            "oomScoreAdj": 0,
        }
        path = self.dir / "kube-proxy-config.json"
        path.write_text(json.dumps(cfg, indent=1))
        return path

    def _corefile(self, kc: Path) -> Path:
        text = f""".:53 {{
    bind {NODE_IP}
    errors
    health 127.0.0.1:18053
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kc}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    forward . /etc/resolv.conf
    cache 30
    loop
}}
"""
        path = self.dir / "Corefile"
        path.write_text(text)
        return path

    # ------------------------------------------------------------------- undo
    def _cleanup_proxy(self) -> list[str]:
        if self._load() and shutil.which("iptables") and (self.bin / "kube-proxy").exists():
            _run(str(self.bin / "kube-proxy"), "--cleanup", check=False)
        return []

    def _undo(self) -> list[str]:
        """After containerd, the last of the node's processes: undo what the node
        changed on the machine, as recorded in ``node.json``."""
        data = self._load()
        if data:
            self._unmount_all()
            self._remove_network(data)
            self._remove_chains()
            self._remove_cgroups()
            for name, value in data.get("sysctls", {}).items():
                if value is not None:
                    _write_sysctl(name, value)
            for path, existed in data.get("paths_existed", {}).items():
                if not existed:
                    shutil.rmtree(path, ignore_errors=True)
        self._release()
        return []

    def _stop_containers(self) -> list[str]:
        """Stop and remove every pod sandbox through CRI, then kill by PID (read from our
        containerd's state) any container or shim still there."""
        if not self._load():
            return []
        state = self.dir / "containerd" / "state" / "io.containerd.runtime.v2.task"
        pids: list[int] = []
        for pidfile in [*state.glob("*/*/init.pid"), *state.glob("*/*/shim.pid")]:
            with contextlib.suppress(OSError, ValueError):
                pids.append(int(pidfile.read_text().strip()))
        crictl = self.bin / "crictl"
        if self.sock.exists() and crictl.exists():
            cri = [str(crictl), "-r", f"unix://{self.sock}"]
            pods = _run(*cri, "pods", "-q", check=False).stdout.split()
            if pods:
                _run(*cri, "--timeout", "20s", "stopp", *pods, check=False)
            _run(*cri, "rmp", "-a", "-f", check=False)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, 9)
        return []

    def _unmount_all(self) -> None:
        prefixes = (str(self.dir) + "/", "/run/containerd/", "/run/netns/cni-")
        for _ in range(3):
            mounts = []
            for line in Path("/proc/self/mounts").read_text().splitlines():
                target = line.split()[1].replace("\\040", " ")
                if target.startswith(prefixes) or target == str(self.kubelet_dir):
                    mounts.append(target)
            if not mounts:
                return
            for target in sorted(mounts, key=len, reverse=True):
                _run("umount", "-l", target, check=False)

    def _remove_network(self, data: dict[str, Any]) -> None:
        netns = Path("/run/netns")
        for ns in netns.glob("cni-*") if netns.is_dir() else []:
            _run("ip", "netns", "delete", ns.name, check=False)
        if data.get("bridge_created"):
            _run("ip", "link", "delete", BRIDGE, check=False)

    def _remove_chains(self) -> None:
        for tool in ("iptables", "ip6tables"):
            if shutil.which(tool) is None:
                continue
            rules = _run(f"{tool}-save", check=False).stdout.splitlines()
            for table, lines in _split_tables(rules):
                for line in lines:
                    if line.startswith("-A ") and any(
                        f"-j {chain}" in line for chain in (*KUBELET_CHAINS, "CNI-")
                    ):
                        _run(tool, "-t", table, "-D", *shlex.split(line[3:]), check=False)
            for chain in KUBELET_CHAINS:
                for table in ("filter", "nat", "mangle"):
                    _run(tool, "-t", table, "-F", chain, check=False)
                    _run(tool, "-t", table, "-X", chain, check=False)
            for table in ("filter", "nat"):
                listing = _run(tool, "-t", table, "-S", check=False).stdout.splitlines()
                for line in listing:
                    if line.startswith("-N CNI-"):
                        chain = line.split()[1]
                        _run(tool, "-t", table, "-F", chain, check=False)
                        _run(tool, "-t", table, "-X", chain, check=False)

    def _remove_cgroups(self) -> None:
        base = Path("/sys/fs/cgroup")
        for hierarchy in base.iterdir() if base.is_dir() else []:
            top = hierarchy / "kubepods"
            if not top.is_dir():
                continue
            for path in sorted(top.rglob("*"), key=lambda p: len(str(p)), reverse=True):
                if path.is_dir():
                    with contextlib.suppress(OSError):
                        path.rmdir()
            with contextlib.suppress(OSError):
                top.rmdir()


def _http_ok(url: str) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200, f"{url}: {response.status}"
    except OSError as exc:
        return False, f"{url}: {exc}"


def _proxy_healthy() -> tuple[bool, str]:
    ok, detail = _http_ok(f"http://127.0.0.1:{PROXY_HEALTHZ_PORT}/healthz")
    if not ok:
        return False, detail
    rules = _run("iptables", "-t", "nat", "-S", "OUTPUT", check=False).stdout
    return "KUBE-SERVICES" in rules, "no KUBE-SERVICES jump in nat OUTPUT yet"


def _split_tables(lines: list[str]) -> list[tuple[str, list[str]]]:
    tables: list[tuple[str, list[str]]] = []
    for line in lines:
        if line.startswith("*"):
            tables.append((line[1:], []))
        elif tables:
            tables[-1][1].append(line)
    return tables


def addon_objects(metrics_port: int) -> list[tuple[str, dict[str, Any]]]:
    """kube-dns and metrics-server Services (endpoints on the node, where they run as
    processes) and the metrics APIService, as (API path, object) pairs."""
    system = "/api/v1/namespaces/kube-system"
    slices = "/apis/discovery.k8s.io/v1/namespaces/kube-system/endpointslices"
    dns_ports = [
        {"name": "dns", "port": 53, "protocol": "UDP"},
        {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
    ]
    labels = {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}
    objects: list[tuple[str, dict[str, Any]]] = [
        (
            f"{system}/services",
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": labels},
                "spec": {"clusterIP": DNS_SERVICE_IP, "ports": dns_ports},
            },
        ),
        (
            slices,
            _slice(
                "kube-dns",
                [{"name": p["name"], "port": 53, "protocol": p["protocol"]} for p in dns_ports],
            ),
        ),
        (
            f"{system}/services",
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "metrics-server", "namespace": "kube-system"},
                "spec": {"ports": [{"name": "https", "port": 443, "protocol": "TCP"}]},
            },
        ),
        (
            slices,
            _slice("metrics-server", [{"name": "https", "port": metrics_port, "protocol": "TCP"}]),
        ),
        (
            "/apis/apiregistration.k8s.io/v1/apiservices",
            {
                "apiVersion": "apiregistration.k8s.io/v1",
                "kind": "APIService",
                "metadata": {"name": "v1beta1.metrics.k8s.io"},
                "spec": {
                    "group": "metrics.k8s.io",
                    "version": "v1beta1",
                    "groupPriorityMinimum": 100,
                    "versionPriority": 100,
                    "insecureSkipTLSVerify": True,
                    "service": {
                        "name": "metrics-server",
                        "namespace": "kube-system",
                        "port": 443,
                    },
                },
            },
        ),
    ]
    return objects


def _slice(service: str, ports: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service}-node",
            "namespace": "kube-system",
            "labels": {
                "kubernetes.io/service-name": service,
                "endpointslice.kubernetes.io/managed-by": "devcluster.asocial.io",
            },
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [NODE_IP], "conditions": {"ready": True}}],
        "ports": ports,
    }

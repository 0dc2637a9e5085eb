"""Lifecycle of one devcluster instance: ``up``, ``down``, ``status``."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from . import (
    appimages,
    build,
    certs,
    config,
    ctr,
    edge,
    images,
    kubeconfig,
    log,
    manifests,
    monitoring,
    node,
    process,
    steps,
)
from .api import ApiClient
from .process import Proc

PORT_ENV = {
    "apiserver": "ASOCIAL_DEVCLUSTER_APISERVER_PORT",
    "etcd": "ASOCIAL_DEVCLUSTER_ETCD_PORT",
    "etcd_peer": "ASOCIAL_DEVCLUSTER_ETCD_PEER_PORT",
    "controller_manager": "ASOCIAL_DEVCLUSTER_CONTROLLER_MANAGER_PORT",
    "scheduler": "ASOCIAL_DEVCLUSTER_SCHEDULER_PORT",
    "kwok": "ASOCIAL_DEVCLUSTER_KWOK_PORT",
}

SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
POD_CIDR = "10.244.0.0/16"


_log = log.scoped()


def _choose_ports() -> dict[str, int]:
    """Ports from the environment, or free loopback ports picked by the kernel."""
    ports: dict[str, int] = {}
    with ExitStack() as stack:
        for key, env in PORT_ENV.items():
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            wanted = int(os.environ.get(env, "0") or "0")
            try:
                sock.bind(("127.0.0.1", wanted))
            except OSError as exc:
                raise SystemExit(f"devcluster: port {wanted} ({env}) is not free: {exc}") from exc
            ports[key] = int(sock.getsockname()[1])
    return ports


class Cluster:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root or config.state_dir()
        self.pki = certs.Pki(self.root / "pki")
        self.logs = self.root / "logs"
        self.state_file = self.root / "state.json"
        self.kubeconfig = self.root / "kubeconfig"

    # ----------------------------------------------------------------- state
    def _load(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None
        return data

    def _save(self, data: dict[str, Any]) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(self.state_file)

    def _procs(self, data: dict[str, Any]) -> list[Proc]:
        found = data.get("processes", {})
        names = [c.name for c in self._components(data)]
        return [Proc.from_json(name, found[name]) for name in names if name in found]

    def _expected(self, data: dict[str, Any]) -> int:
        return sum(1 for c in self._components(data) if c.argv is not None)

    def kubectl_path(self) -> Path:
        data = self._load()
        if data and "bin_dir" in data:
            return Path(data["bin_dir"]) / "kubectl"
        return config.bin_dir() / "kubectl"

    # ---------------------------------------------------------------- health
    def healthy(self) -> tuple[bool, str]:
        data = self._load()
        if data is None:
            return False, "not running (no state)"
        procs = self._procs(data)
        dead = [p.name for p in procs if not process.is_alive(p)]
        if len(procs) != self._expected(data) or dead:
            return False, f"components not running: {dead or 'incomplete state'}"
        ok, detail = ApiClient(data["ports"]["apiserver"], self.pki).readyz()
        if not ok:
            return False, f"apiserver not ready: {detail}"
        return True, "ready"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialize up/down of one state dir across processes (e.g. parallel test runs)."""
        self.root.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.root.parent / f".{self.root.name}.lock"
        with lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # -------------------------------------------------------------------- up
    def up(self) -> Path:
        with self._locked():
            return self._up()

    def _up(self) -> Path:
        start = time.monotonic()
        ok, detail = self.healthy()
        if ok:
            running = self._load() or {}
            api = ApiClient(int(running["ports"]["apiserver"]), self.pki)
            reclaimed = manifests.reclaim_volumes(api)
            if reclaimed:
                _log(f"returned {len(reclaimed)} released PersistentVolumes to the pool")
            _log(f"already running and ready; kubeconfig: {self.kubeconfig}")
            return self.kubeconfig
        if self._load() is not None:
            _log(f"stale state ({detail}); cleaning up first")
            self._down(quiet=True)
        if node.enabled():
            node.Node(self.root, self.pki).check_available()
        if not build.is_built():
            build.build()
        bin_dir = config.bin_dir()
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        ports = _choose_ports()
        data: dict[str, Any] = {
            "version_key": config.VERSION_KEY,
            "bin_dir": str(bin_dir),
            "ports": ports,
            "processes": {},
            "kubeconfig": str(self.kubeconfig),
            "real_node": node.enabled(),
        }
        self._save(data)
        try:
            self._start(data)
        except BaseException:
            _log("start failed; stopping what was started")
            self._down(quiet=True, keep_logs=True)
            raise
        _log(
            f"ready in {time.monotonic() - start:.1f}s: https://127.0.0.1:{ports['apiserver']}"
            f"  kubeconfig: {self.kubeconfig}"
        )
        return self.kubeconfig

    def _spawn(
        self, data: dict[str, Any], name: str, argv: list[str], env: dict[str, str] | None = None
    ) -> Proc:
        proc = process.spawn(name, argv, self.logs / f"{name}.log", self.root, env)
        data["processes"][name] = proc.to_json()
        self._save(data)
        return proc

    def _check_alive(self, data: dict[str, Any]) -> None:
        for proc in self._procs(data):
            if not process.is_alive(proc):
                log = self.logs / f"{proc.name}.log"
                tail = ""
                if log.exists():
                    tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
                raise SystemExit(f"devcluster: {proc.name} exited; last log lines:\n{tail}")

    def _wait(self, data: dict[str, Any], what: str, check: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            self._check_alive(data)
            done, last = check()
            if done:
                return
            time.sleep(0.2)
        raise SystemExit(f"devcluster: timed out after {timeout:.0f}s waiting for {what}: {last}")

    @staticmethod
    def _apiserver_address_flags(data: dict[str, Any]) -> list[str]:
        """Where the API server listens and what it publishes as the ``kubernetes`` Service.

        With the real node, pods (an in-cluster operator) reach the API server through
        ``kubernetes.default`` (10.96.0.1:443), which kube-proxy sends to the node's
        bridge address on the host: so it listens on every address and advertises that
        one. Without it nothing runs in a pod, and it stays on loopback, which it may
        not advertise as an endpoint.
        """
        if data.get("real_node"):
            return ["--bind-address=0.0.0.0", f"--advertise-address={certs.NODE_IP}"]
        return [
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            "--endpoint-reconciler-type=none",
        ]

    def _start(self, data: dict[str, Any]) -> None:
        t0 = time.monotonic()
        steps.start(
            self._components(data),
            spawn=lambda name, argv, env: self._spawn(data, name, argv, env),
            wait=lambda r: self._wait(data, r.what, r.check, r.timeout),
            say=_log,
        )
        data["ready_seconds"] = round(time.monotonic() - t0, 1)
        self._save(data)

    def _components(self, data: dict[str, Any]) -> list[steps.Component]:
        """Every process of this cluster in start order: the control plane, kwok, and
        the real node's when it has one. ``up`` starts them, ``down`` stops them."""
        ports: dict[str, int] = data.get("ports", {})
        bin_dir = Path(data.get("bin_dir", config.bin_dir()))
        pki = self.pki
        server = f"https://127.0.0.1:{ports.get('apiserver', 0)}"
        clients: list[ApiClient] = []

        def api() -> ApiClient:  # made once the PKI exists (etcd's prepare makes it)
            if not clients:
                clients.append(ApiClient(ports["apiserver"], pki))
            return clients[0]

        kc = self.root / "kubeconfigs"
        etcd_url = f"http://127.0.0.1:{ports.get('etcd', 0)}"
        peer_url = f"http://127.0.0.1:{ports.get('etcd_peer', 0)}"

        def nodes_ready() -> tuple[bool, str]:
            ready = set(api().ready_nodes())
            return set(manifests.node_names()) <= ready, f"ready nodes: {sorted(ready)}"

        def default_sa() -> tuple[bool, str]:
            found = api().exists("/api/v1/namespaces/default/serviceaccounts/default")
            return found, "default ServiceAccount missing (kube-controller-manager)"

        def component_flags(name: str, port_key: str) -> list[str]:
            config_file = str(kc / f"{name}.kubeconfig")
            return [
                f"--kubeconfig={config_file}",
                f"--authentication-kubeconfig={config_file}",
                f"--authorization-kubeconfig={config_file}",
                "--bind-address=127.0.0.1",
                f"--secure-port={ports[port_key]}",
                f"--cert-dir={self.root / 'pki' / name}",
                "--leader-elect=false",
                "--kube-api-qps=200",
                "--kube-api-burst=400",
                "--profiling=false",
                "--v=1",
            ]

        components = [
            steps.Component(
                "etcd",
                lambda: [
                    str(bin_dir / "etcd"),
                    "--name=devcluster",
                    f"--data-dir={self.root / 'etcd'}",
                    f"--listen-client-urls={etcd_url}",
                    f"--advertise-client-urls={etcd_url}",
                    f"--listen-peer-urls={peer_url}",
                    f"--initial-advertise-peer-urls={peer_url}",
                    f"--initial-cluster=devcluster={peer_url}",
                    "--initial-cluster-state=new",
                    "--auto-compaction-retention=1",
                    "--unsafe-no-fsync=true",
                    "--log-level=warn",
                ],
                prepare=lambda: self._credentials(server),
            ),
            steps.Component(
                "kube-apiserver",
                lambda: [
                    str(bin_dir / "kube-apiserver"),
                    f"--etcd-servers={etcd_url}",
                    *self._apiserver_address_flags(data),
                    f"--secure-port={ports['apiserver']}",
                    f"--cert-dir={self.root / 'pki'}",
                    f"--tls-cert-file={pki.apiserver_cert}",
                    f"--tls-private-key-file={pki.apiserver_key}",
                    f"--client-ca-file={pki.ca_cert}",
                    "--authorization-mode=Node,RBAC",
                    # Kubelets may only change their own Node and their pods (the real node).
                    "--enable-admission-plugins=NodeRestriction",
                    f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                    f"--service-account-key-file={pki.sa_pub}",
                    f"--service-account-signing-key-file={pki.sa_key}",
                    f"--service-cluster-ip-range={certs.SERVICE_CLUSTER_IP_RANGE}",
                    f"--kubelet-client-certificate={pki.client_cert('apiserver-kubelet-client')}",
                    f"--kubelet-client-key={pki.client_key('apiserver-kubelet-client')}",
                    "--kubelet-preferred-address-types=InternalIP,Hostname",
                    # The aggregation layer (metrics-server's metrics.k8s.io).
                    f"--requestheader-client-ca-file={pki.ca_cert}",
                    "--requestheader-allowed-names=front-proxy-client",
                    "--requestheader-username-headers=X-Remote-User",
                    "--requestheader-group-headers=X-Remote-Group",
                    "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                    f"--proxy-client-cert-file={pki.client_cert('front-proxy-client')}",
                    f"--proxy-client-key-file={pki.client_key('front-proxy-client')}",
                    "--enable-aggregator-routing=true",
                    "--allow-privileged=true",
                    "--profiling=false",
                    "--v=1",
                ],
                ready=(steps.Readiness("kube-apiserver /readyz", lambda: api().readyz(), 90),),
                then=lambda _: self._bootstrap(api(), bin_dir),
            ),
            steps.Component(
                "kube-controller-manager",
                lambda: [
                    str(bin_dir / "kube-controller-manager"),
                    *component_flags("kube-controller-manager", "controller_manager"),
                    "--controllers=*",
                    "--use-service-account-credentials=true",
                    f"--root-ca-file={pki.ca_cert}",
                    f"--service-account-private-key-file={pki.sa_key}",
                    f"--cluster-signing-cert-file={pki.ca_cert}",
                    f"--cluster-signing-key-file={pki.ca_key}",
                    f"--service-cluster-ip-range={certs.SERVICE_CLUSTER_IP_RANGE}",
                    "--pv-recycler-minimum-timeout-hostpath=60",
                    # A development cluster: autoscalers decide every 5 s (the default is
                    # 15 s), so a change in load shows in the replica count sooner.
                    "--horizontal-pod-autoscaler-sync-period=5s",
                ],
            ),
            steps.Component(
                "kube-scheduler",
                lambda: [
                    str(bin_dir / "kube-scheduler"),
                    *component_flags("kube-scheduler", "scheduler"),
                ],
            ),
            steps.Component(
                "kwok",
                lambda: [
                    str(bin_dir / "kwok"),
                    f"--kubeconfig={kc / 'kwok.kubeconfig'}",
                    f"--config={config.DEVCLUSTER_DIR / 'kwok' / 'stages.yaml'}",
                    "--manage-all-nodes=false",
                    f"--manage-nodes-with-annotation-selector={manifests.KWOK_ANNOTATION_SELECTOR}",
                    f"--server-address=127.0.0.1:{ports['kwok']}",
                    f"--tls-cert-file={pki.apiserver_cert}",
                    f"--tls-private-key-file={pki.apiserver_key}",
                    "--node-ip=127.0.0.1",
                    f"--node-port={ports['kwok']}",
                    f"--cidr={POD_CIDR}",
                    "--node-lease-duration-seconds=40",
                ],
                ready=(
                    steps.Readiness("kwok nodes Ready", nodes_ready, 60),
                    steps.Readiness("controllers", default_sa, 60),
                ),
            ),
        ]
        if data.get("real_node"):
            components += node.Node(self.root, pki).components(api, server)
            components.append(self._edge(api))
            components.append(self._monitoring(api))
        return components

    def _edge(self, api: Callable[[], ApiClient]) -> steps.Component:
        """Traefik on the real node and the Gateway devcluster-system/devcluster (see
        ``edge``): objects, not a process of ours; they go with the node."""
        return steps.Component(
            "edge",
            None,
            prepare=lambda: api().create_all(edge.objects(*edge.server_certificate(self.root))),
            ready=(
                steps.Readiness("Traefik answering on 127.0.0.1:8080", edge.serving, 90),
                steps.Readiness(
                    "the Gateway devcluster programmed",
                    _judged(
                        api,
                        f"/apis/gateway.networking.k8s.io/v1/namespaces/{edge.NAMESPACE}"
                        f"/gateways/{edge.GATEWAY}",
                        edge.gateway_programmed,
                    ),
                    60,
                ),
            ),
        )

    def _monitoring(self, api: Callable[[], ApiClient]) -> steps.Component:
        """The Prometheus Operator and the Prometheus devcluster-system/devcluster (see
        ``monitoring``): objects, not a process of ours; they go with the node."""
        return steps.Component(
            "monitoring",
            None,
            prepare=lambda: api().create_all(monitoring.objects()),
            ready=(
                steps.Readiness(
                    "Prometheus devcluster available",
                    _judged(
                        api,
                        f"/apis/monitoring.coreos.com/v1/namespaces/{monitoring.NAMESPACE}"
                        f"/prometheuses/{monitoring.PROMETHEUS}",
                        monitoring.available,
                    ),
                    120,
                ),
            ),
        )

    def _credentials(self, server: str) -> None:
        """The PKI, the admin kubeconfig and each component's own."""
        pki = certs.generate(self.root / "pki")
        kubeconfig.write(
            self.kubeconfig,
            server=server,
            ca_cert=pki.ca_cert,
            client_cert=pki.client_cert("admin"),
            client_key=pki.client_key("admin"),
            user="devcluster-admin",
            embed=True,
        )
        for name in ("kube-controller-manager", "kube-scheduler", "kwok"):
            kubeconfig.write(
                self.root / "kubeconfigs" / f"{name}.kubeconfig",
                server=server,
                ca_cert=pki.ca_cert,
                client_cert=pki.client_cert(name),
                client_key=pki.client_key(name),
                user=name,
                embed=False,
            )

    def _bootstrap(self, api: ApiClient, bin_dir: Path) -> None:
        """The Gateway API's CRDs, the Prometheus Operator's CRDs and ClusterRoles, fake
        nodes, the StorageClass and the pool of PersistentVolumes."""
        applied = subprocess.run(
            [
                *(str(bin_dir / "kubectl"), f"--kubeconfig={self.kubeconfig}", "apply"),
                *("--server-side", "--field-manager=devcluster"),
                *("-f", str(config.gateway_api_crds())),
                *("-f", str(config.prometheus_operator_manifests())),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if applied.returncode != 0:
            raise SystemExit(
                "devcluster: applying the Gateway API's and the Prometheus Operator's CRDs"
                f" failed:\n{applied.stderr}"
            )
        objects = manifests.bootstrap(self.root / "volumes")
        # The pool's directories exist before any pod mounts them, writable by every uid:
        # hostPath volumes ignore fsGroup, and pods here run as non-root users (Redis as
        # 999 cannot save its data into a root-owned directory, so it cannot shut down).
        for _, obj in objects:
            if obj.get("kind") == "PersistentVolume":
                volume = Path(obj["spec"]["hostPath"]["path"])
                volume.mkdir(parents=True, exist_ok=True)
                volume.chmod(0o777)
        (self.root / "bootstrap.json").write_text(json.dumps([o for _, o in objects], indent=1))
        try:
            api.create_all(objects)
        except (OSError, RuntimeError) as exc:
            raise SystemExit(f"devcluster: creating nodes/storage failed: {exc}") from exc

    # ------------------------------------------------------------------ down
    def down(self, quiet: bool = False) -> bool:
        with self._locked():
            return self._down(quiet=quiet)

    def _down(self, quiet: bool = False, keep_logs: bool = False) -> bool:
        data = self._load()
        if data is None:
            if not quiet:
                _log(f"not running (no state in {self.root})")
            return True
        procs = self._procs(data)
        alive = [p for p in procs if process.is_alive(p)]
        stuck = steps.stop(self._components(data), {p.name: p for p in procs})
        if stuck:
            _log(f"could not stop: {stuck}; keeping state in {self.root}")
            return False
        if keep_logs:
            for child in self.root.iterdir():
                if child.name != "logs":
                    if child.is_dir():
                        shutil.rmtree(child, ignore_errors=True)
                    else:
                        child.unlink(missing_ok=True)
        else:
            shutil.rmtree(self.root, ignore_errors=True)
        if not quiet:
            _log(f"stopped {len(alive)} processes and removed {self.root}")
        return True

    # ---------------------------------------------------------------- images
    def images(self) -> int:
        """Build every local image (cached by content): the node's base images (which
        `up` also imports) and the project's own from its Dockerfiles; import them into
        the running node, if there is one."""
        if not build.is_built():
            build.build()  # the pause image is a binary built with the node's
        for path in [*images.build_all(), *appimages.build_all()]:
            print(path)
        data = self._load()
        if data and data.get("real_node"):
            containerd = node.Node(self.root, self.pki).containerd()
            ctr.import_all(containerd, [*images.node_archives(), *appimages.archives()])
        return 0

    # ---------------------------------------------------------------- status
    def status(self) -> tuple[bool, str]:
        data = self._load()
        if data is None:
            return False, f"devcluster: not running (state dir {self.root})"
        lines = [
            f"state dir:  {self.root}",
            f"kubeconfig: {self.kubeconfig}",
            f"versions:   {data.get('version_key')}",
        ]
        if data.get("real_node"):
            lines.append(f"real node:  {config.NODE_VERSION_KEY}")
        lines.append(f"logs:       {self.logs}/<component>.log")
        all_alive = True
        for proc in self._procs(data):
            alive = process.is_alive(proc)
            all_alive &= alive
            lines.append(f"  {proc.name:<24} pid {proc.pid:<8} {'running' if alive else 'DEAD'}")
        ports = data.get("ports", {})
        lines.append("ports:      " + ", ".join(f"{k}={v}" for k, v in ports.items()))
        api = ApiClient(int(ports.get("apiserver", 0)), self.pki)
        ok, detail = api.readyz()
        lines.append(f"apiserver /readyz: {detail}")
        if ok:
            try:
                nodes = api.get_json("/api/v1/nodes").get("items", [])
                ready = set(api.ready_nodes())
                for node in nodes:
                    name = node["metadata"]["name"]
                    lines.append(f"  node {name:<20} {'Ready' if name in ready else 'NotReady'}")
            except RuntimeError as exc:
                lines.append(f"nodes: {exc}")
        return all_alive and ok, "\n".join(lines)


def _judged(
    api: Callable[[], ApiClient],
    path: str,
    judge: Callable[[dict[str, Any] | None], tuple[bool, str]],
) -> Callable[[], tuple[bool, str]]:
    """A readiness check: the object at ``path`` as ``judge`` sees it (not found yet: not
    ready, and why)."""

    def check() -> tuple[bool, str]:
        try:
            return judge(api().get_json(path))
        except RuntimeError as exc:
            return False, str(exc)

    return check

"""The devcluster's real node: pods run in real containers (containerd + runc), with a
CNI bridge, kube-proxy Services, CoreDNS, volumes, probes, OOM kills, graceful deletion
and metrics, exactly what the operator's workloads rely on."""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures import processes
from tests.fixtures.devcluster import DEVCLUSTER, KUBECONFIG_ENV, Kubectl, devcluster

pytestmark = pytest.mark.devcluster

REDIS_IMAGE = "devcluster.local/redis:7"
PYTHON_IMAGE = "devcluster.local/python:3.11"
NODE = "devcluster-node"


@pytest.fixture(scope="module", autouse=True)
def real_node(kubectl: Kubectl) -> None:
    if os.environ.get(KUBECONFIG_ENV):
        pytest.skip("an external cluster: the devcluster's real node is not there")
    node = json.loads(kubectl("get", "node", NODE, "-o", "json").stdout)
    ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert ready, node["status"]["conditions"]
    assert ready[0]["status"] == "True", node["status"]["conditions"]


@pytest.fixture
def ns(kubectl: Kubectl) -> Iterator[str]:
    name = f"rn-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        kubectl("delete", "namespace", name, "--wait=false")


def apply(kubectl: Kubectl, ns: str, *objects: dict[str, Any]) -> None:
    manifest = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(manifest))


def pod(name: str, *containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        # No node selector or toleration: an ordinary pod runs on the real node.
        "spec": {"containers": list(containers), **spec},
    }


def container(name: str, image: str = REDIS_IMAGE, **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": image, "imagePullPolicy": "Never", **fields}


def get(kubectl: Kubectl, ns: str, kind: str, name: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(kubectl("get", "-n", ns, kind, name, "-o", "json").stdout)
    return out


def wait_for(check: Callable[[], Any], what: str, timeout: float = 90) -> Any:
    """``processes.wait_for``, polling every half second."""
    return processes.wait_for(check, what, timeout, tolerate=(AssertionError,), interval=0.5)


def ready(kubectl: Kubectl, ns: str, name: str, timeout: float = 90) -> dict[str, Any]:
    kubectl("wait", "-n", ns, "--for=condition=Ready", f"pod/{name}", f"--timeout={timeout}s",
            timeout=timeout + 10)  # fmt: skip
    return get(kubectl, ns, "pod", name)


def test_a_redis_pod_runs_answers_exec_and_logs(kubectl: Kubectl, ns: str) -> None:
    apply(kubectl, ns, pod("redis", container("redis", ports=[{"containerPort": 6379}])))
    started = time.monotonic()
    body = ready(kubectl, ns, "redis")
    print(f"pod Ready {time.monotonic() - started:.1f}s after apply")
    assert body["spec"]["nodeName"] == NODE
    assert body["status"]["podIP"].startswith("10.88.0.")
    assert kubectl("exec", "-n", ns, "redis", "--", "redis-cli", "ping").stdout.strip() == "PONG"
    logs = kubectl("logs", "-n", ns, "redis").stdout
    assert "Ready to accept connections" in logs


def test_pods_coming_and_going_change_no_address_on_the_host(kubectl: Kubectl, ns: str) -> None:
    """A browser on the host (the demo's, the tests') watches the host's addresses and
    fails the requests it is connecting when one changes (ERR_NETWORK_CHANGED): a pod's
    veth or the bridge must not add or remove any (IPv6 link-local ones included)."""
    monitor = subprocess.Popen(
        ["ip", "-o", "monitor", "address"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        apply(kubectl, ns, pod("churn", container("redis")))
        ready(kubectl, ns, "churn")
        kubectl("delete", "-n", ns, "pod", "churn", "--grace-period=1", "--wait=true",
                timeout=60)  # fmt: skip
    finally:
        monitor.terminate()
        out, _ = monitor.communicate(timeout=10)
    changes = [line for line in out.splitlines() if "veth" in line or "asocial0" in line]
    assert changes == [], changes


def test_a_service_routes_from_the_host_and_by_dns_name_from_another_pod(
    kubectl: Kubectl, ns: str
) -> None:
    apply(
        kubectl,
        ns,
        pod("backend", container("redis", ports=[{"containerPort": 6379}])),
        pod("client", container("sh", command=["sleep", "3600"])),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "backend"},
            "spec": {"selector": {"app": "backend"}, "ports": [{"port": 6379}]},
        },
    )
    ready(kubectl, ns, "backend")
    ready(kubectl, ns, "client")
    ip = get(kubectl, ns, "service", "backend")["spec"]["clusterIP"]

    def from_host() -> bool:
        out = subprocess.run(
            ["redis-cli", "-h", ip, "ping"], capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip() == "PONG"

    wait_for(from_host, f"PONG from the ClusterIP {ip} on the host", timeout=30)
    name = f"backend.{ns}.svc.cluster.local"
    out = kubectl("exec", "-n", ns, "client", "--", "redis-cli", "-h", name, "ping")
    assert out.stdout.strip() == "PONG"


def test_a_claims_data_survives_deleting_the_pod(kubectl: Kubectl, ns: str) -> None:
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    volume = [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
    mount = [{"name": "data", "mountPath": "/data"}]
    redis = container("redis", command=["redis-server", "--dir", "/data"], volumeMounts=mount)
    apply(kubectl, ns, claim, pod("store", redis, volumes=volume))
    ready(kubectl, ns, "store")
    kubectl("exec", "-n", ns, "store", "--", "redis-cli", "set", "greeting", "survives")
    kubectl("exec", "-n", ns, "store", "--", "redis-cli", "save")
    kubectl("delete", "-n", ns, "pod", "store", "--wait=true", timeout=120)
    apply(kubectl, ns, pod("store", redis, volumes=volume))
    ready(kubectl, ns, "store")
    out = kubectl("exec", "-n", ns, "store", "--", "redis-cli", "get", "greeting")
    assert out.stdout.strip() == "survives"


def test_a_container_over_its_memory_limit_is_oom_killed_and_restarted(
    kubectl: Kubectl, ns: str
) -> None:
    hog = container(
        "hog",
        PYTHON_IMAGE,
        command=["python3", "-c", "import time; b = bytearray(200 << 20); time.sleep(60)"],
        resources={"limits": {"memory": "64Mi", "cpu": "500m"}},
    )
    apply(kubectl, ns, pod("hog", hog))

    def oom_restarted() -> dict[str, Any] | None:
        statuses = get(kubectl, ns, "pod", "hog")["status"].get("containerStatuses", [])
        if not statuses or statuses[0]["restartCount"] < 1:
            return None
        return statuses[0]

    status = wait_for(oom_restarted, "an OOM kill and a restart", timeout=120)
    terminated = status["lastState"]["terminated"]
    assert terminated["reason"] == "OOMKilled", terminated
    assert terminated["exitCode"] == 137


def test_a_failing_liveness_probe_restarts_the_container(kubectl: Kubectl, ns: str) -> None:
    probe = {"exec": {"command": ["false"]}, "periodSeconds": 1, "failureThreshold": 2}
    apply(kubectl, ns, pod("sick", container("redis", livenessProbe=probe)))

    def restarted() -> bool:
        statuses = get(kubectl, ns, "pod", "sick")["status"].get("containerStatuses", [])
        return bool(statuses) and statuses[0]["restartCount"] >= 1

    wait_for(restarted, "a restart by the liveness probe", timeout=90)
    events = kubectl("get", "events", "-n", ns, "-o", "json").stdout
    assert "Liveness probe failed" in events


def test_deleting_a_pod_sends_sigterm_and_honours_the_grace_period(
    kubectl: Kubectl, ns: str, tmp_path: Path
) -> None:
    outbox = tmp_path / "term"
    outbox.mkdir()
    outbox.chmod(0o777)
    volume = [{"name": "out", "hostPath": {"path": str(outbox), "type": "Directory"}}]
    mount = [{"name": "out", "mountPath": "/out"}]
    polite = container(
        "polite",
        command=["sh", "-c", "trap 'echo TERM > /out/polite; exit 0' TERM; "
                             "while true; do sleep 0.1; done"],
        volumeMounts=mount,
    )  # fmt: skip
    stubborn = container(
        "stubborn",
        command=["sh", "-c", "trap 'echo TERM > /out/stubborn' TERM; "
                             "while true; do sleep 0.1; done"],
        volumeMounts=mount,
    )  # fmt: skip
    apply(
        kubectl,
        ns,
        pod("polite", polite, volumes=volume, terminationGracePeriodSeconds=30),
        pod("stubborn", stubborn, volumes=volume, terminationGracePeriodSeconds=4),
    )
    ready(kubectl, ns, "polite")
    ready(kubectl, ns, "stubborn")
    started = time.monotonic()
    kubectl("delete", "-n", ns, "pod", "polite", "--wait=true", timeout=60)
    polite_s = time.monotonic() - started
    started = time.monotonic()
    kubectl("delete", "-n", ns, "pod", "stubborn", "--wait=true", timeout=60)
    stubborn_s = time.monotonic() - started
    print(f"polite pod gone in {polite_s:.1f}s, stubborn (grace 4 s) in {stubborn_s:.1f}s")
    assert (outbox / "polite").read_text().strip() == "TERM"
    assert (outbox / "stubborn").read_text().strip() == "TERM"
    assert polite_s < 4, "a pod that exits on SIGTERM must not wait out its grace period"
    assert 4 <= stubborn_s < 15, "a pod ignoring SIGTERM is killed after its grace period"


def test_kubectl_top_reports_pod_metrics(kubectl: Kubectl, ns: str) -> None:
    apply(kubectl, ns, pod("measured", container("redis")))
    ready(kubectl, ns, "measured")

    def numbers() -> str | None:
        out = kubectl("top", "pod", "-n", ns, "measured", "--no-headers", check=False)
        return out.stdout if out.returncode == 0 and out.stdout.strip() else None

    line = wait_for(numbers, "kubectl top pod", timeout=120)
    assert re.match(r"measured\s+\d+m\s+\d+Mi", line), line


def test_the_kubelet_may_change_only_its_own_node(kubectl: Kubectl, ns: str) -> None:
    """Its own client certificate puts it under the Node authorizer and NodeRestriction."""
    state = Path(kubectl.kubeconfig).parent
    as_kubelet = Kubectl(kubectl.binary, str(state / "node" / "kubelet.kubeconfig"))
    whoami = as_kubelet("auth", "whoami", "-o", "json").stdout
    assert "system:node:devcluster-node" in whoami
    other = as_kubelet("label", "node", "kwok-node-0", "stolen=yes", check=False)
    assert other.returncode != 0
    assert "forbidden" in other.stderr.lower(), other.stderr
    # NodeRestriction: not even on its own Node may it set restricted labels.
    own = as_kubelet(
        "label", "node", NODE, "node-restriction.kubernetes.io/elevated=yes", check=False
    )
    assert own.returncode != 0
    assert "forbidden" in own.stderr.lower(), own.stderr
    kubectl("create", "secret", "generic", "-n", ns, "private", "--from-literal=k=v")
    read = as_kubelet("get", "secret", "-n", ns, "private", check=False)
    assert read.returncode != 0
    assert "forbidden" in read.stderr.lower(), read.stderr


def test_a_second_cluster_is_told_the_real_node_is_taken(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASOCIAL_DEVCLUSTER_")}
    env["ASOCIAL_DEVCLUSTER_DIR"] = str(tmp_path / "second")
    env["ASOCIAL_DEVCLUSTER_PVS"] = "1"
    result = subprocess.run(
        [str(DEVCLUSTER), "up"], env=env, capture_output=True, text=True, timeout=240, check=False
    )
    try:
        assert result.returncode != 0, "a second real node was started"
        assert "real node is taken" in result.stderr, result.stderr[-2000:]
        assert "ASOCIAL_DEVCLUSTER_REAL_NODE=0" in result.stderr
    finally:
        devcluster("down", env=env, timeout=120)


def _leftovers() -> list[str]:
    """What of the real node is still on the machine: processes, mounts, the bridge,
    network namespaces, iptables chains and cgroups it made."""
    found = []
    for pid_dir in Path("/proc").glob("[0-9]*"):
        try:
            exe = os.readlink(pid_dir / "exe")
        except OSError:
            continue
        if "/devcluster/" in exe and Path(exe).name in (
            "kubelet", "containerd", "containerd-shim-runc-v2", "kube-proxy", "coredns",
            "metrics-server", "pause",
        ):  # fmt: skip
            found.append(f"process {pid_dir.name} {exe}")
    for line in Path("/proc/self/mounts").read_text().splitlines():
        target = line.split()[1]
        if "/devcluster/state/node" in target or target.startswith(
            ("/run/containerd/", "/run/netns/cni-")
        ):
            found.append(f"mount {target}")
    if subprocess.run(["ip", "link", "show", "asocial0"], capture_output=True).returncode == 0:
        found.append("bridge asocial0")
    for table in ("filter", "nat"):
        rules = subprocess.run(["iptables", "-t", table, "-S"], capture_output=True, text=True)
        found += [f"iptables {table}: {r}" for r in rules.stdout.splitlines()
                  if re.search(r"KUBE-|CNI-", r)]  # fmt: skip
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        if (hierarchy / "kubepods").exists():
            found.append(f"cgroup {hierarchy / 'kubepods'}")
    return found


EDGE_PORTS = (8080, 8443, 9080)  # the Gateway's listeners, Traefik's health


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _edge_answers(ca: str) -> bool:
    """Whether Traefik answers HTTP over TLS on the HTTPS listener with a certificate the
    edge CA signed (any status: which routes exist is not the point)."""
    context = ssl.create_default_context(cafile=ca)
    try:
        with urllib.request.urlopen("https://127.0.0.1:8443/", context=context, timeout=5):
            return True
    except urllib.error.HTTPError:
        return True


@pytest.mark.last
def test_down_leaves_nothing_of_the_node_behind_and_up_brings_it_back(kubectl: Kubectl) -> None:
    """Runs after every other test: the main cluster goes down and comes back up (warm),
    its edge too, under the same CA."""
    state = Path(kubectl.kubeconfig).parent
    recorded = json.loads((state / "node" / "node.json").read_text())["sysctls"]
    assert _leftovers(), "the node is up, so it must hold processes, a bridge and rules"
    ca = devcluster("ca").strip()
    pem = Path(ca).read_text()
    assert _edge_answers(ca)
    devcluster("down", timeout=180)
    left = _leftovers()
    assert left == [], left
    assert [p for p in EDGE_PORTS if _listening(p)] == []
    now = {name: Path("/proc/sys", name).read_text().strip() for name in recorded}
    assert now == {k: v for k, v in recorded.items() if v is not None}, "sysctls not restored"
    started = time.monotonic()
    devcluster("up", timeout=600)
    print(f"warm up to a Ready real node: {time.monotonic() - started:.1f}s")
    node = json.loads(kubectl("get", "node", NODE, "-o", "json").stdout)
    assert any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])
    assert devcluster("ca").strip() == ca
    assert Path(ca).read_text() == pem  # a browser told to trust it goes on trusting it
    assert _edge_answers(ca)

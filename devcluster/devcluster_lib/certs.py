"""PKI for one devcluster instance, generated with the ``openssl`` command line tool."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"
KUBERNETES_SERVICE_IP = "10.96.0.1"
# The real node's bridge address: pods reach the host, and so the API server, there.
NODE_IP = "10.88.0.1"
CERT_DAYS = "3650"

APISERVER_SANS = (
    "DNS:localhost",
    "DNS:kubernetes",
    "DNS:kubernetes.default",
    "DNS:kubernetes.default.svc",
    "DNS:kubernetes.default.svc.cluster.local",
    "IP:127.0.0.1",
    f"IP:{KUBERNETES_SERVICE_IP}",
    f"IP:{NODE_IP}",
)


@dataclass(frozen=True)
class ClientCert:
    """A client certificate: CN is the user name, O the groups."""

    name: str
    common_name: str
    organization: str | None = None


CLIENTS = (
    ClientCert("admin", "devcluster-admin", "system:masters"),
    ClientCert("kube-controller-manager", "system:kube-controller-manager"),
    ClientCert("kube-scheduler", "system:kube-scheduler"),
    ClientCert("kwok", "devcluster-kwok", "system:masters"),
    ClientCert("apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters"),
    # The aggregation layer's client certificate (requests proxied to metrics-server).
    ClientCert("front-proxy-client", "front-proxy-client"),
)


class Pki:
    """Paths of the generated key material inside ``<state>/pki``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def apiserver_cert(self) -> Path:
        return self.root / "apiserver.crt"

    @property
    def apiserver_key(self) -> Path:
        return self.root / "apiserver.key"

    @property
    def sa_key(self) -> Path:
        return self.root / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.root / "sa.pub"

    def client_cert(self, name: str) -> Path:
        return self.root / f"{name}.crt"

    def client_key(self, name: str) -> Path:
        return self.root / f"{name}.key"

    def complete(self) -> bool:
        paths = [self.ca_cert, self.ca_key, self.apiserver_cert, self.apiserver_key]
        paths += [self.sa_key, self.sa_pub]
        for client in CLIENTS:
            paths += [self.client_cert(client.name), self.client_key(client.name)]
        return all(p.is_file() for p in paths)


def _openssl(*args: str, cwd: Path) -> None:
    exe = shutil.which("openssl")
    if exe is None:
        raise SystemExit("devcluster: the `openssl` command is required (apt-get install openssl)")
    result = subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"devcluster: openssl {' '.join(args)} failed:\n{result.stderr}")


def _ec_key(path: Path, cwd: Path) -> None:
    _openssl(
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        str(path),
        cwd=cwd,
    )


def _sign(
    pki: Pki, key: Path, cert: Path, subject: str, extensions: str, *, cwd: Path | None = None
) -> None:
    cwd = cwd or pki.root
    ext_file = cert.with_suffix(".ext")
    ext_file.write_text(extensions)
    csr = cert.with_suffix(".csr")
    _openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr), cwd=cwd)
    _openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(pki.ca_cert),
        "-CAkey",
        str(pki.ca_key),
        "-set_serial",
        f"0x{secrets.token_hex(16)}",
        "-days",
        CERT_DAYS,
        "-sha256",
        "-extfile",
        str(ext_file),
        "-out",
        str(cert),
        cwd=cwd,
    )
    csr.unlink()
    ext_file.unlink()


def _sa_key_pair(pki: Pki) -> None:
    # ServiceAccount tokens are signed with ES256 (cheaper to generate than RSA).
    _ec_key(pki.sa_key, pki.root)
    _openssl("pkey", "-in", str(pki.sa_key), "-pubout", "-out", str(pki.sa_pub), cwd=pki.root)


def _key_and_cert(pki: Pki, key: Path, cert: Path, subject: str, extensions: str) -> None:
    _ec_key(key, pki.root)
    _sign(pki, key, cert, subject, extensions)


def node_certs(pki: Pki, node_name: str, node_ip: str) -> None:
    """Certificates of the real node's components (made once per state dir): the
    kubelet's client (Node authorizer identity) and serving certificates, kube-proxy's
    (bound to ``system:node-proxier`` by default RBAC), CoreDNS's and metrics-server's."""
    leaf = (
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
    )
    client = f"{leaf}extendedKeyUsage=clientAuth\n"
    wanted = [
        ("kubelet", f"/O=system:nodes/CN=system:node:{node_name}", client),
        (
            "kubelet-serving",
            f"/CN={node_name}",
            f"{leaf}extendedKeyUsage=serverAuth\nsubjectAltName=DNS:{node_name},IP:{node_ip}\n",
        ),
        ("kube-proxy", "/CN=system:kube-proxy", client),
        # Devcluster add-ons run as processes with broad rights (they are not pods).
        ("coredns", "/O=system:masters/CN=devcluster-coredns", client),
        ("metrics-server", "/O=system:masters/CN=devcluster-metrics-server", client),
    ]
    todo = [w for w in wanted if not pki.client_cert(w[0]).exists()]
    with ThreadPoolExecutor(max_workers=4) as pool:
        jobs = [
            pool.submit(
                _key_and_cert, pki, pki.client_key(name), pki.client_cert(name), subject, ext
            )
            for name, subject, ext in todo
        ]
        for job in jobs:
            job.result()
    for name, _, _ in todo:
        pki.client_key(name).chmod(0o600)


def generate(root: Path) -> Pki:
    """Create CA, apiserver serving cert, client certs and the service-account key pair."""
    pki = Pki(root)
    if pki.complete():
        return pki
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)
    _ec_key(pki.ca_key, root)
    _openssl(
        "req", "-x509", "-new", "-key", str(pki.ca_key), "-subj", "/CN=devcluster-ca",
        "-days", CERT_DAYS, "-sha256",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        "-out", str(pki.ca_cert), cwd=root,
    )  # fmt: skip
    leaf = (
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
    )
    signing: list[tuple[Path, Path, str, str]] = [
        (
            pki.apiserver_key,
            pki.apiserver_cert,
            "/CN=kube-apiserver",
            f"{leaf}extendedKeyUsage=serverAuth\nsubjectAltName={','.join(APISERVER_SANS)}\n",
        )
    ]
    for client in CLIENTS:
        subject = f"/CN={client.common_name}"
        if client.organization:
            subject = f"/O={client.organization}{subject}"
        signing.append(
            (
                pki.client_key(client.name),
                pki.client_cert(client.name),
                subject,
                f"{leaf}extendedKeyUsage=clientAuth\n",
            )
        )
    # Independent keys and certificates are made in parallel: openssl is CPU-bound.
    with ThreadPoolExecutor(max_workers=4) as pool:
        jobs = [pool.submit(_sa_key_pair, pki)]
        jobs += [pool.submit(_key_and_cert, pki, *args) for args in signing]
        for job in jobs:
            job.result()
    for path in root.iterdir():
        if path.suffix == ".key":
            path.chmod(0o600)
    return pki


def _new_ca(pki: Pki, common_name: str) -> None:
    pki.root.mkdir(parents=True, exist_ok=True)
    pki.root.chmod(0o700)
    _ec_key(pki.ca_key, pki.root)
    _openssl(
        "req", "-x509", "-new", "-key", str(pki.ca_key), "-subj", f"/CN={common_name}",
        "-days", CERT_DAYS, "-sha256",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        "-out", str(pki.ca_cert), cwd=pki.root,
    )  # fmt: skip
    pki.ca_key.chmod(0o600)


def edge_ca(root: Path) -> Pki:
    """The CA of the devcluster's edge (its HTTPS listener), made once and kept: clients
    told to trust it keep trusting it across clusters."""
    pki = Pki(root)
    if not (pki.ca_cert.exists() and pki.ca_key.exists()):
        _new_ca(pki, "devcluster edge CA")
    return pki


def edge_server_cert(
    ca: Pki, out: Path, *, dns: tuple[str, ...], ips: tuple[str, ...]
) -> tuple[Path, Path]:
    """A serving certificate for ``dns`` and ``ips`` signed by ``ca``: (cert, key)."""
    out.mkdir(parents=True, exist_ok=True)
    out.chmod(0o700)
    key, cert = out / "tls.key", out / "tls.crt"
    if not (key.exists() and cert.exists()):
        names = ",".join([*(f"DNS:{d}" for d in dns), *(f"IP:{i}" for i in ips)])
        extensions = (
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            f"extendedKeyUsage=serverAuth\nsubjectAltName={names}\n"
        )
        _ec_key(key, out)
        _sign(ca, key, cert, f"/CN={dns[0] if dns else ips[0]}", extensions, cwd=out)
        key.chmod(0o600)
    return cert, key

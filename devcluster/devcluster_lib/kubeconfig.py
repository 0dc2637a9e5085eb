"""Kubeconfig files for the admin user and the control-plane components."""

from __future__ import annotations

import base64
import json
from pathlib import Path


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def write(
    path: Path,
    *,
    server: str,
    ca_cert: Path,
    client_cert: Path,
    client_key: Path,
    user: str,
    embed: bool,
) -> Path:
    """Write a kubeconfig (JSON is valid YAML) and return its path."""
    cluster: dict[str, str]
    auth: dict[str, str]
    if embed:
        cluster = {"server": server, "certificate-authority-data": _b64(ca_cert)}
        auth = {
            "client-certificate-data": _b64(client_cert),
            "client-key-data": _b64(client_key),
        }
    else:
        cluster = {"server": server, "certificate-authority": str(ca_cert)}
        auth = {"client-certificate": str(client_cert), "client-key": str(client_key)}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "devcluster", "cluster": cluster}],
        "users": [{"name": user, "user": auth}],
        "contexts": [
            {
                "name": "devcluster",
                "context": {"cluster": "devcluster", "user": user, "namespace": "default"},
            }
        ],
        "current-context": "devcluster",
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(config, indent=2) + "\n")
    tmp.chmod(0o600)
    tmp.replace(path)
    return path

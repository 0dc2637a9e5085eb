"""Minimal HTTPS client for the devcluster's kube-apiserver (standard library only)."""

from __future__ import annotations

import http.client
import json
import ssl
from typing import Any

from .certs import Pki


class ApiClient:
    def __init__(self, port: int, pki: Pki, user: str = "admin") -> None:
        self.port = port
        ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
        ctx.load_cert_chain(str(pki.client_cert(user)), str(pki.client_key(user)))
        self._ctx = ctx

    def request(
        self,
        path: str,
        timeout: float = 5.0,
        method: str = "GET",
        body: bytes | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, bytes]:
        conn = http.client.HTTPSConnection(
            "127.0.0.1", self.port, context=self._ctx, timeout=timeout
        )
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def create_all(self, objects: list[tuple[str, dict[str, Any]]]) -> None:
        """POST each (collection path, object) over one connection; existing ones are kept."""
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self._ctx, timeout=30)
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        try:
            for path, obj in objects:
                conn.request("POST", path, body=json.dumps(obj).encode(), headers=headers)
                resp = conn.getresponse()
                body = resp.read()
                if resp.status not in (200, 201, 202, 409):
                    name = obj.get("metadata", {}).get("name")
                    raise RuntimeError(f"create {path} {name}: HTTP {resp.status}: {body[:500]!r}")
        finally:
            conn.close()

    def readyz(self) -> tuple[bool, str]:
        """(ready, detail) of ``/readyz``; never raises."""
        try:
            status, body = self.request("/readyz", timeout=3.0)
        except (OSError, http.client.HTTPException) as exc:
            return False, f"unreachable: {exc}"
        text = body.decode(errors="replace").strip()
        return status == 200, text if status != 200 else "ok"

    def get_json(self, path: str) -> dict[str, Any]:
        status, body = self.request(path)
        if status != 200:
            raise RuntimeError(f"GET {path}: HTTP {status}: {body[:300]!r}")
        result: dict[str, Any] = json.loads(body)
        return result

    def ready_nodes(self) -> list[str]:
        nodes = self.get_json("/api/v1/nodes")
        ready: list[str] = []
        for node in nodes.get("items", []):
            for cond in node.get("status", {}).get("conditions", []) or []:
                if cond.get("type") == "Ready" and cond.get("status") == "True":
                    ready.append(node["metadata"]["name"])
        return ready

    def exists(self, path: str) -> bool:
        try:
            status, _ = self.request(path)
        except (OSError, http.client.HTTPException):
            return False
        return status == 200

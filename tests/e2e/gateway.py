"""Reaching an instance through the devcluster's edge as a user does: a host name under
``devcluster.test`` of its own, sent as Host and SNI to Traefik on ``127.0.0.1:8080`` and
``127.0.0.1:8443``, the certificate verified against the devcluster's CA.

Each test's route names its own host: routes without host names all match every request,
and the oldest wins, so one test would reach another's (or the demo's) pods.
"""

from __future__ import annotations

import functools
import re
import ssl
from dataclasses import dataclass
from typing import Any

import httpx

from tests.e2e.conftest import Stack, http_get, wait_for
from tests.fixtures.devcluster import devcluster
from tests.fixtures.users import Route

GATEWAY = {"name": "devcluster", "namespace": "devcluster-system"}
ADDRESS, HTTP_PORT, HTTPS_PORT = "127.0.0.1", 8080, 8443


@functools.cache
def trust() -> ssl.SSLContext:
    """Verifies certificates against the devcluster's CA, and nothing else."""
    return ssl.create_default_context(cafile=ca_path())


@functools.cache
def ca_path() -> str:
    return devcluster("ca").strip()


@dataclass(frozen=True)
class Site:
    """An instance's own host name on the devcluster's Gateway."""

    host: str

    @classmethod
    def of(cls, stack: Stack) -> Site:
        return cls(f"{stack.namespace}.devcluster.test")

    def spec(self, **backend: Any) -> dict[str, Any]:
        """The instance's spec: a route on the Gateway for this host, no Ingress."""
        spec: dict[str, Any] = {
            "ingress": {"enabled": False},
            "gateway": {"parentRefs": [GATEWAY], "hostnames": [self.host]},
        }
        if backend:
            spec["backend"] = backend
        return spec

    @property
    def https(self) -> str:
        return f"https://{self.host}:{HTTPS_PORT}"

    def route(self) -> Route:
        """``wss://<host>:8443/api/chat?...``, connected to Traefik and verified."""
        return Route(
            lambda query: f"wss://{self.host}:{HTTPS_PORT}/api/chat?{query}",
            {"ssl": trust(), "host": ADDRESS, "port": HTTPS_PORT},
        )

    def wait_served(self, timeout: float = 60.0) -> None:
        """Until the Gateway carries requests for this host to a pod. Traefik marks a
        route Accepted when it reads it, and answers 503 "no available server" until it
        has built the route's servers: the route's status is not yet traffic. Asks for
        the page, which the per-client limit does not count."""

        def served() -> bool:
            with httpx.Client(verify=trust(), timeout=5) as http:
                answer = http.get(
                    f"https://{ADDRESS}:{HTTPS_PORT}/",
                    headers={"Host": self.host},
                    extensions={"sni_hostname": self.host},
                )
            return answer.status_code == 200

        wait_for(served, f"the Gateway serving {self.host}", timeout)

    async def get(
        self, http: httpx.AsyncClient, path: str, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """GET ``path`` over HTTPS from Traefik, with this host as SNI and Host."""
        return await http.get(
            f"https://{ADDRESS}:{HTTPS_PORT}{path}",
            headers={"Host": self.host, **(headers or {})},
            extensions={"sni_hostname": self.host},
        )


def pod_metric(stack: Stack, name: str) -> dict[str, float]:
    """One metric's value on each ready backend pod, summed over its labels, by pod name
    (read from the pod itself: the node's host reaches pod IPs)."""
    values: dict[str, float] = {}
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$", re.MULTILINE)
    for pod in stack.pods("backend"):
        status, body = http_get(f"http://{pod['status']['podIP']}:8080/metrics")
        assert status == 200, (pod["metadata"]["name"], status)
        values[pod["metadata"]["name"]] = sum(float(v) for v in pattern.findall(body))
    return values

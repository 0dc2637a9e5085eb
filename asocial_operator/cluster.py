"""The module that calls the Kubernetes API for reconciling (``leader`` holds its own
Lease calls).

Server-side apply under one field manager (``asocial-operator``), deletes of
children that are no longer wanted, reads, status writes and Events. Plain
JSON over the official client's authenticated connection pool: no model
classes, so every kind (including ServiceMonitor) goes through one path.
Blocking calls; the reconciler runs them in worker threads.

Errors raise :class:`ApiError`, which says whether retrying can help. Error
text from the API server is passed on, but never a request body, so Secret
contents cannot reach logs or Events.

Events are posted here rather than with ``kopf.event``: kopf posts from its own event
loop for the object a handler runs for, while these come from worker threads, about the
instance a whole pass reconciled, and must never fail that pass.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import kubernetes

from asocial_operator import naming

logger = logging.getLogger(__name__)

Body = dict[str, Any]

APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
RETRYABLE = frozenset({0, 409, 429, 500, 502, 503, 504})


@dataclasses.dataclass(frozen=True)
class Resource:
    api_version: str
    kind: str
    plural: str

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    def path(self, namespace: str, name: str | None = None, *, subresource: str = "") -> str:
        root = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        path = f"{root}/namespaces/{namespace}/{self.plural}"
        if name is not None:
            path += f"/{name}"
        if subresource:
            path += f"/{subresource}"
        return path


INSTANCE = Resource(naming.API_VERSION, naming.KIND, naming.PLURAL)
EVENT = Resource("v1", "Event", "events")

# Every kind the operator creates, in the order their drift is watched.
CHILDREN: tuple[Resource, ...] = (
    Resource("v1", "ConfigMap", "configmaps"),
    Resource("v1", "Secret", "secrets"),
    Resource("v1", "ServiceAccount", "serviceaccounts"),
    Resource("v1", "Service", "services"),
    Resource("apps/v1", "Deployment", "deployments"),
    Resource("apps/v1", "StatefulSet", "statefulsets"),
    Resource("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
    Resource("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
    Resource("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies"),
    Resource("networking.k8s.io/v1", "Ingress", "ingresses"),
)
SERVICE_MONITOR = Resource("monitoring.coreos.com/v1", "ServiceMonitor", "servicemonitors")
SERVICE_MONITOR_CRD = "servicemonitors.monitoring.coreos.com"
PROMETHEUS_RULE = Resource("monitoring.coreos.com/v1", "PrometheusRule", "prometheusrules")
PROMETHEUS_RULE_CRD = "prometheusrules.monitoring.coreos.com"
HTTPROUTE = Resource("gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes")
HTTPROUTE_CRD = "httproutes.gateway.networking.k8s.io"
# Read, never written: its listeners say whether the route is served over HTTPS.
GATEWAY = Resource("gateway.networking.k8s.io/v1", "Gateway", "gateways")
# Watched for drift (and, for routes, their status); kopf serves the ServiceMonitor,
# PrometheusRule and HTTPRoute watches only while their CRDs exist.
WATCHED: tuple[Resource, ...] = (*CHILDREN, SERVICE_MONITOR, PROMETHEUS_RULE, HTTPROUTE)
BY_KIND: dict[str, Resource] = {r.kind: r for r in (*WATCHED, GATEWAY, INSTANCE)}


class ApiError(Exception):
    """A failed API call; ``retryable`` says whether trying again later can help."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{reason} ({status}): {message}" if status else message)
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def retryable(self) -> bool:
        return self.status in RETRYABLE

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def namespace_terminating(self) -> bool:
        """Nothing can be created in a namespace being deleted; the instance goes with it."""
        return self.status == 403 and "being terminated" in self.message

    @property
    def namespace_gone(self) -> bool:
        return self.status == 404 and self.message.startswith('namespaces "')


def resource_of(manifest: Mapping[str, Any]) -> Resource:
    try:
        return BY_KIND[manifest["kind"]]
    except KeyError:
        raise ValueError(f"the operator does not manage kind {manifest.get('kind')!r}") from None


def load_configuration(kubeconfig: str | None = None) -> kubernetes.client.Configuration:
    """Client configuration: in-cluster credentials when running in a pod, else the kubeconfig.

    ``kubeconfig`` defaults to $KUBECONFIG (read now, not at import time) or ~/.kube/config.
    """
    config = kubernetes.client.Configuration()
    if kubeconfig is None:
        try:
            kubernetes.config.load_incluster_config(client_configuration=config)  # type: ignore[no-untyped-call]
            return config
        except kubernetes.config.ConfigException:
            kubeconfig = os.environ.get("KUBECONFIG") or None
    kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=kubeconfig, client_configuration=config
    )
    return config


def load_api_client(kubeconfig: str | None = None) -> kubernetes.client.ApiClient:
    return kubernetes.client.ApiClient(load_configuration(kubeconfig))


def bearer_token(config: kubernetes.client.Configuration) -> str | None:
    """The bearer token the configuration authenticates with, if any."""
    header = config.get_api_key_with_prefix("BearerToken") or config.get_api_key_with_prefix(
        "authorization"
    )
    if not header:
        return None
    return str(header).split(" ", 1)[-1]


class Api(Protocol):
    """What the reconciler needs from the API; :class:`Cluster` is the real one."""

    def get(self, kind: str, namespace: str, name: str) -> Body | None: ...
    def apply(
        self, manifest: Mapping[str, Any], *, field_manager: str = naming.FIELD_MANAGER
    ) -> Body: ...
    def delete(self, kind: str, namespace: str, name: str) -> bool: ...
    def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> Body: ...
    def post_event(
        self, owner: Mapping[str, Any], *, type: str, reason: str, message: str
    ) -> None: ...
    def crd_exists(self, name: str, *, ttl: float = 60.0) -> bool: ...


class Cluster:
    """Thread-safe blocking access to the API for one operator process."""

    def __init__(
        self,
        api: kubernetes.client.ApiClient,
        *,
        timeout: float = 30.0,
        on_write: Callable[[], None] | None = None,
    ) -> None:
        self._api = api
        self._on_write = on_write
        self._timeout = timeout
        self._crd_cache: dict[str, tuple[float, bool]] = {}
        self._lock = threading.Lock()
        self.writes = 0  # count of mutating requests sent, for tests and benchmarks

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Body | None:
        if method != "GET":
            with self._lock:
                self.writes += 1
            if self._on_write is not None:
                self._on_write()
        headers = {"Accept": "application/json", "Content-Type": content_type}
        serialized = self._api.param_serialize(
            method=method,
            resource_path=path,
            query_params=list((query or {}).items()),
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = self._api.call_api(*serialized, _request_timeout=self._timeout)
        except kubernetes.client.exceptions.ApiException as exc:
            raise ApiError(exc.status or 0, str(exc.reason), _message(exc.body)) from None
        except Exception as exc:  # urllib3 connection errors and timeouts
            raise ApiError(0, "Unreachable", f"cannot reach the API server: {exc}") from None
        data = response.read()  # type: ignore[no-untyped-call]
        if response.status >= 400:
            raise ApiError(response.status, str(response.reason), _message(data))
        if not data:
            return None
        loaded: Body = json.loads(data)
        return loaded

    def get(self, kind: str, namespace: str, name: str) -> Body | None:
        try:
            return self._request("GET", BY_KIND[kind].path(namespace, name))
        except ApiError as exc:
            if exc.not_found:
                return None
            raise

    def apply(
        self, manifest: Mapping[str, Any], *, field_manager: str = naming.FIELD_MANAGER
    ) -> Body:
        """Server-side apply; takes ownership of every field in ``manifest``."""
        meta = manifest["metadata"]
        path = resource_of(manifest).path(meta["namespace"], meta["name"])
        query = {"fieldManager": field_manager, "force": "true"}
        result = self._request("PATCH", path, body=dict(manifest), query=query, content_type=APPLY)
        assert result is not None
        return result

    def delete(self, kind: str, namespace: str, name: str) -> bool:
        """Delete a child (its own dependents go in the background). False if already gone."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        try:
            self._request("DELETE", BY_KIND[kind].path(namespace, name), body=body)
        except ApiError as exc:
            if exc.not_found:
                return False
            raise
        return True

    def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> Body:
        """Replace the instance's status (merge patch on the status subresource)."""
        path = INSTANCE.path(namespace, name, subresource="status")
        result = self._request("PATCH", path, body={"status": dict(status)}, content_type=MERGE)
        assert result is not None
        return result

    def post_event(self, owner: Mapping[str, Any], *, type: str, reason: str, message: str) -> None:
        """A core/v1 Event about the instance. Failing to post never fails a reconcile."""
        meta = owner["metadata"]
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{meta['name']}.{uuid.uuid4().hex[:16]}",
                "namespace": meta["namespace"],
            },
            "involvedObject": {
                "apiVersion": naming.API_VERSION,
                "kind": naming.KIND,
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": type,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": naming.FIELD_MANAGER},
            "reportingComponent": naming.FIELD_MANAGER,
            "reportingInstance": naming.FIELD_MANAGER,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self._request("POST", EVENT.path(meta["namespace"]), body=event)
        except ApiError as exc:
            logger.warning("could not post event %s: %s", reason, exc)

    def crd_exists(self, name: str, *, ttl: float = 60.0) -> bool:
        """Whether a CRD is installed; cached for ``ttl`` seconds. Unknown counts as absent."""
        now = time.monotonic()
        cached = self._crd_cache.get(name)
        if cached and now - cached[0] < ttl:
            return cached[1]
        path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
        try:
            exists = self._request("GET", path) is not None
        except ApiError:
            exists = False
        self._crd_cache[name] = (now, exists)
        return exists


def _message(data: Any) -> str:
    """The API server's human message from a Status body, without echoing request data."""
    if isinstance(data, bytes):
        data = data.decode(errors="replace")
    try:
        parsed = json.loads(data) if data else {}
    except ValueError:
        return str(data)[:300]
    if isinstance(parsed, dict):
        return str(parsed.get("message") or parsed.get("reason") or "")[:500]
    return ""

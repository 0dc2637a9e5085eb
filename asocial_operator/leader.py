"""Leader election on a ``coordination.k8s.io/v1`` Lease: replicas of the operator run
side by side, exactly one reconciles, the others wait as hot standbys.

The protocol is client-go's. The leader renews ``spec.renewTime`` every ``renew_s``. A
candidate takes the Lease over once the record has not changed for
``leaseDurationSeconds``, timed on its own monotonic clock (so clock skew between
nodes does not matter). Every write carries the ``resourceVersion`` it read, so two
candidates can never both win. A leader that has not renewed for a whole lease
duration stops, since another replica may lead by then; a leader that stops cleanly
releases the Lease so a standby takes over at once.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from kubernetes.client import V1Lease, V1LeaseSpec, V1ObjectMeta
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)


class LeaseApi(Protocol):
    """The part of ``kubernetes.client.CoordinationV1Api`` used here; writes take a
    plain Lease manifest (times as MicroTime strings)."""

    def read_namespaced_lease(self, name: str, namespace: str) -> V1Lease: ...

    def create_namespaced_lease(self, namespace: str, body: Any) -> Any: ...

    def replace_namespaced_lease(self, name: str, namespace: str, body: Any) -> Any: ...


class LeaderElector:
    def __init__(
        self,
        api: LeaseApi,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_s: int = 15,
        retry_s: float = 2.0,
    ) -> None:
        if lease_s < 3:
            raise ValueError("the lease duration must be at least 3 seconds")
        self.api = api
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_s = lease_s
        self.renew_s = lease_s / 3
        self.retry_s = retry_s
        self._observed: tuple[str | None, object] | None = None
        self._observed_at = 0.0

    # --- candidate ---------------------------------------------------------------------

    def acquire(self, stop: threading.Event) -> bool:
        """Block until this process leads (True) or ``stop`` is set (False)."""
        reported: str | None = None
        while not stop.is_set():
            holder = self._try_acquire()
            if holder == self.identity:
                log.info("leading: lease %s/%s acquired", self.namespace, self.name)
                return True
            if holder != reported:
                log.info(
                    "standing by: lease %s/%s is held by %s", self.namespace, self.name, holder
                )
                reported = holder
            stop.wait(self.retry_s)
        return False

    def _try_acquire(self) -> str | None:
        """Take the Lease if it is free or expired; return who holds it afterwards."""
        now = _now()
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            body = self._body(None, holder=self.identity, acquired=now, renewed=now, transitions=0)
            try:
                self.api.create_namespaced_lease(self.namespace, body)
            except ApiException as conflict:
                if conflict.status == 409:  # another candidate created it first
                    return None
                raise
            return self.identity
        spec: V1LeaseSpec = lease.spec or V1LeaseSpec()
        holder = spec.holder_identity
        if holder and holder != self.identity and not self._expired(spec):
            return holder
        mine = holder == self.identity
        body = self._body(
            lease.metadata,
            holder=self.identity,
            acquired=spec.acquire_time if mine and spec.acquire_time else now,
            renewed=now,
            transitions=(spec.lease_transitions or 0) + (0 if mine or not holder else 1),
        )
        try:
            self.api.replace_namespaced_lease(self.name, self.namespace, body)
        except ApiException as exc:
            if exc.status == 409:  # changed since we read it: someone else moved first
                return holder
            raise
        return self.identity

    def _expired(self, spec: V1LeaseSpec) -> bool:
        record = (spec.holder_identity, spec.renew_time)
        if record != self._observed:
            self._observed, self._observed_at = record, time.monotonic()
            return False
        duration = spec.lease_duration_seconds or self.lease_s
        return time.monotonic() - self._observed_at > duration

    def _body(
        self,
        metadata: V1ObjectMeta | None,
        *,
        holder: str | None,
        acquired: dt.datetime | None,
        renewed: dt.datetime,
        transitions: int,
        duration: int | None = None,
    ) -> dict[str, Any]:
        """A Lease to write; with ``metadata`` read before, the write is conditional
        on its resourceVersion."""
        meta: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if metadata is not None and metadata.resource_version:
            meta["resourceVersion"] = metadata.resource_version
        spec = {
            "holderIdentity": holder,
            "leaseDurationSeconds": duration or self.lease_s,
            "acquireTime": _micro(acquired) if acquired else None,
            "renewTime": _micro(renewed),
            "leaseTransitions": transitions,
        }
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": meta,
            "spec": {key: value for key, value in spec.items() if value is not None},
        }

    # --- leader ------------------------------------------------------------------------

    def renew(self) -> bool:
        """Renew the Lease; False once another process holds it."""
        return self._rewrite(holder=self.identity)

    def _rewrite(self, *, holder: str | None, duration: int | None = None) -> bool:
        """Rewrite our Lease's holder and renewTime (conditionally on its
        resourceVersion); False, writing nothing, when another process holds it."""
        lease = self.api.read_namespaced_lease(self.name, self.namespace)
        spec: V1LeaseSpec = lease.spec or V1LeaseSpec()
        if spec.holder_identity != self.identity:
            return False
        body = self._body(
            lease.metadata,
            holder=holder,
            acquired=spec.acquire_time,
            renewed=_now(),
            transitions=spec.lease_transitions or 0,
            duration=duration,
        )
        self.api.replace_namespaced_lease(self.name, self.namespace, body)
        return True

    def keep(self, stop: threading.Event, on_lost: Callable[[], None]) -> threading.Thread:
        """Renew in a thread until ``stop``; call ``on_lost`` if leadership is lost."""

        def run() -> None:
            renewed = time.monotonic()
            while not stop.wait(self.renew_s):
                try:
                    if not self.renew():
                        log.error("leadership lost: the lease is held by another process")
                        on_lost()
                        return
                    renewed = time.monotonic()
                except Exception as exc:  # API errors, timeouts: retry until the deadline
                    log.warning("cannot renew the lease: %s", type(exc).__name__)
                if time.monotonic() - renewed > self.lease_s:
                    log.error("leadership lost: the lease was not renewed for %ds", self.lease_s)
                    on_lost()
                    return

        thread = threading.Thread(target=run, name="lease-renewal", daemon=True)
        thread.start()
        return thread

    def release(self) -> None:
        """Give the Lease up so a standby takes over without waiting for it to expire."""
        try:
            if self._rewrite(holder=None, duration=1):
                log.info("lease %s/%s released", self.namespace, self.name)
        except Exception as exc:  # it expires on its own; a standby just waits longer
            log.warning("could not release the lease: %s", exc)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _micro(moment: dt.datetime) -> str:
    """A MicroTime as the API server parses it (always six fractional digits); the
    client's own ``isoformat`` drops them when the microseconds are zero."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

"""One level-triggered reconcile pass for one instance.

Reads the instance and its children from the :class:`store.Store`, builds the
desired children with the pure ``manifests`` layer, applies only those that
drifted, deletes children that are no longer wanted, and writes status only
when it changed. Talks to the API solely through :class:`cluster.Cluster`.
Blocking; runs in a worker thread. Never logs Secret contents.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from asocial_operator import cluster, manifests, metrics, naming, status, store
from asocial_operator import spec as specs
from asocial_operator.manifests import common, drift

logger = logging.getLogger(__name__)

# Kinds whose live status feeds the instance's status.
STATUS_KINDS = ("Deployment", "StatefulSet", "Ingress")


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What a pass did; ``retry`` asks the work queue to run it again with backoff."""

    result: str
    retry: bool = False


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_password() -> str:
    """A fresh Redis password from the OS CSPRNG (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


class Reconciler:
    def __init__(
        self,
        api: cluster.Api,
        observed: store.Store,
        *,
        clock: Callable[[], str] = _now,
        password_factory: Callable[[], str] = new_password,
    ) -> None:
        self._api = api
        self._store = observed
        self._clock = clock
        self._new_password = password_factory
        # Last password per instance: a deleted Secret comes back with the same
        # value, so running pods (which read it at start) keep working.
        self._passwords: dict[store.Key, str] = {}

    def reconcile(self, key: store.Key) -> Outcome:
        started = time.monotonic()
        try:
            outcome = self._reconcile(key)
        except cluster.ApiError as exc:
            if exc.namespace_terminating or exc.not_found:
                # The instance or its namespace is being deleted: nothing to repair.
                outcome = Outcome("gone")
            else:
                logger.warning("reconcile of %s/%s failed: %s", *key, exc)
                outcome = Outcome("error", retry=True)
        metrics.RECONCILES.labels(result=outcome.result).inc()
        metrics.RECONCILE_SECONDS.observe(time.monotonic() - started)
        metrics.observe_instance(key, self._store.status(key))
        return outcome

    def _reconcile(self, key: store.Key) -> Outcome:
        body = self._store.instance(key)
        if body is None or body["metadata"].get("deletionTimestamp"):
            self._passwords.pop(key, None)
            return Outcome("gone")
        namespace, name = key
        meta = body["metadata"]
        generation = int(meta.get("generation") or 0)
        previous = body.get("status") or {}
        try:
            spec = specs.parse(body.get("spec"))
        except specs.SpecError as exc:
            failed = self._invalid_status(previous, generation=generation, message=str(exc))
            if self._write_status(body, failed):
                self._api.post_event(body, type="Warning", reason="InvalidSpec", message=str(exc))
            return Outcome("invalid")
        if spec.paused:
            self._write_status(body, status.paused(previous, generation=generation, now=""))
            return Outcome("paused")

        ctx = manifests.Context(
            namespace=namespace,
            name=name,
            uid=str(meta["uid"]),
            spec=spec,
            redis_password=self._password(key=key, spec=spec),
        )
        monitor_crd = spec.monitoring.service_monitor and self._api.crd_exists(
            cluster.SERVICE_MONITOR_CRD
        )
        rule_crd = spec.monitoring.prometheus_rule and self._api.crd_exists(
            cluster.PROMETHEUS_RULE_CRD
        )
        route_crd = spec.gateway is not None and self._api.crd_exists(cluster.HTTPROUTE_CRD)
        desired = manifests.build_all(
            ctx, service_monitor_crd=monitor_crd, prometheus_rule_crd=rule_crd, route_crd=route_crd
        )
        changed, errors, retry = self._apply_all(
            desired, namespace=namespace, min_replicas=spec.autoscaling.min_replicas
        )
        removed, delete_errors = self._delete_stale(key, desired, uid=ctx.uid)
        errors += delete_errors

        if changed:
            self._api.post_event(
                body, type="Normal", reason="Applied", message="applied " + ", ".join(changed)
            )
        if removed:
            self._api.post_event(
                body, type="Normal", reason="Deleted", message="deleted " + ", ".join(removed)
            )
        if errors:
            self._api.post_event(
                body, type="Warning", reason="ReconcileFailed", message="; ".join(errors)
            )
        self._update_status(
            body, spec, key=key, generation=generation, errors=errors, route_crd=route_crd
        )
        if errors:
            return Outcome("error", retry=True)
        return Outcome("changed" if changed or removed else "unchanged", retry=retry)

    def _password(self, *, key: store.Key, spec: specs.InstanceSpec) -> str | None:
        """The managed Redis password: the existing Secret's, else remembered, else new."""
        if not spec.redis.managed:
            return None
        namespace, name = key
        secret_name = naming.Names(name).secret
        secret = self._store.child("Secret", namespace, secret_name)
        if secret is None and key not in self._passwords:
            # Not seen yet (e.g. just after start): ask the API before generating,
            # so a restart never rotates the password under running pods.
            secret = self._api.get("Secret", namespace, secret_name)
        encoded = ((secret or {}).get("data") or {}).get(common.PASSWORD_KEY)
        password: str | None = None
        if encoded:
            try:
                password = base64.b64decode(encoded, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                logger.warning("Secret %s/%s holds an unreadable password", namespace, secret_name)
        password = password or self._passwords.get(key) or self._new_password()
        self._passwords[key] = password
        return password

    def _apply_all(
        self, desired: list[manifests.Manifest], *, namespace: str, min_replicas: int
    ) -> tuple[list[str], list[str], bool]:
        changed: list[str] = []
        errors: list[str] = []
        retry = False
        for manifest in desired:
            kind, name = manifest["kind"], manifest["metadata"]["name"]
            live = self._store.child(kind, namespace, name)
            if drift.in_sync(live, manifest):
                continue
            try:
                if live is None and _autoscaled(manifest):
                    self._api.apply(
                        _with_replicas(manifest, min_replicas),
                        field_manager=naming.BOOTSTRAP_FIELD_MANAGER,
                    )
                applied = self._api.apply(manifest)
            except cluster.ApiError as exc:
                if exc.namespace_terminating or exc.namespace_gone:
                    raise  # the namespace is going or gone: the pass ends as "gone"
                if exc.status == 422 and live is not None:
                    # The live object cannot be patched into shape: an immutable
                    # field changed (StatefulSet persistence) or a hand edit left
                    # entries another manager owns (a renumbered Service port).
                    # Replace it; the next pass (its DELETED event) recreates it.
                    logger.warning("replacing %s %s/%s: %s", kind, namespace, name, exc.message)
                    self._api.delete(kind, namespace, name)
                    self._store.remove_child(kind, namespace, name)
                    changed.append(f"{kind} {name} (replaced: {exc.message})")
                    retry = True
                    continue
                logger.warning("applying %s %s/%s failed: %s", kind, namespace, name, exc)
                errors.append(f"applying {kind} {name} failed: {exc.message or exc.reason}")
                continue
            self._store.put_child(applied)
            verb = "created" if live is None else "updated"
            changed.append(f"{kind} {name} ({verb})")
            logger.info("%s %s %s/%s", verb, kind, namespace, name)
        return changed, errors, retry

    def _delete_stale(
        self, key: store.Key, desired: list[manifests.Manifest], *, uid: str
    ) -> tuple[list[str], list[str]]:
        wanted = {(m["kind"], m["metadata"]["name"]) for m in desired}
        removed: list[str] = []
        errors: list[str] = []
        for child in self._store.children_of(key):
            kind, meta = child["kind"], child["metadata"]
            if (kind, meta["name"]) in wanted:
                continue
            owners = [r.get("uid") for r in meta.get("ownerReferences") or []]
            if uid not in owners or meta.get("deletionTimestamp"):
                continue
            try:
                self._api.delete(kind, key[0], meta["name"])
            except cluster.ApiError as exc:
                errors.append(f"deleting {kind} {meta['name']} failed: {exc.message or exc.reason}")
                continue
            self._store.remove_child(kind, key[0], meta["name"])
            removed.append(f"{kind} {meta['name']}")
            logger.info("deleted %s %s/%s (no longer wanted)", kind, key[0], meta["name"])
        return removed, errors

    def _update_status(
        self,
        body: dict[str, Any],
        spec: specs.InstanceSpec,
        *,
        key: store.Key,
        generation: int,
        errors: list[str],
        route_crd: bool = False,
    ) -> None:
        namespace, name = key
        names = naming.Names(name)
        route = self._store.child("HTTPRoute", namespace, names.route) if route_crd else None
        observed = status.Observed(
            backend=self._store.child("Deployment", namespace, names.backend),
            redis=self._store.child("StatefulSet", namespace, names.redis),
            ingress=self._store.child("Ingress", namespace, names.ingress),
            frontend=self._store.child("Deployment", namespace, names.frontend),
            gateway_api=route_crd,
            route=route,
            gateways=self._gateways(spec, namespace, route),
        )
        previous = body.get("status") or {}
        new = status.compute(
            spec,
            namespace=namespace,
            name=name,
            generation=generation,
            observed=observed,
            previous=previous,
            now=self._clock(),
            errors=errors,
        )
        if self._write_status(body, new) and previous.get("phase") != new["phase"]:
            kind = "Warning" if new["phase"] in (status.DEGRADED, status.FAILED) else "Normal"
            self._api.post_event(body, type=kind, reason=new["phase"], message=new["message"])

    def _gateways(
        self, spec: specs.InstanceSpec, namespace: str, route: dict[str, Any] | None
    ) -> dict[tuple[str, str], dict[str, Any]]:
        """The Gateways that accepted the route, read for their listeners' protocols."""
        if spec.gateway is None or route is None:
            return {}
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for parent in status.accepted_parents(route):
            key = (parent.get("namespace") or namespace, parent.get("name", ""))
            if key in found:
                continue
            try:
                gateway = self._api.get("Gateway", key[0], key[1])
            except cluster.ApiError as exc:
                logger.info("cannot read Gateway %s/%s: %s", *key, exc)
                continue
            if gateway is not None:
                found[key] = gateway
        return found

    def _invalid_status(
        self, previous: dict[str, Any], *, generation: int, message: str
    ) -> dict[str, Any]:
        out = dict(previous)
        out.update(phase=status.FAILED, message=message, observedGeneration=generation)
        return out

    def _write_status(self, body: dict[str, Any], new: dict[str, Any]) -> bool:
        """Patch status if it differs from what is stored; True when written."""
        previous = body.get("status") or {}
        if _same_status(previous, new):
            return False
        meta = body["metadata"]
        written = self._api.patch_status(meta["namespace"], meta["name"], new)
        self._store.put_instance(written)
        return True


def _autoscaled(manifest: manifests.Manifest) -> bool:
    return manifest["kind"] == "Deployment" and "replicas" not in manifest["spec"]


def _with_replicas(manifest: manifests.Manifest, replicas: int) -> manifests.Manifest:
    return {**manifest, "spec": {**manifest["spec"], "replicas": replicas}}


def _same_status(old: dict[str, Any], new: dict[str, Any]) -> bool:
    # lastTransitionTime is carried over while a condition holds, so equal
    # observations compare equal and no write (and no watch event) happens.
    return all(old.get(k) == v for k, v in new.items())

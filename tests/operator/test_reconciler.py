"""One reconcile pass against the in-memory API twin: applies, deletes, status, events."""

from __future__ import annotations

import base64
import logging
from typing import Any

import pytest

from asocial_operator import cluster, reconciler, store
from tests.operator.fakes import FakeApi, instance

KEY = ("team", "chat")
PASSWORD = "generated-password-xyz"


def setup(spec: dict[str, Any] | None = None) -> tuple[FakeApi, store.Store, reconciler.Reconciler]:
    api = FakeApi()
    observed = store.Store()
    body = instance(spec=spec)
    api.instances[KEY] = body
    observed.put_instance(body)
    rec = reconciler.Reconciler(
        api,
        observed,
        clock=lambda: "2026-01-01T00:00:00Z",
        password_factory=iter([PASSWORD, "second-password"]).__next__,
    )
    return api, observed, rec


def update_spec(api: FakeApi, observed: store.Store, spec: dict[str, Any]) -> None:
    body = observed.instance(KEY)
    assert body is not None
    body["spec"] = spec
    body["metadata"]["generation"] += 1
    api.instances[KEY] = body
    observed.put_instance(body)


def test_first_pass_creates_everything_then_idles() -> None:
    api, observed, rec = setup()
    outcome = rec.reconcile(KEY)
    assert outcome == reconciler.Outcome("changed")
    assert len([w for w in api.writes if w.startswith("apply")]) == 13
    # The autoscaled Deployment starts at minReplicas without us owning the field.
    assert api.writes.count("bootstrap Deployment chat-backend") == 1
    assert api.writes[-1] == "status chat"
    assert [e["reason"] for e in api.events] == ["Applied", "Progressing"]
    status = observed.instance(KEY)["status"]  # type: ignore[index]
    assert status["phase"] == "Progressing"
    api.writes.clear()
    assert rec.reconcile(KEY) == reconciler.Outcome("unchanged")
    assert api.writes == []


def test_password_generated_once_and_kept() -> None:
    api, _observed, rec = setup()
    rec.reconcile(KEY)
    secret = api.objects[("Secret", "team", "chat-redis-auth")]
    assert base64.b64decode(secret["data"]["redis-password"]).decode() == PASSWORD
    # A restarted operator (empty store) reads the Secret back instead of rotating it.
    fresh = store.Store()
    fresh.put_instance(api.instances[KEY])
    other = reconciler.Reconciler(api, fresh, password_factory=lambda: "different")
    other.reconcile(KEY)
    secret = api.objects[("Secret", "team", "chat-redis-auth")]
    assert base64.b64decode(secret["data"]["redis-password"]).decode() == PASSWORD


def test_drifted_child_is_reapplied() -> None:
    api, observed, rec = setup()
    rec.reconcile(KEY)
    dep = observed.child("Deployment", "team", "chat-backend")
    assert dep is not None
    dep["spec"]["template"]["spec"]["containers"][0]["image"] = "hacked:1"
    observed.put_child(dep)
    api.writes.clear()
    rec.reconcile(KEY)
    assert api.writes == ["apply Deployment chat-backend"]


def test_deleted_child_is_recreated() -> None:
    api, observed, rec = setup()
    rec.reconcile(KEY)
    observed.remove_child("Service", "team", "chat-backend")
    api.writes.clear()
    rec.reconcile(KEY)
    assert api.writes == ["apply Service chat-backend"]


def test_autoscaling_off_removes_hpa_and_sets_replicas() -> None:
    api, observed, rec = setup()
    rec.reconcile(KEY)
    update_spec(api, observed, {"autoscaling": {"enabled": False}, "backend": {"replicas": 2}})
    api.writes.clear()
    rec.reconcile(KEY)
    assert "delete HorizontalPodAutoscaler chat-backend" in api.writes
    assert api.objects[("Deployment", "team", "chat-backend")]["spec"]["replicas"] == 2
    assert ("HorizontalPodAutoscaler", "team", "chat-backend") not in api.objects


def test_paused_changes_nothing() -> None:
    api, _observed, rec = setup({"paused": True})
    assert rec.reconcile(KEY) == reconciler.Outcome("paused")
    assert api.writes == ["status chat"]
    assert api.instances[KEY]["status"]["phase"] == "Paused"


def test_invalid_spec_is_reported_not_retried() -> None:
    api, _, rec = setup({"redis": {"replicas": 2}})
    assert rec.reconcile(KEY) == reconciler.Outcome("invalid")
    assert api.instances[KEY]["status"]["phase"] == "Failed"
    assert "spec.redis.replicas" in api.instances[KEY]["status"]["message"]
    assert api.events[-1]["reason"] == "InvalidSpec"


def test_api_failure_is_retried_and_reported() -> None:
    api, _, rec = setup()
    api.fail_apply["Deployment"] = cluster.ApiError(403, "Forbidden", "deployments is forbidden")
    outcome = rec.reconcile(KEY)
    assert outcome == reconciler.Outcome("error", retry=True)
    status = api.instances[KEY]["status"]
    assert status["phase"] == "Failed"
    assert "applying Deployment chat-backend failed: deployments is forbidden" in status["message"]
    assert any(e["reason"] == "ReconcileFailed" for e in api.events)


def test_gone_instance_is_a_noop() -> None:
    api, observed, rec = setup()
    observed.remove_instance(KEY)
    assert rec.reconcile(KEY) == reconciler.Outcome("gone")
    assert api.writes == []


def test_password_never_leaks(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    api, observed, rec = setup()
    rec.reconcile(KEY)
    update_spec(api, observed, {"redis": {"replicas": 3}})
    rec.reconcile(KEY)
    assert PASSWORD not in caplog.text
    assert PASSWORD not in repr(api.events)
    assert PASSWORD not in repr(api.instances[KEY]["status"])
    for (kind, _, _), obj in api.objects.items():
        if kind == "ConfigMap":
            assert PASSWORD not in repr(obj)


def test_terminating_namespace_stops_quietly() -> None:
    api, _, rec = setup()
    api.fail_apply["Secret"] = cluster.ApiError(
        403,
        "Forbidden",
        "unable to create new content in namespace team because it is being terminated",
    )
    assert rec.reconcile(KEY) == reconciler.Outcome("gone")
    assert api.events == []
    assert "status" not in api.instances[KEY]


def test_deleted_secret_returns_with_the_same_password() -> None:
    api, observed, rec = setup()
    rec.reconcile(KEY)
    del api.objects[("Secret", "team", "chat-redis-auth")]
    observed.remove_child("Secret", "team", "chat-redis-auth")
    rec.reconcile(KEY)
    secret = api.objects[("Secret", "team", "chat-redis-auth")]
    assert base64.b64decode(secret["data"]["redis-password"]).decode() == PASSWORD


def test_unpatchable_child_is_replaced() -> None:
    api, observed, rec = setup()
    rec.reconcile(KEY)
    svc = observed.child("Service", "team", "chat-backend")
    assert svc is not None
    svc["spec"]["ports"][0]["port"] = 9999
    observed.put_child(svc)
    api.fail_apply["Service"] = cluster.ApiError(422, "Invalid", 'Duplicate value: "http"')
    api.writes.clear()
    assert rec.reconcile(KEY).retry
    assert api.writes == ["apply Service chat-backend", "delete Service chat-backend"]
    del api.fail_apply["Service"]
    rec.reconcile(KEY)
    assert api.objects[("Service", "team", "chat-backend")]["spec"]["ports"][0]["port"] == 8080


def test_vanished_namespace_stops_quietly() -> None:
    api, _, rec = setup()
    api.fail_apply["Secret"] = cluster.ApiError(404, "Not Found", 'namespaces "team" not found')
    assert rec.reconcile(KEY) == reconciler.Outcome("gone")
    assert api.events == []

"""The containment check that decides whether a live child needs re-applying."""

from __future__ import annotations

from asocial_operator.manifests import drift


def test_contains_ignores_server_additions() -> None:
    desired = {"spec": {"ports": [{"port": 80}], "type": "ClusterIP"}}
    live = {"spec": {"ports": [{"port": 80, "protocol": "TCP"}], "type": "ClusterIP", "x": 1}}
    assert drift.in_sync(live, desired)


def test_changed_value_or_missing_key_is_drift() -> None:
    desired = {"spec": {"replicas": 3}}
    assert not drift.in_sync({"spec": {"replicas": 2}}, desired)
    assert not drift.in_sync({"spec": {}}, desired)
    assert not drift.in_sync(None, desired)


def test_list_length_matters() -> None:
    assert not drift.contains([1, 2, 3], [1, 2])


def test_bool_is_not_int() -> None:
    assert not drift.contains(1, True)


def test_deleting_object_is_not_in_sync() -> None:
    assert not drift.in_sync({"metadata": {"deletionTimestamp": "now"}}, {"metadata": {}})

"""The observed-state store keeps the newest version and indexes children by owner."""

from __future__ import annotations

from typing import Any

from asocial_operator import store


def child(rv: str, *, ready: int = 0, owner: str = "chat") -> dict[str, Any]:
    return {
        "kind": "StatefulSet",
        "metadata": {
            "name": "chat-redis",
            "namespace": "ns",
            "resourceVersion": rv,
            "ownerReferences": [{"kind": "AsocialInstance", "name": owner, "controller": True}],
        },
        "status": {"readyReplicas": ready},
    }


def test_older_response_does_not_replace_newer_event() -> None:
    s = store.Store()
    s.put_child(child("20", ready=1))  # watch event with status
    s.put_child(child("19"))  # our apply's response, arriving late
    got = s.child("StatefulSet", "ns", "chat-redis")
    assert got is not None
    assert got["status"]["readyReplicas"] == 1


def test_newer_replaces_and_children_are_indexed() -> None:
    s = store.Store()
    assert s.put_child(child("1")) == ("ns", "chat")
    s.put_child(child("2", ready=1))
    assert [c["metadata"]["resourceVersion"] for c in s.children_of(("ns", "chat"))] == ["2"]
    s.remove_child("StatefulSet", "ns", "chat-redis")
    assert s.children_of(("ns", "chat")) == []


def test_instances_keep_the_newest() -> None:
    s = store.Store()
    new = {
        "metadata": {"name": "chat", "namespace": "ns", "resourceVersion": "5"},
        "spec": {"x": 2},
    }
    old = {
        "metadata": {"name": "chat", "namespace": "ns", "resourceVersion": "4"},
        "spec": {"x": 1},
    }
    s.put_instance(new)
    s.put_instance(old)
    assert s.instance(("ns", "chat")) == new

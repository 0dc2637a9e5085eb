"""The kopf registry holds watch-only handlers: no finalizers, no persisted kopf state.

kopf (1.45, the range pyproject allows) has no public API to list registered handlers,
so these read its registry's sub-registries; the behaviour itself (deleted and hand-edited
children restored within seconds) is proven against the API server in test_lifecycle.
"""

from __future__ import annotations

import kopf

from asocial_operator import cluster, handlers, naming


def test_every_child_kind_and_the_instance_are_watched() -> None:
    registry = kopf.get_default_registry()
    watched = {
        (h.selector.group, h.selector.version, h.selector.any_name)  # type: ignore[union-attr]
        for h in registry._watching.get_all_handlers()
    }
    expected = {(r.group, r.version, r.plural) for r in cluster.WATCHED}
    expected.add((naming.GROUP, naming.VERSION, naming.PLURAL))
    assert expected <= watched
    # Children are watched only when they carry our managed-by label (server-side).
    children = [
        h
        for h in registry._watching.get_all_handlers()
        if h.fn is handlers.child_event  # type: ignore[attr-defined]
    ]
    assert len(children) == len(cluster.WATCHED)
    assert all(h.labels == handlers.MANAGED for h in children)


def test_no_state_changing_handlers_so_no_finalizers() -> None:
    registry = kopf.get_default_registry()
    assert list(registry._changing.get_all_handlers()) == []
    assert list(registry._spawning.get_all_handlers()) == []

"""Names and labels come from one place and stay within Kubernetes limits."""

from __future__ import annotations

import dataclasses
import re

from asocial_operator import naming

DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def test_labels() -> None:
    assert naming.labels("chat", "backend") == {
        "app.kubernetes.io/name": "asocial",
        "app.kubernetes.io/instance": "chat",
        "app.kubernetes.io/component": "backend",
        "app.kubernetes.io/managed-by": "asocial-operator",
        "app.kubernetes.io/part-of": "asocial",
    }
    assert naming.selector("chat", "redis").items() <= naming.labels("chat", "redis").items()


def test_longest_instance_name_gives_valid_child_names() -> None:
    names = naming.Names("a" * 40)  # the CRD's limit
    for field in dir(names):
        if field.startswith("_") or field == "instance":
            continue
        value = getattr(names, field)
        assert len(value) <= 63, field
        assert DNS_1035.match(value), field
    # StatefulSet pods add "-<ordinal>" and a controller-revision hash label stays short.
    assert len(f"{names.redis}-4") <= 63
    assert dataclasses.is_dataclass(names)

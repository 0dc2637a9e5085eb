"""Reading a raw spec mapping: typed fields with defaults, resources and Secret
references; errors name the field. Shared value types of the sections.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from asocial_operator.spec.errors import SpecError


@dataclasses.dataclass(frozen=True)
class Resources:
    requests: Mapping[str, str]
    limits: Mapping[str, str]

    def as_dict(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        if self.requests:
            out["requests"] = dict(self.requests)
        if self.limits:
            out["limits"] = dict(self.limits)
        return out


@dataclasses.dataclass(frozen=True)
class SecretRef:
    name: str
    key: str


def section(raw: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
    value = raw.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SpecError(f"{path}.{key} must be an object")
    return value


def field(raw: Mapping[str, Any], key: str, default: Any, kind: type, path: str) -> Any:
    value = raw.get(key, default)
    if value is None:
        return default
    # bool is an int subclass: keep the two apart so `replicas: true` is an error.
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise SpecError(f"{path}.{key} must be an integer, got {value!r}")
    if kind is not int and not isinstance(value, kind):
        raise SpecError(f"{path}.{key} must be a {kind.__name__}, got {value!r}")
    return value


def resources(raw: Mapping[str, Any], default: Resources, path: str) -> Resources:
    if "resources" not in raw or raw["resources"] is None:
        return default
    res = section(raw, "resources", path)
    # str() keeps quantities canonical ("1" not 1) so live objects compare equal.
    return Resources(
        requests={k: str(v) for k, v in section(res, "requests", f"{path}.resources").items()},
        limits={k: str(v) for k, v in section(res, "limits", f"{path}.resources").items()},
    )


def secret_ref(raw: Mapping[str, Any], key: str, default_key: str, path: str) -> SecretRef | None:
    ref = raw.get(key)
    if ref is None:
        return None
    if not isinstance(ref, Mapping) or not ref.get("name"):
        raise SpecError(f"{path}.{key}.name is required (the Secret's name)")
    return SecretRef(name=str(ref["name"]), key=str(ref.get("key") or default_key))

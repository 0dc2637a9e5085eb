"""``spec.scheduling`` and ``spec.imagePullSecrets``: where and how every pod runs."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from asocial_operator.spec.errors import Rule, SpecError
from asocial_operator.spec.fields import field, section


@dataclasses.dataclass(frozen=True)
class Toleration:
    key: str | None = None
    operator: str | None = None
    value: str | None = None
    effect: str | None = None
    toleration_seconds: int | None = None

    def as_dict(self) -> dict[str, Any]:
        fields = {
            "key": self.key,
            "operator": self.operator,
            "value": self.value,
            "effect": self.effect,
            "tolerationSeconds": self.toleration_seconds,
        }
        return {k: v for k, v in fields.items() if v is not None}


@dataclasses.dataclass(frozen=True)
class Scheduling:
    node_selector: Mapping[str, str] = dataclasses.field(default_factory=dict)
    tolerations: tuple[Toleration, ...] = ()


_TOLERATION_OPERATORS = ("Exists", "Equal")

_TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def _toleration(raw: Any, path: str) -> Toleration:
    if not isinstance(raw, Mapping):
        raise SpecError(f"{path} must be an object (key, operator, value, effect)")
    result = Toleration(
        key=field(raw, "key", None, str, path),
        operator=field(raw, "operator", None, str, path),
        value=field(raw, "value", None, str, path),
        effect=field(raw, "effect", None, str, path),
        toleration_seconds=field(raw, "tolerationSeconds", None, int, path),
    )
    if result.operator is not None and result.operator not in _TOLERATION_OPERATORS:
        raise SpecError(f"{path}.operator must be Exists or Equal, got {result.operator!r}")
    if result.effect is not None and result.effect not in _TAINT_EFFECTS:
        raise SpecError(
            f"{path}.effect must be NoSchedule, PreferNoSchedule or NoExecute, "
            f"got {result.effect!r}"
        )
    if result.operator == "Exists" and result.value:
        raise SpecError(f"{path}: {Rule.TOLERATION_EXISTS_VALUE}")
    if result.key is None and result.operator != "Exists":
        raise SpecError(f"{path}: {Rule.TOLERATION_NO_KEY}")
    return result


def parse_scheduling(raw: Mapping[str, Any]) -> Scheduling:
    p = "spec.scheduling"
    tolerations = raw.get("tolerations") or []
    if not isinstance(tolerations, list):
        raise SpecError(f"{p}.tolerations must be a list")
    return Scheduling(
        node_selector={str(k): str(v) for k, v in section(raw, "nodeSelector", p).items()},
        tolerations=tuple(
            _toleration(t, f"{p}.tolerations[{i}]") for i, t in enumerate(tolerations)
        ),
    )


def parse_pull_secrets(raw: Any) -> tuple[str, ...]:
    p = "spec.imagePullSecrets"
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise SpecError(f"{p} must be a list of {{name: <Secret>}}")
    names: list[str] = []
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping) or not item.get("name"):
            raise SpecError(f"{p}[{i}].name is required (the Secret's name)")
        names.append(str(item["name"]))
    return tuple(names)

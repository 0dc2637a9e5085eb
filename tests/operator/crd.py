"""Helpers that read crds/asocialinstances.yaml, the one source of the schema."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

CRD_PATH = Path(__file__).resolve().parents[2] / "crds" / "asocialinstances.yaml"


@functools.cache
def crd() -> dict[str, Any]:
    with CRD_PATH.open() as f:
        loaded: dict[str, Any] = yaml.safe_load(f)
    return loaded


def schema() -> dict[str, Any]:
    root: dict[str, Any] = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return root


def apply_defaults(node: dict[str, Any], value: Any) -> Any:
    """Structural defaulting as the API server does it (enough for our schema)."""
    if value is None:
        return None
    if node.get("type") == "object" and isinstance(value, dict):
        out = dict(value)
        for key, sub in (node.get("properties") or {}).items():
            if key not in out and "default" in sub:
                out[key] = sub["default"]
            if key in out:
                out[key] = apply_defaults(sub, out[key])
        return out
    if node.get("type") == "array" and isinstance(value, list):
        return [apply_defaults(node.get("items", {}), v) for v in value]
    return value


def defaulted_spec(spec: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = apply_defaults(schema()["properties"]["spec"], spec)
    return result

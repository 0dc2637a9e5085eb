"""The CRD is structural, documented everywhere, and agrees with the spec layer's defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from asocial_operator import naming
from asocial_operator import spec as specs
from tests.operator import crd


def _walk(node: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    out = [(path, node)]
    for key, sub in (node.get("properties") or {}).items():
        out += _walk(sub, f"{path}.{key}")
    if "items" in node:
        out += _walk(node["items"], f"{path}[]")
    return out


def test_identity() -> None:
    c = crd.crd()
    assert c["metadata"]["name"] == naming.CRD_NAME
    names = c["spec"]["names"]
    assert names["kind"] == naming.KIND
    assert names["plural"] == naming.PLURAL
    assert names["shortNames"] == ["asi"]
    assert names["categories"] == ["asocial"]
    version = c["spec"]["versions"][0]
    assert version["name"] == naming.VERSION
    assert version["subresources"] == {"status": {}}
    columns = [col["name"].upper() for col in version["additionalPrinterColumns"]]
    assert columns == ["PHASE", "READY", "REDIS", "URL", "AGE"]


def test_every_spec_field_is_described() -> None:
    spec = crd.schema()["properties"]["spec"]
    missing = [
        path
        for path, node in _walk(spec, "spec")
        if not node.get("description") and not (path.endswith("[]") and node["type"] != "object")
    ]
    assert missing == []


def test_every_node_has_a_type() -> None:
    for path, node in _walk(crd.schema(), ""):
        if path.endswith(("requests", "limits")) or "x-kubernetes-int-or-string" in node:
            continue
        assert "type" in node, path


def test_empty_spec_defaults_match_the_spec_layer() -> None:
    assert specs.parse(crd.defaulted_spec({})) == specs.parse({}) == specs.InstanceSpec()


@pytest.mark.parametrize(
    "raw",
    [
        {"ingress": {"host": "chat.example.com"}},
        {"redis": {"replicas": 3, "persistence": {"enabled": True}}},
        {"auth": {"mode": "firebase", "firebase": {"projectId": "my-project"}}},
        {"frontend": {"image": "web:1"}, "autoscaling": {"enabled": False}},
    ],
)
def test_partial_spec_defaults_match(raw: dict[str, Any]) -> None:
    assert specs.parse(crd.defaulted_spec(raw)) == specs.parse(raw)


EXAMPLES = sorted((crd.CRD_PATH.parents[1] / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_examples_parse(path: Path) -> None:
    body = yaml.safe_load(path.read_text())
    assert body["kind"] == naming.KIND
    specs.parse(crd.defaulted_spec(body["spec"]))

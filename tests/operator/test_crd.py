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


# One spec that breaks each rule, and only that rule.
BREAKS: dict[str, dict[str, Any]] = {
    "EXTRA_ENV_REDIS": {"backend": {"extraEnv": [{"name": "ASOCIAL_REDIS_URL", "value": "x"}]}},
    "MIN_ABOVE_MAX": {"autoscaling": {"minReplicas": 5, "maxReplicas": 4}},
    "EXTERNAL_NEEDS_ADDRESS": {"redis": {"mode": "external"}},
    "URL_CREDENTIALS": {"redis": {"mode": "external", "url": "redis://:pw@r:6379/0"}},
    "URL_OR_SENTINEL": {
        "redis": {"mode": "external", "url": "redis://r:6379/0", "sentinel": {"hosts": ["s:1"]}}
    },
    "EXTERNAL_ONLY": {"redis": {"url": "redis://r:6379/0"}},
    "FIREBASE_PROJECT": {"auth": {"mode": "firebase"}},
    "JWT_KEY": {"auth": {"mode": "jwt", "jwt": {"issuer": "me"}}},
    "ANONYMOUS_REQUIRED": {"auth": {"mode": "anonymous", "required": True}},
    "TLS_HOST": {"ingress": {"tls": {"enabled": True, "clusterIssuer": "le"}}},
    "TLS_SOURCE": {"ingress": {"host": "chat.example.com", "tls": {"enabled": True}}},
    "GATEWAY_PARENTS": {"gateway": {"parentRefs": [], "hostnames": ["chat.example.com"]}},
    "TOLERATION_EXISTS_VALUE": {
        "scheduling": {"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]}
    },
    "TOLERATION_NO_KEY": {"scheduling": {"tolerations": [{"value": "v"}]}},
}


def _cel_messages(node: dict[str, Any]) -> list[str]:
    out = [rule["message"] for rule in node.get("x-kubernetes-validations") or []]
    for sub in (node.get("properties") or {}).values():
        out += _cel_messages(sub)
    if "items" in node:
        out += _cel_messages(node["items"])
    return out


def test_every_cel_rule_of_the_spec_is_a_parser_rule_word_for_word() -> None:
    cel = sorted(_cel_messages(crd.schema()["properties"]["spec"]))
    assert cel == sorted(specs.Rule.all().values())


@pytest.mark.parametrize("rule", sorted(specs.Rule.all()))
def test_the_parser_enforces_each_rule_with_the_same_words(rule: str) -> None:
    with pytest.raises(specs.SpecError) as raised:
        specs.parse(BREAKS[rule])
    assert specs.Rule.all()[rule] in str(raised.value)

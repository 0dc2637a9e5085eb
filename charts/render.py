"""Write the chart's generated files from their one source (``make chart``):

- ``asocial-operator/templates/crd.yaml``: ``crds/asocialinstances.yaml`` as a template
  (so ``helm upgrade`` updates it) with ``helm.sh/resource-policy: keep`` (so ``helm
  uninstall`` leaves it and every AsocialInstance in place);
- ``asocial-operator/files/operator-rules.yaml``: the operator's alert rules from
  ``asocial_operator/monitoring/rules.py``, their selector left to the template.

``python charts/render.py --check`` exits 1 when a file is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from asocial_operator.monitoring import rules

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "asocial-operator"
CRD_SOURCE = ROOT / "crds" / "asocialinstances.yaml"
SELECTOR = "__SELECTOR__"
NAME_LINE = "  name: asocialinstances.asocial.io\n"


def crd_template() -> str:
    source = CRD_SOURCE.read_text()
    body = source[source.index("apiVersion:") :]
    if NAME_LINE not in body:
        raise SystemExit(f"{CRD_SOURCE}: no line {NAME_LINE.strip()!r} to annotate")
    keep = NAME_LINE + "  annotations:\n    helm.sh/resource-policy: keep\n"
    return (
        "{{- if .Values.crds.install }}\n"
        "# Generated from crds/asocialinstances.yaml by `make chart`; do not edit.\n"
        "# A template, not crds/: `helm upgrade` updates it; `keep`: `helm uninstall` does not\n"
        "# delete it (nor, with it, every AsocialInstance).\n"
        + body.replace(NAME_LINE, keep, 1)
        + "{{- end }}\n"
    )


def operator_rules() -> str:
    header = "# Generated from asocial_operator/monitoring/rules.py by `make chart`; do not edit.\n"
    return header + str(
        yaml.safe_dump([rules.operator_rules(SELECTOR)], sort_keys=False, width=100)
    )


FILES = {
    CHART / "templates" / "crd.yaml": crd_template,
    CHART / "files" / "operator-rules.yaml": operator_rules,
}


def main(argv: list[str]) -> int:
    stale = [
        path for path, render in FILES.items() if not path.exists() or path.read_text() != render()
    ]
    if argv == ["--check"]:
        for path in stale:
            print(f"{path.relative_to(ROOT)} is stale: run `make chart`", file=sys.stderr)
        return 1 if stale else 0
    for path, render in FILES.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render())
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

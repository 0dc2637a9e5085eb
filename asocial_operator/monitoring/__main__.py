"""Write the shipped rules file and dashboard JSON: ``python -m asocial_operator.monitoring
DIR`` (``make monitoring`` passes ``deploy/monitoring``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from asocial_operator.monitoring import dashboard, rules

RULES_FILE = "asocial-rules.yaml"
DASHBOARD_FILE = "asocial-dashboard.json"
HEADER = (
    "# Prometheus alert rules for Asocial: every chat stack and the operator a Prometheus\n"
    "# scrapes. Generated from asocial_operator/monitoring/rules.py by `make monitoring`;\n"
    "# do not edit. Runbook: deploy/monitoring/README.md. Tests: asocial-rules.test.yaml.\n"
)


def rules_text() -> str:
    body = yaml.safe_dump(rules.rules_file(), sort_keys=False, width=100, allow_unicode=True)
    return HEADER + str(body)


def dashboard_text() -> str:
    return json.dumps(dashboard.build(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m asocial_operator.monitoring DIR", file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    (out / RULES_FILE).write_text(rules_text())
    (out / DASHBOARD_FILE).write_text(dashboard_text())
    print(f"wrote {out / RULES_FILE} and {out / DASHBOARD_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

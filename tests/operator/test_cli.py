"""Command-line parsing of ``asocial-operator``."""

from __future__ import annotations

import pytest

from asocial_operator import cli


def test_defaults_watch_all_namespaces() -> None:
    args = cli.parse_args([])
    assert args.namespace == []
    assert args.log_format == "json"
    assert args.metrics_port == 9090
    assert args.liveness == "http://0.0.0.0:8080/healthz"
    assert args.watch_timeout == 240


def test_repeatable_namespaces() -> None:
    args = cli.parse_args(["-n", "a", "--namespace", "b-*"])
    assert args.namespace == ["a", "b-*"]


def test_scope_flags_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.parse_args(["-n", "a", "--all-namespaces"])
    assert "not allowed with argument" in capsys.readouterr().err

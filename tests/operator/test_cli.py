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


def test_leader_election_is_off_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASOCIAL_OPERATOR_LEADER_ELECT", raising=False)
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    args = cli.parse_args([])
    assert args.leader_elect is False
    assert args.leader_elect_namespace == "asocial-system"
    assert args.leader_elect_name == "asocial-operator"
    assert args.leader_elect_lease_seconds == 15


def test_leader_election_from_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASOCIAL_OPERATOR_LEADER_ELECT", "true")
    monkeypatch.setenv("POD_NAMESPACE", "ops")
    args = cli.parse_args(["--leader-elect-name", "chat-a", "--leader-elect-lease-seconds", "9"])
    assert args.leader_elect is True
    assert args.leader_elect_namespace == "ops"
    assert args.leader_elect_name == "chat-a"
    assert args.leader_elect_lease_seconds == 9


def test_too_short_a_lease_is_refused_with_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.parse_args(["--leader-elect", "--leader-elect-lease-seconds", "1"])
    assert "--leader-elect-lease-seconds must be at least 3" in capsys.readouterr().err

"""Settings from the environment: lists, checks, and the message a bad value gets."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from asocial_operator.manifests.config import CLUSTER_NETWORKS
from chatserver import logs
from chatserver.settings import Settings


def test_trusted_proxies_default_to_this_host_and_take_addresses_and_networks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().trusted_proxies == ["127.0.0.1", "::1"]
    monkeypatch.setenv("ASOCIAL_TRUSTED_PROXIES", " 10.0.0.0/8, fd00::/8,192.168.1.7 ")
    assert Settings().trusted_proxies == ["10.0.0.0/8", "fd00::/8", "192.168.1.7"]
    monkeypatch.setenv("ASOCIAL_TRUSTED_PROXIES", "*")
    assert Settings().trusted_proxies == ["*"]


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("ingress", "'ingress' is not an IP address or network"),
        ("10.0.0.1/8", "no host bits set"),
        ("*, 10.0.0.0/8", "stands alone"),
    ],
)
def test_a_bad_trusted_proxy_says_what_to_give(
    monkeypatch: pytest.MonkeyPatch, value: str, needle: str
) -> None:
    monkeypatch.setenv("ASOCIAL_TRUSTED_PROXIES", value)
    with pytest.raises(ValidationError, match=needle):
        Settings()


def test_the_server_refuses_to_start_on_a_bad_setting_and_names_it() -> None:
    env = {**os.environ, "ASOCIAL_TRUSTED_PROXIES": "10.0.0.1/8"}
    done = subprocess.run(
        [sys.executable, "-m", "chatserver.cli", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "ASOCIAL_TRUSTED_PROXIES" in done.stderr
    assert "not an IP address or network" in done.stderr


def test_the_operators_trusted_networks_are_a_valid_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ASOCIAL_TRUSTED_PROXIES", CLUSTER_NETWORKS)
    assert len(Settings().trusted_proxies) == len(CLUSTER_NETWORKS.split(","))


def test_debug_is_the_chat_servers_own_and_libraries_stay_at_info() -> None:
    """``ASOCIAL_LOG_LEVEL=DEBUG`` turns on the chat server's own diagnostics (recovery
    reads, dropped frames), not uvicorn's dump of every request header."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level, logging.getLogger("chatserver").level
    try:
        logs.configure(level="DEBUG", json_format=True)
        assert logging.getLogger("chatserver.hub").isEnabledFor(logging.DEBUG)
        assert not logging.getLogger("uvicorn.error").isEnabledFor(logging.DEBUG)
        assert logging.getLogger("uvicorn.error").isEnabledFor(logging.INFO)
        logs.configure(level="WARNING", json_format=True)
        assert not logging.getLogger("chatserver.hub").isEnabledFor(logging.INFO)
        assert not logging.getLogger("redis").isEnabledFor(logging.INFO)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging.getLogger("chatserver").setLevel(saved[2])

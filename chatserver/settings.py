"""Typed settings, read once from ``ASOCIAL_*`` environment variables.

Pure configuration: no I/O beyond reading the environment and, on demand, secret files.
"""

from __future__ import annotations

import enum
import ipaddress
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class AuthMode(enum.StrEnum):
    ANONYMOUS = "anonymous"
    JWT = "jwt"
    FIREBASE = "firebase"


class LogFormat(enum.StrEnum):
    JSON = "json"
    TEXT = "text"


class Settings(BaseSettings):
    """Every setting of the chat server; see the README's settings table."""

    model_config = SettingsConfigDict(env_prefix="ASOCIAL_", extra="ignore", frozen=True)

    # broker
    redis_url: SecretStr | None = Field(
        default=None,
        description="redis://, rediss:// or redis+sentinel:// URL; absent = in-memory broker",
    )
    redis_password: SecretStr | None = None
    redis_password_file: Path | None = None
    redis_timeout_seconds: float = Field(default=1.0, gt=0, le=60)

    # auth
    auth_mode: AuthMode = AuthMode.ANONYMOUS
    auth_required: bool = False
    jwt_secret: SecretStr | None = None
    jwt_secret_file: Path | None = None
    jwt_public_key_file: Path | None = None
    jwt_jwks_url: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    firebase_project_id: str | None = None
    firebase_credentials_file: Path | None = None

    # limits
    rate_limit_per_minute: int = Field(default=100, ge=1)
    # Chat upgrades and /api calls per client address per minute, across pods (0: off).
    client_rate_limit_per_minute: int = Field(default=100, ge=0)
    frames_per_second: int = Field(default=30, ge=1)
    max_message_size: int = Field(default=4096, ge=64, le=1_048_576)
    message_fade_seconds: float = Field(default=5.0, gt=0, le=3600)
    max_connections: int = Field(default=20_000, ge=1)
    max_connections_per_user: int = Field(default=16, ge=1)
    send_queue_size: int = Field(default=256, ge=1)
    abuse_threshold: int = Field(default=20, ge=1)
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Peers whose X-Forwarded-For names the client (an ingress, a load balancer).
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.1", "::1"]
    )
    max_header_bytes: int = Field(default=16_384, ge=1024, le=1_048_576)
    handshake_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    replay_max_bytes: int = Field(default=262_144, ge=1024)
    # Frames bound for one socket within one event-loop turn go out in one write.
    write_coalescing: bool = True

    # liveness
    presence_ttl_seconds: float = Field(default=30.0, gt=1)
    ping_interval_seconds: float = Field(default=20.0, gt=0)
    ping_timeout_seconds: float = Field(default=20.0, gt=0)
    shutdown_grace_seconds: float = Field(default=25.0, ge=0)

    # observability
    metrics_channel_labels: bool = False

    # logging
    log_level: str = "INFO"
    log_format: LogFormat = LogFormat.JSON

    @field_validator("allowed_origins", "trusted_proxies", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        if "*" in value and value != ["*"]:
            raise ValueError("'*' (trust any peer) stands alone; drop the other entries")
        for entry in value:
            if entry == "*":
                continue
            try:
                if "/" in entry:
                    ipaddress.ip_network(entry)
                else:
                    ipaddress.ip_address(entry)
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an IP address or network: give addresses or networks"
                    " (like 10.0.0.0/8, with no host bits set) separated by commas, or *"
                ) from None
        return value

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @property
    def transport_max_size(self) -> int:
        """Largest WebSocket frame accepted: the payload limit plus room for the envelope
        (JSON escaping can expand text up to 6x; bigger frames are closed with 1009)."""
        return self.max_message_size * 6 + 1024


def read_secret(value: SecretStr | None, path: Path | None) -> str | None:
    """The secret given inline, else the stripped content of its file, else None."""
    if value is not None:
        return value.get_secret_value()
    if path is not None:
        return path.read_text(encoding="utf-8").strip()
    return None
